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
from math import isfinite
from typing import Any

import orjson

from havel.errors import InputError

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
    ``txpk``) used for counting rejects by kind.
    """

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


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


def parse(data: bytes) -> Datagram:
    """Decode one datagram; raises :class:`GwmpError` for anything malformed."""
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
        eui = int.from_bytes(data[4:12], "big")
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
    return str(err) if err else "NONE"


# ------------------------------------------------------------------------------------------- rxpk / stat

_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: str) -> datetime:
    """RFC 3339 UTC (``2013-03-31T16:21:17.528002Z``, any number of fraction digits) or the stat format
    ``2014-01-12 08:59:28 GMT``; returns an aware UTC datetime. Raises ValueError."""
    text = value.strip()
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


def format_time(dt: datetime) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    return dt.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _b64(value: str) -> bytes:
    text = value.strip()
    pad = -len(text) % 4
    if pad:
        text += "=" * pad  # padding is optional in GWMP
    try:
        # strict: what base64.b64decode(validate=True) checks, without its wrapper
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise GwmpError("rxpk data is not valid base64", reason="rxpk") from None


def _num(obj: dict[str, Any], key: str, kind: type, *, required: bool = False, default: Any = None) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise GwmpError(f"rxpk field '{key}' is missing", reason="rxpk")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GwmpError(f"rxpk field '{key}' is {value!r}, not a number", reason="rxpk")
    return kind(value)


def _as(obj: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    # the common case inline (JSON gave exactly the type wanted), anything else through _num's checks
    value = obj.get(key)
    if value.__class__ is kind:
        return value
    return _num(obj, key, kind, default=default)


def parse_rxpk(obj: Any) -> RxPacket:
    """One rxpk JSON object -> :class:`RxPacket`. Requires data, tmst, freq and datr; v1.5 ``rsig``
    arrays stand in for a missing top-level rssi/lsnr (the best antenna counts)."""
    if not isinstance(obj, dict):
        raise GwmpError("rxpk element is not an object", reason="rxpk")
    get = obj.get
    data_s = get("data")
    if not isinstance(data_s, str):
        raise GwmpError("rxpk field 'data' is missing or not a string", reason="rxpk")
    data = _b64(data_s)
    size = get("size")
    if size.__class__ is int and size != len(data):
        raise GwmpError(f"rxpk size {size} does not match {len(data)} data bytes", reason="rxpk")
    tmst = get("tmst")
    if tmst.__class__ is not int:
        tmst = _num(obj, "tmst", int, required=True)
    tmst %= TMST_MODULO
    freq = get("freq")
    if freq.__class__ is not float:
        freq = _num(obj, "freq", float, required=True)
    datr = get("datr")
    if datr.__class__ is not str:
        if isinstance(datr, int | float) and not isinstance(datr, bool):
            datr = str(int(datr))  # FSK gives the bit rate as a number
        if not isinstance(datr, str):
            datr = None
    if not datr:
        raise GwmpError("rxpk field 'datr' is missing", reason="rxpk")
    rssi = get("rssi")
    if rssi.__class__ is not float:
        rssi = _num(obj, "rssi", float)
    lsnr = get("lsnr")
    if lsnr.__class__ is not float:
        lsnr = _num(obj, "lsnr", float)
    rsig = get("rsig")
    if isinstance(rsig, list) and rsig:
        ants = [r for r in rsig if isinstance(r, dict)]
        if ants:
            try:
                best = max(ants, key=lambda r: float(r.get("lsnr", -99) or -99))
                if rssi is None:
                    rssi = float(best.get("rssic", best.get("rssis", 0)) or 0)
                if lsnr is None and best.get("lsnr") is not None:
                    lsnr = float(best["lsnr"])
            except (TypeError, ValueError):
                raise GwmpError("rxpk rsig holds a value that is not a number", reason="rxpk") from None
    if not (isfinite(freq) and (rssi is None or isfinite(rssi)) and (lsnr is None or isfinite(lsnr))):
        # Python's JSON reader takes NaN and Infinity; no radio measures them, and JSON cannot store them
        raise GwmpError("rxpk freq, rssi or lsnr is not a finite number", reason="rxpk")
    time_v = get("time")
    time: datetime | None = None
    if isinstance(time_v, str) and time_v:
        try:
            time = parse_time(time_v)
        except ValueError:
            raise GwmpError(f"rxpk time {time_v!r} is not RFC 3339", reason="rxpk") from None
    tmms = get("tmms")
    modu = get("modu", "LORA")
    codr = get("codr", "4/5")
    return RxPacket(
        data,
        tmst,
        round(freq * 1_000_000),
        datr,
        _as(obj, "chan", int, 0),
        _as(obj, "rfch", int, 0),
        _as(obj, "stat", int, 0),
        modu if modu.__class__ is str else str(modu),
        codr if codr.__class__ is str else str(codr),
        rssi if rssi is not None else 0.0,
        lsnr,
        time,
        tmms if tmms.__class__ is int else None,
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
    """A ``stat`` object -> :class:`Stat` (unknown fields ignored, bad ones raise)."""
    if not isinstance(obj, dict):
        raise GwmpError("stat is not an object", reason="json")
    time_v = obj.get("time")
    time: datetime | None = None
    if isinstance(time_v, str) and time_v:
        try:
            time = parse_time(time_v)
        except ValueError:
            raise GwmpError(f"stat time {time_v!r} is unreadable", reason="json") from None

    def num(key: str, kind: type) -> Any:
        v = obj.get(key)
        if v is None or isinstance(v, bool) or not isinstance(v, int | float):
            return None
        return kind(v)

    return Stat(
        time=time,
        rxnb=num("rxnb", int) or 0,
        rxok=num("rxok", int) or 0,
        rxfw=num("rxfw", int) or 0,
        ackr=num("ackr", float),
        dwnb=num("dwnb", int) or 0,
        txnb=num("txnb", int) or 0,
        lati=num("lati", float),
        long=num("long", float),
        alti=num("alti", int),
        temp=num("temp", float),
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
