"""The gateway's own transmit budget: duty cycle per EU868 sub-band over a sliding hour, and downlink time on
air."""

from __future__ import annotations

import time
from collections import deque

from havel.codecs.lorawan import eu868
from havel.codecs.lorawan.ids import eui_hex
from havel.errors import InputError


class DutyCycle:
    """The gateway's own transmit budget per sub-band over a sliding hour (ETSI EN 300 220)."""

    WINDOW_S = 3600.0

    def __init__(self) -> None:
        self._used: dict[tuple[int, str], deque[tuple[float, float]]] = {}

    def _spent(self, key: tuple[int, str], now: float) -> float:
        q = self._used.get(key)
        if not q:
            return 0.0
        if q[-1][0] > now:
            # the wall clock went back (a Pi has no RTC; NTP may correct it): transmissions "in the future"
            # count as made now, so they leave the window within the hour instead of when the clock catches up
            self._used[key] = q = deque((min(t, now), a) for t, a in q)
        while q and q[0][0] < now - self.WINDOW_S:
            q.popleft()
        return sum(a for _, a in q)

    def allows(
        self, gateway_eui: int, freq_hz: int, airtime_s: float, now: float, share: float = 1.0
    ) -> bool:
        """Whether sending ``airtime_s`` now keeps the sub-band within ``share`` of its duty cycle."""
        try:
            name, duty = eu868.subband(freq_hz)
        except InputError:
            return False
        return self._spent((gateway_eui, name), now) + airtime_s <= duty * self.WINDOW_S * share

    def record(self, gateway_eui: int, freq_hz: int, airtime_s: float, now: float) -> None:
        """Account a transmission."""
        name, _ = eu868.subband(freq_hz)
        self._used.setdefault((gateway_eui, name), deque()).append((now, airtime_s))

    def usage(self) -> dict[str, float]:
        """Seconds spent per gateway/sub-band in the last hour (for status and metrics)."""
        now = time.time()
        return {f"{eui_hex(gw)} {name}": self._spent((gw, name), now) for (gw, name) in list(self._used)}


def airtime_s(phy_len: int, datr: str) -> float:
    """Downlink time on air (no CRC) of ``phy_len`` bytes at ``datr``."""
    dr = eu868.dr_from_datr(datr)
    sf, bw = eu868.DATA_RATES[dr]
    return eu868.airtime_us(phy_len, sf, bw, crc=False) / 1e6
