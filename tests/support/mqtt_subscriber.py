"""A real paho-mqtt subscriber for tests: collects what a broker delivers and waits for it.

    with Subscriber(broker.port, "havel/#") as sub:
        ...publish...
        msgs = sub.wait_for(10)        # list of Message(topic, payload, retain, qos), at least 10 of them
        sub.json()                     # payloads parsed as JSON

``persistent=True`` uses a durable MQTT v5 session (clean_start False from the first connect, a session
expiry), so it keeps receiving what was published while the broker restarted, and reconnects by itself.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["Message", "Subscriber"]


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """Subscribe to ``topics`` (a pattern or a list) on 127.0.0.1:``port`` and collect every message."""

    def __init__(
        self,
        port: int,
        topics: str | list[str],
        *,
        qos: int = 1,
        persistent: bool = False,
        host: str = "127.0.0.1",
        client_id: str | None = None,
        tls: dict[str, Any] | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.qos = qos
        self.persistent = persistent
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-sub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if tls is not None:
            self.client.tls_set(**tls)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def __enter__(self) -> Subscriber:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout: float = 10.0) -> None:
        props = Properties(PacketTypes.CONNECT)
        if self.persistent:
            props.SessionExpiryInterval = 3600
        self.client.connect(
            self.host, self.port, keepalive=10, clean_start=not self.persistent, properties=props
        )
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise TimeoutError(f"subscriber could not subscribe to {self.topics} on port {self.port}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            return
        # A persistent session keeps its subscriptions; subscribing again is harmless and covers a broker
        # that lost its state.
        client.subscribe([(t, self.qos) for t in self.topics])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0, *, topic: str | None = None) -> list[Message]:
        """Wait until at least ``count`` messages (on ``topic``, if given) arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [m for m in self.messages if topic is None or m.topic == topic]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"got {len(got)} of {count} messages within {timeout} s")
                self._cond.wait(left)

    def wait_quiet(self, quiet_s: float = 0.3, timeout: float = 10.0) -> list[Message]:
        """Wait until no message arrived for ``quiet_s`` (to catch late duplicates); return all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = len(self.messages)
            while time.monotonic() < deadline:
                self._cond.wait(quiet_s)
                if len(self.messages) == seen:
                    break
                seen = len(self.messages)
            return list(self.messages)

    def json(self) -> list[Any]:
        with self._cond:
            return [m.json() for m in self.messages]
