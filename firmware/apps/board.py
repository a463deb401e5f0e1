"""Board glue: the one app-side module that touches `machine` (radio drivers aside).

It runs the node: config check, safe idle on a bad config, watchdog, light or deep sleep,
fail-safe valve on any exception. `machine` is passed in (run(machine)) so that tests can drive
this code with fakes. The boot work (board.json turned into bus and pin objects, the config check,
the radio, building the node) is in apps/boardboot.py, loaded for the boot and released after.
"""

import sys

from micropython import const

_WDT_MS = const(120000)  # longest step: SDS011 warm-up 30 s + SCD41 5 s + confirmed retries
_SLEEP_CHUNK_MS = const(30000)
_RESTART_DELAY_MS = const(10000)


class _RtcRetain:
    def __init__(self, m):
        self.rtc = m.RTC()

    def read(self):
        return self.rtc.memory()

    def write(self, b):
        self.rtc.memory(b)


def run(
    m=None,
    clock=None,
    console=print,
    idle_rounds=None,
    config_path="config.json",
    board_path="board.json",
    store_dir="/lw",
):
    """Boot the node: check the config (safe idle when it is wrong), build, loop forever."""
    if m is None:
        import machine as m
    if clock is None:
        from lw.clock import SysClock

        clock = SysClock()
    from apps import bootvalve  # boot code, released after its one call

    valve_pin, valve_active = bootvalve.valve_closed_early(m, board_path, config_path)
    del bootvalve
    from lw.mac import release

    release("apps.bootvalve")
    from apps import boardboot as bb

    loaded, err = bb.load_config(config_path, board_path)
    if loaded is None:
        bb.safe_idle(err, console, valve_pin, valve_active, clock, idle_rounds)
        return None
    cfg, board = loaded
    try:
        deep = cfg["deep_sleep"]
        node = bb.build(m, clock, console, cfg, board, store_dir, _RtcRetain(m) if deep else None)
    except ValueError as e:  # lw.mac.ConfigError, a cooling config that does not fit the board
        bb.safe_idle(str(e), console, valve_pin, valve_active, clock, idle_rounds)
        return None
    except Exception as e:  # hardware (radio not answering, bus error): try again after a reset
        _restart(m, e, console, valve_pin, valve_active, clock)
        return None
    del bb
    release("apps.boardboot")  # boot code: not needed while the node runs
    wdt = m.WDT(timeout=_WDT_MS)
    sleeper = m.deepsleep if deep else m.lightsleep
    try:
        node.run(sleeper, wdt, chunk_ms=_SLEEP_CHUNK_MS, deep=deep)
    except Exception as e:
        _restart(m, e, console, valve_pin, valve_active, clock)
    return node


def _restart(m, e, console, valve_pin, valve_active, clock):
    if valve_pin is not None:
        valve_pin.value(1 - valve_active)
    console("havel: node stopped by %r; restarting in 10 s" % (e,))
    pe = getattr(sys, "print_exception", None)
    if pe is not None:
        pe(e)
    clock.sleep_ms(_RESTART_DELAY_MS)
    m.reset()
