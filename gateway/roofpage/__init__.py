"""The roof status page: ``/`` on the gateway's local HTTP port, beside ``/healthz`` and ``/metrics``.

A read-only page for an operator on the roof with a phone: forwarders heard (and silent since when),
uplinks per minute over the last hour (an SVG chart the page draws itself), rejections by reason, the
outbox per sink, sink and upstream state, relay and power state, disk space and version.

The daemon's asyncio HTTP server (:mod:`havel.gateway.monitoring`) serves it: the packaged files in
``static/`` (through :class:`havel.web.LocalApp`, so a wheel serves the same bytes and nothing comes from
another site) and one JSON document, ``/roof.json``, that the page fetches every few seconds. Polling, not
server-sent events: that server answers one small request per connection within a time limit and with a
bounded number of clients, and a stream held open by every phone would defeat those limits.
"""

from __future__ import annotations

import time
from typing import Any

from havel.web import LocalApp

__all__ = ["MINUTES", "PAGE_PATHS", "UplinkRate", "page", "roof_document"]

MINUTES = 60  # the chart's span
# the files of static/ the page is made of (anything else is a 404 without a look at the package)
PAGE_PATHS = (
    "/",
    "/index.html",
    "/roof.css",
    "/roof.js",
    "/favicon.svg",
    "/havel/havel.css",
    "/havel/havel.js",
)


def page() -> LocalApp:
    """The page's packaged files (``asset(path)`` gives their bytes and content type)."""
    return LocalApp("Havel roof status", "havel.gateway.roofpage")


class UplinkRate:
    """Uplinks per minute from samples of a counter that only grows (the daemon's accepted uplinks).

    ``sample`` is called every few seconds; what the counter rose since the last sample is added to the
    minute of this sample. The counter starts at 0 with the process, and so does this history."""

    def __init__(self, minutes: int = MINUTES, started: float | None = None) -> None:
        self.minutes = minutes
        self.started = time.time() if started is None else started
        self._last = 0.0
        self._counts: dict[int, int] = {}

    def sample(self, total: float, now: float) -> None:
        minute = int(now // 60)
        rise = total - self._last if total >= self._last else total  # (a counter that was reset)
        self._last = total
        self._counts[minute] = self._counts.get(minute, 0) + int(rise)
        for old in [m for m in self._counts if m <= minute - self.minutes]:
            del self._counts[old]

    def series(self, now: float) -> dict[str, Any]:
        """The last ``minutes`` whole minutes up to the current one, oldest first, and since when counted."""
        last = int(now // 60)
        first = last - self.minutes + 1
        return {
            "first_minute": first * 60,
            "counts": [self._counts.get(m, 0) for m in range(first, last + 1)],
            "since": round(self.started, 3),
        }


def roof_document(status: dict[str, Any], rate: UplinkRate, now: float) -> dict[str, Any]:
    """``/roof.json``: the gateway's status, the uplinks per minute, and the time it was made."""
    return {"now": round(now, 3), "status": status, "uplinks_per_minute": rate.series(now)}
