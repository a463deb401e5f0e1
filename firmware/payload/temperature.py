"""Temperature node uplink (FPort 1): probe count, probes (0.1 Cel), humidity, battery."""

from micropython import const

from payload import common
from payload.fields import PayloadError, battery_raw, humidity_raw, put_u16, temperature_raw

MAX_PROBES = const(15)


def encode(d, fport=1):
    if fport == common.FPORT_STATUS:
        return common.encode_status(d)
    if fport != 1:
        raise PayloadError("temperature: no uplink on FPort %d" % fport)
    probes = d["probes"]
    n = len(probes)
    if n > MAX_PROBES:
        raise PayloadError("probes: at most 15")
    b = bytearray(3 + 2 * n)
    b[0] = 0x10 | n
    for i in range(n):
        put_u16(b, 1 + 2 * i, temperature_raw("probes", probes[i], -55.0, 125.0))
    b[1 + 2 * n] = humidity_raw(d["humidity"])
    b[2 + 2 * n] = battery_raw(d["battery"])
    return bytes(b)


decode_down = common.decode_down  # only the common downlinks
