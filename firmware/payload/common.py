"""Payloads every node speaks: the status uplink (FPort 2) and the downlinks 10, 11, 12 (decoded
by payload/commondown.py)."""

from lw.mac import release
from micropython import const

from payload.fields import PayloadError, battery_raw, put_u16, put_u32, scaled

FPORT_STATUS = const(2)
FPORT_SET_INTERVAL = const(10)
FPORT_REQUEST_STATUS = const(11)
FPORT_REBOOT = const(12)

RESET_CAUSES = ("power_on", "watchdog", "brownout", "software", "deep_sleep", "pin", "boot_loop")
INTERVAL_MIN_S = const(60)
INTERVAL_MAX_S = const(43200)


def encode_status(d):
    """FPort 2: version|reset_cause, firmware x3, uptime u32 s, battery, interval u16 s (11 bytes)."""
    cause = d["reset_cause"]
    if cause not in RESET_CAUSES:
        raise PayloadError("reset_cause: unknown %r" % (cause,))
    fw = d["firmware"].split(".")
    if len(fw) != 3:
        raise PayloadError("firmware: expected 'major.minor.patch'")
    b = bytearray(11)
    b[0] = 0x10 | RESET_CAUSES.index(cause)
    for i in range(3):
        b[1 + i] = scaled("firmware", int(fw[i]), 1, 1, 0, 255, saturate=True)
    put_u32(b, 4, scaled("uptime", d["uptime"], 1, 1, 0, 0xFFFFFFFF, saturate=True))
    b[8] = battery_raw(d["battery"])
    put_u16(b, 9, scaled("interval", d["interval"], 1, 1, 0, 0xFFFF, saturate=True))
    return bytes(b)


def decode_down(fport, p):
    """The common downlinks as the host codec's data dicts; None for a port that is not common.
    The decoder (payload/commondown.py) is loaded for the call and released after."""
    from payload import commondown

    try:
        return commondown.decode_down(fport, p)
    finally:
        del commondown
        release("payload.commondown")
