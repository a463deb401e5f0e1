"""One MQTT client for the whole gateway: paho-mqtt's public API driven by an asyncio event loop.

Every MQTT user in the daemon and the relay receiver (the sinks, the downlink command subscription, the
relay's emergency listener, the receiver's listener and publisher, the command-line publisher) goes through
:class:`MqttClient`, so that the protocol settings, TLS and credentials are made in one place
(:func:`configure`) and every handler runs the same way.

- Protocol: MQTT v5, ``clean_start`` and the session expiry from :class:`~havel.gateway.settings.MqttSettings`
  on every connect, the first included (a sink or a durable listener keeps its session: Mosquitto never saves
  a session that began with a clean start). QoS 1 messages not yet acknowledged when the connection drops
  are kept by paho and sent again after the reconnect.
- Event loop: paho's socket callbacks (``on_socket_open``, ``on_socket_register_write`` ...) put its socket
  into the running loop (``add_reader``/``add_writer``); ``loop_read``, ``loop_write`` and ``loop_misc`` (once
  a second) do the rest. No network thread: a second Python thread would fight the loop for the GIL, and a
  callback that raises cannot end a thread that does not exist. Only ``connect()`` (TCP and the TLS
  handshake, which block) runs in the default executor, so network and TLS errors arrive with their text.
- Reconnect: a supervisor task connects again after a loss, with exponential back-off (with jitter)
  between ``reconnect_min_s`` and ``reconnect_max_s``; a connection that lasted resets the back-off.
- Handlers: :meth:`MqttClient.subscribe` binds a topic filter to a handler. Every message is handed to its
  handler inside a guard: an exception is logged and counted (``handler_errors``), the message is still
  acknowledged (a message that is never acknowledged would come back after every reconnect) and the next
  message is handled as usual. With ``manual_ack`` the PUBACK goes out after the handler returned.
- Delivery: ``on_acks(acks)`` reports the PUBACKs one read of the socket brought, as a list of
  ``(mid, reason_code)`` (0x10 "no matching subscribers" is a success: test ``reason_code.is_failure``):
  one call per burst of acknowledgements, not one per message (the forwarder wakes once for them).

A program without an event loop of its own (the relay receiver, the command line) runs the client in a
:class:`LoopThread`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from havel.errors import ConfigError

from ..settings import MqttSettings

__all__ = ["LoopThread", "MqttClient", "Will", "configure", "describe_error"]

log = logging.getLogger("havel.gateway.mqtt")

T = TypeVar("T")
Handler = Callable[[mqtt.MQTTMessage], None]
_CORK: int | None = getattr(socket, "TCP_CORK", None)
NO_RECEIVE_MAXIMUM = 65535  # the MQTT 5 default when the broker states no Receive Maximum


@dataclass(frozen=True)
class Will:
    """The last will the broker publishes when the connection ends without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def describe_error(exc: BaseException) -> str:
    """A connection error in words an operator can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (broker not running or wrong port)"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def configure(client: mqtt.Client, settings: MqttSettings, where: str) -> None:
    """TLS (chain and host name always verified) and credentials of ``client`` from ``settings``;
    ConfigError (naming ``where``) when the TLS files cannot be loaded."""
    tls = settings.tls_settings
    if tls is not None:
        try:
            client.tls_set(
                ca_certs=tls.ca_file,
                certfile=tls.cert_file,
                keyfile=tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"{where}: TLS files cannot be loaded: {exc}", hint="check ca_file, cert_file and key_file"
            ) from None
        client.tls_insecure_set(False)
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)


class MqttClient:
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
        self._acks: list[tuple[int, Any]] = []  # PUBACKs of the current read, handed over after it
        self.connected = False
        self.last_error: str | None = None
        self.last_reason_code: int | None = None  # of the last refused CONNACK
        self.session_present: bool | None = None
        self.receive_maximum = NO_RECEIVE_MAXIMUM
        self.connected_at: float | None = None
        self.disconnected_at: float | None = None
        self.connects = 0
        self.received = 0
        self.handler_errors = 0  # messages whose handler raised (acknowledged, logged, counted)
        self._subscriptions: dict[str, tuple[int, Handler]] = {}
        self._suback_pending: dict[int, str] = {}
        self._subscribed: set[str] = set()
        self.on_subscribed: Callable[[], None] | None = None  # when every subscription is confirmed
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._lost: asyncio.Event | None = None
        self._up: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._reader_fd: int | None = None
        self._writer_fd: int | None = None
        self._connack_refused = False
        self.client = self._make_client(will)

    def __repr__(self) -> str:  # no password, ever
        return f"MqttClient(name={self.name!r}, host={self.host!r}, port={self.port})"

    def _make_client(self, will: Will | None) -> mqtt.Client:
        # our supervisor reconnects (with visible errors), not paho
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
            manual_ack=self.manual_ack,
        )
        client.connect_timeout = self.settings.connect_timeout_s
        # 0 = no paho-side limit: the users keep their own window (the forwarder: within Receive Maximum)
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.suppress_exceptions = True  # the last line: our callbacks catch what they can themselves
        configure(client, self.settings, self.name)
        if will is not None:
            client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        return client

    # ------------------------------------------------------------------ subscriptions

    def subscribe(self, topic: str, handler: Handler, qos: int = 1) -> None:
        """Hand every message matching ``topic`` to ``handler`` (in the loop thread); subscribed on every
        connect. Call before :meth:`start`."""
        self._subscriptions[topic] = (qos, handler)

    @property
    def subscribed(self) -> bool:
        """Every subscription confirmed by the broker on the current connection."""
        return bool(self._subscriptions) and self._subscribed >= set(self._subscriptions)

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
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

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

    async def _misc(self) -> None:
        # keepalive pings and their timeout (paho's loop_misc), once a second
        while True:
            await asyncio.sleep(1.0)
            self.client.loop_misc()

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

    # ------------------------------------------------------------------ publishing

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

    # ------------------------------------------------------------------ paho in the event loop

    def _call_in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        # paho calls the socket callbacks from connect() (in the executor) as well as from the loop
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # each packet goes out when written (no Nagle wait for the previous one's ACK); a run of packets
        # is still sent in full segments, corked in _writable
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._call_in_loop(self._add_reader, sock.fileno())

    def _add_reader(self, fd: int) -> None:
        assert self._loop is not None
        self._reader_fd = fd
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        client = self.client
        sock = client.socket()
        client.loop_read()
        # with TLS, bytes already decrypted in the SSL object are invisible to the selector: read them now
        while (
            sock is not None
            and client.socket() is sock
            and isinstance(sock, ssl.SSLSocket)
            and sock.pending()
        ):
            client.loop_read()
        if self._acks:
            self._hand_acks()

    def _hand_acks(self) -> None:
        # the PUBACKs this read brought, in one call (one wake-up of the forwarder per burst)
        acks, self._acks = self._acks, []
        if self.on_acks is not None:
            try:
                self.on_acks(acks)
            except Exception:
                log.exception("%s: acknowledgement callback failed", self.name)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._call_in_loop(self._remove_fds)

    def _remove_fds(self) -> None:
        assert self._loop is not None
        if self._reader_fd is not None:
            self._loop.remove_reader(self._reader_fd)
        if self._writer_fd is not None:
            self._loop.remove_writer(self._writer_fd)
        self._reader_fd = self._writer_fd = None

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._call_in_loop(self._add_writer, sock.fileno())

    def _add_writer(self, fd: int) -> None:
        assert self._loop is not None
        self._writer_fd = fd
        self._loop.add_writer(fd, self._writable)

    def _writable(self) -> None:
        # paho sends each queued packet with its own send(); corked, the kernel joins them into full
        # segments and sends the rest when uncorked (Linux; elsewhere plain writes)
        sock = self.client.socket()
        cork = _CORK if isinstance(sock, socket.socket) else None
        if cork is not None and isinstance(sock, socket.socket):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
            except OSError:
                cork = None
        try:
            self.client.loop_write()
        finally:
            if cork is not None and isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, cork, 0)
        if self._acks:  # a QoS 0 message counts as published once written
            self._hand_acks()

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._call_in_loop(self._remove_writer)

    def _remove_writer(self) -> None:
        assert self._loop is not None
        if self._writer_fd is not None:
            self._loop.remove_writer(self._writer_fd)
            self._writer_fd = None

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
        for topic, (qos, _) in self._subscriptions.items():
            rc, mid = client.subscribe(topic, qos=qos)
            if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                self._suback_pending[mid] = topic
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

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        # paho holds its lock here, once per PUBACK: only note it (handed over after the read)
        if self._waiters:
            fut = self._waiters.get(mid)
            if fut is not None and not fut.done():
                fut.set_result(reason)
        self._acks.append((mid, reason))

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


class LoopThread:
    """An asyncio loop in a daemon thread, for a program that has none of its own (the relay receiver,
    the command line): its MQTT clients run there, and other threads reach them through :meth:`run`
    (a coroutine, waited for) and :meth:`call` (a function, not waited for)."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError("the MQTT loop did not answer in time") from None

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()
