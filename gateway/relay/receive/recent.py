"""What the receiver accepted in the last minutes, byte for byte: a copy heard again is a digipeater's or
a second delivery of one already accepted, not an attack."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

# A frame heard again within this time, byte for byte, with a digipeater's has-been-repeated bit set, is
# a digipeater's copy of one already accepted, not an attack.
DIGIPEAT_WINDOW_S = 600.0
RECENT_MAX = 1000  # accepted frames kept at most (the oldest go first)


class RecentFrames:
    """Accepted frames (or envelopes) by (sender or path, bytes), kept for :data:`DIGIPEAT_WINDOW_S`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heard: OrderedDict[tuple[str, bytes], float] = OrderedDict()

    def remember(self, sender: str, data: bytes) -> None:
        """An accepted frame (or envelope): a digipeater's copy of it, or a second delivery, may follow."""
        now = time.monotonic()
        with self._lock:
            self._heard[(sender, data)] = now
            while self._heard and (
                len(self._heard) > RECENT_MAX or next(iter(self._heard.values())) < now - DIGIPEAT_WINDOW_S
            ):
                self._heard.popitem(last=False)

    def heard(self, sender: str, data: bytes) -> bool:
        """These very bytes were accepted from ``sender`` within the window."""
        with self._lock:
            at = self._heard.get((sender, data))
        return at is not None and time.monotonic() - at < DIGIPEAT_WINDOW_S
