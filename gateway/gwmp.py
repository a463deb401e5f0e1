"""Semtech UDP packet-forwarder protocol (GWMP) versions 1 and 2: a pure codec, no sockets.

Datagram layout (PROTOCOL.TXT v1.3 / sx1302_hal PROTOCOL.md v1.5)::

    version(1) | token(2) | identifier(1) | [gateway EUI(8)] | [JSON]

PUSH_DATA 0x00 (EUI + JSON rxpk/stat), PUSH_ACK 0x01, PULL_DATA 0x02 (EUI), PULL_RESP 0x03 (JSON txpk),
PULL_ACK 0x04, TX_ACK 0x05 (EUI + optional JSON txpk_ack, version 2 only).

Everything that can be wrong in a datagram raises :class:`GwmpError` with a short ``reason`` that the
UDP server uses as a metric label; nothing here logs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from havel.errors import InputError
from havel.gateway.network.reception import format_wire_time as format_time  # (microseconds, as sent)

PUSH_DATA = 0x00
PUSH_ACK = 0x01
PULL_DATA = 0x02
PULL_RESP = 0x03
PULL_ACK = 0x04
TX_ACK = 0x05
VERSIONS = (1, 2)
IDENTIFIER_NAMES = {
    PUSH_DATA: "PUSH_DATA",
    PUSH_ACK: "PUSH_ACK",
    PULL_DATA: "PULL_DATA",
    PULL_RESP: "PULL_RESP",
    PULL_ACK: "PULL_ACK",
    TX_ACK: "TX_ACK",
}
TX_ACK_ERRORS = (
    "NONE",
    "TOO_LATE",
    "TOO_EARLY",
    "COLLISION_PACKET",
    "COLLISION_BEACON",
    "TX_FREQ",
    "TX_POWER",
    "GPS_UNLOCKED",
)
TMST_MODULO = 1 << 32  # the concentrator's microsecond counter wraps every ~71.6 minutes

_HEADER = struct.Struct(">BHB")  # version, token (byte order irrelevant, echoed as is), identifier


class GwmpError(InputError):
    """A datagram or JSON object that does not follow the packet-forwarder protocol.

    ``reason`` is a short, stable label (``truncated``, ``version``, ``identifier``, ``json``, ``rxpk``,
    ``stat``, ``txpk``) used for counting rejects by kind; ``field`` names the rxpk or stat field at fault.
    """

    def __init__(
        self, message: str, *, reason: str, hint: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        self.field = field  # the rxpk or stat field at fault, when one is (a second, finer metric label)


@dataclass(frozen=True)
class Datagram:
    """One decoded datagram. ``gateway_eui`` is set for PUSH_DATA, PULL_DATA and TX_ACK;
    ``payload`` is the decoded JSON object (empty when the datagram has none)."""

    version: int
    token: int
    identifier: int
    gateway_eui: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The identifier's protocol name, e.g. ``PUSH_DATA``."""
        return IDENTIFIER_NAMES[self.identifier]


@dataclass(slots=True)
class RxPacket:
    """One received packet (an element of ``rxpk``), in units that say what they are.

    Treat it as read-only. Not frozen only because a frozen dataclass is slower to build, and the gateway
    builds one per received frame."""

    data: bytes
    tmst: int
    freq_hz: int
    datr: str
    chan: int = 0
    rfch: int = 0
    stat: int = 1
    modu: str = "LORA"
    codr: str = "4/5"
    rssi: float = 0.0
    lsnr: float | None = None
    time: datetime | None = None  # the forwarder's receive time, GPS-synced when ``time`` was sent
    tmms: int | None = None  # GPS time in ms since 1980-01-06, present only with a GPS fix

    @property
    def crc_ok(self) -> bool:
        """True when the concentrator checked the CRC and it was good."""
        return self.stat == 1


