"""Publishing through the gateway's MQTT client, and the hand-over of PUBACKs.

``on_acks(acks)`` reports the PUBACKs one read of the socket brought, as a list of ``(mid, reason_code)``
(0x10 "no matching subscribers" is a success: test ``reason_code.is_failure``): one call per burst of
acknowledgements, not one per message (the forwarder wakes once for them). :meth:`Publisher.publish_acked`
waits for the PUBACK of one message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

__all__ = ["Publisher"]

log = logging.getLogger("havel.gateway.mqtt")


class Publisher:
    """The publishing side of :class:`~havel.gateway.mqtt.client.MqttClient` (a base class of it)."""

    name: str
    client: mqtt.Client
    on_acks: Callable[[list[tuple[int, Any]]], None] | None
    _loop: asyncio.AbstractEventLoop | None
    _acks: list[tuple[int, Any]]  # PUBACKs of the current read, handed over after it
    _waiters: dict[int, asyncio.Future[Any]]  # mid -> the future publish_acked waits on
    _call_in_loop: Callable[..., None]  # (the loop adapter's)

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> tuple[int, int]:
        """Queue one message (loop thread) -> (paho's rc, mid). While disconnected, rc is
        MQTT_ERR_NO_CONN and a QoS 1 message is still queued (sent after the reconnect). ValueError for a
        topic or payload MQTT cannot carry."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return int(info.rc), info.mid

    def publish_threadsafe(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> None:
        """:meth:`publish` from any thread (runs in the loop, in call order)."""
        self._call_in_loop(self._publish_logged, topic, payload, qos, retain)

    def _publish_logged(self, topic: str, payload: bytes | str, qos: int, retain: bool) -> None:
        try:
            self.publish(topic, payload, qos, retain)
        except ValueError as exc:
            log.error("%s: cannot publish to %r: %s", self.name, topic[:120], exc)

    async def publish_acked(
        self, topic: str, payload: bytes | str, timeout: float, retain: bool = False
    ) -> Any:
        """Publish with QoS 1 and wait for its PUBACK -> the reason code (TimeoutError without one)."""
        assert self._loop is not None
        fut: asyncio.Future[Any] = self._loop.create_future()
        rc, mid = self.publish(topic, payload, 1, retain)
        if rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise OSError(f"publish failed: {mqtt.error_string(rc)}")
        self._waiters[mid] = fut
        try:
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._waiters.pop(mid, None)

    def _cancel_waiters(self) -> None:
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        # paho holds its lock here, once per PUBACK: only note it (handed over after the read)
        if self._waiters:
            fut = self._waiters.get(mid)
            if fut is not None and not fut.done():
                fut.set_result(reason)
        self._acks.append((mid, reason))

    def _hand_acks(self) -> None:
        # the PUBACKs this read brought, in one call (one wake-up of the forwarder per burst)
        acks, self._acks = self._acks, []
        if self.on_acks is not None:
            try:
                self.on_acks(acks)
            except Exception:
                log.exception("%s: acknowledgement callback failed", self.name)
