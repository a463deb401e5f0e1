"""Downlink commands from the platform: an MQTT subscription to ``<prefix>/<gateway_id>/devices/+/down``.

It uses the broker settings of an ``mqtt`` sink (host, port, TLS, credentials) with its own client id
(``<sink client id>-cmd``) and a persistent MQTT v5 session (clean_start False from the first connect, a
session expiry): commands published while the gateway was down are delivered when it comes back. paho's
automatic reconnect (with back-off) keeps it connected. Each message is handed to the event loop
(``on_command(dev_eui, body)``, called thread-safe) and acknowledged by paho after the callback.

Messages come from outside: each is read by :func:`~havel.gateway.downlinks.read_command` (size, JSON,
nesting, numbers, text), and what cannot be read is still handed on as a
:class:`~havel.gateway.downlinks.BadCommand`, so that the scheduler answers it with a ``down/result`` and
counts it by reason. A topic whose DevEUI cannot be read has no result topic: it is counted here
(``refused``) and logged. Nothing a message holds can stop the subscription.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from havel.gateway.downlinks import parse_down_topic, read_command

log = logging.getLogger("havel.gateway.commands")

OnCommand = Callable[[int, Any], None]


class CommandSubscriber:
    """See the module docstring. ``sink`` is a started-or-not :class:`havel.gateway.sinks.mqtt.MqttSink`
    whose connection settings are reused."""

    def __init__(self, sink: Any, *, prefix: str, gateway_id: str, on_command: OnCommand) -> None:
        self.prefix = prefix
        self.gateway_id = gateway_id
        self.on_command = on_command
        self.topic = f"{prefix}/{gateway_id}/devices/+/down"
        self.host = sink.host
        self.port = sink.port
        self.session_expiry_s = int(getattr(sink, "session_expiry_s", 604800))
        self.keepalive_s = int(getattr(sink, "keepalive_s", 30))
        self.connected = False
        self.subscribed = False  # the broker confirmed the subscription (SUBACK)
        self.received = 0
        self.refused: dict[str, int] = {}  # messages without an addressable device, by reason
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"{sink.client_id}-cmd", protocol=mqtt.MQTTv5
        )
        tls = getattr(sink, "tls", None)
        if tls is not None:
            client.tls_set(
                ca_certs=tls.ca_file,
                certfile=tls.cert_file,
                keyfile=tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if getattr(sink, "username", None) is not None:
            client.username_pw_set(sink.username, getattr(sink, "_password", None))
        min_s = float(getattr(sink, "reconnect_min_s", 1.0))
        client.reconnect_delay_set(
            max(1, round(min_s)), max(1, round(float(getattr(sink, "reconnect_max_s", 60))))
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.client = client

    def start(self) -> None:
        """Connect in the background (paho's thread reconnects by itself)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        self.client.connect_async(
            self.host, self.port, keepalive=self.keepalive_s, clean_start=False, properties=props
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
        self.connected = False

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("command subscription: broker refused the connection: %s", reason)
            return
        self.connected = True
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if all(not getattr(r, "is_failure", False) for r in reasons):
            self.subscribed = True
            log.info("subscribed to downlink commands on %s", self.topic)
        else:
            log.warning("the broker refused the subscription to %s: %s", self.topic, reasons)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected = False
        self.subscribed = False

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.received += 1
        try:
            dev_eui = parse_down_topic(msg.topic, self.prefix, self.gateway_id)
            if dev_eui is None:
                # the wildcard matched a DevEUI that is not 16 hex digits: there is no result topic to answer
                self._refuse("bad_dev_eui", f"topic {msg.topic[:120]!r}: the DevEUI is not 16 hex digits")
                return
            self.on_command(dev_eui, read_command(msg.payload))
        except Exception:  # a bug must not end paho's network thread (and with it every later command)
            log.exception("a downlink command could not be handed on")
            self._refuse("internal", "")

    def _refuse(self, reason: str, detail: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        if detail:
            log.warning("downlink command refused (%s): %s", reason, detail)
