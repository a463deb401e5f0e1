"""MAC commands of LoRaWAN 1.0.x (EU868): one table, decoded and encoded in both directions.

Source: LoRaWAN 1.0.3 specification section 5 (tables 15-35), with TxParamSetup, DlChannel and DeviceTime
as 1.0.2/1.0.3 add them. Every CID is listed with its uplink and downlink layout, zero-length ones too.
An unknown CID stops decoding: MAC commands carry no length, so nothing after it can be trusted, and the
rest is kept as raw bytes instead of guessed at.

A layout is a list of little-endian integers (``Word``); each word is split into named bit fields
(``Bits``). Bits not named are RFU: ignored on decode, zero on encode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from havel.errors import FrameError, InputError


@dataclass(frozen=True, slots=True)
class Bits:
    """A field of ``width`` bits at ``shift`` in its word. ``kind``: int, bool, signed, hz (x100), frac256."""

    name: str
    shift: int
    width: int
    kind: str = "int"


@dataclass(frozen=True, slots=True)
class Word:
    """``size`` bytes, little-endian, split into fields."""

    size: int
    fields: tuple[Bits, ...]


def _u8(name: str, kind: str = "int") -> Word:
    return Word(1, (Bits(name, 0, 8, kind),))


def _freq(name: str = "freq_hz") -> Word:
    return Word(3, (Bits(name, 0, 24, "hz"),))


def _flags(*names: str) -> Word:
    """A status byte of ack bits, bit 0 first."""
    return Word(1, tuple(Bits(n, i, 1, "bool") for i, n in enumerate(names)))


Layout = tuple[Word, ...]


@dataclass(frozen=True, slots=True)
class MacCommand:
    """One CID: the names and layouts of its uplink and downlink forms."""

    cid: int
    up_name: str
    up: Layout
    down_name: str
    down: Layout


# CID, uplink name and layout (device -> network), downlink name and layout (network -> device).
TABLE: tuple[MacCommand, ...] = (
    MacCommand(0x02, "LinkCheckReq", (), "LinkCheckAns", (_u8("margin_db"), _u8("gw_cnt"))),
    MacCommand(
        0x03,
        "LinkADRAns",
        (_flags("channel_mask_ack", "data_rate_ack", "power_ack"),),
        "LinkADRReq",
        (
            Word(1, (Bits("data_rate", 4, 4), Bits("tx_power", 0, 4))),
            Word(2, (Bits("ch_mask", 0, 16),)),
            Word(1, (Bits("ch_mask_cntl", 4, 3), Bits("nb_trans", 0, 4))),
        ),
    ),
    MacCommand(0x04, "DutyCycleAns", (), "DutyCycleReq", (Word(1, (Bits("max_duty_cycle", 0, 4),)),)),
    MacCommand(
        0x05,
        "RXParamSetupAns",
        (_flags("channel_ack", "rx2_data_rate_ack", "rx1_dr_offset_ack"),),
        "RXParamSetupReq",
        (Word(1, (Bits("rx1_dr_offset", 4, 3), Bits("rx2_data_rate", 0, 4))), _freq()),
    ),
    MacCommand(
        0x06,
        "DevStatusAns",
        (_u8("battery"), Word(1, (Bits("margin_db", 0, 6, "signed"),))),
        "DevStatusReq",
        (),
    ),
    MacCommand(
        0x07,
        "NewChannelAns",
        (_flags("channel_freq_ok", "data_rate_range_ok"),),
        "NewChannelReq",
        (_u8("ch_index"), _freq(), Word(1, (Bits("max_dr", 4, 4), Bits("min_dr", 0, 4)))),
    ),
    MacCommand(0x08, "RXTimingSetupAns", (), "RXTimingSetupReq", (Word(1, (Bits("delay_s", 0, 4),)),)),
    MacCommand(
        0x09,
        "TxParamSetupAns",
        (),
        "TxParamSetupReq",
        (
            Word(
                1,
                (
                    Bits("downlink_dwell_time", 5, 1, "bool"),
                    Bits("uplink_dwell_time", 4, 1, "bool"),
                    Bits("max_eirp", 0, 4),
                ),
            ),
        ),
    ),
    MacCommand(
        0x0A,
        "DlChannelAns",
        (_flags("channel_freq_ok", "uplink_freq_exists"),),
        "DlChannelReq",
        (_u8("ch_index"), _freq()),
    ),
    MacCommand(
        0x0D,
        "DeviceTimeReq",
        (),
        "DeviceTimeAns",
        (Word(4, (Bits("gps_time_s", 0, 32),)), Word(1, (Bits("fraction_s", 0, 8, "frac256"),))),
    ),
)

BY_CID: dict[int, MacCommand] = {cmd.cid: cmd for cmd in TABLE}
# name -> (command, uplink?)
BY_NAME: dict[str, tuple[MacCommand, bool]] = {
    **{cmd.up_name: (cmd, True) for cmd in TABLE},
    **{cmd.down_name: (cmd, False) for cmd in TABLE},
}


def layout_size(layout: Layout) -> int:
    """Bytes a command's payload takes after its CID."""
    return sum(word.size for word in layout)


