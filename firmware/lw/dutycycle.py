"""Transmit-time accounting: ETSI sub-band duty cycle, the network's aggregated duty cycle
(DutyCycleReq) and the LoRaWAN join back-off. Times are integer milliseconds on the MAC's clock.

A transmission is only allowed when every limit that applies to it says so; the MAC asks
`wait_ms()` first and either waits or refuses: it never transmits over a limit.
"""
from micropython import const

from lw import region

_HOUR_MS = const(3600000)
_DAY_MS = 24 * _HOUR_MS


class DutyCycle:
    """Per-sub-band "free again at" times, from airtime x duty-cycle divisor (ETSI: a frame of T
    on a 1 % band blocks the band until start + 100 T, i.e. a pause of 99 T after it)."""

    def __init__(self):
        self.band_free_ms = [0] * len(region.SUBBANDS)
        self.agg_free_ms = 0
        self.max_dcycle = 0  # DutyCycleReq: aggregated limit 1 / 2**max_dcycle (0 = none)

    def wait_ms(self, freq_hz, now_ms):
        """Milliseconds until a frame may start on freq_hz (0 = now); -1 when no band allows it."""
        b = region.subband(freq_hz)
        if b < 0:
            return -1
        t = self.band_free_ms[b]
        if self.agg_free_ms > t:
            t = self.agg_free_ms
        return t - now_ms if t > now_ms else 0

    def record(self, freq_hz, start_ms, toa_ms):
        """Account a frame that started at start_ms and lasted toa_ms on freq_hz."""
        b = region.subband(freq_hz)
        if b < 0:
            raise ValueError("frequency outside EU868 sub-bands")
        self.band_free_ms[b] = start_ms + toa_ms * region.SUBBANDS[b][2]
        if self.max_dcycle:
            self.agg_free_ms = start_ms + toa_ms * (1 << self.max_dcycle)

    def dump(self):
        """State as a list of ints (persisted across deep sleep by the MAC)."""
        out = list(self.band_free_ms)
        out.append(self.agg_free_ms)
        out.append(self.max_dcycle)
        return out

    def load(self, vals):
        n = len(self.band_free_ms)
        if len(vals) == n + 2:
            self.band_free_ms = list(vals[:n])
            self.agg_free_ms = vals[n]
            self.max_dcycle = vals[n + 1]


class JoinBackoff:
    """Aggregate join-request airtime limits (LoRaWAN 1.0.2 section 7): < 36 s in the first hour
    after the first join attempt, < 36 s in the next 10 hours, then < 8.7 s per 24 hours."""

    LIMITS = ((_HOUR_MS, 36000), (10 * _HOUR_MS, 36000), (_DAY_MS, 8700))

    def __init__(self):
        self.t0_ms = None
        self.win_start_ms = 0
        self.win_len_ms = _HOUR_MS
        self.budget_ms = 36000
        self.used_ms = 0

    def _advance(self, now_ms):
        if self.t0_ms is None:
            self.t0_ms = now_ms
            self.win_start_ms = now_ms
            self.win_len_ms, self.budget_ms = self.LIMITS[0]
            return
        while now_ms >= self.win_start_ms + self.win_len_ms:
            self.win_start_ms += self.win_len_ms
            self.used_ms = 0
            if self.win_len_ms == _HOUR_MS and self.win_start_ms == self.t0_ms + _HOUR_MS:
                self.win_len_ms, self.budget_ms = self.LIMITS[1]
            else:
                self.win_len_ms, self.budget_ms = self.LIMITS[2]

    def wait_ms(self, toa_ms, now_ms):
        """Milliseconds until a join-request of toa_ms may be sent (0 = now)."""
        self._advance(now_ms)
        if self.used_ms + toa_ms <= self.budget_ms:
            return 0
        return self.win_start_ms + self.win_len_ms - now_ms

    def record(self, toa_ms, now_ms):
        self._advance(now_ms)
        self.used_ms += toa_ms

    def state(self):
        """(t0 or -1, window start, window length, budget, used) for persisting."""
        return (-1 if self.t0_ms is None else self.t0_ms, self.win_start_ms, self.win_len_ms, self.budget_ms,
                self.used_ms)

    def restore(self, vals, shift_ms):
        """Take back state(); shift_ms moves the stored times onto a clock that restarted."""
        if vals[0] < 0:
            return
        self.t0_ms = vals[0] + shift_ms
        self.win_start_ms = vals[1] + shift_ms
        self.win_len_ms, self.budget_ms, self.used_ms = vals[2], vals[3], vals[4]
