"""The receiver's MQTT listener: the relay topic on the broker the gateways publish to."""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt

from havel.gateway.mqtt import LoopThread, MqttClient
from havel.gateway.relay.receive.config import MQTT_TOPIC, listen_settings
from havel.gateway.relay.receive.core import ReceiverCore
from havel.gateway.settings import MqttSettings

log = logging.getLogger("havel.relay.receiver")


class MqttListener:
    """Subscribes to the relay topic on a broker the gateways can reach (e.g. over the Freifunk mesh).

    A persistent MQTT v5 session (stable ``client_id``, clean_start False from the first connect, a
    session expiry of ``session_expiry_s``, default one day): what the gateways publish while the
    receiver restarts is kept by the broker and delivered when it is back.

    A message is acknowledged (PUBACK) once it is handled, also when it cannot be read (it is counted
    and dropped: a message never acknowledged would come back after every restart). The client runs in an
    MQTT loop thread (``loop``, or its own): messages are handled one after the other there, so :meth:`stop`
    comes between two messages, and the PUBACK of the last one handled goes out ahead of the DISCONNECT
    (otherwise the broker would deliver it again at the next start, and the crisis staff would see it
    rejected as a replay). Should a handler raise anyway, the message is still acknowledged, the error is
    counted (``handler_errors``) and the next message is handled as usual.
    """

    def __init__(
        self,
        core: ReceiverCore,
        cfg: MqttSettings | dict[str, Any],
        topic: str = MQTT_TOPIC,
        loop: LoopThread | None = None,
    ) -> None:
        self.core = core
        if isinstance(cfg, MqttSettings):
            s = cfg
        else:
            s, topic = listen_settings(cfg)
        self.topic = topic
        self._own_loop = loop is None
        self.loop = loop or LoopThread("receiver-mqtt")
        self.subscribed = threading.Event()
        self.mqtt = MqttClient(s, name="receiver", client_id=str(s.client_id), manual_ack=True)
        self.mqtt.on_subscribed = self.subscribed.set
        self.mqtt.subscribe(topic, self._on_message)
        self.host, self.port, self.keepalive_s = self.mqtt.host, self.mqtt.port, s.keepalive_s
        self.clean_start, self.session_expiry_s = s.clean_start, s.session_expiry_s

    @property
    def connected(self) -> bool:
        return self.mqtt.connected

    def start(self) -> None:
        self.loop.run(self.mqtt.start(), 10)

    def stop(self) -> None:
        try:
            self.loop.run(self.mqtt.stop(), 10)
        finally:
            if self._own_loop:
                self.loop.close()

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        try:
            last = msg.topic.rsplit("/", 1)[-1]
            if last == "status":  # the MQTT sink's retained online/offline status (unsigned)
                self.core.handle_status(msg.topic, bytes(msg.payload))
            elif last in ("alarm", "state", "event"):
                self.core.handle_envelope(bytes(msg.payload), "mqtt", "mqtt")
            # anything else under relay/ (our own relay/primary, telemetry, emergency commands) is not input
        except Exception:  # the core counts what it cannot read; this is for a bug in between
            self.core.count("mqtt", "error")
            log.exception("receiver: message on %r could not be handled", msg.topic)

    def health(self) -> dict[str, Any]:
        return {
            "subscribed": self.subscribed.is_set(),
            "connected": self.connected,
            "handler_errors": self.mqtt.handler_errors,
        }
