"""The JSON objects a packet forwarder sends up in PUSH_DATA: ``rxpk`` (one received packet) and ``stat``
(the forwarder's status), checked field by field and turned into :class:`RxPacket` and :class:`Stat`.

A field of the wrong type or out of the range a concentrator can report raises
:class:`~havel.gateway.backends.semtech_udp.gwmp.GwmpError` (reason ``rxpk`` or ``stat``, ``field`` the
field at fault), so that one bad rxpk costs only itself.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from havel.gateway.backends.semtech_udp.gwmp import TMST_MODULO, GwmpError, decode_base64
from havel.gateway.network.reception import format_wire_time as format_time  # (microseconds, as sent)


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
_FREQ_LO, _FREQ_HI = FREQ_MHZ
_RSSI_LO, _RSSI_HI = RSSI_DBM
_LSNR_LO, _LSNR_HI = LSNR_DB
_SEEN_MAX = 64
_DATR_SEEN: set[str] = set()  # LoRa data rate texts that passed _LORA_DATR
_CODR_SEEN: set[str] = set()  # coding rate texts that passed _CODR


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
    try:
        return decode_base64(value)
    except ValueError:  # (binascii.Error is one)
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
    constants above); anything else raises :class:`GwmpError` (reason ``rxpk``, ``field`` the field).

    Runs once per received frame: each field is first tested for its usual type and range inline, and only
    a value that fails that goes through the general checks (:func:`_int`, :func:`_float`), which convert
    what may be converted and raise for the rest; the data rate and coding rate texts met before are known
    to be valid (a network uses a handful)."""
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
    tmst = get("tmst")
    if tmst.__class__ is not int or not 0 <= tmst <= TMST_MAX:
        _required(obj, "tmst")
        tmst = _int(obj, "tmst", 0, TMST_MAX)
    freq = get("freq")
    if freq.__class__ is not float or not _FREQ_LO <= freq <= _FREQ_HI:
        _required(obj, "freq")
        freq = _float(obj, "freq", *FREQ_MHZ)
    modu = get("modu", "LORA")
    if modu == "LORA":
        datr = get("datr")
        if datr.__class__ is not str or datr not in _DATR_SEEN:  # (a JSON list is not hashable)
            if datr is None:
                _required(obj, "datr")
            if datr.__class__ is not str or not _LORA_DATR.fullmatch(datr):
                raise _bad("datr", datr, "a LoRa data rate like 'SF7BW125'")
            _remember(_DATR_SEEN, datr)
    elif modu == "FSK":  # the bit rate as a number
        _required(obj, "datr")
        datr = str(_int(obj, "datr", *FSK_BPS))
    else:
        raise _bad("modu", modu, "'LORA' or 'FSK'")
    codr = get("codr")
    if codr is None:
        codr = "4/5"
    elif codr.__class__ is not str or codr not in _CODR_SEEN:
        if codr.__class__ is not str or not _CODR.fullmatch(codr):
            raise _bad("codr", codr, "a coding rate like '4/5'")
        _remember(_CODR_SEEN, codr)
    rssi = get("rssi")
    if rssi is not None:
        cls = rssi.__class__
        if (cls is int or cls is float) and _RSSI_LO <= rssi <= _RSSI_HI:
            rssi = float(rssi)
        else:
            rssi = _float(obj, "rssi", *RSSI_DBM)
    lsnr = get("lsnr")
    if lsnr is not None:
        cls = lsnr.__class__
        if (cls is float or cls is int) and _LSNR_LO <= lsnr <= _LSNR_HI:
            lsnr = float(lsnr)
        else:
            lsnr = _float(obj, "lsnr", *LSNR_DB)
    rsig = get("rsig")
    if rsig is not None:
        rssi, lsnr = _best_antenna(rsig, rssi, lsnr)
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
    chan = get("chan", 0)
    if chan.__class__ is not int or not 0 <= chan <= 255:
        chan = _int(obj, "chan", 0, 255, 0)
    rfch = get("rfch", 0)
    if rfch.__class__ is not int or not 0 <= rfch <= 255:
        rfch = _int(obj, "rfch", 0, 255, 0)
    stat = get("stat", 0)
    if stat.__class__ is not int or not -1 <= stat <= 1:
        stat = _int(obj, "stat", -1, 1, 0)
    tmms = get("tmms")
    if tmms is not None and (tmms.__class__ is not int or not 0 <= tmms <= TMMS_MAX):
        tmms = _int(obj, "tmms", 0, TMMS_MAX)
    return RxPacket(
        data,
        tmst,
        round(freq * 1_000_000),
        datr,
        chan,
        rfch,
        stat,
        modu,
        codr,
        rssi if rssi is not None else 0.0,
        lsnr,
        time,
        tmms,
    )


def _best_antenna(rsig: Any, rssi: float | None, lsnr: float | None) -> tuple[float | None, float | None]:
    """A v1.5 ``rsig`` array: the best antenna's RSSI and SNR where the top level gave none."""
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
    return rssi, lsnr


def _remember(seen: set[str], text: str) -> None:
    """Keep a validated data rate or coding rate text (a bounded set: a sender making up new valid ones
    only makes them checked again)."""
    if len(seen) < _SEEN_MAX:
        seen.add(text)


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
