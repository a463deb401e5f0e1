"""The receiver's acceptance of relayed messages: signature and counter checks of envelopes, dedup by
message id, and republishing into the local broker; every message counted by path and outcome.

No sockets of its own: the listeners (KISS, MQTT, Reticulum) feed it; APRS frames go through
:class:`~.aprs_frames.AprsFrames` first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from havel.errors import HavelError, ReplayError, SecurityError
from havel.gateway.relay import aprs
from havel.gateway.relay.envelope import open_body
from havel.gateway.relay.events import check_event
from havel.gateway.relay.mqtt_relay import COMMAND_FUTURE_S
from havel.gateway.relay.receive.aprs_frames import AprsFrames
from havel.gateway.relay.receive.config import ReceiverConfig
from havel.gateway.relay.receive.recent import RecentFrames
from havel.gateway.relay.record import EnvelopeError, RelayRecord, UnsignedError, format_time
from havel.gateway.relay.signing import StaleError, Verifier, identity
from havel.gateway.relay.strictjson import finite_number

log = logging.getLogger("havel.relay.receiver")


@dataclass(frozen=True)
class Delivered:
    """One republished record (for the live table and the tests)."""

    via: str
    record: RelayRecord
    gateway_id: str
    at: float


class ReceiverCore:
    """Verification, dedup and republishing; no sockets of its own (the listeners feed it).

    Every ``handle_*`` method takes outside input and never raises: what it cannot read is counted under
    a reason (``malformed``, ``forged``, ...) and dropped.
    """

    COUNTERS = (
        "status",
        "accepted",
        "events",
        "duplicate",
        "digipeated",
        "forged",
        "replayed",
        "stale",
        "foreign",
        "malformed",
        "oversize",
        "unknown",
        "telemetry",
        "definitions",
        "definitions_signed",
        "unsigned_status",
        "unsigned",
        "future",
        "error",
    )

    def __init__(
        self,
        cfg: ReceiverConfig,
        publish: Callable[[str, bytes], None],
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.publish = publish
        self.wall = wall  # the clock a status report's own time is checked against (future limit)
        self.senders = {s.name: s for s in cfg.senders}
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.verifier = Verifier(
            {s.name: s.key for s in cfg.senders}, state_path=cfg.data_dir / "receiver-counters.json"
        )
        self._seen: OrderedDict[str, str] = OrderedDict()  # message id -> first path
        self._lock = threading.Lock()
        self.stats: dict[str, dict[str, int]] = {}
        self.latest: deque[Delivered] = deque(maxlen=50)
        # (message id, path, time.time()) of every verified arrival, duplicates included: latency per path
        self.arrivals: deque[tuple[str, str, float]] = deque(maxlen=10_000)
        # gateway id -> its primary path (up/down) from signed reports only: what the staff see
        self.status: dict[str, dict[str, Any]] = {}
        # gateway id -> the MQTT sink's retained online/offline status (unsigned: shown, never trusted)
        self.link_status: dict[str, dict[str, Any]] = {}
        self.recent = RecentFrames()  # accepted frames and envelopes, byte for byte
        self._observers: list[Callable[[str, dict[str, Any]], None]] = []
        self.aprs_frames = AprsFrames(self)
        # sender -> the PARM/UNIT/EQNS/BITS fields of its last signed definition set
        self.definitions = self.aprs_frames.definitions
        self.telemetry = self.aprs_frames.telemetry  # sender -> last report

    def observe(self, fn: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``fn(kind, info)`` after each change, from the listener's thread:

        - ``"count"``: ``{"via", "what"}``, every message counted (accepted, or rejected with its reason);
        - ``"accepted"``: ``{"delivered": Delivered}``, a verified record republished for the first time;
        - ``"primary"``: the signed primary-path view of a gateway (as published on ``relay/primary``).

        An observer that fails is logged; it never costs the receiver a message.
        """
        self._observers.append(fn)

    def _notify(self, kind: str, info: dict[str, Any]) -> None:
        for fn in list(self._observers):
            try:
                fn(kind, info)
            except Exception:
                log.exception("receiver: an observer failed on %s", kind)

    def count(self, via: str, what: str) -> None:
        with self._lock:
            per = self.stats.setdefault(via, dict.fromkeys(self.COUNTERS, 0))
            per[what] = per.get(what, 0) + 1
        self._notify("count", {"via": via, "what": what})

    def total(self, what: str) -> int:
        with self._lock:
            return sum(per.get(what, 0) for per in self.stats.values())

    # -------------------------------------------------------------------------------- APRS

    # -------------------------------------------------------------------------------- APRS

    def handle_ax25(self, payload: bytes, via: str = "aprs") -> str | None:
        """One frame from the TNC. Returns the APRS message id to acknowledge, if any. Never raises."""
        return self.aprs_frames.handle(payload, via)

    # -------------------------------------------------------------------------------- envelopes

    def handle_envelope(self, data: bytes, via: str, channel: str) -> bool:
        """One JSON envelope from MQTT or Reticulum; True when delivered (new or duplicate). Never raises."""
        try:
            return self._envelope(data, via, channel)
        except Exception:
            self.count(via, "error")
            log.exception("receiver: %s envelope %r could not be handled", via, data[:80])
            return False

    def _envelope(self, data: bytes, via: str, channel: str) -> bool:
        try:
            sender, body = open_body(self.verifier, channel, data)
            gateway_id = self.senders[identity(sender)].gateway_id
            if body.get("kind") == "status":
                self.accept_status(via, gateway_id, body)
                self.recent.remember(f"{via}-envelope", data)
                return True
            if body.get("kind") == "event":
                event = check_event(body, gateway_id)
                self.recent.remember(f"{via}-envelope", data)
                self.accept_event(via, gateway_id, event)
                return True
            rec = RelayRecord.from_dict(body)
        except HavelError as exc:
            if self._delivered_twice(f"{via}-envelope", data, exc):
                # QoS 1 may deliver a message twice (a resend after a reconnect): not an attack
                self.count(via, "duplicate")
                log.info("%s envelope delivered twice (already accepted)", via)
                return True
            self.reject(via, f"{via} envelope", exc)
            return False
        self.recent.remember(f"{via}-envelope", data)
        self.deliver(via, rec, gateway_id)
        return True

    def _delivered_twice(self, key: str, data: bytes, exc: Exception) -> bool:
        """The very bytes of a message accepted within the last minutes, refused only for its counter."""
        if not isinstance(exc, ReplayError) or isinstance(exc, StaleError):
            return False
        return self.recent.heard(key, data)

    def reject(self, via: str, what: str, exc: Exception) -> None:
        """Count one rejected frame under its reason (forged, replayed, stale or malformed) and say why."""
        if isinstance(exc, SecurityError):
            reason = "forged"
        elif isinstance(exc, UnsignedError):
            reason = "unsigned"
        elif isinstance(exc, StaleError):
            reason = "stale"
        elif isinstance(exc, ReplayError):
            reason = "replayed"
        elif isinstance(exc, aprs.OversizeError):
            reason = "oversize"
        else:
            reason = "malformed"
        self.count(via, reason)
        log.warning("REJECTED %s %s: %s", reason, what, exc)

    def accept_status(self, via: str, gateway_id: str, body: dict[str, Any]) -> None:
        """A signed report of a gateway's primary path (up/down), from any relay path."""
        state = body.get("primary")
        at = finite_number(body.get("at"))
        if state not in ("up", "down") or at is None:
            self.count(via, "malformed")
            return
        if at > self.wall() + COMMAND_FUTURE_S:
            # a wrong clock at the gateway: shown, it would stand for good (older reports never replace
            # a newer one), hiding every correctly stamped report after it
            self.count(via, "future")
            ahead = at - self.wall()
            log.warning("REJECTED future status report of %s: stamped %.0f s ahead", gateway_id, ahead)
            return
        self.count(via, "status")
        view = {"gateway_id": gateway_id, "primary": state, "at": at, "via": via, "signed": True}
        with self._lock:
            old = self.status.get(gateway_id)
            if old is not None and old["at"] > at:
                return  # an older report arriving late over a slower path: the newer one stands
            self.status[gateway_id] = view
        log.warning("gateway %s reports its primary path %s (via %s)", gateway_id, state, via)
        self.publish(f"{self.cfg.prefix}/{gateway_id}/relay/primary", json.dumps(view).encode())
        self._notify("primary", dict(view))

    def accept_event(self, via: str, gateway_id: str, event: dict[str, Any]) -> None:
        """A signed alarm-class gateway event (mains lost, battery low, ...): republished once per id on
        ``<prefix>/<gateway_id>/events`` as the gateway writes its events, plus ``relayed`` and ``via``."""
        with self._lock:
            first = self._seen.get(event["id"])
            if first is None:
                self._seen[event["id"]] = via
        if first is not None:
            self.count(via, "duplicate")
            return
        self.count(via, "events")
        message = {
            **event["details"],
            "id": event["id"],
            "event": event["event"],
            "gateway_id": gateway_id,
            "at": format_time(event["at"]),
            "relayed": True,
            "via": via,
        }
        log.warning("EVENT %s of gateway %s via %s: %s", event["event"], gateway_id, via, event["details"])
        self.publish(f"{self.cfg.prefix}/{gateway_id}/events", json.dumps(message, allow_nan=False).encode())

    def handle_status(self, topic: str, data: bytes, via: str = "mqtt") -> None:
        """A gateway's retained MQTT link status (online/offline): unsigned, so only logged and shown as
        the broker link; it never changes the signed primary-path state the staff see. Never raises."""
        try:
            body = json.loads(data)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            parts = topic.split("/")
            gateway_id = parts[-3] if len(parts) >= 3 else "?"
            state = body.get("state", body.get("status"))
            view = {"state": str(state)[:16] if state is not None else None, "at": time.time()}
        except (ValueError, TypeError, RecursionError, UnicodeError):
            self.count(via, "malformed")
            return
        except Exception:
            self.count(via, "error")
            log.exception("receiver: status on %r could not be handled", topic)
            return
        if gateway_id not in {s.gateway_id for s in self.senders.values()}:
            self.count(via, "foreign")
            return
        self.count(via, "unsigned_status")
        with self._lock:
            self.link_status[gateway_id] = view
        log.info("gateway %s broker link (unsigned): %s", gateway_id, view["state"])

    def deliver(self, via: str, rec: RelayRecord, gateway_id: str) -> None:
        try:  # strict JSON (no NaN or Infinity) before anything is counted: one reason per message
            text = json.dumps(rec.to_json_scheme(via), separators=(",", ":"), allow_nan=False).encode()
        except (ValueError, OverflowError, TypeError) as exc:
            self.reject(via, f"record {rec.id}", EnvelopeError(f"cannot be written as JSON: {exc}"))
            return
        self.arrivals.append((rec.id, via, time.time()))
        with self._lock:
            first = self._seen.get(rec.id)
            if first is None:
                self._seen[rec.id] = via
                while len(self._seen) > 100_000:
                    self._seen.popitem(last=False)
        if first is not None:
            self.count(via, "duplicate")
            log.info("duplicate %s via %s (first via %s)", rec.id, via, first)
            return
        self.count(via, "accepted")
        topic = f"{self.cfg.prefix}/{gateway_id}/devices/{rec.dev_eui}/up"
        self.publish(topic, text)
        delivered = Delivered(via, rec, gateway_id, time.time())
        self.latest.append(delivered)
        self._notify("accepted", {"delivered": delivered})
        log.warning("%s %s from %s via %s: %s", rec.cls.upper(), rec.id, gateway_id, via, rec.data)
