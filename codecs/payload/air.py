"""Air-quality node: BME280 (temperature, humidity, pressure), SDS011/SPS30 (PM2.5, PM10), optional SCD41.

Uplink FPort 1, ``readings`` (11 bytes, 13 with CO2):
the byte layout is in docs/payloads.md (one table there, not a copy here).

A set fault bit makes the sensor's readings null whatever bytes follow (the node sends the sentinels).
"""

from __future__ import annotations

from typing import Any

import construct as cs

from havel.codecs.payload.base import NodeCodec
from havel.codecs.payload.common import common_ports
from havel.codecs.payload.fields import (
    Bool,
    Reading,
    battery_mv,
    described,
    header,
    humidity_half_percent,
    temperature_c,
)
from havel.codecs.payload.kind import NodeKind
from havel.codecs.payload.port import Data, Field, Port, flags_of

FAULTS = ("thp", "pm", "co2")
FAULT_FIELDS = {"thp": ("temperature", "humidity", "pressure"), "pm": ("pm2_5", "pm10"), "co2": ("co2",)}

READINGS = cs.Struct(
    header(
        described("co2_fitted", Bool(cs.Flag), "1 = the co2 field is present"),
        described("co2_fault", Bool(cs.Flag), "SCD41 fault"),
        described("pm_fault", Bool(cs.Flag), "SDS011/SPS30 fault"),
        described("thp_fault", Bool(cs.Flag), "BME280 fault (temperature, humidity, pressure)"),
    ),
    "temperature" / temperature_c(-40, 85),
    "humidity" / humidity_half_percent(),
    "pressure" / Reading(cs.Int16ub, "0.1", lo=300, hi=1100, sentinel=0xFFFF, unit="hPa"),
    "pm2_5" / Reading(cs.Int16ub, "0.1", lo=0, hi=1000, sentinel=0xFFFF, unit="ug/m3"),
    "pm10" / Reading(cs.Int16ub, "0.1", lo=0, hi=1000, sentinel=0xFFFF, unit="ug/m3"),
    described(
        "co2",
        cs.If(cs.this._header.co2_fitted, Reading(cs.Int16ub, lo=0, hi=40000, sentinel=0xFFFF, unit="[ppm]")),
        "only when co2_fitted is set",
    ),
    "battery" / battery_mv(),
    cs.Terminated,
)

UNITS = {
    "temperature": "Cel",
    "humidity": "%",
    "pressure": "hPa",
    "pm2_5": "ug/m3",
    "pm10": "ug/m3",
    "co2": "[ppm]",
    "battery": "mV",
}
KEYS = ("temperature", "humidity", "pressure", "pm2_5", "pm10", "co2", "battery", "faults")


# ``data``: a sensor that reports a fault gives no reading, whatever the bytes say; co2 only when fitted
VIEW = {
    "temperature": Field("temperature", null_if="_header.thp_fault"),
    "humidity": Field("humidity", null_if="_header.thp_fault"),
    "pressure": Field("pressure", null_if="_header.thp_fault"),
    "pm2_5": Field("pm2_5", null_if="_header.pm_fault"),
    "pm10": Field("pm10", null_if="_header.pm_fault"),
    "co2": Field("co2", null_if="_header.co2_fault", only_if="_header.co2_fitted"),
    "battery": "battery",
    "faults": {"thp": "_header.thp_fault", "pm": "_header.pm_fault", "co2": "_header.co2_fault"},
}


def _from_data(d: Data) -> Any:
    faults = flags_of(d, "faults", FAULTS)
    obj: dict[str, Any] = {
        k: d[k] for k in ("temperature", "humidity", "pressure", "pm2_5", "pm10", "battery")
    }
    fitted = "co2" in d
    obj["co2"] = d["co2"] if fitted else None
    for sensor, fields in FAULT_FIELDS.items():
        if faults[sensor] is True:
            for f in fields:
                obj[f] = None
    obj["_header"] = {
        "co2_fitted": fitted,
        "co2_fault": faults["co2"],
        "pm_fault": faults["pm"],
        "thp_fault": faults["thp"],
    }
    return obj


def _check(data: Data) -> tuple[list[str], list[str]]:
    warnings = [f"faults.{s}: sensor reports a fault" for s, bad in data["faults"].items() if bad]
    pm25, pm10 = data["pm2_5"], data["pm10"]
    if pm25 is not None and pm10 is not None and pm25 > pm10:
        warnings.append("pm2_5 is above pm10, which a working particle sensor cannot measure")
    return warnings, []


CODEC = NodeCodec(
    "air",
    "air quality: temperature, humidity, pressure, PM2.5, PM10, optional CO2",
    [
        Port(
            1,
            "up",
            "readings",
            "temperature, humidity, pressure, PM2.5, PM10, CO2 (optional), battery",
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


KIND = NodeKind(CODEC, kit="air")