def _get_value(raw: int, bits: Bits) -> Any:
    value = (raw >> bits.shift) & ((1 << bits.width) - 1)
    if bits.kind == "bool":
        return bool(value)
    if bits.kind == "signed" and value >= 1 << (bits.width - 1):
        return value - (1 << bits.width)
    if bits.kind == "hz":
        return value * 100
    if bits.kind == "frac256":
        return value / 256
    return value


def decode(data: bytes, uplink: bool) -> list[dict[str, Any]]:
    """MAC commands from FOpts or a decrypted FPort-0 payload, as {"cid", "name", fields...}.

    An unknown CID ends the list with {"cid", "name": "Unknown", "raw": hex of the bytes after it}.
    FrameError if a known command is cut short.
    """
    out: list[dict[str, Any]] = []
    pos, n = 0, len(data)
    while pos < n:
        cid = data[pos]
        cmd = BY_CID.get(cid)
        if cmd is None:
            out.append({"cid": cid, "name": "Unknown", "raw": bytes(data[pos + 1 :]).hex()})
            break
        name, layout = (cmd.up_name, cmd.up) if uplink else (cmd.down_name, cmd.down)
        size = layout_size(layout)
        if pos + 1 + size > n:
            raise FrameError(
                f"MAC command {name} (CID 0x{cid:02X}) needs {size} bytes, only {n - pos - 1} left"
            )
        item: dict[str, Any] = {"cid": cid, "name": name}
        pos += 1
        for word in layout:
            raw = int.from_bytes(data[pos : pos + word.size], "little")
            pos += word.size
            for bits in word.fields:
                item[bits.name] = _get_value(raw, bits)
        out.append(item)
    return out


def _put_value(cmd_name: str, bits: Bits, value: Any) -> int:
    where = f"{cmd_name}.{bits.name}"
    if bits.kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, got {value!r}")
        return int(value)
    if bits.kind == "frac256":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise InputError(f"{where}: expected a fraction of a second in [0, 1), got {value!r}")
        number = round(value * 256)
        if number > 255:
            raise InputError(f"{where}: {value!r} rounds to a whole second")
        return number
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where}: expected an integer, got {value!r}")
    if bits.kind == "hz":
        if value % 100:
            raise InputError(f"{where}: {value} Hz is not a multiple of 100 Hz")
        value //= 100
    limit = 1 << bits.width
    if bits.kind == "signed":
        half = limit >> 1
        if not -half <= value < half:
            raise InputError(f"{where}: {value} is outside {-half}..{half - 1}")
        return value & (limit - 1)
    if not 0 <= value < limit:
        scale = 100 if bits.kind == "hz" else 1
        raise InputError(f"{where}: {value * scale} is outside 0..{(limit - 1) * scale}")
    return int(value)


def encode(cmds: list[dict[str, Any]], uplink: bool) -> bytes:
    """Bytes of MAC commands given as decode() returns them ("name" or "cid" identifies each one).

    InputError names the command and field when one is missing, out of range, or sent the wrong way.
    """
    out = bytearray()
    for i, spec in enumerate(cmds):
        if not isinstance(spec, dict):
            raise InputError(f"MAC command #{i}: expected an object, got {spec!r}")
        name = spec.get("name")
        if name == "Unknown" or (name is None and "raw" in spec):
            cid = spec.get("cid")
            if not isinstance(cid, int) or isinstance(cid, bool) or not 0 <= cid <= 255:
                raise InputError(f"MAC command #{i}: a raw command needs a CID 0..255, got {cid!r}")
            try:
                raw = bytes.fromhex(str(spec.get("raw", "")))
            except ValueError:
                raise InputError(f"MAC command #{i}: 'raw' is not hex") from None
            out.append(cid)
            out += raw
            continue
        if name is not None:
            found = BY_NAME.get(str(name))
            if found is None:
                raise InputError(
                    f"MAC command #{i}: unknown name {name!r}",
                    hint="names as in LoRaWAN 1.0.3 section 5, e.g. LinkADRReq, DevStatusReq",
                )
            cmd, is_up = found
            if is_up != uplink:
                raise InputError(
                    f"MAC command {name} travels {'up' if is_up else 'down'}link, "
                    f"not {'up' if uplink else 'down'}link"
                )
        else:
            cid = spec.get("cid")
            cmd_or_none = BY_CID.get(cid) if isinstance(cid, int) else None
            if cmd_or_none is None:
                raise InputError(f"MAC command #{i}: needs a known 'name' or 'cid', got {spec!r}")
            cmd = cmd_or_none
        name_dir, layout = (cmd.up_name, cmd.up) if uplink else (cmd.down_name, cmd.down)
        if "cid" in spec and spec["cid"] != cmd.cid:
            raise InputError(f"MAC command {name_dir}: CID {spec['cid']!r} does not match 0x{cmd.cid:02X}")
        out.append(cmd.cid)
        for word in layout:
            raw_word = 0
            for bits in word.fields:
                if bits.name not in spec:
                    raise InputError(f"MAC command {name_dir}: field '{bits.name}' is missing")
                raw_word |= _put_value(name_dir, bits, spec[bits.name]) << bits.shift
            out += raw_word.to_bytes(word.size, "little")
    return bytes(out)
