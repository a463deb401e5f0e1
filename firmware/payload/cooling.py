"""Cooling-point node: the valve report uplink (FPort 1) and the valve downlinks (FPorts 20..24)."""

from micropython import const

from payload import common
from payload.fields import (
    PayloadError,
    check_header,
    flag,
    get_i16,
    get_u16,
    put_u16,
    scaled,
    temperature_raw,
)

MODES = ("auto", "override_open", "override_closed", "flush")
OVERRIDE_STATES = ("closed", "open", "auto")
FPORT_SET_THRESHOLDS = const(20)
FPORT_SET_MAX_ON_TIME = const(21)
FPORT_SET_WATER_BUDGET = const(22)
FPORT_OVERRIDE = const(23)
FPORT_ENABLE = const(24)


def _litres(name, v):
    return scaled(name, v, 1, 10, 0, 6553.4, 0xFFFF, saturate=True) if v is not None else 0xFFFF


def encode(d, fport=1):
    if fport == common.FPORT_STATUS:
        return common.encode_status(d)
    if fport != 1:
        raise PayloadError("cooling: no uplink on FPort %d" % fport)
    mode = d["mode"]
    if mode not in MODES:
        raise PayloadError("mode: unknown %r" % (mode,))
    il = d["interlock"]
    ft = d["faults"]
    b = bytearray(15)
    b[0] = 0x10 | (flag(d, "valve_open") << 3) | (flag(d, "enabled") << 2) | MODES.index(mode)
    b[1] = ((flag(ft, "flow_meter") << 5) | (flag(ft, "valve") << 4) | (flag(ft, "temperature") << 3)
            | (flag(il, "max_on_time") << 2) | (flag(il, "budget") << 1) | flag(il, "reservoir_low"))
    b[2] = scaled("actuations", d["actuations"], 1, 1, 0, 255, saturate=True)  # counters saturate
    put_u16(b, 3, scaled("open_time", d["open_time"], 1, 1, 0, 65535, saturate=True))
    put_u16(b, 5, _litres("water_used", d["water_used"]))
    put_u16(b, 7, _litres("water_today", d["water_today"]))
    put_u16(b, 9, temperature_raw("ambient_temperature", d["ambient_temperature"]))
    put_u16(b, 11, scaled("on_threshold", d["on_threshold"], 1, 10, -20, 60, saturate=True))
    put_u16(b, 13, scaled("off_threshold", d["off_threshold"], 1, 10, -20, 60, saturate=True))
    return bytes(b)


def decode_down(fport, p):
    """Valve downlinks and the common ones, as the host codec's data dicts.

    PayloadError for a wrong version or length, or a value the node refuses (off >= on, an
    override without a time-to-live).
    """
    if fport == FPORT_SET_THRESHOLDS:
        check_header(p, 5)
        on = get_i16(p, 1)
        off = get_i16(p, 3)
        if on < -200 or on > 600 or off < -200 or off > 600:
            raise PayloadError("thresholds: out of range -20..60 Cel")
        if off >= on:
            raise PayloadError("off_threshold must be below on_threshold")
        return {"on_threshold": on / 10, "off_threshold": off / 10}
    if fport == FPORT_SET_MAX_ON_TIME:
        check_header(p, 3)
        s = get_u16(p, 1)
        if s < 10 or s > 7200:
            raise PayloadError("max_on_time: out of range 10..7200 s")
        return {"max_on_time": s}
    if fport == FPORT_SET_WATER_BUDGET:
        check_header(p, 3)
        litres = get_u16(p, 1)
        if litres < 1 or litres > 60000:
            raise PayloadError("daily_budget: out of range 1..60000 L")
        return {"daily_budget": litres}
    if fport == FPORT_OVERRIDE:
        check_header(p, 4)
        st = p[1]
        ttl = get_u16(p, 2)
        if st > 2:
            raise PayloadError("override: unknown state %d" % st)
        if st == 2 and ttl != 0:
            raise PayloadError("override: ttl must be 0 with state auto")
        if st != 2 and ttl < 60:
            raise PayloadError("override: ttl %d s too short (60..65535 s: it must expire)" % ttl)
        return {"state": OVERRIDE_STATES[st], "ttl": ttl}
    if fport == FPORT_ENABLE:
        check_header(p, 2)
        return {"enabled": p[1] != 0}
    return common.decode_down(fport, p)
