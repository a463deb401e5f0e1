"""The gateway's one MQTT client (havel.gateway.mqtt) against a real Mosquitto on loopback.

Handlers are isolated (a handler that raises is counted, its message acknowledged, the next one handled on
the same connection), the session is persistent from the first connect, a PUBACK with "no matching
subscribers" is a success, and the client runs in a loop thread for programs without an event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from support.mosquitto import Mosquitto

from havel.gateway.mqtt import LoopThread, MqttClient
from havel.gateway.settings import MqttSettings


def wait_until(cond: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return cond()
        time.sleep(0.02)
    return cond()


def settings(broker: Mosquitto, **kw: Any) -> MqttSettings:
    return MqttSettings(host="127.0.0.1", port=broker.port, tls=False, session_expiry_s=300, **kw)


def publish_all(port: int, topic: str, payloads: list[bytes]) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        for p in payloads:
            pub.publish(topic, p, qos=1).wait_for_publish(10)
    finally:
        pub.disconnect()
        pub.loop_stop()


@pytest.fixture
def loop() -> Any:
    lt = LoopThread("test-mqtt")
    yield lt
    lt.close()


def listener(broker: Mosquitto, handled: list[bytes], client_id: str) -> MqttClient:
    def handle(msg: mqtt.MQTTMessage) -> None:
        if msg.payload.startswith(b"bad"):
            raise RuntimeError("a bug in a handler")
        handled.append(bytes(msg.payload))

    client = MqttClient(settings(broker), name="test listener", client_id=client_id, manual_ack=True)
    client.subscribe("test/in/#", handle)
    return client


@pytest.mark.timeout(60)
def test_a_handler_that_raises_is_counted_and_the_listener_goes_on(mosquitto: Mosquitto, loop: Any) -> None:
    handled: list[bytes] = []
    client = listener(mosquitto, handled, "test-isolation")
    subscribed = threading.Event()
    client.on_subscribed = subscribed.set
    loop.run(client.start(), 10)
    try:
        assert subscribed.wait(10)
        publish_all(mosquitto.port, "test/in/x", [b"bad-1", b"good-1", b"bad-2", b"good-2"])
        assert wait_until(lambda: len(handled) == 2)
        assert handled == [b"good-1", b"good-2"]  # in order, on the same connection
        assert client.handler_errors == 2 and client.received == 4 and client.connects == 1
        assert client.connected
    finally:
        loop.run(client.stop(), 10)
    # every message was acknowledged, the raising ones too: the kept session delivers nothing again
    again: list[bytes] = []
    second = listener(mosquitto, again, "test-isolation")
    loop.run(second.start(), 10)
    try:
        assert wait_until(lambda: second.subscribed)
        assert second.session_present is True
        time.sleep(1.0)  # what the broker kept for the session would arrive now
        assert again == [] and second.handler_errors == 0
    finally:
        loop.run(second.stop(), 10)


@pytest.mark.timeout(60)
def test_the_session_is_kept_from_the_first_connect(mosquitto: Mosquitto, loop: Any) -> None:
    """clean_start False from the very first connect: what is published while the listener is away is
    delivered when it is back."""
    handled: list[bytes] = []
    first = listener(mosquitto, handled, "test-session")
    loop.run(first.start(), 10)
    assert wait_until(lambda: first.subscribed)
    assert first.session_present is False
    loop.run(first.stop(), 10)
    publish_all(mosquitto.port, "test/in/away", [b"while-away"])
    second = listener(mosquitto, handled, "test-session")
    loop.run(second.start(), 10)
    try:
        assert wait_until(lambda: handled == [b"while-away"])
        assert second.session_present is True
    finally:
        loop.run(second.stop(), 10)


@pytest.mark.timeout(60)
def test_no_matching_subscribers_is_a_delivery(mosquitto: Mosquitto, loop: Any) -> None:
    client = MqttClient(settings(mosquitto, clean_start=True), name="test publisher", client_id="test-pub")
    loop.run(client.start(), 10)
    try:
        assert wait_until(lambda: client.connected)
        reason = loop.run(client.publish_acked("test/nobody/listens", b"x", 10), 15)
        assert int(reason.value) in (0, 0x10) and not reason.is_failure
    finally:
        loop.run(client.stop(), 10)


@pytest.mark.timeout(60)
def test_publish_from_any_thread_keeps_the_order(mosquitto: Mosquitto, loop: Any) -> None:
    from support.mqtt_subscriber import Subscriber

    client = MqttClient(settings(mosquitto, clean_start=True), name="test publisher", client_id="test-order")
    loop.run(client.start(), 10)
    try:
        assert wait_until(lambda: client.connected)
        with Subscriber(mosquitto.port, "test/order") as sub:
            for i in range(200):
                client.publish_threadsafe("test/order", str(i).encode())
            got = sub.wait_for(200, 20)
        assert [m.payload for m in got] == [str(i).encode() for i in range(200)]
    finally:
        loop.run(client.stop(), 10)


@pytest.mark.timeout(60)
def test_pubacks_are_handed_over_in_bursts(mosquitto: Mosquitto, loop: Any) -> None:
    """on_acks gets the PUBACKs each read of the socket brought, as one list: every message once, in
    publish order, with its reason code, and far fewer calls than messages for a run published at once."""
    calls: list[list[tuple[int, Any]]] = []
    client = MqttClient(
        settings(mosquitto, clean_start=True),
        name="test publisher",
        client_id="test-acks",
        on_acks=calls.append,
    )
    loop.run(client.start(), 10)
    try:
        assert wait_until(lambda: client.connected)
        count = 500

        async def publish_run() -> list[int]:
            return [client.publish("test/acks", str(i).encode())[1] for i in range(count)]

        mids = loop.run(publish_run(), 10)
        assert wait_until(lambda: sum(len(c) for c in calls) >= count)
        acked = [mid for call in calls for mid, _ in call]
        assert acked == mids  # each once, in order
        assert all(not reason.is_failure for call in calls for _, reason in call)
        assert len(calls) < count  # several PUBACKs per call: one wake-up per burst
    finally:
        loop.run(client.stop(), 10)
