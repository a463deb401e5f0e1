"""Water-level node uplink (FPort 1): alarm bits, level cm, distance mm, water temperature, battery."""

from payload import common
from payload.fields import PayloadError, battery_raw, flag, put_u16, scaled, temperature_raw


def encode(d, fport=1):
    if fport == common.FPORT_STATUS:
        return common.encode_status(d)
    if fport != 1:
        raise PayloadError("water: no uplink on FPort %d" % fport)
    lvl = d["alarm_level"]
    if isinstance(lvl, bool) or not isinstance(lvl, int) or lvl < 0 or lvl > 3:
        raise PayloadError("alarm_level: must be 0..3")
    b = bytearray(8)
    b[0] = 0x10 | (flag(d, "alarm") << 3) | (flag(d, "rising_fast") << 2) | lvl
    put_u16(b, 1, scaled("level", d["level"], 1, 1, -5000, 30000, -0x8000))
    put_u16(b, 3, scaled("distance", d["distance"], 1, 1, 0, 65534, 0xFFFF))
    put_u16(b, 5, temperature_raw("water_temperature", d["water_temperature"]))
    b[7] = battery_raw(d["battery"])
    return bytes(b)


decode_down = common.decode_down  # only the common downlinks
