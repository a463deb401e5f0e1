"""Northbound sinks: where the forwarder delivers outbox records.

- ``mqtt`` (:class:`.mqtt.MqttSink`): the urban data platform's broker (QoS 1, TLS, persistent session).
- ``file`` (:class:`.file.FileSink`): JSON Lines to a file or stdout.

:func:`make_sinks` builds them from the config's ``[[sink]]`` tables::

    sinks = make_sinks(cfg.sinks, gateway_id=cfg.gateway_id)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from havel.errors import ConfigError
from havel.gateway.sinks.base import Result, Sink

__all__ = ["Result", "Sink", "make_sink", "make_sinks"]


def make_sink(cfg: dict[str, Any], *, gateway_id: str | None = None) -> Sink:
    """One sink from its config table (``type`` = mqtt | file); ConfigError names a bad key."""
    if not isinstance(cfg, dict):
        raise ConfigError("a [[sink]] entry must be a table")
    full = dict(cfg)
    if gateway_id is not None:
        full.setdefault("gateway_id", gateway_id)
    kind = full.get("type")
    if kind == "mqtt":
        from havel.gateway.sinks.mqtt import MqttSink

        return MqttSink.from_config(full)
    if kind == "file":
        from havel.gateway.sinks.file import FileSink

        return FileSink.from_config(full)
    raise ConfigError(f"sink[{full.get('name', '?')}].type is {kind!r}", hint="one of mqtt, file")


def make_sinks(cfgs: Sequence[dict[str, Any]], *, gateway_id: str | None = None) -> list[Sink]:
    """Every configured sink; names must be unique (the outbox tracks acknowledgements by name)."""
    sinks = [make_sink(c, gateway_id=gateway_id) for c in cfgs]
    names = [s.name for s in sinks]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(
            f"sink name {sorted(dup)[0]!r} is used twice", hint="give each [[sink]] a unique name"
        )
    return sinks
