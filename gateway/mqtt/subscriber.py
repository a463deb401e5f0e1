"""Subscriptions of the gateway's MQTT client and the guarded hand-over of each message to its handler.

:meth:`Subscriber.subscribe` binds a topic filter to a handler; the filters are subscribed again on every
connect. Every message is handed to its handler inside a guard: an exception is logged and counted
(``handler_errors``), the message is still acknowledged (a message that is never acknowledged would come
back after every reconnect) and the next message is handled as usual. With ``manual_ack`` the PUBACK goes
out after the handler returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

__all__ = ["Handler", "Subscriber"]

log = logging.getLogger("havel.gateway.mqtt")

Handler = Callable[[mqtt.MQTTMessage], None]


class Subscriber:
    """The subscribing side of :class:`~havel.gateway.mqtt.client.MqttClient` (a base class of it)."""

    name: str
    manual_ack: bool
    received: int
    handler_errors: int  # messages whose handler raised (acknowledged, logged, counted)
    on_subscribed: Callable[[], None] | None  # when every subscription is confirmed
    _stopping: bool
    _subscriptions: dict[str, tuple[int, Handler]]
    _suback_pending: dict[int, str]  # SUBSCRIBE mid -> its topic filter
    _subscribed: set[str]  # topic filters the broker confirmed on this connection

    def subscribe(self, topic: str, handler: Handler, qos: int = 1) -> None:
        """Hand every message matching ``topic`` to ``handler`` (in the loop thread); subscribed on every
        connect. Call before :meth:`start`."""
        self._subscriptions[topic] = (qos, handler)

    @property
    def subscribed(self) -> bool:
        """Every subscription confirmed by the broker on the current connection."""
        return bool(self._subscriptions) and self._subscribed >= set(self._subscriptions)

    def _subscribe_all(self, client: mqtt.Client) -> None:
        # after each accepted CONNACK
        for topic, (qos, _) in self._subscriptions.items():
            rc, mid = client.subscribe(topic, qos=qos)
            if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                self._suback_pending[mid] = topic

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        topic = self._suback_pending.pop(mid, None)
        if topic is None:
            return
        if all(not getattr(r, "is_failure", False) for r in reasons):
            self._subscribed.add(topic)
            log.info("%s: subscribed to %s", self.name, topic)
            if self.subscribed and self.on_subscribed is not None:
                try:
                    self.on_subscribed()
                except Exception:
                    log.exception("%s: subscribe callback failed", self.name)
        else:
            log.warning("%s: the broker refused the subscription to %s: %s", self.name, topic, reasons)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._stopping:
            return  # not handled, not acknowledged: the broker keeps it for the next session
        self.received += 1
        try:
            for topic, (_, handler) in self._subscriptions.items():
                if mqtt.topic_matches_sub(topic, msg.topic):
                    handler(msg)
                    break
        except Exception:  # nothing a message holds (nor a bug in a handler) may stop the listener
            self.handler_errors += 1
            log.exception("%s: a message on %r could not be handled", self.name, msg.topic[:120])
        finally:
            if self.manual_ack:
                client.ack(msg.mid, msg.qos)
