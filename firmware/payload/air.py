"""Air-quality node uplink (FPort 1): faults nibble, T, RH, p, PM2.5, PM10, optional CO2, battery."""

from payload import common
from payload.fields import PayloadError, battery_raw, humidity_raw, put_u16, scaled, temperature_raw


def encode(d, fport=1):
    """`d` as the host codec's data: a sensor with its fault flag set is sent as sentinels; the CO2
    field is present when the key "co2" is (even null: fitted but faulty)."""
    if fport == common.FPORT_STATUS:
        return common.encode_status(d)
    if fport != 1:
        raise PayloadError("air: no uplink on FPort %d" % fport)
    f = d["faults"]
    thp = f["thp"] is True
    pm = f["pm"] is True
    co2f = f["co2"] is True
    fitted = "co2" in d
    b = bytearray(13 if fitted else 11)
    b[0] = 0x10 | (8 if fitted else 0) | (4 if co2f else 0) | (2 if pm else 0) | (1 if thp else 0)
    put_u16(b, 1, temperature_raw("temperature", None if thp else d["temperature"]))
    b[3] = humidity_raw(None if thp else d["humidity"])
    put_u16(b, 4, scaled("pressure", None if thp else d["pressure"], 1, 10, 300, 1100, 0xFFFF))
    put_u16(b, 6, scaled("pm2_5", None if pm else d["pm2_5"], 1, 10, 0, 1000, 0xFFFF))
    put_u16(b, 8, scaled("pm10", None if pm else d["pm10"], 1, 10, 0, 1000, 0xFFFF))
    i = 10
    if fitted:
        put_u16(b, 10, scaled("co2", None if co2f else d["co2"], 1, 1, 0, 40000, 0xFFFF))
        i = 12
    b[i] = battery_raw(d["battery"])
    return bytes(b)


decode_down = common.decode_down  # only the common downlinks
