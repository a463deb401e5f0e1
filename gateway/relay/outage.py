"""Is the primary sink up? Down after ``down_after_s`` without success, up after ``up_after_s`` of stability.

Signals come from the forwarder's sink state: ``good(now)`` (connected, or a PUBACK arrived) and
``bad(now)`` (disconnected, a failed publish). One hiccup does not flip the state; a flapping link does not
bring it back up. Every change is logged, counted and handed to the listeners (which publish it on every
path that still works).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("havel.relay.outage")


@dataclass(frozen=True)
class Change:
    state: str  # "up" | "down"
    at: float
    reason: str


class OutageDetector:
    """Hysteresis over good/bad signals of the primary path."""

    def __init__(
        self,
        down_after_s: float = 30.0,
        up_after_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.down_after_s = down_after_s
        self.up_after_s = up_after_s
        self.clock = clock
        now = clock()
        self.state = "up"
        self._last_good = now
        self._good_since: float | None = now
        self.changes = {"down": 0, "up": 0}
        self.listeners: list[Callable[[Change], None]] = []
        self._lock = threading.Lock()

    def good(self, now: float | None = None) -> None:
        """The primary answered (connected, or acknowledged a message)."""
        now = self.clock() if now is None else now
        with self._lock:
            self._last_good = now
            if self._good_since is None:
                self._good_since = now
        self.update(now)

    def bad(self, now: float | None = None) -> None:
        """The primary failed (disconnected, publish refused); restarts the stability period."""
        now = self.clock() if now is None else now
        with self._lock:
            self._good_since = None
        self.update(now)

    def update(self, now: float | None = None) -> Change | None:
        """Re-evaluate (call periodically); returns the change if the state flipped."""
        now = self.clock() if now is None else now
        change: Change | None = None
        with self._lock:
            if self.state == "up" and self._good_since is None and now - self._last_good >= self.down_after_s:
                self.state = "down"
                change = Change("down", now, f"no success for {now - self._last_good:.1f} s")
            elif (
                self.state == "down"
                and self._good_since is not None
                and now - self._good_since >= self.up_after_s
            ):
                self.state = "up"
                change = Change("up", now, f"stable for {now - self._good_since:.1f} s")
            if change is not None:
                self.changes[change.state] += 1
        if change is not None:
            log.warning("primary path %s: %s", change.state, change.reason)
            for listener in list(self.listeners):
                try:
                    listener(change)
                except Exception:  # a listener must not stop the detector
                    log.exception("outage listener failed")
        return change

    @property
    def down(self) -> bool:
        return self.state == "down"
