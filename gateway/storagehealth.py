"""Whether the gateway database takes writes, as ``/healthz``, ``/metrics`` and systemd are told.

A PUSH_ACK means the rxpk is stored, so when the database refuses a write (disk full, I/O error) the
daemon withholds PUSH_ACKs, and this records what failed and since when, logs it (again only when the error
changes) and tells systemd (``STATUS=``). The intake tries again from the housekeeping task: first every
:data:`PROBE_S`, and while small writes pass but batches fail, less often, up to :data:`RETRY_MAX_S`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from havel.gateway.metrics import Metrics
from havel.gateway.sdnotify import Notifier

log = logging.getLogger("havel.gateway")

PROBE_S = 1.0  # while the database refuses writes, a tiny test write this often tells when it takes them
RETRY_MAX_S = 10.0  # (the longest wait between tries while small writes pass and batches fail)


@dataclass(frozen=True)
class StorageFault:
    doing: str  # what failed ("journaling received frames", ...)
    error: str
    since: float  # unix time of the first failure of this spell


class StorageHealth:
    """The database's write health: ``fault`` is None while writes succeed; ``retry`` says frames may wait
    in the intake journal after a failed store."""

    def __init__(self, metrics: Metrics, notifier: Notifier) -> None:
        self.metrics = metrics
        self.notifier = notifier
        self.fault: StorageFault | None = None
        self.retry = False
        self._next_try = 0.0  # monotonic time of the next try to work the journal off
        self._wait = PROBE_S
        metrics.describe(
            "storage_errors_total", "counter", "database writes (or reads) that failed, by what was done"
        )
        metrics.gauge_fn("storage_ok", lambda: 0.0 if self.fault is not None else 1.0)
        metrics.describe("storage_ok", "gauge", "1 while the database takes writes, 0 while it refuses them")

    def failed(self, doing: str, exc: BaseException | str, consequence: str = "") -> None:
        """The database refused a write: remember it, log it, and have the intake try again."""
        text = str(exc)
        self.metrics.inc("storage_errors_total", doing=doing)
        self.retry = True
        fault = self.fault
        if fault is None or fault.error != text:
            log.error(
                "storage failing while %s: %s%s%s",
                doing,
                text,
                f"; {consequence}" if consequence else "",
                "; PUSH_ACKs stop until the database takes writes again" if fault is None else "",
            )
        self.fault = StorageFault(doing, text, time.time() if fault is None else fault.since)
        if fault is None:
            self.notifier.status(f"storage failing while {doing}: {text}")  # (systemctl status shows it)

    def ok(self) -> None:
        """A write went through: the database works (again)."""
        if self.fault is not None:
            down_s = time.time() - self.fault.since
            log.warning("storage works again after %.0f s: acknowledging uplinks again", down_s)
            self.fault = None
            self.notifier.status("storage works again")

    @property
    def failing(self) -> bool:
        """Whether something failed that is not recovered yet (the housekeeping task then tries again)."""
        return self.fault is not None or self.retry

    def try_due(self) -> bool:
        """Whether the next try to recover is due."""
        return time.monotonic() >= self._next_try

    def try_failed(self) -> None:
        """A try to recover failed: the next one waits twice as long (up to RETRY_MAX_S)."""
        self._wait = min(self._wait * 2, RETRY_MAX_S)
        self._next_try = time.monotonic() + self._wait

    def recovered(self) -> None:
        """Everything that waited is stored: tries start over at PROBE_S."""
        self._wait = PROBE_S
        self._next_try = 0.0
        self.ok()
