"""The MQTT relay: signed envelopes to a secondary broker (e.g. the crisis centre, over the Freifunk mesh).

It reuses the gateway's MQTT sink (:class:`havel.gateway.sinks.mqtt.MqttSink`: persistent session, verified
TLS, reconnect with back-off) with its own connection settings and its own formatter: topic
``<prefix>/<gateway_id>/relay/<class>``, payload the signed JSON envelope of :mod:`envelope`. Outage
changes go to the retained status topic ``<prefix>/<gateway_id>/relay/status``. A rolling message budget
caps what the mesh has to carry.

Config: a ``[[relay.path]]`` table with ``type = "mqtt"`` and the keys of an ``mqtt`` ``[[sink]]`` (host,
port, tls, ca_file, cert_file, key_file, username, password, client_id, ...) plus ``budget_messages``
(default 600) per ``budget_window_s`` (default 3600), and ``emergency_commands = true`` to accept signed
``emergency on|off`` commands from the crisis centre on ``<prefix>/<gateway_id>/relay/emergency``
(:class:`EmergencyCommands`; sent with ``havel relay emergency on --receiver-config FILE --gateway ID``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from havel.errors import ConfigError
from havel.gateway.formats import OutMessage
from havel.gateway.relay.budget import Budget
from havel.gateway.relay.envelope import open_envelope, sign_body, sign_json
from havel.gateway.relay.record import EnvelopeError, RelayRecord
from havel.gateway.relay.signing import Signer
from havel.gateway.relay.strictjson import finite_number
from havel.gateway.settings import MqttSettings, key, keys_of, read
from havel.gateway.sinks.mqtt import MqttSink

log = logging.getLogger("havel.relay.mqtt")
CHANNEL = "mqtt"


@dataclass(frozen=True)
class MqttPathOptions:
    """The keys of an mqtt ``[[relay.path]]`` beside those of the MQTT settings block."""

    budget_messages: float = key(600.0, lo=0.0)  # at most this many messages ...
    budget_window_s: float = key(3600.0, lo=1.0)  # ... in any window this long
    emergency_commands: bool = key(False)  # take signed emergency on/off from the crisis centre


_OWN_KEYS = set(keys_of(MqttPathOptions))


@dataclass(frozen=True)
class StatusEvent:
    """An outage change handed to the sink like a record (the sink tracks its PUBACK by ``id``)."""

    id: str
    body: dict[str, Any]


class MQTTRelay:
    """Publishes relay records to the secondary broker; ``offer``/``poll`` from one thread (the loop)."""

    name = "mqtt"

    def __init__(
        self,
        cfg: dict[str, Any],
        signer: Signer,
        gateway_id: str,
        *,
        switch: Any = None,
        data_dir: Any = None,
        where: str = "relay.path (mqtt)",
    ) -> None:
        options = read(MqttPathOptions, {k: v for k, v in cfg.items() if k in _OWN_KEYS}, where)
        sink_cfg = {k: v for k, v in cfg.items() if k not in _OWN_KEYS}
        sink_cfg["type"] = "mqtt"
        sink_cfg.setdefault("name", "relay-mqtt")
        sink_cfg["gateway_id"] = gateway_id
        prefix = str(sink_cfg.get("prefix", "havel"))
        sink_cfg.setdefault("status_topic", f"{prefix}/{gateway_id}/relay/status")
        self.prefix = prefix
        self.gateway_id = gateway_id
        self.sink = MqttSink.from_config(sink_cfg, formatter=self._format, where=where)
        self.signer = signer
        self.budget = Budget(options.budget_messages, options.budget_window_s)
        self.stats = {"offered": 0, "sent": 0, "acked": 0, "refused": 0, "budget_refused": 0}
        self.commands: EmergencyCommands | None = None
        if options.emergency_commands:
            if switch is None:
                raise ConfigError(f"{where}.emergency_commands needs the emergency switch")
            self.commands = EmergencyCommands(
                self.sink,
                prefix=prefix,
                gateway_id=gateway_id,
                key=signer.key,
                switch=switch,
                state_path=None if data_dir is None else data_dir / "relay-control-counters.json",
            )

    def _format(self, rec: Any, buffered: bool) -> list[OutMessage]:
        if isinstance(rec, StatusEvent):
            topic = f"{self.prefix}/{self.gateway_id}/relay/event"
            return [OutMessage(topic, sign_body(self.signer, CHANNEL, rec.body))]
        topic = f"{self.prefix}/{self.gateway_id}/relay/{rec.cls}"
        return [OutMessage(topic, sign_json(self.signer, CHANNEL, rec))]

    async def start(self) -> None:
        await self.sink.start()
        if self.commands is not None:
            await self.commands.start()

    async def stop(self) -> None:
        if self.commands is not None:
            await self.commands.stop()
        await self.sink.stop(timeout=2.0)

    @property
    def connected(self) -> bool:
        return self.sink.connected

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"connected": self.connected, **self.stats}
        if self.commands is not None:
            out["emergency_commands"] = self.commands.health()
        return out

    def offer(self, rec: RelayRecord) -> bool:
        """Sign and publish with QoS 1 (kept by paho for the reconnect); False if the budget is spent."""
        if rec.cls not in ("alarm", "state"):
            return False
        self.stats["offered"] += 1
        if not self.budget.try_spend(1, rec.cls):
            self.stats["budget_refused"] += 1
            log.warning("MQTT relay budget exhausted: %s not relayed", rec.id)
            return False
        self.sink.send(rec, False)
        self.stats["sent"] += 1
        return True

    def poll(self) -> None:
        """Collect PUBACKs (call regularly from the same thread as ``offer``)."""
        for r in self.sink.take_results():
            self.stats["acked" if r.ok else "refused"] += 1

    def publish_event(self, body: dict[str, Any]) -> bool:
        """An alarm-class gateway event as a signed envelope on ``relay/event``; False if over budget."""
        self.stats["offered"] += 1
        if not self.budget.try_spend(1, "alarm"):
            self.stats["budget_refused"] += 1
            log.warning("MQTT relay budget exhausted: event %s not relayed", body.get("id"))
            return False
        self.sink.send(StatusEvent(str(body["id"]), body), False)
        self.stats["sent"] += 1
        return True

    def publish_status(self, fields: dict[str, Any]) -> None:
        """The primary path's state: retained on the relay status topic, and as a signed event."""
        self.sink.publish_status(fields)
        body = {
            "kind": "status",
            "primary": fields["primary"],
            "at": int(fields.get("at") or 0),
            "reason": str(fields.get("reason", ""))[:80],
        }
        self.sink.send(StatusEvent(f"status-{body['primary']}-{body['at']}", body), False)


