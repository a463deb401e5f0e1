"""Rolling budgets per relay: airtime seconds (radio) or messages (IP paths) per window, never exceeded.

Higher classes first: ``state`` may use only part of the budget (``state_share``), so that what is left
always stays available for ``alarm``; ``background`` is never relayed. The manager offers alarms first.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

AX25_FLAG_BITS = 8
FCS_BYTES = 2


def afsk_airtime_s(
    frame_len: int,
    *,
    baud: int = 1200,
    txdelay_s: float = 0.3,
    txtail_s: float = 0.05,
    worst_stuffing: bool = True,
) -> float:
    """Time on air of one AX.25 frame (``frame_len`` bytes as given to KISS) on an AFSK link.

    TX delay (flags while the transmitter keys up) + opening flag + frame + FCS (bit stuffing: at most one
    extra bit per five ones) + closing flag + TX tail.
    """
    bits = (frame_len + FCS_BYTES) * 8
    if worst_stuffing:
        bits += bits // 5
    bits += 2 * AX25_FLAG_BITS
    return txdelay_s + bits / baud + txtail_s


class Budget:
    """A sliding window: at most ``capacity`` units (airtime seconds, or messages) per ``window_s``."""

    def __init__(
        self,
        capacity: float,
        window_s: float,
        *,
        state_share: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity <= 0 or window_s <= 0:
            raise ValueError("budget capacity and window must be positive")
        self.capacity = capacity
        self.window_s = window_s
        self.state_share = state_share
        self.clock = clock
        self._spent: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()
        self.refused = {"alarm": 0, "state": 0, "background": 0}

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - self.window_s:
            self._spent.popleft()

    def used(self) -> float:
        with self._lock:
            self._expire(self.clock())
            return sum(c for _, c in self._spent)

    def limit_for(self, cls: str) -> float:
        """How much of the window a class may fill (alarm: all; state: its share; background: none)."""
        if cls == "alarm":
            return self.capacity
        if cls == "state":
            return self.capacity * self.state_share
        return 0.0

    def try_spend(self, cost: float, cls: str) -> bool:
        """Spend ``cost`` if the class's limit allows it now; False (and counted) otherwise."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            used = sum(c for _, c in self._spent)
            if used + cost > self.limit_for(cls) + 1e-9:
                self.refused[cls] = self.refused.get(cls, 0) + 1
                return False
            self._spent.append((now, cost))
            return True

    def wait_s(self, cost: float, cls: str) -> float | None:
        """Seconds until ``cost`` would fit for ``cls`` (0 now), None if it never fits."""
        limit = self.limit_for(cls) + 1e-9
        if cost > limit:
            return None
        with self._lock:
            now = self.clock()
            self._expire(now)
            used = sum(c for _, c in self._spent)
            if used + cost <= limit:
                return 0.0
            for t, c in self._spent:
                used -= c
                if used + cost <= limit:
                    return max(0.0, t + self.window_s - now)
        return None
