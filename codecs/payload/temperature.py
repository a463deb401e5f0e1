"""Temperature node: DS18B20 probes (probe 0 inside the cooling point, probe 1 the outside reference,
more probes after them) and an SHT31 for humidity.

Uplink FPort 1, ``readings`` (3 + 2 x probes bytes):
the byte layout is in docs/payloads.md (one table there, not a copy here).

A DS18B20 that answers 85.0 Cel straight after power-on did no conversion: the node sends 0x8000.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import construct as cs

from havel.codecs.payload.base import NodeCodec
from havel.codecs.payload.common import common_ports
from havel.codecs.payload.fields import battery_mv, described, header, humidity_half_percent, temperature_c
from havel.codecs.payload.kind import NodeKind
from havel.codecs.payload.port import Data, Port
from havel.errors import CodecError

MAX_PROBES = 15

READINGS = cs.Struct(
    header(described("count", cs.BitsInteger(4), "n, the number of probes that follow")),
    "probes" / cs.Array(cs.this._header.count, temperature_c(-55, 125)),
    "humidity" / humidity_half_percent(),
    "battery" / battery_mv(),
    cs.Terminated,
)

UNITS = {"probes": "Cel", "humidity": "%", "battery": "mV"}
KEYS = ("probes", "humidity", "battery")


def _from_data(d: Data) -> Any:
    probes = d["probes"]
    if not isinstance(probes, list):
        raise CodecError(f"probes: expected a list of temperatures (Cel or null), got {probes!r}")
    if len(probes) > MAX_PROBES:
        raise CodecError(f"probes: {len(probes)} probes, at most {MAX_PROBES} fit the count nibble")
    return {
        "_header": {"count": len(probes)},
        "probes": probes,
        "humidity": d["humidity"],
        "battery": d["battery"],
    }


def _check(data: Data) -> tuple[list[str], list[str]]:
    # runs for every uplink: one scan of the probes in the common case (no 85.0, at least one probe)
    probes = data["probes"]
    if not probes:
        return ["probes: the node reports no probe at all"], []
    if 85.0 in probes:
        return [
            f"probes[{i}]: 85.0 Cel is the DS18B20 power-on value (no conversion?)"
            for i, t in enumerate(probes)
            if t == 85.0
        ], []
    return [], []


CODEC = NodeCodec(
    "temperature",
    "temperature probes (inside a cooling point, outside reference), humidity",
    [
        Port(
            1,
            "up",
            "readings",
            "up to 15 temperature probes, humidity, battery",
            READINGS,
            UNITS,
            KEYS,
            from_data=_from_data,
            check=_check,
        ),
        *common_ports(),
    ],
)


def _summary(data: Mapping[str, Any]) -> str:
    p = data.get("probes") or [None, None]
    return f"air {p[0]} °C, surface {p[1] if len(p) > 1 else '-'} °C, {data.get('humidity')} % rH"


def _sim_world(io: Any, world: Any, t_s: float, noise: Callable[[float, float], float]) -> None:
    sim = io.sim
    sim["probe0"].temp_c = round(world.air_c(t_s) + noise(0, 0.1), 2)
    sim["probe1"].temp_c = round(world.surface_c(t_s) + noise(0, 0.2), 2)
    sim["sht31"].temp_c = round(world.air_c(t_s) + noise(0, 0.1), 2)
    sim["sht31"].humidity = round(world.humidity(t_s), 1)


KIND = NodeKind(
    CODEC, kit="temperature", summary=_summary, sim_config=lambda world, interval_s: {}, sim_world=_sim_world
)
