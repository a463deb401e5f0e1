"""The ``mqtt`` sink: paho-mqtt 2.x, QoS 1, MQTT v5 persistent session, TLS verified, reconnect with back-off.

Delivery: every message is published with QoS 1; a record counts as delivered when the broker's PUBACK for
each of its messages arrived with a success reason code (0x10 "no matching subscribers" is success). A
failure reason (e.g. 135 "not authorized" from an ACL) is reported with its code and the record stays in the
outbox. paho calls ``on_publish`` while holding its internal lock, so the callback only appends
``(mid, reason)`` to a deque and wakes the forwarder (the thread-safe hand-off of :mod:`.base`).

Session: MQTT v5 with ``clean_start=False`` from the very first connect and a session expiry, so the broker
keeps the session across reconnects (Mosquitto never saves a session that began with a clean start).
QoS 1 messages not yet acknowledged when the connection drops are kept by paho and re-sent on reconnect.

Throughput: the client is paho's with the fast paths of :mod:`.paho_fast` (buffered reads, PUBACKs taken
from the buffer, one send per run of packets, a lighter QoS 1 publish; same protocol and message states),
and the forwarder hands records over in batches (:meth:`MqttSink.send_many`: formatted, then published in
one call): a backlog drains at a fraction of the CPU time per message paho itself needs (bench/outbox.py
prints both).

Connection: paho runs inside the asyncio event loop through its socket callbacks (``add_reader`` /
``add_writer``, ``loop_misc`` once a second), not in a thread of its own: a second Python thread would fight
the event loop for the GIL (measured: drain rate halved). Only ``connect()`` (TCP and the TLS handshake,
which block) runs in the default executor, so TLS and network errors arrive with their real text in
``last_error``. A supervisor task reconnects after a loss with exponential back-off (with jitter) between
``reconnect_min_s`` (1 s) and ``reconnect_max_s`` (5 s); a connection that lasted resets the back-off. The cap
is low on purpose: while the broker is away the records wait safely in the outbox, and the only cost of
trying every few seconds is one TCP connect, while a long back-off kept a sink away for half a minute after
its broker was back. Every retry is logged at debug level with its delay.

Status: a last will ``{"state": "offline", ...}`` retained on the status topic; on every connect
``{"state": "online", ...}`` is published retained there; :meth:`MqttSink.publish_status` adds fields.

Config (a ``[[sink]]`` table; the daemon adds ``gateway_id`` from ``[gateway]``; the keys of the broker
connection are those of :class:`havel.gateway.settings.MqttSettings`)::

    [[sink]]
    type = "mqtt"
    name = "primary"                 # default "mqtt"; the outbox tracks acknowledgements per name
    host = "platform.example.org"    # required
    port = 8883                      # default 8883 with TLS, 1883 without
    tls = true                       # default true; verification is always on when TLS is on
    ca_file = "/etc/havel/ca.pem"    # default: the system's trusted CAs
    cert_file = "/etc/havel/gw.crt"  # optional client certificate ...
    key_file = "/etc/havel/gw.key"   # ... and its key
    username = "gw1"                 # optional
    password = "..."                 # optional (never logged)
    password_file = "/etc/havel/mqtt.pass"  # instead of password: its first line; the file must be 0600
    client_id = "havel-gw1"          # default havel-<gateway_id>-<name>; must stay stable (the session)
    keepalive_s = 30
    session_expiry_s = 604800        # how long the broker keeps the session while we are away
    reconnect_min_s = 1.0
    reconnect_max_s = 5.0
    connect_timeout_s = 10.0
    max_inflight = 1000              # records awaiting PUBACK (capped by the broker's Receive Maximum)
    format = "json"                  # json | sensorthings | fiware (see havel.gateway.formats)
    prefix = "havel"                 # json scheme topic prefix
    status_topic = "havel/gw1/status"  # default <prefix>/<gateway_id>/status; "" = no status, no will
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import logging
import random
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from havel.errors import ConfigError

from ..formats import Formatter, check_topic_level, make_formatter, to_json
from ..settings import MqttSettings, TlsSettings
from .base import Result, Sink
from .paho_fast import FastClient

__all__ = ["MqttSink", "TlsSettings"]

log = logging.getLogger("havel.gateway.sinks.mqtt")

# the sink's own keys; the connection's are those of MqttSettings
SINK_KEYS = {"type", "name", "max_inflight", "format", "prefix", "gateway_id", "status_topic"} | {
    "sensorthings",
    "fiware",
}
_KEYS = SINK_KEYS | MqttSettings.key_names()
_SYSTEM_CAS = TlsSettings()  # TLS on, the system's trusted CAs


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _describe(exc: BaseException) -> str:
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


class MqttSink(Sink):
    """See the module docstring. Build it with :meth:`from_config`."""

    type = "mqtt"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        formatter: Formatter,
        client_id: str,
        gateway_id: str = "gateway",
        tls: TlsSettings | None = _SYSTEM_CAS,
        username: str | None = None,
        password: str | None = None,
        keepalive_s: int = 30,
        session_expiry_s: int = 604800,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 5.0,
        connect_timeout_s: float = 10.0,
        max_inflight: int = 1000,
        status_topic: str | None = None,
    ) -> None:
        super().__init__(name)
        self.host = host
        self.port = port
        self.formatter = formatter
        self.client_id = client_id
        self.gateway_id = gateway_id
        self.tls = tls
        self.username = username
        self._password = password
        self.keepalive_s = keepalive_s
        self.session_expiry_s = session_expiry_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.max_inflight = max_inflight
        self.status_topic = status_topic or None
        self.last_reason_code: int | None = None  # of the last refused PUBACK or CONNACK
        self._status_extra: dict[str, Any] = {}
        self._mids: dict[int, str] = {}  # mid -> record id (loop thread only)
        self._topics: dict[str, bytes] = {}  # topic -> its UTF-8 bytes (a backlog repeats a few thousand)
        self._remaining: dict[str, int] = {}  # record id -> PUBACKs still awaited
        self._refused: dict[str, str] = {}  # record id -> first failure reason
        self._acks: collections.deque[tuple[Any, Any]] = (
            collections.deque()
        )  # (mid, reason code) from on_publish
        self.connect_timeout_s = connect_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._stopping = asyncio.Event()
        self._lost = asyncio.Event()
        self._up = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._reader_fd: int | None = None
        self._receive_max = 65535
        self._connack_refused = False
        self.session_present: bool | None = None
        self._writer_fd: int | None = None
        self._client = self._make_client(connect_timeout_s)

    def __repr__(self) -> str:  # no password, ever
        return (
            f"MqttSink(name={self.name!r}, host={self.host!r}, port={self.port}, tls={self.tls is not None})"
        )

    # ------------------------------------------------------------------ config

    @property
    def credentials(self) -> tuple[str, str | None] | None:
        """``(username, password)`` of the broker connection, None without a username (read-only: for a
        second client to the same broker, e.g. the relay's command listener; never log the password)."""
        if self.username is None:
            return None
        return (self.username, self._password)

    @classmethod
    def from_config(
        cls, cfg: dict[str, Any], *, formatter: Formatter | None = None, where: str | None = None
    ) -> MqttSink:
        """Build from a ``[[sink]]`` table (see the module docstring); ConfigError names the bad key.

        ``formatter`` replaces the one the table's ``format`` selects (the disaster relay publishes its
        own signed envelopes through this sink); ``format`` and its options are then not allowed. ``where``
        names the table in errors (default ``sink[<name>]``)."""
        name = str(cfg.get("name", "mqtt"))
        where = where or f"sink[{name}]"
        unknown = set(cfg) - _KEYS
        if unknown:
            raise ConfigError(
                f"{where}.{sorted(unknown)[0]} is not a known key", hint=", ".join(sorted(_KEYS))
            )

        def get(key: str, typ: type | tuple[type, ...], default: Any) -> Any:
            value = cfg.get(key, default)
            if value is not None and (
                not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool)
            ):
                raise ConfigError(f"{where}.{key} has the wrong type", hint=f"got {value!r}")
            return value

        if "host" not in cfg:
            raise ConfigError(f"{where}.host is missing", hint="the broker's host name or address")
        # the broker connection: the MQTT settings block shared with the relay and its receiver
        conn, _ = MqttSettings.from_table(cfg, where)
        if conn.clean_start:
            raise ConfigError(f"{where}.clean_start must be false: a sink keeps its session")
        gateway_id = check_topic_level(cfg.get("gateway_id", "gateway"), f"{where}.gateway_id")
        prefix = check_topic_level(cfg.get("prefix", "havel"), f"{where}.prefix")
        status_topic = get("status_topic", str, f"{prefix}/{gateway_id}/status")
        if status_topic and any(c in status_topic for c in "+#"):
            raise ConfigError(f"{where}.status_topic must not contain wildcards")
        max_inflight = get("max_inflight", (int, float), 1000)
        if max_inflight <= 0:
            raise ConfigError(f"{where}.max_inflight must be positive", hint=f"got {max_inflight}")
        client_id = conn.client_id or f"havel-{gateway_id}-{name}"
        if formatter is None:
            formatter = make_formatter({**cfg, "gateway_id": gateway_id, "prefix": prefix}, where=where)
        else:
            clash = sorted({"format", "sensorthings", "fiware"} & set(cfg))
            if clash:
                raise ConfigError(
                    f"{where}.{clash[0]} cannot be used here: this sink publishes its own format"
                )
        return cls(
            name,
            host=conn.host,
            port=int(conn.port or 8883),
            formatter=formatter,
            client_id=client_id,
            gateway_id=gateway_id,
            tls=conn.tls_settings,
            username=conn.username,
            password=conn.password,
            keepalive_s=conn.keepalive_s,
            session_expiry_s=conn.session_expiry_s,
            reconnect_min_s=conn.reconnect_min_s,
            reconnect_max_s=conn.reconnect_max_s,
            connect_timeout_s=conn.connect_timeout_s,
            max_inflight=int(max_inflight),
            status_topic=status_topic,
        )

    # ------------------------------------------------------------------ client

    def _make_client(self, connect_timeout_s: float) -> FastClient:
        client = FastClient(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )  # our supervisor reconnects, with visible errors
        client.connect_timeout = connect_timeout_s
        # 0 = no paho-side window: paho rescans every queued message on each PUBACK when it has one
        # (quadratic). The forwarder keeps at most window() records in flight instead.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if self.tls is not None:
            try:
                client.tls_set(
                    ca_certs=self.tls.ca_file,
                    certfile=self.tls.cert_file,
                    keyfile=self.tls.key_file,
                    cert_reqs=ssl.CERT_REQUIRED,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ConfigError(
                    f"sink[{self.name}]: TLS files cannot be loaded: {exc}",
                    hint="check ca_file, cert_file and key_file",
                ) from None
            client.tls_insecure_set(False)
        if self.username is not None:
            client.username_pw_set(self.username, self._password)
        if self.status_topic:
            client.will_set(
                self.status_topic,
                to_json({"state": "offline", "gateway_id": self.gateway_id}),
                qos=1,
                retain=True,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        return client

    async def start(self) -> None:
        if self._supervisor is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopping = asyncio.Event()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"mqtt-{self.name}")

    async def _supervise(self) -> None:
        assert self._loop is not None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        delay = self.reconnect_min_s
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            self._lost = asyncio.Event()
            self._up = asyncio.Event()
            self._connack_refused = False
            try:
                # clean_start=False on every connect, the first included: the broker keeps our session.
                # connect() blocks for TCP and the TLS handshake: run it off the event loop.
                await self._loop.run_in_executor(
                    None,
                    functools.partial(
                        self._client.connect,
                        self.host,
                        self.port,
                        keepalive=self.keepalive_s,
                        clean_start=False,
                        properties=props,
                    ),
                )
            except Exception as exc:
                reason = _describe(exc)
                if reason != self.last_error:
                    log.warning(
                        "sink %s: cannot connect to %s:%d: %s", self.name, self.host, self.port, reason
                    )
                self._set_connected(False, reason)
            else:
                misc = asyncio.create_task(self._misc())
                try:
                    async with asyncio.timeout(self.connect_timeout_s):
                        await self._first(self._up, self._lost)
                except TimeoutError:
                    self._set_connected(False, "no CONNACK from the broker")
                    self._close_socket()
                else:
                    await self._first(self._lost)
                finally:
                    misc.cancel()
                if self._stopping.is_set():
                    return
                if self._connected_long_enough():
                    delay = self.reconnect_min_s
                    attempt = 0
            wait = min(delay * random.uniform(0.8, 1.2), self.reconnect_max_s)
            log.debug(
                "sink %s: connecting to %s:%d again in %.1f s (retry %d; %s)",
                self.name,
                self.host,
                self.port,
                wait,
                attempt,
                self.last_error or "connection lost",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)
            delay = min(delay * 2, self.reconnect_max_s)

    async def _first(self, *events: asyncio.Event) -> None:
        """Wait until one of ``events`` (or stop) is set."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (*events, self._stopping)]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _misc(self) -> None:
        # keepalive pings and their timeout (paho's loop_misc), once a second
        while True:
            await asyncio.sleep(1.0)
            self._client.loop_misc()

    def _close_socket(self) -> None:
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._lost.set()

    def _connected_long_enough(self) -> bool:
        # a connection that lasted a while resets the back-off; a flapping one keeps backing off
        return (
            self.disconnected_at is not None
            and self.connected_at is not None
            and self.disconnected_at - self.connected_at > self.reconnect_min_s
        )

    async def stop(self, timeout: float = 5.0) -> None:
        """Publish ``offline`` (retained), disconnect cleanly (no will), stop the supervisor."""
        if self._supervisor is None:
            return
        if self.connected and self.status_topic:
            info = self._client.publish(
                self.status_topic,
                to_json({"state": "offline", "gateway_id": self.gateway_id, "since": _now_iso()}),
                qos=1,
                retain=True,
            )
            deadline = time.monotonic() + min(timeout, 2.0)
            while not info.is_published() and self.connected and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        lost = self._lost
        self._stopping.set()
        if self.connected:
            self._client.disconnect()  # written by the event loop; no will is sent after a DISCONNECT
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), 1.0)
        self._supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._supervisor
        self._supervisor = None
        self._set_connected(False)

    # ------------------------------------------------------------------ paho in the event loop

    def _in_loop(self, fn: Any, *args: Any) -> None:
        # paho calls the socket callbacks from connect() (in the executor) as well as from the loop
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        fd = sock.fileno()
        self._in_loop(self._add_reader, fd)

    def _add_reader(self, fd: int) -> None:
        assert self._loop is not None
        self._reader_fd = fd
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        client = self._client
        sock = client.socket()
        client.loop_read()
        # bytes the selector cannot see: in the client's read buffer (paho stops after as many packets as it
        # has messages in flight) and, with TLS, decrypted in the SSL object: read them now
        while client.socket() is sock and (
            client.has_buffered_input() or (isinstance(sock, ssl.SSLSocket) and sock.pending())
        ):
            client.loop_read()

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._remove_fd)

    def _remove_fd(self) -> None:
        assert self._loop is not None
        if self._reader_fd is not None:
            self._loop.remove_reader(self._reader_fd)
        if self._writer_fd is not None:
            self._loop.remove_writer(self._writer_fd)
        self._reader_fd = self._writer_fd = None

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._add_writer, sock.fileno())

    def _add_writer(self, fd: int) -> None:
        assert self._loop is not None
        self._writer_fd = fd
        self._loop.add_writer(fd, self._client.loop_write)

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._remove_writer)

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
            self._set_connected(False, f"broker refused the connection: {reason} ({int(reason.value)})")
            log.warning("sink %s: broker refused the connection: %s", self.name, reason)
            self._in_loop(self._lost.set)
            return
        receive_max = getattr(props, "ReceiveMaximum", None) if props is not None else None
        self._receive_max = int(receive_max) if receive_max else 65535
        if self._receive_max < self.max_inflight:
            log.info(
                "sink %s: the broker's Receive Maximum %d limits max_inflight %d (raise the broker's "
                "max_inflight_messages for faster draining)",
                self.name,
                self._receive_max,
                self.max_inflight,
            )
        # True after a reconnect when the broker kept our session (it saved it because the first connect
        # already asked for clean_start=False with an expiry)
        self.session_present = bool(getattr(flags, "session_present", False))
        log.info(
            "sink %s: connected to %s:%d (session present: %s)",
            self.name,
            self.host,
            self.port,
            self.session_present,
        )
        if self.status_topic:
            client.publish(self.status_topic, self._status_payload(), qos=1, retain=True)
        self._set_connected(True)
        self._in_loop(self._up.set)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not self._stopping.is_set():
            log.warning("sink %s: connection lost: %s", self.name, reason)
        if self._stopping.is_set():
            error: str | None = None
        elif self.connected:
            error = f"connection lost: {reason}"
        elif self._connack_refused:
            error = None  # the refused CONNACK already said why; this would only say "protocol error"
        else:
            error = f"the broker closed the connection before accepting it ({reason}): client certificate?"
        self._set_connected(False, error)
        self._in_loop(self._lost.set)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        # paho holds its lock here: only hand the acknowledgement over, never take an application lock
        self._acks.append((mid, reason))
        self._kick()

    # ------------------------------------------------------------------ loop thread

    def send(self, record: Any, buffered: bool) -> None:
        self.send_many((record,), (buffered,))

    def send_many(self, records: Sequence[Any], buffered: Sequence[bool]) -> None:
        """Format every record, then publish the single-message ones in runs through one call to paho (a
        backlog drain hands over hundreds at a time); the order of the records is kept."""
        fmt, topics = self.formatter, self._topics
        items: list[tuple[bytes, bytes, bool]] = []
        owners: list[str] = []
        for record, flag in zip(records, buffered, strict=True):
            try:
                messages = fmt(record, flag)
            except Exception as exc:  # a record the format cannot express: report, keep it in the outbox
                self._report(Result(record.id, False, f"format failed: {exc}"))
                continue
            if len(messages) == 1:
                m = messages[0]
                items.append((topics.get(m.topic) or self._topic_bytes(m.topic), m.payload, m.retain))
                owners.append(record.id)
                continue
            self._publish_run(items, owners)
            items, owners = [], []
            if not messages:
                self._report(Result(record.id, True, "nothing to publish in this format"))
                continue
            # several PUBACKs make one delivery (SensorThings: one per field)
            self._remaining[record.id] = self._remaining.get(record.id, 0) + len(messages)
            self._publish_run(
                [(topics.get(m.topic) or self._topic_bytes(m.topic), m.payload, m.retain) for m in messages],
                [record.id] * len(messages),
            )
        self._publish_run(items, owners)

    def _publish_run(self, items: list[tuple[bytes, bytes, bool]], owners: list[str]) -> None:
        if not items:
            return
        try:
            results = self._client.publish_many(items)
        except ValueError:  # one of them MQTT cannot carry: nothing was queued, go one by one
            for (topic, payload, retain), rid in zip(items, owners, strict=True):
                try:
                    rc, mid = self._client.publish_qos1(topic, payload, retain)
                except ValueError as exc:
                    self._not_queued(rid, str(exc))
                else:
                    self._track(rid, rc, mid)
            return
        mids = self._mids
        for (rc, mid), rid in zip(results, owners, strict=True):
            if rc:
                self._track(rid, rc, mid)
            else:
                mids[mid] = rid

    def _track(self, rid: str, rc: int, mid: int) -> None:
        if not rc or rc == mqtt.MQTT_ERR_NO_CONN:  # NO_CONN is queued too: sent on reconnect
            self._mids[mid] = rid
        else:
            self._not_queued(rid, mqtt.error_string(rc))

    def _topic_bytes(self, topic: str) -> bytes:
        data = topic.encode()
        if len(self._topics) < 100_000:  # a backlog repeats the same few thousand topics
            self._topics[topic] = data
        return data

    def _not_queued(self, record_id: str, why: str) -> None:
        # paho did not take it: counts as one PUBACK, refused (the record stays in the outbox)
        self._refused.setdefault(record_id, f"publish failed: {why}")
        self._acks.append((None, record_id))
        self._kick()

    def take_results(self) -> list[Result]:
        delivered, failed = self.take_delivered()
        return [Result(rid, True) for rid in delivered] + failed

    def take_delivered(self) -> tuple[list[str], list[Result]]:
        delivered: list[str] = []
        failed: list[Result] = []
        for r in Sink.take_results(self):  # reports made with _report (format failures)
            if r.ok:
                delivered.append(r.record_id)
            else:
                failed.append(r)
        acks, mids, remaining, refused = self._acks, self._mids, self._remaining, self._refused
        while acks:
            mid, reason = acks.popleft()
            if mid is None:  # a publish paho did not queue; reason holds the record id
                rid: str | None = reason
            else:
                rid = mids.pop(mid, None)
                if rid is None:
                    continue  # a status message
                if reason is not None and reason.is_failure:
                    code = int(reason.value)
                    self.last_reason_code = code
                    refused.setdefault(rid, f"broker refused the message: {reason} ({code})")
            assert rid is not None
            if remaining and rid in remaining:
                left = remaining[rid] - 1
                if left > 0:
                    remaining[rid] = left
                    continue
                del remaining[rid]
            if refused and rid in refused:
                failed.append(Result(rid, False, refused.pop(rid)))
            else:
                delivered.append(rid)
        return delivered, failed

    def window(self) -> int:
        """Records that may await PUBACK at once: max_inflight within the broker's Receive Maximum."""
        return min(self.max_inflight, self._receive_max)

    def publish_status(self, fields: dict[str, Any]) -> None:
        """Publish the retained status (``state: online`` plus ``fields``); kept for every reconnect."""
        self._status_extra = dict(fields)
        if self.status_topic and self.connected:
            self._client.publish(self.status_topic, self._status_payload(), qos=1, retain=True)

    def _status_payload(self) -> bytes:
        return to_json(
            {**self._status_extra, "state": "online", "gateway_id": self.gateway_id, "since": _now_iso()}
        )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "host": self.host,
            "port": self.port,
            "tls": self.tls is not None,
            "client_id": self.client_id,
            "inflight": len(self._mids),
        }