CONTROL_CHANNEL = "control"
CONTROL_SENDER = "CONTROL"


def emergency_topic(prefix: str, gateway_id: str) -> str:
    return f"{prefix}/{gateway_id}/relay/emergency"


# A command stamped further ahead than this (a wrong clock at the crisis centre) is refused: accepted, it
# would make every later, correctly stamped command look stale.
COMMAND_FUTURE_S = 600.0


class EmergencyCommands:
    """Signed ``emergency on|off`` commands from the crisis centre on the relay's broker.

    Topic ``<prefix>/<gateway_id>/relay/emergency``; payload a JSON envelope (sender ``CONTROL``, channel
    ``control``, the shared key) around ``{"emergency": "on"|"off", "gateway_id": ..., "at": ...}``.
    A command changes the switch only when it is newer than the last change: its ``at`` not older than
    the switch's last change (by command or by ``havel relay emergency`` at the gateway) and its counter
    above the last applied command's. Everything else changes nothing and is counted by reason in
    ``stats``: ``forged``, ``replayed``, ``stale``, ``reordered``, ``future``, ``not_ours``,
    ``malformed``, ``error``; ``rejected`` is their sum. Every message is handled to the end and
    acknowledged; should a handler raise anyway, the gateway's MQTT client counts it
    (``handler_errors``) and goes on with the next message. The listener runs in the relay's event loop
    on the connection settings of the path's sink (TLS, credentials), with its own client id and a clean
    session: a command is for now, not for whenever the gateway comes back.
    """

    REASONS = ("forged", "replayed", "stale", "reordered", "future", "not_ours", "malformed", "error")

    def __init__(
        self, sink: MqttSink, *, prefix: str, gateway_id: str, key: Any, switch: Any, state_path: Any = None
    ) -> None:
        import dataclasses

        from havel.gateway.mqtt import MqttClient
        from havel.gateway.relay.signing import Verifier

        self.topic = emergency_topic(prefix, gateway_id)
        self.gateway_id = gateway_id
        self.switch = switch
        self.verifier = Verifier(
            {CONTROL_SENDER: key},
            state_path=state_path,
            unknown_hint=f"emergency commands come from {CONTROL_SENDER}, signed with this relay's key",
        )
        self.stats = {"applied": 0, "rejected": 0, **dict.fromkeys(self.REASONS, 0)}
        client_id = f"{sink.client_id}-emergency"
        settings = dataclasses.replace(
            sink.settings, client_id=client_id, clean_start=True, session_expiry_s=0
        )
        self.mqtt = MqttClient(settings, name="emergency commands", client_id=client_id, manual_ack=True)
        self.mqtt.subscribe(self.topic, self._on_message)
        self.host, self.port = self.mqtt.host, self.mqtt.port

    @property
    def subscribed(self) -> bool:
        return self.mqtt.subscribed

    @property
    def handler_errors(self) -> int:
        """Messages whose handler raised (each acknowledged, logged and counted; the listener goes on)."""
        return self.mqtt.handler_errors

    async def start(self) -> None:
        await self.mqtt.start()

    async def stop(self) -> None:
        await self.mqtt.stop()

    def _on_message(self, msg: Any) -> None:
        try:
            self.handle(bytes(msg.payload))
        except Exception:
            self._reject("error", "could not be handled")
            log.exception("emergency command on %s could not be handled", self.topic)

    def _reject(self, reason: str, why: str) -> None:
        self.stats[reason] += 1
        self.stats["rejected"] += 1
        log.warning("REJECTED %s emergency command on %s: %s", reason, self.topic, why)

    def handle(self, payload: bytes) -> bool:
        """One command as received; True when it changed the switch."""
        import time

        from havel.errors import ReplayError, SecurityError
        from havel.gateway.relay.signing import StaleError

        try:
            _, body, sig = open_envelope(self.verifier, CONTROL_CHANNEL, payload)
        except EnvelopeError as exc:
            self._reject("malformed", str(exc))
            return False
        except SecurityError as exc:
            self._reject("forged", str(exc))
            return False
        except StaleError as exc:
            self._reject("stale", str(exc))
            return False
        except ReplayError as exc:
            self._reject("replayed", str(exc))
            return False
        action, at = body.get("emergency"), finite_number(body.get("at"))
        if action not in ("on", "off") or at is None:
            self._reject("malformed", f"body {str(body)[:80]!r}: emergency on/off and a time 'at' expected")
            return False
        if body.get("gateway_id") != self.gateway_id:
            self._reject("not_ours", f"for gateway {str(body.get('gateway_id'))[:40]!r}")
            return False
        if at > time.time() + COMMAND_FUTURE_S:
            self._reject("future", f"stamped {at - time.time():.0f} s ahead of this gateway's clock")
            return False
        current = self.switch.state()
        if current.counter is not None and sig.counter <= current.counter:
            self._reject("reordered", f"counter {sig.counter} not above the last applied {current.counter}")
            return False
        if current.at is not None and at < current.at:
            self._reject("stale", f"stamped {current.at - at:.0f} s before the switch's last change")
            return False
        self.switch.set(action == "on", "mqtt", at=at, counter=sig.counter)
        self.stats["applied"] += 1
        return True

    def health(self) -> dict[str, Any]:
        return {"subscribed": self.subscribed, **self.stats, "handler_errors": self.handler_errors}


