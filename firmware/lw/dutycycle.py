"""Transmit-time accounting: ETSI sub-band duty cycle, the network's aggregated duty cycle
(DutyCycleReq) and the LoRaWAN join back-off. Times are integer milliseconds on the MAC's clock.

A transmission is only allowed when every limit that applies to it says so; the MAC asks
`wait_ms()` first and either waits or refuses: it never transmits over a limit.
"""

import struct

from micropython import const

from lw import region

_HOUR_MS = const(3600000)
_DAY_MS = 24 * _HOUR_MS


_LEDGER_N = const(8)  # frames kept per sub-band; when full the two oldest merge (conservatively)
_RESERVE_DIV = const(8)  # airtime is reserved on the store in chunks of 1/8 of a band's hourly limit


class DutyCycle:
    """Transmit-time accounting per ETSI sub-band, in two parts that must both allow a frame:

    - the pause after each frame: a frame of T on a 1 % band blocks the band until start + 100 T
      (LoRaWAN's per-band off-time);
    - a rolling ledger of the airtime of the last hour per band: no window of one hour may hold
      more than the band's share (36 s at 1 %, 3.6 s at 0.1 %, 360 s at 10 %). The pause alone
      lets a window hold one frame too many (13 SF12 frames = 1.009 %).

    Across resets the ledger lives on the store (pack(); lw/startup.py dc_unpack() at boot). To
    spare flash, airtime is reserved in chunks: before a frame the MAC asks needs_save(); only
    when the reserve left is smaller than the frame is the ledger written, with a new reserve that
    later frames spend without writing. After a reset the whole reserve counts as sent just before
    the boot, and the time the node was off counts as zero (see dc_unpack()): a reset never
    refunds airtime."""

    def __init__(self):
        nb = len(region.SB_DIV)
        self.band_free_ms = [0] * nb
        self.agg_free_ms = 0
        self.max_dcycle = 0  # DutyCycleReq: aggregated limit 1 / 2**max_dcycle (0 = none)
        # per band: [end ms, airtime ms] of the frames of the last hour, oldest first
        self.ledger = [[] for _ in range(nb)]
        self.reserve_ms = [0] * nb  # airtime already counted on the store, not yet spent

    @staticmethod
    def limit_ms(b):
        """Airtime a sub-band allows in any one hour."""
        return _HOUR_MS // region.SB_DIV[b]

    def _prune(self, b, now_ms):
        led = self.ledger[b]
        while led and led[0][0] <= now_ms - _HOUR_MS:
            led.pop(0)

    def _ledger_wait(self, b, toa_ms, now_ms):
        """ms until a frame of toa_ms may start so that the hour ending with it stays within the
        limit (frames are counted whole while any part of them is inside the hour); -1: never."""
        lim = self.limit_ms(b)
        if toa_ms > lim:
            return -1
        self._prune(b, now_ms)
        led = self.ledger[b]
        total = toa_ms
        for e in led:
            total += e[1]
        if total <= lim:
            return 0
        for e in led:
            total -= e[1]
            if total <= lim:
                t = e[0] + _HOUR_MS - toa_ms  # once this frame has left the hour
                return t - now_ms if t > now_ms else 0
        return -1  # not reached: toa_ms <= lim

    def wait_ms(self, freq_hz, now_ms, toa_ms=0):
        """Milliseconds until a frame of toa_ms may start on freq_hz (0 = now); -1 when no band
        allows it."""
        b = region.subband(freq_hz)
        if b < 0:
            return -1
        t = self.band_free_ms[b]
        if self.agg_free_ms > t:
            t = self.agg_free_ms
        w = t - now_ms if t > now_ms else 0
        lw = self._ledger_wait(b, toa_ms, now_ms)
        if lw < 0:
            return -1
        return lw if lw > w else w

    def _add(self, b, end_ms, toa_ms):
        led = self.ledger[b]
        if len(led) >= _LEDGER_N:
            # merge the two oldest: their airtime counted until the later one leaves the hour
            a = led.pop(0)
            led[0][1] += a[1]
        led.append([end_ms, toa_ms])

    def needs_save(self, freq_hz, toa_ms):
        """True when a frame of toa_ms on freq_hz is not covered by the reserve on the store:
        then call reserve() and write pack() before transmitting."""
        b = region.subband(freq_hz)
        return b >= 0 and self.reserve_ms[b] < toa_ms

    def reserve(self, freq_hz, toa_ms):
        """Reserve airtime for this frame and the next ones (write pack() to the store next)."""
        b = region.subband(freq_hz)
        r = self.limit_ms(b) // _RESERVE_DIV
        self.reserve_ms[b] = r if r > toa_ms else toa_ms

    def record(self, freq_hz, start_ms, toa_ms):
        """Account a frame that started at start_ms and lasted toa_ms on freq_hz."""
        b = region.subband(freq_hz)
        if b < 0:
            raise ValueError("frequency outside EU868 sub-bands")
        self.band_free_ms[b] = start_ms + toa_ms * region.SB_DIV[b]
        if self.max_dcycle:
            self.agg_free_ms = start_ms + toa_ms * (1 << self.max_dcycle)
        self._add(b, start_ms + toa_ms, toa_ms)
        r = self.reserve_ms[b] - toa_ms
        self.reserve_ms[b] = r if r > 0 else 0

    def pack(self, now_ms):
        """The ledger, pause timers and reserves as bytes, for the store or RTC memory."""
        nb = len(self.ledger)
        n = 0
        for b in range(nb):
            self._prune(b, now_ms)
            n += len(self.ledger[b])
        out = bytearray(16 + 13 * nb + 12 * n)
        struct.pack_into("<qq", out, 0, now_ms, self.agg_free_ms)
        o = 16
        for b in range(nb):
            led = self.ledger[b]
            struct.pack_into("<qIB", out, o, self.band_free_ms[b], self.reserve_ms[b], len(led))
            o += 13
            for e in led:
                struct.pack_into("<qI", out, o, e[0], e[1])
                o += 12
        return out


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
        return (
            -1 if self.t0_ms is None else self.t0_ms,
            self.win_start_ms,
            self.win_len_ms,
            self.budget_ms,
            self.used_ms,
        )
