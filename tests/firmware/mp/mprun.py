"""Runs the test_* functions of test modules and prints one marked JSON line per test.

Shared by tests/firmware/mprunner.mjs (MicroPython wasm) and tests/firmware/cpyrunner.py (CPython).
Each line is MARK + JSON {"module", "test", "ok", "ms", "error"}; other output is the tests' own.
"""

import json
import sys
import time

MARK = "@@MPTEST "


def _ticks():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def _format_exc(e):
    try:
        import io

        buf = io.StringIO()
        sys.print_exception(e, buf)  # MicroPython
        return buf.getvalue()
    except AttributeError:
        import traceback

        return "".join(traceback.format_exception(type(e), e, e.__traceback__))


def run_module(name, only=None):
    """Import module `name` and run its test_* functions (sorted by name). Returns the failure count."""
    failures = 0
    try:
        mod = __import__(name)
    except Exception as e:  # an import error fails the whole module, reported as a test "<import>"
        print(
            MARK
            + json.dumps({"module": name, "test": "<import>", "ok": False, "ms": 0, "error": _format_exc(e)})
        )
        return 1
    names = sorted(n for n in dir(mod) if n.startswith("test_") and callable(getattr(mod, n)))
    for n in names:
        if only and n not in only:
            continue
        t0 = _ticks()
        err = None
        try:
            getattr(mod, n)()
        except Exception as e:
            err = _format_exc(e)
            failures += 1
        ms = _ticks() - t0
        print(MARK + json.dumps({"module": name, "test": n, "ok": err is None, "ms": ms, "error": err}))
    return failures
