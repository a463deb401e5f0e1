"""Soil-moisture node uplink (FPort 1): moisture at 10, 30, 60 cm (0.5 %), soil temperature, battery."""

from payload import common
from payload.fields import PayloadError, battery_raw, humidity_raw, put_u16, temperature_raw

_KEYS = ("moisture_10cm", "moisture_30cm", "moisture_60cm")


def encode(d, fport=1):
    if fport == common.FPORT_STATUS:
        return common.encode_status(d)
    if fport != 1:
        raise PayloadError("soil: no uplink on FPort %d" % fport)
    b = bytearray(7)
    b[0] = 0x10
    for i in range(3):
        # moisture has the layout of relative humidity: 0.5 % steps, 0..100, 0xFF absent
        b[1 + i] = humidity_raw(d[_KEYS[i]])
    put_u16(b, 4, temperature_raw("soil_temperature", d["soil_temperature"]))
    b[6] = battery_raw(d["battery"])
    return bytes(b)


decode_down = common.decode_down  # only the common downlinks