def send_emergency_command(
    settings: MqttSettings,
    *,
    prefix: str,
    gateway_id: str,
    on: bool,
    signer: Signer,
    timeout: float = 10.0,
) -> None:
    """Publish a signed emergency command (QoS 1) to the broker of ``settings`` and wait for the broker's
    acknowledgement (TransportError without one)."""
    import asyncio
    import contextlib
    import time
    import uuid

    from havel.errors import TransportError
    from havel.gateway.mqtt import MqttClient

    if signer.sender != CONTROL_SENDER:
        raise ConfigError(f"emergency commands are signed as {CONTROL_SENDER}")
    payload = sign_body(
        signer,
        CONTROL_CHANNEL,
        {"emergency": "on" if on else "off", "gateway_id": gateway_id, "at": int(time.time())},
    )
    client_id = f"havel-emergency-{uuid.uuid4().hex[:8]}"
    # a one-off client: a clean session that the broker forgets at once
    once = dataclasses.replace(settings, client_id=client_id, clean_start=True, session_expiry_s=0)

    async def send() -> None:
        client = MqttClient(once, name="emergency command", client_id=client_id)
        settled = asyncio.Event()  # connected, or the first attempt failed: no retrying for a one-off
        client.on_state = lambda is_up, error: settled.set() if is_up or error else None
        await client.start()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await settled.wait()
            if not client.connected:
                why = client.last_error or "no connection"
                raise TransportError(f"broker {client.host}:{client.port} unreachable: {why}")
            try:
                reason = await client.publish_acked(emergency_topic(prefix, gateway_id), payload, timeout)
            except (TimeoutError, OSError):
                raise TransportError(
                    f"broker {client.host}:{client.port} did not acknowledge the emergency command"
                ) from None
            if reason is not None and reason.is_failure:
                raise TransportError(
                    f"broker {client.host}:{client.port} refused the emergency command: {reason}"
                )
        finally:
            await client.stop()

    asyncio.run(send())