@dataclass(frozen=True)
class Stat:
    """A forwarder's periodic status report (``stat``), kept as the gateway's health."""

    time: datetime | None
    rxnb: int = 0
    rxok: int = 0
    rxfw: int = 0
    ackr: float | None = None
    dwnb: int = 0
    txnb: int = 0
    lati: float | None = None
    long: float | None = None
    alti: int | None = None
    temp: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict, time as RFC 3339."""
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in ("rxnb", "rxok", "rxfw", "ackr", "dwnb", "txnb", "lati", "long", "alti", "temp")
        }
        out["time"] = format_time(self.time) if self.time else None
        return out


# --------------------------------------------------------------------------------------------- datagrams


def header(data: bytes) -> tuple[int, int, int, int | None]:
    """``(version, token, identifier, gateway EUI or None)`` of a datagram, without reading its JSON (so
    a server can refuse a stranger's datagram before spending time on its body). Raises
    :class:`GwmpError` like :func:`parse`."""
    if len(data) < 4:
        raise GwmpError(
            f"datagram of {len(data)} bytes is shorter than the 4-byte header", reason="truncated"
        )
    version, token, ident = _HEADER.unpack_from(data)
    if version not in VERSIONS:
        raise GwmpError(
            f"protocol version {version} is not supported (only 1 and 2)",
            reason="version",
            hint="configure the packet forwarder for the Semtech UDP protocol v1 or v2",
        )
    if ident not in IDENTIFIER_NAMES:
        raise GwmpError(f"unknown identifier 0x{ident:02x}", reason="identifier")
    if ident in (PUSH_DATA, PULL_DATA, TX_ACK):
        if len(data) < 12:
            raise GwmpError(
                f"{IDENTIFIER_NAMES[ident]} of {len(data)} bytes has no 8-byte gateway EUI",
                reason="truncated",
            )
        return version, token, ident, int.from_bytes(data[4:12], "big")
    return version, token, ident, None


def parse(data: bytes) -> Datagram:
    """Decode one datagram; raises :class:`GwmpError` for anything malformed."""
    version, token, ident, eui = header(data)
    if eui is not None:
        body = data[12:]
        if ident == PULL_DATA:
            return Datagram(version, token, ident, eui)
        if ident == TX_ACK:
            # v2 TX_ACK may carry a JSON object, possibly empty or NUL-terminated by some forwarders.
            body = body.rstrip(b"\x00")
            payload = _json_object(body, ident) if body.strip() else {}
            return Datagram(version, token, ident, eui, payload)
        return Datagram(version, token, ident, eui, _json_object(body, ident))
    if ident == PULL_RESP:
        return Datagram(version, token, ident, None, _json_object(data[4:], ident))
    return Datagram(version, token, ident)


def _json_object(body: bytes, ident: int) -> dict[str, Any]:
    name = IDENTIFIER_NAMES[ident]
    if not body:
        raise GwmpError(f"{name} has no JSON body", reason="truncated")
    try:
        obj = orjson.loads(body)  # (about 3x faster than json.loads; no NaN or Infinity, UTF-8 only)
    except (UnicodeDecodeError, ValueError) as exc:
        raise GwmpError(f"{name} JSON body is unreadable: {exc}", reason="json") from None
    if not isinstance(obj, dict):
        raise GwmpError(f"{name} JSON body is a {type(obj).__name__}, not an object", reason="json")
    return obj


def _header(version: int, token: int, ident: int) -> bytes:
    if version not in VERSIONS:
        raise GwmpError(f"protocol version {version} is not supported", reason="version")
    return _HEADER.pack(version, token & 0xFFFF, ident)


def _eui(eui: int) -> bytes:
    return eui.to_bytes(8, "big")


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def encode_push_data(
    version: int,
    token: int,
    gateway_eui: int,
    *,
    rxpk: list[dict[str, Any]] | None = None,
    stat: dict[str, Any] | None = None,
) -> bytes:
    """PUSH_DATA as a packet forwarder sends it (used by the simulator and tests)."""
    body: dict[str, Any] = {}
    if rxpk is not None:
        body["rxpk"] = rxpk
    if stat is not None:
        body["stat"] = stat
    return _header(version, token, PUSH_DATA) + _eui(gateway_eui) + _dumps(body)


def encode_push_ack(version: int, token: int) -> bytes:
    """PUSH_ACK echoing the PUSH_DATA's token."""
    return _header(version, token, PUSH_ACK)


def encode_pull_data(version: int, token: int, gateway_eui: int) -> bytes:
    """PULL_DATA keepalive (forwarder -> server)."""
    return _header(version, token, PULL_DATA) + _eui(gateway_eui)


def encode_pull_ack(version: int, token: int) -> bytes:
    """PULL_ACK echoing the PULL_DATA's token."""
    return _header(version, token, PULL_ACK)


def encode_pull_resp(version: int, token: int, txpk: dict[str, Any]) -> bytes:
    """PULL_RESP carrying one txpk. Version 1 forwarders ignore the token (send 0)."""
    return _header(version, token if version >= 2 else 0, PULL_RESP) + _dumps({"txpk": txpk})


def encode_tx_ack(version: int, token: int, gateway_eui: int, error: str = "NONE") -> bytes:
    """TX_ACK (forwarder -> server), version 2; ``error`` one of :data:`TX_ACK_ERRORS`."""
    body = b"" if error == "NONE" else _dumps({"txpk_ack": {"error": error}})
    return _header(version, token, TX_ACK) + _eui(gateway_eui) + body


def tx_ack_error(dg: Datagram) -> str:
    """The error of a TX_ACK datagram (``NONE`` when it has none)."""
    ack = dg.payload.get("txpk_ack")
    if not isinstance(ack, dict):
        return "NONE"
    err = ack.get("error", "NONE")
    if not err:
        return "NONE"
    # only the protocol's names: the error becomes a metric label, and a sender's free text must not
    # grow the metrics without bound
    return err if err in TX_ACK_ERRORS else "UNKNOWN"


# ------------------------------------------------------------------------------------------- rxpk / stat

_FRACTION = re.compile(r"\.(\d+)")
_TIME_MAX_CHARS = 64  # RFC 3339 with nanoseconds and an offset is 35 characters

# What a concentrator can report, with room to spare; anything outside is a broken or hostile sender, and
# would otherwise overflow later arithmetic (a freq of 1e303 MHz is an OverflowError in Hz).
FREQ_MHZ = (100.0, 3000.0)  # sub-GHz concentrators and the 2.4 GHz ones
RSSI_DBM = (-250.0, 50.0)
LSNR_DB = (-50.0, 50.0)
MAX_PHY_BYTES = 255  # a LoRa packet holds at most 255 bytes
_MAX_B64_CHARS = 4 * ((MAX_PHY_BYTES + 2) // 3)
TMST_MAX = TMST_MODULO - 1  # an unsigned 32-bit microsecond counter
TMMS_MAX = 1 << 53  # GPS milliseconds since 1980 (about 285,000 years of room)
MAX_RSIG = 16  # antennas reported in one rsig array (concentrators have 1 to 4)
U32_MAX = (1 << 32) - 1
_LORA_DATR = re.compile(r"SF([5-9]|1[0-2])BW\d{1,4}(\.\d{1,2})?")
_CODR = re.compile(r"4/[5-8](LI)?|OFF")
FSK_BPS = (100, 1_000_000)


def parse_time(value: str) -> datetime:
    """RFC 3339 UTC (``2013-03-31T16:21:17.528002Z``, any number of fraction digits) or the stat format
    ``2014-01-12 08:59:28 GMT``; returns an aware UTC datetime. Raises ValueError (also for a time that
    falls outside the years 1 to 9999 once converted to UTC)."""
    if len(value) > _TIME_MAX_CHARS:
        raise ValueError(f"time of {len(value)} characters")
    text = value.strip()
    try:
        if text.endswith(" GMT"):
            return datetime.strptime(text, "%Y-%m-%d %H:%M:%S GMT").replace(tzinfo=UTC)
        # Python parses at most 6 fraction digits; forwarders send up to 9 (nanoseconds).
        text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is past year 9999 in UTC
        raise ValueError("time outside the years 1 to 9999") from None


def _b64(value: str) -> bytes:
    text = value.strip()
    pad = -len(text) % 4
    if pad:
        text += "=" * pad  # padding is optional in GWMP
    try:
        # strict: what base64.b64decode(validate=True) checks, without its wrapper
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise GwmpError("rxpk data is not valid base64", reason="rxpk", field="data") from None


def _show(value: Any) -> str:
    """A value for an error message, cut short (the message may reach a log)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bad(key: str, value: Any, want: str, what: str = "rxpk") -> GwmpError:
    return GwmpError(f"{what} field '{key}' is {_show(value)}, not {want}", reason=what, field=key)


def _int(obj: dict[str, Any], key: str, lo: int, hi: int, default: Any = None, what: str = "rxpk") -> Any:
    """An integer field in lo..hi (a float with an integral value counts); ``default`` when absent."""
    value = obj.get(key)
    if value is None:
        return default
    cls = value.__class__
    if cls is int:  # (bool is not int by class)
        if lo <= value <= hi:
            return value
    elif cls is float and value.is_integer() and lo <= value <= hi:  # NaN and infinity are not integral
        return int(value)
    raise _bad(key, value, f"an integer in {lo}..{hi}", what)


def _float(
    obj: dict[str, Any], key: str, lo: float, hi: float, default: Any = None, what: str = "rxpk"
) -> Any:
    """A finite number in lo..hi as a float; ``default`` when absent."""
    value = obj.get(key)
    if value is None:
        return default
    cls = value.__class__
    # compared before converting: a huge integer compares fine but would overflow float(); NaN fails
    if (cls is float or cls is int) and lo <= value <= hi:
        return float(value)
    raise _bad(key, value, f"a number in {lo:g}..{hi:g}", what)


def _required(obj: dict[str, Any], key: str) -> None:
    if obj.get(key) is None:
        raise GwmpError(f"rxpk field '{key}' is missing", reason="rxpk", field=key)


def parse_rxpk(obj: Any) -> RxPacket:
    """One rxpk JSON object -> :class:`RxPacket`. Requires data, tmst, freq and datr; v1.5 ``rsig``
    arrays stand in for a missing top-level rssi/lsnr (the best antenna counts).

    Every field the gateway reads is checked for its type and a range a concentrator can report (see the
    constants above); anything else raises :class:`GwmpError` (reason ``rxpk``, ``field`` the field)."""
    if not isinstance(obj, dict):
        raise GwmpError("rxpk element is not an object", reason="rxpk", field="rxpk")
    get = obj.get
    data_s = get("data")
    if data_s.__class__ is not str:
        raise GwmpError("rxpk field 'data' is missing or not a string", reason="rxpk", field="data")
    if len(data_s) > _MAX_B64_CHARS + 4:
        raise _bad("data", data_s, f"at most {MAX_PHY_BYTES} bytes")
    data = _b64(data_s)
    if len(data) > MAX_PHY_BYTES:
        raise _bad("data", data_s, f"at most {MAX_PHY_BYTES} bytes")
    size = get("size")
    if size is not None and size != len(data):
        raise GwmpError(
            f"rxpk size {_show(size)} does not match {len(data)} data bytes", reason="rxpk", field="size"
        )
    _required(obj, "tmst")
    tmst = _int(obj, "tmst", 0, TMST_MAX)
    _required(obj, "freq")
    freq = _float(obj, "freq", *FREQ_MHZ)
    modu = get("modu", "LORA")
    if modu == "LORA":
        datr = get("datr")
        if datr is None:
            _required(obj, "datr")
        if datr.__class__ is not str or not _LORA_DATR.fullmatch(datr):
            raise _bad("datr", datr, "a LoRa data rate like 'SF7BW125'")
    elif modu == "FSK":  # the bit rate as a number
        _required(obj, "datr")
        datr = str(_int(obj, "datr", *FSK_BPS))
    else:
        raise _bad("modu", modu, "'LORA' or 'FSK'")
    codr = get("codr")
    if codr is None:
        codr = "4/5"
    elif codr.__class__ is not str or not _CODR.fullmatch(codr):
        raise _bad("codr", codr, "a coding rate like '4/5'")
    rssi = _float(obj, "rssi", *RSSI_DBM)
    lsnr = _float(obj, "lsnr", *LSNR_DB)
    rsig = get("rsig")
    if rsig is not None:
        if rsig.__class__ is not list or len(rsig) > MAX_RSIG:
            raise _bad("rsig", rsig, f"a list of at most {MAX_RSIG} antennas")
        best: tuple[float, float | None, float | None] | None = None  # (sort key, lsnr, rssi)
        for ant in rsig:
            if ant.__class__ is not dict:
                raise _bad("rsig", ant, "an antenna object")
            try:
                a_lsnr = _float(ant, "lsnr", *LSNR_DB)
                a_rssi = _float(ant, "rssic", *RSSI_DBM)
                if a_rssi is None:
                    a_rssi = _float(ant, "rssis", *RSSI_DBM)
            except GwmpError as exc:
                raise GwmpError(f"rxpk rsig: {exc}", reason="rxpk", field="rsig") from None
            key = -99.0 if a_lsnr is None else a_lsnr
            if best is None or key > best[0]:
                best = (key, a_lsnr, a_rssi)
        if best is not None:
            if rssi is None:
                rssi = best[2] if best[2] is not None else 0.0
            if lsnr is None:
                lsnr = best[1]
    time_v = get("time")
    time: datetime | None = None
    if time_v is not None:
        if time_v.__class__ is not str:
            raise _bad("time", time_v, "an RFC 3339 string")
        if time_v:
            try:
                time = parse_time(time_v)
            except ValueError:
                raise _bad("time", time_v, "an RFC 3339 time in the years 1 to 9999") from None
    return RxPacket(
        data,
        tmst,
        round(freq * 1_000_000),
        datr,
        _int(obj, "chan", 0, 255, 0),
        _int(obj, "rfch", 0, 255, 0),
        _int(obj, "stat", -1, 1, 0),
        modu,
        codr,
        rssi if rssi is not None else 0.0,
        lsnr,
        time,
        _int(obj, "tmms", 0, TMMS_MAX),
    )


def rxpk_to_json(rx: RxPacket) -> dict[str, Any]:
    """The inverse of :func:`parse_rxpk` (what a forwarder would send)."""
    out: dict[str, Any] = {
        "tmst": rx.tmst,
        "chan": rx.chan,
        "rfch": rx.rfch,
        "freq": rx.freq_hz / 1_000_000,
        "stat": rx.stat,
        "modu": rx.modu,
        "datr": rx.datr,
        "codr": rx.codr,
        "rssi": rx.rssi,
        "size": len(rx.data),
        "data": base64.b64encode(rx.data).decode(),
    }
    if rx.lsnr is not None:
        out["lsnr"] = rx.lsnr
    if rx.time is not None:
        out["time"] = format_time(rx.time)
    if rx.tmms is not None:
        out["tmms"] = rx.tmms
    return out


def parse_stat(obj: Any) -> Stat:
    """A ``stat`` object -> :class:`Stat`. Unknown fields are ignored; a known one of the wrong type or out
    of range raises :class:`GwmpError` (reason ``stat``, ``field`` the field)."""
    if not isinstance(obj, dict):
        raise GwmpError("stat is not an object", reason="stat", field="stat")
    time_v = obj.get("time")
    time: datetime | None = None
    if time_v is not None:
        if time_v.__class__ is not str:
            raise _bad("time", time_v, "a time string", "stat")
        if time_v:
            try:
                time = parse_time(time_v)
            except ValueError:
                raise _bad("time", time_v, "a time in the years 1 to 9999", "stat") from None
    return Stat(
        time=time,
        rxnb=_int(obj, "rxnb", 0, U32_MAX, 0, "stat"),
        rxok=_int(obj, "rxok", 0, U32_MAX, 0, "stat"),
        rxfw=_int(obj, "rxfw", 0, U32_MAX, 0, "stat"),
        ackr=_float(obj, "ackr", 0.0, 100.0, None, "stat"),
        dwnb=_int(obj, "dwnb", 0, U32_MAX, 0, "stat"),
        txnb=_int(obj, "txnb", 0, U32_MAX, 0, "stat"),
        lati=_float(obj, "lati", -90.0, 90.0, None, "stat"),
        long=_float(obj, "long", -180.0, 180.0, None, "stat"),
        alti=_int(obj, "alti", -1000, 100_000, None, "stat"),
        temp=_float(obj, "temp", -100.0, 200.0, None, "stat"),
    )


# ------------------------------------------------------------------------------------------------- txpk


def build_txpk(
    *,
    data: bytes,
    freq_hz: int,
    datr: str,
    tmst: int | None = None,
    immediate: bool = False,
    powe: int = 14,
    rfch: int = 0,
    codr: str = "4/5",
) -> dict[str, Any]:
    """A LoRaWAN downlink txpk: inverted polarity, no CRC, sent at ``tmst`` (wraps) or immediately."""
    if tmst is None and not immediate:
        raise GwmpError("a txpk needs tmst or immediate", reason="txpk")
    txpk: dict[str, Any] = {
        "freq": freq_hz / 1_000_000,
        "rfch": rfch,
        "powe": powe,
        "modu": "LORA",
        "datr": datr,
        "codr": codr,
        "ipol": True,
        "ncrc": True,
        "size": len(data),
        "data": base64.b64encode(data).decode(),
    }
    if immediate:
        txpk["imme"] = True
    else:
        assert tmst is not None
        txpk["tmst"] = tmst % TMST_MODULO
    return txpk


def txpk_data(txpk: dict[str, Any]) -> bytes:
    """The PHYPayload bytes of a txpk (used by the simulator)."""
    data = txpk.get("data")
    if not isinstance(data, str):
        raise GwmpError("txpk has no data", reason="txpk")
    try:
        return _b64(data)
    except GwmpError:
        raise GwmpError("txpk data is not valid base64", reason="txpk") from None
