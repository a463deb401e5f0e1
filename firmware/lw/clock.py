"""The board clock for the MAC: milliseconds that do not wrap, from MicroPython's ticks.

`time.ticks_ms()` wraps (every 2**30 ms on most ports); SysClock accumulates ticks_diff so
now_ms() keeps growing as long as it is called at least once per wrap period (12 days), which any
node loop does. Across deep sleep (a reset on ESP32) pass `base_ms` from the RTC (e.g.
`time.time() * 1000`) so duty-cycle and rejoin timers keep their meaning.
"""

import time


class SysClock:
    def __init__(self, base_ms=0):
        self._last = time.ticks_ms()
        self._now = base_ms

    def now_ms(self):
        t = time.ticks_ms()
        self._now += time.ticks_diff(t, self._last)
        self._last = t
        return self._now

    def sleep_ms(self, ms):
        if ms > 0:
            time.sleep_ms(ms)
