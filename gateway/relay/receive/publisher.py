"""The receiver's publisher into the crisis centre's local broker."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from havel.gateway.mqtt import LoopThread, MqttClient
from havel.gateway.relay.receive.config import publish_settings
from havel.gateway.settings import MqttSettings


class Publisher:
    """QoS 1 publisher into the crisis centre's local broker (reconnects by itself). It runs in an MQTT
    loop thread (``loop``, or its own); calling it from any thread queues the message there, in order."""

    def __init__(
        self, cfg: MqttSettings | dict[str, Any], client_id: str | None = None, loop: LoopThread | None = None
    ) -> None:
        s = cfg if isinstance(cfg, MqttSettings) else publish_settings(cfg)
        cid = client_id or s.client_id or f"havel-relay-publisher-{uuid.uuid4().hex[:8]}"
        # a clean session the broker forgets when we leave: what we publish is acknowledged or re-sent by us
        once = dataclasses.replace(s, client_id=cid, clean_start=True, session_expiry_s=0)
        self._own_loop = loop is None
        self.loop = loop or LoopThread("receiver-publisher")
        self.mqtt = MqttClient(once, name="receiver publisher", client_id=cid)
        self.host, self.port = self.mqtt.host, self.mqtt.port

    def start(self) -> None:
        self.loop.run(self.mqtt.start(), 10)

    def __call__(self, topic: str, payload: bytes) -> None:
        self.mqtt.publish_threadsafe(topic, payload)

    def stop(self) -> None:
        try:
            self.loop.run(self.mqtt.stop(), 10)
        finally:
            if self._own_loop:
                self.loop.close()
