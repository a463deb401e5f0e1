"""The state of one sink as the delivery reports it (metrics, the status topic, the disaster relay's outage
detection): ``starting``, ``up`` or ``down``, with hysteresis (see :mod:`.delivery`), and what it has sent,
had acknowledged and refused."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from havel.gateway.network.reception import format_time

__all__ = ["SINK_STATES", "SinkStatus", "iso"]

SINK_STATES = ("starting", "up", "down")


def iso(t: float | None) -> str | None:
    """``time.time()`` seconds as RFC 3339 UTC with milliseconds (None stays None)."""
    return None if t is None else format_time(datetime.fromtimestamp(t, UTC))


@dataclass(frozen=True)
class SinkStatus:
    """A snapshot of one sink's state. Times are ``time.time()`` seconds (``*_iso`` for RFC 3339)."""

    name: str
    state: str  # starting | up | down
    since: float  # when this state began
    connected: bool  # the transport right now (no hysteresis)
    last_error: str | None
    last_ack_at: float | None
    last_up_at: float | None
    last_down_at: float | None
    inflight: int
    sent: int
    acked: int
    refused: int
    buffered_sent: int
    changes: int

    @property
    def sinceiso(self) -> str | None:
        return iso(self.since)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("since", "last_ack_at", "last_up_at", "last_down_at"):
            d[key] = iso(d[key])
        return d
