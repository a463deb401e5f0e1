"""The shared vectors read by a second, independent decoder written from docs/payloads.md's tables.

test_payload_vectors.py checks the construct codecs against the vector files; if a vector had been made
by running those same codecs, a layout bug would sit in both and pass. This decoder uses nothing of
``havel.codecs.payload`` but the list of codec names: plain ``struct`` and the byte tables of the layout
document (and, for Cayenne LPP, the type table of myDevices / ElectronicCats), so each vector's bytes must
mean its data as the document defines it. The firmware encoders are held to the same files.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from havel.codecs.payload import CODEC_NAMES

VECTORS = Path(__file__).resolve().parents[3] / "codecs" / "vectors"

I16_ABSENT, U16_ABSENT, U8_ABSENT = -0x8000, 0xFFFF, 0xFF


def _tenths(raw: int, absent: int | None) -> float | None:
    return None if raw == absent else raw / 10


def _battery(raw: int) -> int | None:
    return None if raw == U8_ABSENT else raw * 20


def _humidity(raw: int) -> float | None:
    return None if raw == U8_ABSENT else raw / 2


def _header(b: bytes) -> int:
    assert b[0] >> 4 == 1, "format version 1 in the high nibble"
    return b[0] & 0x0F


def air_readings(b: bytes) -> dict[str, Any]:
    low = _header(b)
    fitted, f_co2, f_pm, f_thp = bool(low & 8), bool(low & 4), bool(low & 2), bool(low & 1)
    assert len(b) == (13 if fitted else 11)
    t, h, p, pm25, pm10 = struct.unpack_from(">hBHHH", b, 1)
    data: dict[str, Any] = {
        "temperature": _tenths(t, I16_ABSENT),
        "humidity": _humidity(h),
        "pressure": _tenths(p, U16_ABSENT),
        "pm2_5": _tenths(pm25, U16_ABSENT),
        "pm10": _tenths(pm10, U16_ABSENT),
    }
    if fitted:
        (co2,) = struct.unpack_from(">H", b, 10)
        data["co2"] = None if co2 == U16_ABSENT or f_co2 else co2
    data["battery"] = _battery(b[-1])
    if f_thp:
        data.update(temperature=None, humidity=None, pressure=None)
    if f_pm:
        data.update(pm2_5=None, pm10=None)
    data["faults"] = {"thp": f_thp, "pm": f_pm, "co2": f_co2}
    return data


def water_readings(b: bytes) -> dict[str, Any]:
    low = _header(b)
    assert len(b) == 8
    level, distance, wt, bat = struct.unpack_from(">hHhB", b, 1)
    return {
        "alarm": bool(low & 8),
        "alarm_level": low & 3,
        "rising_fast": bool(low & 4),
        "level": None if level == I16_ABSENT else level,
        "distance": None if distance == U16_ABSENT else distance,
        "water_temperature": _tenths(wt, I16_ABSENT),
        "battery": _battery(bat),
    }


def temperature_readings(b: bytes) -> dict[str, Any]:
    n = _header(b)
    assert len(b) == 3 + 2 * n
    probes = [_tenths(t, I16_ABSENT) for t in struct.unpack_from(f">{n}h", b, 1)]
    return {"probes": probes, "humidity": _humidity(b[1 + 2 * n]), "battery": _battery(b[2 + 2 * n])}


def soil_readings(b: bytes) -> dict[str, Any]:
    assert _header(b) == 0 and len(b) == 7
    m10, m30, m60, t, bat = struct.unpack_from(">BBBhB", b, 1)
    return {
        "moisture_10cm": _humidity(m10),
        "moisture_30cm": _humidity(m30),
        "moisture_60cm": _humidity(m60),
        "soil_temperature": _tenths(t, I16_ABSENT),
        "battery": _battery(bat),
    }


def cooling_readings(b: bytes) -> dict[str, Any]:
    low = _header(b)
    assert len(b) == 15 and b[1] & 0xC0 == 0
    flags = b[1]
    actuations, open_time, used, today, amb, on, off = struct.unpack_from(">BHHHhhh", b, 2)
    return {
        "valve_open": bool(low & 8),
        "enabled": bool(low & 4),
        "mode": ("auto", "override_open", "override_closed", "flush")[low & 3],
        "actuations": actuations,
        "open_time": open_time,
        "water_used": _tenths(used, U16_ABSENT),
        "water_today": _tenths(today, U16_ABSENT),
        "ambient_temperature": _tenths(amb, I16_ABSENT),
        "on_threshold": on / 10,
        "off_threshold": off / 10,
        "interlock": {
            "reservoir_low": bool(flags & 1),
            "budget": bool(flags & 2),
            "max_on_time": bool(flags & 4),
        },
        "faults": {"temperature": bool(flags & 8), "valve": bool(flags & 16), "flow_meter": bool(flags & 32)},
    }


def status(b: bytes) -> dict[str, Any]:
    cause = _header(b)
    assert len(b) == 11
    major, minor, patch, uptime, bat, interval = struct.unpack_from(">BBBIBH", b, 1)
    names = ("power_on", "watchdog", "brownout", "software", "deep_sleep", "pin", "boot_loop")
    return {
        "firmware": f"{major}.{minor}.{patch}",
        "reset_cause": names[cause] if cause < len(names) else f"unknown_{cause}",
        "uptime": uptime,
        "battery": _battery(bat),
        "interval": interval,
    }


def _down(size: int, fmt: str, names: tuple[str, ...]) -> Any:
    def read(b: bytes) -> dict[str, Any]:
        assert b[0] == 0x10 and len(b) == size
        return dict(zip(names, struct.unpack_from(fmt, b, 1), strict=True))

    return read


def thresholds(b: bytes) -> dict[str, Any]:
    assert b[0] == 0x10 and len(b) == 5
    on, off = struct.unpack_from(">hh", b, 1)
    return {"on_threshold": on / 10, "off_threshold": off / 10}


def override(b: bytes) -> dict[str, Any]:
    assert b[0] == 0x10 and len(b) == 4
    state, ttl = struct.unpack_from(">BH", b, 1)
    return {"state": ("closed", "open", "auto")[state], "ttl": ttl}


def enable(b: bytes) -> dict[str, Any]:
    assert b[0] == 0x10 and len(b) == 2
    return {"enabled": b[1] != 0}


COMMON = {
    (2, "up"): status,
    (10, "down"): _down(3, ">H", ("interval",)),
    (11, "down"): _down(1, "", ()),
    (12, "down"): _down(2, ">B", ("delay",)),
}
READERS: dict[str, dict[tuple[int, str], Any]] = {
    "air": {(1, "up"): air_readings, **COMMON},
    "water": {(1, "up"): water_readings, **COMMON},
    "temperature": {(1, "up"): temperature_readings, **COMMON},
    "cooling": {
        (1, "up"): cooling_readings,
        **COMMON,
        (20, "down"): thresholds,
        (21, "down"): _down(3, ">H", ("max_on_time",)),
        (22, "down"): _down(3, ">H", ("daily_budget",)),
        (23, "down"): override,
        (24, "down"): enable,
    },
    "soil": {(1, "up"): soil_readings, **COMMON},
}

# Cayenne LPP: type -> (name, struct format of the value, divisor per field, field names or None).
LPP: dict[int, tuple[str, str, int, tuple[str, ...] | None]] = {
    0: ("digital_in", ">B", 1, None),
    1: ("digital_out", ">B", 1, None),
    2: ("analog_in", ">h", 100, None),
    3: ("analog_out", ">h", 100, None),
    100: ("generic_sensor", ">I", 1, None),
    101: ("luminosity", ">H", 1, None),
    102: ("presence", ">B", 1, None),
    103: ("temperature", ">h", 10, None),
    104: ("relative_humidity", ">B", 2, None),
    113: ("accelerometer", ">hhh", 1000, ("x", "y", "z")),
    115: ("barometric_pressure", ">H", 10, None),
    116: ("voltage", ">H", 100, None),
    117: ("current", ">H", 1000, None),
    118: ("frequency", ">I", 1, None),
    120: ("percentage", ">B", 1, None),
    121: ("altitude", ">h", 1, None),
    125: ("concentration", ">H", 1, None),
    128: ("power", ">H", 1, None),
    130: ("distance", ">I", 1000, None),
    131: ("energy", ">I", 1000, None),
    132: ("direction", ">H", 1, None),
    133: ("unix_time", ">I", 1, None),
    134: ("gyrometer", ">hhh", 100, ("x", "y", "z")),
    135: ("colour", ">BBB", 1, ("r", "g", "b")),
    142: ("switch", ">B", 1, None),
}


def _i24(b: bytes) -> int:
    return int.from_bytes(b, "big", signed=True)


def lpp_up(b: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    while i < len(b):
        channel, type_id = b[i], b[i + 1]
        if type_id == 136:  # GPS: three signed 24-bit fields
            lat, lon, alt = _i24(b[i + 2 : i + 5]), _i24(b[i + 5 : i + 8]), _i24(b[i + 8 : i + 11])
            out[f"gps_{channel}"] = {"latitude": lat / 10000, "longitude": lon / 10000, "altitude": alt / 100}
            i += 11
            continue
        name, fmt, div, fields = LPP[type_id]
        size = struct.calcsize(fmt)
        raw = struct.unpack_from(fmt, b, i + 2)
        values = [r if div == 1 else r / div for r in raw]
        out[f"{name}_{channel}"] = values[0] if fields is None else dict(zip(fields, values, strict=True))
        i += 2 + size
    return out


def lpp_down(b: bytes) -> dict[str, Any]:
    assert len(b) % 3 == 0
    return {f"value_{b[i]}": struct.unpack_from(">h", b, i + 1)[0] / 100 for i in range(0, len(b), 3)}


def _vectors() -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for name in CODEC_NAMES:  # a codec without a reader here fails (KeyError), never goes untested
        for i, v in enumerate(json.loads((VECTORS / f"{name}.json").read_text())):
            out.append((name, i, v))
    return out


ALL = _vectors()


@pytest.mark.parametrize(("name", "i", "v"), ALL, ids=[f"{n}-{i}" for n, i, _ in ALL])
def test_vector_bytes_mean_the_vector_data_by_the_document(name: str, i: int, v: dict[str, Any]) -> None:
    raw = bytes.fromhex(v["bytes"])
    if name == "cayenne-lpp":
        got = lpp_up(raw) if v["direction"] == "up" else lpp_down(raw)
    else:
        got = READERS[name][(v["fport"], v["direction"])](raw)
    assert got == v["data"], v["description"]
