"""Soil-moisture node for the city's tree-watering advice: three capacitive probes at 10, 30 and 60 cm
depth (I2C) and a DS18B20 soil temperature probe. The byte layout table in docs/payloads.md is printed from
``READINGS`` (codecs/payload/layout.py).

Moisture is the probe's reading between its dry (0 %) and wet (100 %) calibration, in 0.5 % steps; a probe
that reads outside its calibration by far (unplugged, shorted) is sent as absent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import construct as cs

from havel.codecs.payload.base import NodeCodec
from havel.codecs.payload.common import common_ports
from havel.codecs.payload.fields import Reading, battery_mv, described, header, temperature_c
from havel.codecs.payload.kind import NodeKind
from havel.codecs.payload.port import Data, Port

DEPTHS_CM = (10, 30, 60)


def _moisture() -> Reading:
    return Reading(cs.Int8ub, "0.5", lo=0, hi=100, sentinel=0xFF, unit="%")


READINGS = cs.Struct(
    header(),
    *(
        described(f"moisture_{d}cm", _moisture(), f"{d} cm deep, 0 % dry .. 100 % wet calibration")
        for d in DEPTHS_CM
    ),
    described("soil_temperature", temperature_c(-40, 85), "DS18B20 at 30 cm"),
    "battery" / battery_mv(),
    cs.Terminated,
)

KEYS = (*(f"moisture_{d}cm" for d in DEPTHS_CM), "soil_temperature", "battery")
UNITS = {**{f"moisture_{d}cm": "%" for d in DEPTHS_CM}, "soil_temperature": "Cel", "battery": "mV"}


def _from_data(d: Data) -> Any:
    return {"_header": {}, **{k: d[k] for k in KEYS}}


def _summary(data: Mapping[str, Any]) -> str:
    depths = " / ".join(f"{data.get(f'moisture_{d}cm')}" for d in DEPTHS_CM)
    return f"moisture {depths} % (10/30/60 cm), {data.get('soil_temperature')} °C"


def _sim_world(io: Any, world: Any, t_s: float, noise: Callable[[float, float], float]) -> None:
    # the top soil dries in the heat, deeper soil slowly; the probes' ADC follows their calibration
    dry = max(0.0, world.air_c(t_s) - 20.0)
    for i in range(len(DEPTHS_CM)):
        percent = max(0.0, min(100.0, 45.0 - dry * 12.0 / (i + 1) + noise(0, 0.3)))
        io.sim[f"soil{i}"].percent = percent
    io.sim["ds18b20"].temp_c = round(world.air_c(t_s - 3 * 3600) - 3.0 + noise(0, 0.05), 2)


CODEC = NodeCodec(
    "soil",
    "soil moisture at 10, 30 and 60 cm, soil temperature (tree watering)",
    [
        Port(
            1,
            "up",
            "readings",
            "soil moisture at three depths, soil temperature, battery",
            READINGS,
            UNITS,
            KEYS,
            from_data=_from_data,
        ),
        *common_ports(),
    ],
)

KIND = NodeKind(
    CODEC, kit="soil", summary=_summary, sim_config=lambda world, interval_s: {}, sim_world=_sim_world
)
