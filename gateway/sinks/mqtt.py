"""The ``mqtt`` sink: paho-mqtt 2.x, QoS 1, MQTT v5 persistent session, TLS verified, reconnect with back-off.

Delivery: every message is published with QoS 1; a record counts as delivered when the broker's PUBACK for
each of its messages arrived with a success reason code (0x10 "no matching subscribers" is success). A
failure reason (e.g. 135 "not authorized" from an ACL) is reported with its code and the record stays in the
outbox. The client hands over the PUBACKs of each read of the socket in one list (``on_acks``); they join
the sink's list of acknowledgements and the forwarder is woken once for them (the hand-off of :mod:`.base`).

Session: MQTT v5 with ``clean_start=False`` from the very first connect and a session expiry, so the broker
keeps the session across reconnects (Mosquitto never saves a session that began with a clean start).
QoS 1 messages not yet acknowledged when the connection drops are kept by paho and re-sent on reconnect.

Connection: the gateway's one MQTT client (:class:`havel.gateway.mqtt.MqttClient`): paho-mqtt's public API run
by the event loop, TLS and credentials from the shared settings block, reconnect with back-off (with
jitter) between ``reconnect_min_s`` (1 s) and ``reconnect_max_s`` (5 s). The cap is low on purpose: while
the broker is away the records wait safely in the outbox, and the only cost of trying every few seconds is
one TCP connect. Errors (TLS, network, a refused CONNACK) arrive with their text in ``last_error``.

Throughput: the forwarder hands records over in batches (:meth:`MqttSink.send_many`); they are formatted and
published one after the other in the same loop pass, so paho writes the whole batch when the loop next finds
the socket writable, and the PUBACKs that arrive together are handed to the forwarder with one wake-up.

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

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

from havel.errors import ConfigError
from havel.gateway.formats import Formatter, check_topic_level, make_formatter, to_json
from havel.gateway.mqtt import MqttClient, Will
from havel.gateway.network.reception import format_time
from havel.gateway.settings import MqttSettings, TlsSettings
from havel.gateway.sinks.base import Result, Sink

__all__ = ["MqttSink", "TlsSettings"]

log = logging.getLogger("havel.gateway.sinks.mqtt")

# the sink's own keys; the connection's are those of MqttSettings
SINK_KEYS = {"type", "name", "max_inflight", "format", "prefix", "gateway_id", "status_topic"} | {
    "sensorthings",
    "fiware",
}
_KEYS = SINK_KEYS | MqttSettings.key_names()
_SYSTEM_CAS = TlsSettings()  # TLS on, the system's trusted CAs
_QUEUED = (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)  # NO_CONN is queued too: sent on reconnect


def _now_iso() -> str:
    return format_time(dt.datetime.now(dt.UTC))


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
        # the connection as one settings block: every other client to this broker (the command listeners)
        # is configured from it
        self.settings = MqttSettings(
            host=host,
            port=port,
            tls=tls is not None,
            ca_file=tls.ca_file if tls else None,
            cert_file=tls.cert_file if tls else None,
            key_file=tls.key_file if tls else None,
            username=username,
            password=password,
            client_id=client_id,
            keepalive_s=keepalive_s,
            clean_start=False,  # from the very first connect: the broker keeps the session
            session_expiry_s=session_expiry_s,
            reconnect_min_s=reconnect_min_s,
            reconnect_max_s=reconnect_max_s,
            connect_timeout_s=connect_timeout_s,
        )
        self.host = host
        self.port = port
        self.formatter = formatter
        self.client_id = client_id
        self.gateway_id = gateway_id
        self.tls = tls
        self.username = username
        self.keepalive_s = keepalive_s
        self.session_expiry_s = session_expiry_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.connect_timeout_s = connect_timeout_s
        self.max_inflight = max_inflight
        self.status_topic = status_topic or None
        self.last_reason_code: int | None = None  # of the last refused PUBACK or CONNACK
        self._status_extra: dict[str, Any] = {}
        self._mids: dict[int, str] = {}  # mid -> record id (loop thread only)
        self._remaining: dict[str, int] = {}  # record id -> PUBACKs still awaited
        self._refused: dict[str, str] = {}  # record id -> first failure reason
        # (mid, reason code) of each PUBACK; (None, record id) for a message paho did not queue (loop thread)
        self._acks: list[tuple[Any, Any]] = []
        self._started = False
        will = None
        if self.status_topic:
            will = Will(self.status_topic, to_json({"state": "offline", "gateway_id": gateway_id}))
        self.mqtt = MqttClient(
            self.settings,
            name=f"sink[{name}]",
            client_id=client_id,
            will=will,
            on_state=self._on_state,
            on_connected=self._on_connected,
            on_acks=self._on_acks,
        )

    def __repr__(self) -> str:  # no password, ever
        return (
            f"MqttSink(name={self.name!r}, host={self.host!r}, port={self.port}, tls={self.tls is not None})"
        )

    # ------------------------------------------------------------------ config

    @property
    def credentials(self) -> tuple[str, str | None] | None:
        """``(username, password)`` of the broker connection, None without a username (read-only; never
        log the password)."""
        if self.username is None:
            return None
        return (self.username, self.settings.password)

    @property
    def session_present(self) -> bool | None:
        """After a connect: whether the broker kept our session."""
        return self.mqtt.session_present

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

    # ------------------------------------------------------------------ connection

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.mqtt.start()

    async def stop(self, timeout: float = 5.0) -> None:
        """Publish ``offline`` (retained), disconnect cleanly (no will), stop reconnecting."""
        if not self._started:
            return
        if self.connected and self.status_topic:
            offline = to_json({"state": "offline", "gateway_id": self.gateway_id, "since": _now_iso()})
            try:
                await self.mqtt.publish_acked(self.status_topic, offline, min(timeout, 2.0), retain=True)
            except (TimeoutError, OSError, ValueError) as exc:
                log.info("sink %s: offline status not acknowledged: %s", self.name, exc or "timeout")
        await self.mqtt.stop()
        self._started = False
        self._set_connected(False)

    def _on_state(self, up: bool, error: str | None) -> None:
        if not up and error and error.startswith("broker refused the connection"):
            self.last_reason_code = self.mqtt.last_reason_code
        self._set_connected(up, error)

    def _on_connected(self, session_present: bool) -> None:
        if self.mqtt.receive_maximum < self.max_inflight:
            log.info(
                "sink %s: the broker's Receive Maximum %d limits max_inflight %d (raise the broker's "
                "max_inflight_messages for faster draining)",
                self.name,
                self.mqtt.receive_maximum,
                self.max_inflight,
            )
        if self.status_topic:  # queued ahead of the messages paho sends again after the reconnect
            self.mqtt.publish(self.status_topic, self._status_payload(), 1, True)

    def _on_acks(self, acks: list[tuple[int, Any]]) -> None:
        # the PUBACKs of one read: one wake-up of the forwarder for all of them
        self._acks += acks
        self._kick()

    # ------------------------------------------------------------------ loop thread

    def send(self, record: Any, buffered: bool) -> None:
        self.send_many((record,), (buffered,))

    def send_many(self, records: Sequence[Any], buffered: Sequence[bool]) -> None:
        """Format and publish every record, in order; paho writes them out together when the loop next
        finds the socket writable."""
        fmt, mids, publish = self.formatter, self._mids, self.mqtt.client.publish
        for record, flag in zip(records, buffered, strict=True):
            rid = record.id
            try:
                messages = fmt(record, flag)
            except Exception as exc:  # a record the format cannot express: report, keep it in the outbox
                self._report(Result(rid, False, f"format failed: {exc}"))
                continue
            if not messages:
                self._report(Result(rid, True, "nothing to publish in this format"))
                continue
            if len(messages) > 1:  # several PUBACKs make one delivery (SensorThings: one per field)
                self._remaining[rid] = self._remaining.get(rid, 0) + len(messages)
            for m in messages:
                try:
                    info = publish(m.topic, m.payload, 1, m.retain)
                except ValueError as exc:  # a topic or payload MQTT cannot carry
                    self._not_queued(rid, str(exc))
                    continue
                if info.rc in _QUEUED:
                    mids[info.mid] = rid
                else:
                    self._not_queued(rid, mqtt.error_string(info.rc))

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
        acks, self._acks = self._acks, []
        mids, remaining, refused = self._mids, self._remaining, self._refused
        for mid, reason in acks:
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
        return min(self.max_inflight, self.mqtt.receive_maximum)

    def publish_status(self, fields: dict[str, Any]) -> None:
        """Publish the retained status (``state: online`` plus ``fields``); kept for every reconnect."""
        self._status_extra = dict(fields)
        if self.status_topic and self.connected:
            self.mqtt.publish(self.status_topic, self._status_payload(), 1, True)

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
