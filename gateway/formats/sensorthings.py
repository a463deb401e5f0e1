"""OGC SensorThings API 1.1 over MQTT: one Observation per mapped field of an uplink.

Each decoded field that the config maps to a Datastream becomes an Observation published to
``v1.1/Datastreams(<id>)/Observations``::

    {"phenomenonTime": "<received_at>", "resultTime": "<received_at>", "result": 21.5,
     "parameters": {"id": "<DevEUI>-<SessionEpoch>-<FCnt32>", "field": "temperature", "dev_eui": "...",
                    "fcnt": 42, "buffered": false, "unit": "Cel"}}

``phenomenonTime`` is the gateway's receive time, so buffered data keeps its measurement time (a server that
filled it in would use the arrival time). FROST acknowledges an MQTT publish before it stores the
Observation, so ``parameters.id`` with ``parameters.field`` lets the platform drop re-sent duplicates.
Nested fields are named with dots (``valve.open``). Fields without a Datastream are not sent; records that
are not uplinks (joins, downlink results, events) produce nothing for this format.

Config (``[sink.sensorthings]``)::

    version = "v1.1"
    [sink.sensorthings.datastreams.70B3D57ED0000001]   # DevEUI (or the device name)
    temperature = 42
    humidity = 43
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from havel.errors import ConfigError
from havel.gateway.formats import OutMessage, check_topic_level, flatten, to_json

__all__ = ["SensorThings"]


@dataclass(frozen=True)
class SensorThings:
    """Formatter: uplink fields to Observations of the configured Datastreams."""

    datastreams: dict[str, dict[str, int | str]] = field(default_factory=dict)
    version: str = "v1.1"

    @classmethod
    def from_config(cls, cfg: dict[str, Any], *, where: str = "sink.sensorthings") -> SensorThings:
        if not isinstance(cfg, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = set(cfg) - {"datastreams", "version"}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]} is not a known key", hint="datastreams, version")
        raw = cfg.get("datastreams", {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}.datastreams must be a table of devices")
        streams: dict[str, dict[str, int | str]] = {}
        for device, fields in raw.items():
            if not isinstance(fields, dict) or not fields:
                raise ConfigError(f"{where}.datastreams.{device} must be a table field = datastream id")
            for name, ds in fields.items():
                if isinstance(ds, bool) or not isinstance(ds, int | str) or (isinstance(ds, int) and ds < 0):
                    raise ConfigError(
                        f"{where}.datastreams.{device}.{name} must be a Datastream @iot.id",
                        hint=f"got {ds!r}",
                    )
                if isinstance(ds, str):
                    check_topic_level(ds, f"{where}.datastreams.{device}.{name}")
            streams[str(device).upper()] = dict(fields)
        version = check_topic_level(cfg.get("version", "v1.1"), f"{where}.version")
        return cls(datastreams=streams, version=version)

    def _streams_for(self, record: Any) -> dict[str, int | str] | None:
        by_eui = self.datastreams.get((record.dev_eui or "").upper())
        if by_eui is not None:
            return by_eui
        name = record.payload.get("device")
        return self.datastreams.get(str(name).upper()) if name else None

    def __call__(self, record: Any, buffered: bool) -> list[OutMessage]:
        if record.kind != "up":
            return []
        streams = self._streams_for(record)
        data = record.payload.get("data")
        if not streams or not isinstance(data, dict):
            return []
        units = record.payload.get("units") or {}
        values = flatten(data)
        out = []
        for name, ds in streams.items():
            if name not in values:
                continue
            params: dict[str, Any] = {
                "id": record.id,
                "field": name,
                "dev_eui": record.dev_eui,
                "fcnt": record.fcnt32,
                "buffered": bool(buffered),
            }
            unit = units.get(name) if isinstance(units, dict) else None
            if unit:
                params["unit"] = unit
            obs = {
                "phenomenonTime": record.received_at,
                "resultTime": record.received_at,
                "result": values[name],
                "parameters": params,
            }
            out.append(OutMessage(f"{self.version}/Datastreams({_ds_id(ds)})/Observations", to_json(obs)))
        return out


def _ds_id(ds: int | str) -> str:
    # STA ids are numbers in FROST's default setup, or quoted strings when the server uses string ids.
    return str(ds) if isinstance(ds, int) else f"'{ds}'"
