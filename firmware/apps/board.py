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


def valve_closed_early(m, board_path="board.json", config_path="config.json"):
    """boot.py calls this first: drive the valve output inactive before anything else runs.
    Returns the pin and its active level, or (None, 1) when board.json cannot say which pin or
    config.json says this node has no valve (another app: the pin is left alone)."""
    import json

    try:
        with open(config_path) as f:
            app = json.load(f).get("app")
    except (OSError, ValueError, AttributeError):
        app = None  # unreadable config: assume a valve may be there
    if app is not None and app != "cooling":
        return None, 1
    try:
        with open(board_path) as f:
            v = json.load(f)["valve"]
        return m.Pin(v["pin"], m.Pin.OUT, value=1 - v["active"]), v["active"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, 1


class _RtcRetain:
    def __init__(self, m):
        self.rtc = m.RTC()

    def read(self):
        return self.rtc.memory()

    def write(self, b):
        self.rtc.memory(b)


def run(m=None, clock=None, console=print, idle_rounds=None, config_path="config.json",
        board_path="board.json", store_dir="/lw"):
    """Boot the node: check the config (safe idle when it is wrong), build, loop forever."""
    if m is None:
        import machine as m
    if clock is None:
        from lw.clock import SysClock

        clock = SysClock()
    valve_pin, valve_active = valve_closed_early(m, board_path, config_path)
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
    from lw.mac import release

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
