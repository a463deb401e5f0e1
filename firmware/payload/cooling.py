"""Cooling-point node: the valve report uplink (FPort 1) and the valve downlinks (FPorts 20..24)."""

from lw.mac import release
from micropython import const

from payload import common
from payload.fields import PayloadError, flag, put_u16, scaled, temperature_raw

MODES = ("auto", "override_open", "override_closed", "flush")
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
    b[1] = (
        (flag(ft, "flow_meter") << 5)
        | (flag(ft, "valve") << 4)
        | (flag(ft, "temperature") << 3)
        | (flag(il, "max_on_time") << 2)
        | (flag(il, "budget") << 1)
        | flag(il, "reservoir_low")
    )
    b[2] = scaled("actuations", d["actuations"], 1, 1, 0, 255, saturate=True)  # counters saturate
    put_u16(b, 3, scaled("open_time", d["open_time"], 1, 1, 0, 65535, saturate=True))
    put_u16(b, 5, _litres("water_used", d["water_used"]))
    put_u16(b, 7, _litres("water_today", d["water_today"]))
    put_u16(b, 9, temperature_raw("ambient_temperature", d["ambient_temperature"]))
    put_u16(b, 11, scaled("on_threshold", d["on_threshold"], 1, 10, -20, 60, saturate=True))
    put_u16(b, 13, scaled("off_threshold", d["off_threshold"], 1, 10, -20, 60, saturate=True))
    return bytes(b)


def decode_down(fport, p):
    """Valve downlinks and the common ones, as the host codec's data dicts (PayloadError for a
    wrong version or length, or a value the node refuses). The decoder (payload/coolingdown.py) is
    loaded for the call and released after: downlinks are rare."""
    from payload import coolingdown

    try:
        return coolingdown.decode_down(fport, p)
    finally:
        del coolingdown
        release("payload.coolingdown")
