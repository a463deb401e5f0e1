"""Downlink commands from the platform: an MQTT subscription to ``<prefix>/<gateway_id>/devices/+/down``.

It uses the broker settings of an ``mqtt`` sink (host, port, TLS, credentials: the sink's settings block)
with its own client id (``<sink client id>-cmd``) and a persistent MQTT v5 session (clean_start False from
the first connect, a session expiry): commands published while the gateway was down are delivered when it
comes back. The client is the gateway's one MQTT integration (:class:`havel.gateway.mqtt.MqttClient`), run
by the daemon's event loop; it reconnects with back-off. Each message is handed on
(``on_command(dev_eui, body)``) and acknowledged after the handler returned.

Messages come from outside: each is read by :func:`~havel.gateway.downlinks.read_command` (size, JSON,
nesting, numbers, text), and what cannot be read is still handed on as a
:class:`~havel.gateway.downlinks.BadCommand`, so that the scheduler answers it with a ``down/result`` and
counts it by reason. A topic whose DevEUI cannot be read has no result topic: it is counted here
(``refused``) and logged. Nothing a message holds can stop the subscription.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from havel.gateway.downlink_commands import parse_down_topic, read_command
from havel.gateway.mqtt import MqttClient

log = logging.getLogger("havel.gateway.commands")

OnCommand = Callable[[int, Any], None]


class CommandSubscriber:
    """See the module docstring. ``sink`` is a :class:`havel.gateway.sinks.mqtt.MqttSink` whose
    connection settings are reused."""

    def __init__(self, sink: Any, *, prefix: str, gateway_id: str, on_command: OnCommand) -> None:
        self.prefix = prefix
        self.gateway_id = gateway_id
        self.on_command = on_command
        self.topic = f"{prefix}/{gateway_id}/devices/+/down"
        self.refused: dict[str, int] = {}  # messages without an addressable device, by reason
        client_id = f"{sink.client_id}-cmd"
        settings = dataclasses.replace(sink.settings, client_id=client_id, clean_start=False)
        self.mqtt = MqttClient(settings, name="downlink commands", client_id=client_id, manual_ack=True)
        self.mqtt.subscribe(self.topic, self._on_message)
        self.host, self.port = self.mqtt.host, self.mqtt.port

    @property
    def connected(self) -> bool:
        return self.mqtt.connected

    @property
    def subscribed(self) -> bool:
        """The broker confirmed the subscription (SUBACK) on the current connection."""
        return self.mqtt.subscribed

    @property
    def received(self) -> int:
        return self.mqtt.received

    async def start(self) -> None:
        """Connect in the background (reconnects by itself)."""
        await self.mqtt.start()

    async def stop(self) -> None:
        """Disconnect."""
        await self.mqtt.stop()

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        try:
            dev_eui = parse_down_topic(msg.topic, self.prefix, self.gateway_id)
            if dev_eui is None:
                # the wildcard matched a DevEUI that is not 16 hex digits: there is no result topic to answer
                self._refuse("bad_dev_eui", f"topic {msg.topic[:120]!r}: the DevEUI is not 16 hex digits")
                return
            self.on_command(dev_eui, read_command(msg.payload))
        except Exception:  # a bug must not stop the subscription (and with it every later command)
            log.exception("a downlink command could not be handed on")
            self._refuse("internal", "")

    def _refuse(self, reason: str, detail: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        if detail:
            log.warning("downlink command refused (%s): %s", reason, detail)
