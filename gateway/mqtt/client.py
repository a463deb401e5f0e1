"""One MQTT client for the whole gateway: paho-mqtt's public API driven by an asyncio event loop.

Every MQTT user in the daemon and the relay receiver (the sinks, the downlink command subscription, the
relay's emergency listener, the receiver's listener and publisher, the command-line publisher) goes through
:class:`MqttClient`, so that the protocol settings, TLS and credentials are made in one place
(:mod:`.connection`) and every handler runs the same way. This module holds its life cycle; the other
parts are in their own modules:

- Protocol (:mod:`.connection`): MQTT v5, ``clean_start`` and the session expiry from
  :class:`~havel.gateway.settings.MqttSettings` on every connect, the first included (a sink or a durable
  listener keeps its session: Mosquitto never saves a session that began with a clean start). QoS 1
  messages not yet acknowledged when the connection drops are kept by paho and sent again after the
  reconnect.
- Event loop (:mod:`.eventloop`): paho's socket in the running loop, no network thread. Only ``connect()``
  (TCP and the TLS handshake, which block) runs in the default executor, so network and TLS errors arrive
  with their text.
- Reconnect (here): a supervisor task connects again after a loss, with exponential back-off (with
  jitter) between ``reconnect_min_s`` and ``reconnect_max_s``; a connection that lasted resets the back-off.
- Handlers (:mod:`.subscriber`): each message to its handler inside a guard (counted, acknowledged, the
  next one handled as usual).
- Delivery (:mod:`.publisher`): ``on_acks(acks)`` gets the PUBACKs of each read of the socket in one list.

A program without an event loop of its own (the relay receiver, the command line) runs the client in a
:class:`~havel.gateway.mqtt.loopthread.LoopThread`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from havel.gateway.mqtt.connection import NO_RECEIVE_MAXIMUM, Will, describe_error, make_client
from havel.gateway.mqtt.eventloop import LoopAdapter
from havel.gateway.mqtt.publisher import Publisher
from havel.gateway.mqtt.subscriber import Handler, Subscriber
from havel.gateway.settings import MqttSettings

__all__ = ["MqttClient"]

log = logging.getLogger("havel.gateway.mqtt")


class MqttClient(LoopAdapter, Publisher, Subscriber):
    """One broker connection run by the current asyncio loop (see the module docstring).

    ``on_state(up, error)`` is called on every connect and loss (``error`` says why, or None),
    ``on_connected(session_present)`` after each accepted CONNACK (before queued messages go out, so a
    status published there is the first message), ``on_acks(acks)`` after each read of the socket that
    brought PUBACKs (``[(mid, reason_code), ...]`` in arrival order). They run in the loop thread
    (``on_state`` and ``on_connected`` inside paho's callbacks): hand work over, never block or take a lock
    that is held around :meth:`publish`.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        name: str,
        client_id: str,
        will: Will | None = None,
        manual_ack: bool = False,
        on_state: Callable[[bool, str | None], None] | None = None,
        on_connected: Callable[[bool], None] | None = None,
        on_acks: Callable[[list[tuple[int, Any]]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.client_id = client_id
        self.host = settings.host
        self.port = int(settings.port or (8883 if settings.tls else 1883))
        self.manual_ack = manual_ack
        self.on_state = on_state
        self.on_connected = on_connected
        self.on_acks = on_acks
        self._acks = []
        self.connected = False
        self.last_error: str | None = None
        self.last_reason_code: int | None = None  # of the last refused CONNACK
        self.session_present: bool | None = None
        self.receive_maximum = NO_RECEIVE_MAXIMUM
        self.connected_at: float | None = None
        self.disconnected_at: float | None = None
        self.connects = 0
        self.received = 0
        self.handler_errors = 0
        self._subscriptions: dict[str, tuple[int, Handler]] = {}
        self._suback_pending = {}
        self._subscribed = set()
        self.on_subscribed = None
        self._waiters = {}
        self._loop = None
        self._loop_thread = None
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._lost: asyncio.Event | None = None
        self._up: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._reader_fd = None
        self._writer_fd = None
        self._connack_refused = False
        # our supervisor reconnects (with visible errors), not paho
        client = make_client(settings, client_id=client_id, where=name, manual_ack=manual_ack, will=will)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.bind_socket_callbacks(client)
        self.client = client

    def __repr__(self) -> str:  # no password, ever
        return f"MqttClient(name={self.name!r}, host={self.host!r}, port={self.port})"

    def _io_done(self) -> None:
        if self._acks:
            self._hand_acks()

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Begin connecting; returns at once (the connection comes up in the background)."""
        if self._supervisor is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"mqtt-{self.name}")

    async def stop(self, timeout: float = 1.0) -> None:
        """Disconnect cleanly (no will is published after a DISCONNECT) and stop reconnecting."""
        if self._supervisor is None:
            return
        self._stopping = True
        assert self._stop_event is not None
        self._stop_event.set()
        lost = self._lost
        if self.connected:
            self.client.disconnect()
            if lost is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout)
        self._supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._supervisor
        self._supervisor = None
        self._close_socket()
        self._set_state(False, None)
        self._cancel_waiters()

    async def _supervise(self) -> None:
        assert self._loop is not None and self._stop_event is not None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        s = self.settings
        delay = s.reconnect_min_s
        attempt = 0
        while not self._stopping:
            attempt += 1
            self._lost = asyncio.Event()
            self._up = asyncio.Event()
            self._connack_refused = False
            try:
                # connect() blocks for TCP and the TLS handshake: off the event loop
                await self._loop.run_in_executor(
                    None,
                    functools.partial(
                        self.client.connect,
                        self.host,
                        self.port,
                        keepalive=s.keepalive_s,
                        clean_start=s.clean_start,
                        properties=props,
                    ),
                )
            except Exception as exc:
                reason = describe_error(exc)
                if reason != self.last_error:
                    log.warning("%s: cannot connect to %s:%d: %s", self.name, self.host, self.port, reason)
                self._set_state(False, reason)
            else:
                misc = asyncio.create_task(self._misc())
                try:
                    async with asyncio.timeout(s.connect_timeout_s):
                        await self._first(self._up, self._lost)
                except TimeoutError:
                    self._set_state(False, "no CONNACK from the broker")
                    self._close_socket()
                else:
                    await self._first(self._lost)
                finally:
                    misc.cancel()
                if self._stopping:
                    return
                if self._connected_long_enough():
                    delay = s.reconnect_min_s
                    attempt = 0
            wait = min(delay * random.uniform(0.8, 1.2), s.reconnect_max_s)
            log.debug(
                "%s: connecting to %s:%d again in %.1f s (retry %d; %s)",
                self.name,
                self.host,
                self.port,
                wait,
                attempt,
                self.last_error or "connection lost",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), wait)
            delay = min(delay * 2, s.reconnect_max_s)

    async def _first(self, *events: asyncio.Event) -> None:
        """Wait until one of ``events`` (or stop) is set."""
        assert self._stop_event is not None
        waiters = [asyncio.ensure_future(e.wait()) for e in (*events, self._stop_event)]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    def _close_socket(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        if self._lost is not None:
            self._lost.set()

    def _connected_long_enough(self) -> bool:
        # a connection that lasted a while resets the back-off; a flapping one keeps backing off
        return (
            self.disconnected_at is not None
            and self.connected_at is not None
            and self.disconnected_at - self.connected_at > self.settings.reconnect_min_s
        )

    def _set_state(self, up: bool, error: str | None) -> None:
        if up:
            self.connected_at = time.time()
            self.connects += 1
            self.last_error = None
        else:
            self.disconnected_at = time.time()
            self._subscribed.clear()
            if error:
                self.last_error = error
        self.connected = up
        if self.on_state is not None:
            try:
                self.on_state(up, error)
            except Exception:
                log.exception("%s: state callback failed", self.name)

    # ------------------------------------------------------------------ paho callbacks

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._connack_refused = True
            self.last_reason_code = int(reason.value)
            self._set_state(False, f"broker refused the connection: {reason} ({int(reason.value)})")
            log.warning("%s: broker refused the connection: %s", self.name, reason)
            if self._lost is not None:
                self._call_in_loop(self._lost.set)
            return
        receive_max = getattr(props, "ReceiveMaximum", None) if props is not None else None
        self.receive_maximum = int(receive_max) if receive_max else NO_RECEIVE_MAXIMUM
        # True after a reconnect when the broker kept our session
        self.session_present = bool(getattr(flags, "session_present", False))
        log.info(
            "%s: connected to %s:%d (session present: %s)",
            self.name,
            self.host,
            self.port,
            self.session_present,
        )
        if self.on_connected is not None:
            try:
                self.on_connected(self.session_present)
            except Exception:
                log.exception("%s: connect callback failed", self.name)
        self._subscribe_all(client)
        self._set_state(True, None)
        if self._up is not None:
            self._call_in_loop(self._up.set)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self._stopping:
            error: str | None = None
        else:
            log.warning("%s: connection lost: %s", self.name, reason)
            if self.connected:
                error = f"connection lost: {reason}"
            elif self._connack_refused:
                error = None  # the refused CONNACK already said why; this would only say "protocol error"
            else:
                error = (
                    f"the broker closed the connection before accepting it ({reason}): client certificate?"
                )
        self._suback_pending.clear()
        self._set_state(False, error)
        if self._lost is not None:
            self._call_in_loop(self._lost.set)
