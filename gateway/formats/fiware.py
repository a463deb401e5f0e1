"""FIWARE IoT Agent JSON over MQTT: one flat measurement object per uplink.

Published to ``/json/<apikey>/<device_id>/attrs``::

    {"temperature": 21.5, "humidity": 48, "TimeInstant": "<received_at>",
     "havelId": "<DevEUI>-<SessionEpoch>-<FCnt32>", "fcnt": 42, "buffered": false}

Nested decoded fields are joined with ``_`` (``valve_open``; NGSI attribute names may not contain dots).
``TimeInstant`` is the IoT Agent's attribute for the observation time, so buffered data keeps its receive
time; ``havelId`` carries the stable message id for deduplication. Only uplinks are sent.

Config (``[sink.fiware]``)::

    apikey = "havel-potsdam"                       # required
    [sink.fiware.device_ids]                       # optional: DevEUI -> IoT Agent device_id
    70B3D57ED0000001 = "pegel-havel-1"             # default: the DevEUI as 16 upper-case hex digits
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from havel.errors import ConfigError
from havel.gateway.formats import OutMessage, check_topic_level, flatten, to_json

__all__ = ["Fiware"]


@dataclass(frozen=True)
class Fiware:
    """Formatter: uplinks to IoT Agent JSON measurements."""

    apikey: str
    device_ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: dict[str, Any], *, where: str = "sink.fiware") -> Fiware:
        if not isinstance(cfg, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = set(cfg) - {"apikey", "device_ids"}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]} is not a known key", hint="apikey, device_ids")
        if "apikey" not in cfg:
            raise ConfigError(f"{where}.apikey is missing", hint="the IoT Agent service group's API key")
        apikey = check_topic_level(cfg["apikey"], f"{where}.apikey")
        raw = cfg.get("device_ids", {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}.device_ids must be a table DevEUI = device_id")
        ids = {str(k).upper(): check_topic_level(v, f"{where}.device_ids.{k}") for k, v in raw.items()}
        for k, v in ids.items():
            if "/" in v:
                raise ConfigError(f"{where}.device_ids.{k} must not contain '/'", hint=f"got {v!r}")
        return cls(apikey=apikey, device_ids=ids)

    def __call__(self, record: Any, buffered: bool) -> list[OutMessage]:
        if record.kind != "up" or not record.dev_eui:
            return []
        data = record.payload.get("data")
        attrs: dict[str, Any] = flatten(data, sep="_") if isinstance(data, dict) else {}
        attrs.update(
            {
                "TimeInstant": record.received_at,
                "havelId": record.id,
                "fcnt": record.fcnt32,
                "buffered": bool(buffered),
            }
        )
        device_id = self.device_ids.get(record.dev_eui.upper(), record.dev_eui.upper())
        return [OutMessage(f"/json/{self.apikey}/{device_id}/attrs", to_json(attrs))]
