"""Northbound message formats: pure functions from an outbox record to MQTT messages.

A formatter turns one :class:`havel.gateway.outbox_records.OutboxRecord` into zero or more :class:`OutMessage`
(topic, JSON payload). Nothing here does I/O, so the mappings are tested directly.

- ``json`` (:mod:`.jsonscheme`): Havel's own topic scheme, documented in ``docs/mqtt.md``.
- ``sensorthings`` (:mod:`.sensorthings`): OGC SensorThings API 1.1 Observations over MQTT.
- ``fiware`` (:mod:`.fiware`): FIWARE IoT Agent JSON measurements.

:func:`make_formatter` builds one from a sink's config dict (``format`` plus that format's keys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from havel.errors import ConfigError
from havel.gateway.jsontext import encode_json_bytes

__all__ = ["FORMATS", "Formatter", "OutMessage", "flatten", "make_formatter", "to_json"]

FORMATS = ("json", "sensorthings", "fiware")


class OutMessage(NamedTuple):
    """One message to publish: topic, payload bytes, retain flag (immutable; a tuple because a backlog
    drain builds one per message, and a frozen dataclass is several times slower to build)."""

    topic: str
    payload: bytes
    retain: bool = False


# (record, buffered) -> messages. ``record`` is an OutboxRecord (typed loosely to keep this module pure).
Formatter = Callable[[Any, bool], list[OutMessage]]


def to_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON, the wire form of every format: the outbox's text encoded
    (:func:`havel.gateway.jsontext.encode_json_bytes`)."""
    return encode_json_bytes(obj)


def flatten(data: dict[str, Any], sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one level (``{"valve": {"open": true}}`` -> ``{"valve.open": true}``).

    Scalars (numbers, booleans, strings) are kept; lists and None are left out (no single result).
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, sep, name))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
    return out


def check_topic_level(value: Any, key: str) -> str:
    """A config value used as (part of) a topic level: a non-empty string without MQTT wildcards."""
    if not isinstance(value, str) or not value or any(c in value for c in "+#\0"):
        raise ConfigError(f"{key} must be a non-empty string without '+', '#'", hint=f"got {value!r}")
    return value


def make_formatter(cfg: dict[str, Any], *, where: str = "sink") -> Formatter:
    """The formatter a sink config asks for (``format``, default ``json``); ConfigError names bad keys."""
    fmt = cfg.get("format", "json")
    if fmt == "json":
        from havel.gateway.formats.jsonscheme import JsonScheme

        return JsonScheme.from_config(cfg, where=where)
    if fmt == "sensorthings":
        from havel.gateway.formats.sensorthings import SensorThings

        return SensorThings.from_config(cfg.get("sensorthings", {}), where=f"{where}.sensorthings")
    if fmt == "fiware":
        from havel.gateway.formats.fiware import Fiware

        return Fiware.from_config(cfg.get("fiware", {}), where=f"{where}.fiware")
    raise ConfigError(f"{where}.format is {fmt!r}", hint=f"one of {', '.join(FORMATS)}")
