"""CPython stand-in for MicroPython's `micropython` module (host only, never flashed).

Importing it also gives CPython's `time` the MicroPython tick functions the firmware uses
(ticks_ms, ticks_us, ticks_diff, ticks_add, sleep_ms, sleep_us), so real node code runs unchanged.
On MicroPython the built-in module wins and this file is never loaded.
"""

import time as _time

_TICKS_PERIOD = 1 << 30  # MicroPython's ticks wrap at 2**30 on ports with small ints
_TICKS_HALF = _TICKS_PERIOD // 2


def const(x):
    """Compile-time constant on MicroPython; identity here."""
    return x


def mem_info(*_args):
    """No-op on the host (MicroPython prints heap statistics)."""
    return None


def opt_level(*_args):
    return 0


def _ticks_ms():
    return int(_time.monotonic() * 1000) & (_TICKS_PERIOD - 1)


def _ticks_us():
    return int(_time.monotonic() * 1000000) & (_TICKS_PERIOD - 1)


def _ticks_add(t, delta):
    return (t + delta) & (_TICKS_PERIOD - 1)


def _ticks_diff(a, b):
    return ((a - b + _TICKS_HALF) & (_TICKS_PERIOD - 1)) - _TICKS_HALF


def _sleep_ms(ms):
    _time.sleep(ms / 1000)


def _sleep_us(us):
    _time.sleep(us / 1000000)


for _name, _fn in (
    ("ticks_ms", _ticks_ms),
    ("ticks_us", _ticks_us),
    ("ticks_add", _ticks_add),
    ("ticks_diff", _ticks_diff),
    ("sleep_ms", _sleep_ms),
    ("sleep_us", _sleep_us),
):
    if not hasattr(_time, _name):
        setattr(_time, _name, _fn)
