"""Cooling-point node: the valve downlinks (FPorts 20..24) and the common ones, decoded. Loaded by
payload/cooling.py decode_down() for one downlink and released after."""

from payload import common
from payload.cooling import (
    FPORT_ENABLE,
    FPORT_OVERRIDE,
    FPORT_SET_MAX_ON_TIME,
    FPORT_SET_THRESHOLDS,
    FPORT_SET_WATER_BUDGET,
)
from payload.fields import PayloadError, check_header, get_i16, get_u16

OVERRIDE_STATES = ("closed", "open", "auto")


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
