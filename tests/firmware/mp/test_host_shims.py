"""The host stand-ins behave like MicroPython where firmware depends on them: run in both runtimes,
these pass natively in MicroPython and through firmware/host/ under CPython."""

import time

import micropython
from fakeclock import FakeClock

from mptest import vectors


def test_ticks_functions_wrap_like_micropython():
    t = time.ticks_ms()
    assert time.ticks_diff(time.ticks_add(t, 1500), t) == 1500
    assert time.ticks_diff(time.ticks_add(t, -20), t) == -20
    # across the wrap of the tick counter the difference stays right
    near_wrap = time.ticks_add(0, -5)
    assert time.ticks_diff(time.ticks_add(near_wrap, 10), near_wrap) == 10
    assert time.ticks_add(near_wrap, 10) < near_wrap
    time.sleep_ms(1)
    assert time.ticks_diff(time.ticks_ms(), t) >= 1


def test_micropython_const_and_mem_info():
    x = micropython.const(7)
    assert x == 7
    micropython.mem_info()


def test_fake_clock_moves_only_on_sleep():
    c = FakeClock(100)
    assert c.now_ms() == 100
    c.sleep_ms(-5)
    c.sleep_ms(50)
    c.advance(25)
    assert c.now_ms() == 175


def test_vectors_helper_reads_shared_files():
    v = vectors("air")
    assert isinstance(v, list) and v and "bytes" in v[0] and "fport" in v[0]
