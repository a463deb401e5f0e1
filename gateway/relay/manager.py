"""The relay manager: watches the primary sink, and while it is down feeds the relays from the outbox.

Rules:
- The primary is down after ``down_after_s`` without a connection or acknowledgement, up after
  ``up_after_s`` of stability (:class:`OutageDetector`); changes are logged, counted and published on
  every relay that can carry them.
- While down: ``alarm`` records go to every relay at once, and so do the gateway's own alarm-class events
  (mains lost, battery low, the watchdog giving up, a silent packet forwarder) as signed event messages;
  ``state`` records are kept as the latest value per device and sent every ``state_interval_s``;
  ``background`` waits in the outbox.
- Relays never take anything out of the outbox: the primary's backlog stays until the forwarder drains it
  (marked ``buffered``) after recovery. Relayed records carry the gateway's message id, so the platform and
  the crisis centre drop duplicates.

The manager reads the outbox with its own cursor (``seq``) and never acknowledges for the primary; call
:meth:`tick` regularly from the thread that owns the outbox connection (the daemon's event loop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from havel.errors import HavelError
from havel.gateway.relay.events import event_body
from havel.gateway.relay.outage import Change, OutageDetector
from havel.gateway.relay.priority import RANK, Classifier
from havel.gateway.relay.record import RelayRecord, parse_time

log = logging.getLogger("havel.relay.manager")


class Relay(Protocol):
    name: str

    def offer(self, rec: RelayRecord) -> bool: ...


class OutboxReader(Protocol):
    def fetch(
        self, sink: str, limit: int = 100, *, after_seq: int = 0, priorities: Any = None
    ) -> list[Any]: ...

    def max_seq(self) -> int: ...


class Manager:
    """See the module docstring. ``primary_health()`` returns (connected, last_ack_at) of the primary sink."""

    def __init__(
        self,
        outbox: OutboxReader,
        primary_sink: str,
        classifier: Classifier,
        relays: list[Relay],
        detector: OutageDetector,
        primary_health: Callable[[], tuple[bool, float | None]],
        *,
        state_interval_s: float = 900.0,
        max_age_s: float = 6 * 3600.0,
        batch: int = 500,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.primary_sink = primary_sink
        self.classifier = classifier
        self.relays = relays
        self.detector = detector
        self.primary_health = primary_health
        self.state_interval_s = state_interval_s
        self.max_age_s = max_age_s
        self.batch = batch
        self.clock = clock
        self.wall = wall
        self.cursor = 0
        self._last_ack: float | None = None
        self._latest_state: dict[str, RelayRecord] = {}
        self._next_state_at = 0.0
        self.stats = {
            "alarms": 0,
            "states": 0,
            "background_held": 0,
            "too_old": 0,
            "unrelayable": 0,
            "offers_refused": 0,
            "events": 0,
        }
        detector.listeners.append(self._on_change)

    # ------------------------------------------------------------------ periodic work

    def tick(self) -> None:
        """Observe the primary, then relay what is due."""
        now = self.clock()
        connected, last_ack = self.primary_health()
        acked = last_ack is not None and last_ack != self._last_ack
        self._last_ack = last_ack
        if connected or acked:
            self.detector.good(now)
        else:
            self.detector.bad(now)
        if not self.detector.down:
            # Everything up to the oldest record the primary still owes stays in view for an outage.
            pending = self.outbox.fetch(self.primary_sink, limit=1)
            self.cursor = pending[0].seq - 1 if pending else self.outbox.max_seq()
            self._latest_state.clear()
            return
        self._scan()
        if self._latest_state and now >= self._next_state_at:
            self._next_state_at = now + self.state_interval_s
            for rec in list(self._latest_state.values()):
                self._offer(rec)
                self.stats["states"] += 1
            self._latest_state.clear()

    def _scan(self) -> None:
        while True:
            records = self.outbox.fetch(self.primary_sink, limit=self.batch, after_seq=self.cursor)
            for r in records:
                self.cursor = r.seq
                self._consider(r)
            if len(records) < self.batch:
                return

    def _consider(self, r: Any) -> None:
        if r.kind == "event" and r.priority == "alarm" and isinstance(r.payload, dict):
            self._event(r)
            return
        if r.kind != "up" or not isinstance(r.payload, dict):
            return
        c = self.classifier.classify(r.payload)
        cls = c.cls if RANK[c.cls] <= RANK.get(r.priority, 2) else r.priority
        if cls == "background":
            self.stats["background_held"] += 1
            return
        try:
            if self.wall() - parse_time(r.received_at) > self.max_age_s:
                self.stats["too_old"] += 1
                return
            rec = RelayRecord.from_payload(r.payload, cls, list(c.fields) or None)
            if not rec.data:
                raise ValueError("no data fields (a MAC-only frame?)")
        except (HavelError, ValueError) as exc:
            self.stats["unrelayable"] += 1
            log.warning("record %s cannot be relayed: %s", r.id, exc)
            return
        if cls == "alarm":
            self.stats["alarms"] += 1
            self._offer(rec)
        else:
            self._latest_state[rec.dev_eui] = rec  # only the latest value per sensor

    def _event(self, r: Any) -> None:
        """An alarm-class gateway event: to every relay that carries events (all of the gateway's)."""
        try:
            body = event_body(r.payload)
        except HavelError as exc:
            self.stats["unrelayable"] += 1
            log.warning("event %s cannot be relayed: %s", r.id, exc)
            return
        if self.wall() - body["at"] > self.max_age_s:
            self.stats["too_old"] += 1
            return
        self.stats["events"] += 1
        for relay in self.relays:
            publish = getattr(relay, "publish_event", None)
            if not callable(publish):
                continue
            try:
                if not publish(body):
                    self.stats["offers_refused"] += 1
            except Exception:  # one broken relay must not stop the others
                log.exception("relay %s failed to take event %s", relay.name, r.id)

    def _offer(self, rec: RelayRecord) -> None:
        for relay in self.relays:
            try:
                if not relay.offer(rec):
                    self.stats["offers_refused"] += 1
            except Exception:  # one broken relay must not stop the others
                log.exception("relay %s failed to take %s", relay.name, rec.id)

    def _on_change(self, change: Change) -> None:
        status = {
            "primary": change.state,
            "reason": change.reason,
            "at": self.wall(),
            "changes_down": self.detector.changes["down"],
            "changes_up": self.detector.changes["up"],
        }
        for relay in self.relays:
            publish = getattr(relay, "publish_status", None)
            if callable(publish):
                try:
                    publish(status)
                except Exception:
                    log.exception("relay %s could not publish the outage state", relay.name)
        if change.state == "down":
            self._next_state_at = self.clock()  # send the first state at once

    def health(self) -> dict[str, Any]:
        return {
            "primary": self.detector.state,
            "outage_changes": dict(self.detector.changes),
            **self.stats,
            "relays": {getattr(r, "name", "?"): _relay_health(r) for r in self.relays},
        }


def _relay_health(relay: Any) -> dict[str, Any]:
    """A relay's own health (connection, listener restarts) when it has one, else its counters."""
    health = getattr(relay, "health", None)
    return dict(health()) if callable(health) else dict(getattr(relay, "stats", {}))
