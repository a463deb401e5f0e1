"""Water-level node: ultrasonic (JSN-SR04T), time-of-flight (VL53L1X) or pressure gauge, DS18B20 in the water.

Uplink FPort 1, ``readings`` (8 bytes): the layout table in docs/payloads.md is printed from ``READINGS``
(codecs/payload/layout.py), whose ``described`` fields carry the meanings.

The gateway classifies alarms from ``data.alarm``, ``data.alarm_level`` and ``data.rising_fast``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import construct as cs

from havel.codecs.payload.base import NodeCodec
from havel.codecs.payload.common import common_ports
from havel.codecs.payload.fields import Bool, Reading, battery_mv, described, header, temperature_c
from havel.codecs.payload.kind import NodeKind
from havel.codecs.payload.port import Data, Port

READINGS = cs.Struct(
    header(
        described("alarm", Bool(cs.Flag), "the node is in alarm (it then reports at its alarm interval)"),
        described("rising_fast", Bool(cs.Flag), "the rise-rate threshold is crossed"),
        described(
            "alarm_level",
            Reading(cs.BitsInteger(2), lo=0, hi=3),
            "highest level threshold reached: 0 none, 1, 2, 3",
        ),
    ),
    described(
        "level", Reading(cs.Int16sb, lo=-5000, hi=30000, sentinel=-0x8000, unit="cm"), "above gauge zero"
    ),
    described(
        "distance",
        Reading(cs.Int16ub, lo=0, hi=65534, sentinel=0xFFFF, unit="mm"),
        "raw sensor to water surface",
    ),
    "water_temperature" / temperature_c(-40, 85),
    "battery" / battery_mv(),
    cs.Terminated,
)

UNITS = {"level": "cm", "distance": "mm", "water_temperature": "Cel", "battery": "mV"}
KEYS = ("alarm", "alarm_level", "rising_fast", "level", "distance", "water_temperature", "battery")


# ``data``: the header's alarm state first, then the readings
VIEW = {
    "alarm": "_header.alarm",
    "alarm_level": "_header.alarm_level",
    "rising_fast": "_header.rising_fast",
    "level": "level",
    "distance": "distance",
    "water_temperature": "water_temperature",
    "battery": "battery",
}


def _from_data(d: Data) -> Any:
    return {
        "_header": {"alarm": d["alarm"], "rising_fast": d["rising_fast"], "alarm_level": d["alarm_level"]},
        "level": d["level"],
        "distance": d["distance"],
        "water_temperature": d["water_temperature"],
        "battery": d["battery"],
    }


def _check(data: Data) -> tuple[list[str], list[str]]:
    warnings = []
    if data["level"] is None and data["alarm"]:
        warnings.append("alarm is set while the level reading is absent or faulty")
    if (data["alarm_level"] > 0 or data["rising_fast"]) and not data["alarm"]:
        warnings.append("a threshold is crossed but the node is not in alarm (hysteresis or hold-off)")
    return warnings, []


CODEC = NodeCodec(
    "water",
    "water level: level above gauge zero, raw distance, water temperature, alarms",
    [
        Port(
            1,
            "up",
            "readings",
            "level, distance, water temperature, battery, alarm state and thresholds",
            READINGS,
            UNITS,
            KEYS,
            view=VIEW,
            from_data=_from_data,
            check=_check,
        ),
        *common_ports(),
    ],
)


def _summary(data: Mapping[str, Any]) -> str:
    s = f"level {data.get('level')} cm"
    if data.get("alarm"):
        s += f"  [bold red]ALARM {data.get('alarm_level')}[/bold red]"
    if data.get("rising_fast"):
        s += " [red]rising fast[/red]"
    return s


def _sim_config(world: Any, interval_s: float) -> Mapping[str, Any]:
    levels = [int(x) for x in world.alarm_levels_cm]
    return {
        "thresholds": {
            "zero_mm": world.sensor_height_mm,
            "levels_cm": levels,
            "rise_cm_per_h": 40,
            "measure_s": 120,
            "alarm_interval_s": int(interval_s // 3),
        }
    }


def _sim_world(io: Any, world: Any, t_s: float, noise: Callable[[float, float], float]) -> None:
    level_cm = world.river_cm(t_s) + noise(0, 0.5)
    io.ultra.distance_mm = int(world.sensor_height_mm - level_cm * 10)
    io.ultra.air_temp_c = 14.0
    io.sim["ds18b20"].temp_c = round(14.0 + noise(0, 0.05), 2)


# alarm: the gateway stores these readings as alarms (never dropped) and relays them first
KIND = NodeKind(
    CODEC,
    kit="water",
    alarm_keys=("alarm", "alarm_level", "rising_fast"),
    summary=_summary,
    sim_config=_sim_config,
    sim_world=_sim_world,
)
