"""Fixed-point fields shared by the payload modules (big-endian, version nibble 1 in byte 0)."""

from micropython import const

VERSION = const(1)


class PayloadError(ValueError):
    """A value that cannot be encoded, or a downlink the node does not accept."""


def round_half_away(x):
    """Round half away from zero, as the host codec does (Python's round() rounds half to even)."""
    if x < 0:
        return -int(-x + 0.5)
    return int(x + 0.5)


def scaled(name, value, num, den, lo, hi, sentinel=None, saturate=False):
    """Raw integer of `value` in steps of num/den: value * den / num, rounded half away from zero.

    None gives the sentinel. Out of range: the sentinel when there is one (a reading outside the
    codec's range is no reading), the nearest edge when `saturate`, else PayloadError.
    """
    if value is None:
        if sentinel is None:
            raise PayloadError(name + ": a value is required")
        return sentinel
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        if sentinel is not None:
            return sentinel
        raise PayloadError(name + ": not a number")
    if value < lo or value > hi:
        if saturate:
            value = lo if value < lo else hi
        elif sentinel is not None:
            return sentinel
        else:
            raise PayloadError(name + ": %r out of range" % (value,))
    return round_half_away(value * den / num)


def put_u16(buf, i, v):
    v &= 0xFFFF
    buf[i] = v >> 8
    buf[i + 1] = v & 0xFF


def put_u32(buf, i, v):
    v &= 0xFFFFFFFF
    buf[i] = (v >> 24) & 0xFF
    buf[i + 1] = (v >> 16) & 0xFF
    buf[i + 2] = (v >> 8) & 0xFF
    buf[i + 3] = v & 0xFF


def get_u16(b, i):
    return (b[i] << 8) | b[i + 1]


def get_i16(b, i):
    v = (b[i] << 8) | b[i + 1]
    return v - 0x10000 if v & 0x8000 else v


def battery_raw(mv):
    """Battery, 20 mV steps, 0xFF = absent (mains) or faulty. Above 5080 mV is a reading, not an
    absent one: 254 (5080 mV), as the host codec encodes it."""
    if not isinstance(mv, bool) and isinstance(mv, (int, float)) and mv - mv == 0 and mv > 5080:
        mv = 5080  # NaN and infinity stay faulty readings (0xFF)
    return scaled("battery", mv, 20, 1, 0, 5080, 0xFF)


def temperature_raw(name, c, lo=-40.0, hi=85.0):
    """Temperature, 0.1 Cel, i16, 0x8000 = absent or faulty."""
    return scaled(name, c, 1, 10, lo, hi, -0x8000)


def humidity_raw(h):
    """Relative humidity, 0.5 %, u8, 0xFF = absent or faulty."""
    return scaled("humidity", h, 1, 2, 0, 100, 0xFF)


def flag(d, key):
    """A flag from the data dict: only True counts (a missing flag is False)."""
    return 1 if d.get(key) is True else 0


def check_header(payload, n):
    """Downlink sanity: version nibble 1 and exactly n bytes, else PayloadError."""
    if len(payload) != n:
        raise PayloadError("expected %d bytes, got %d" % (n, len(payload)))
    if payload[0] >> 4 != VERSION:
        raise PayloadError("unknown payload version %d" % (payload[0] >> 4))
