"""Runs firmware tests (or one script) under CPython, the twin of mprunner.mjs.

    python tests/firmware/cpyrunner.py MODULE [MODULE...]   # JSON line per test on stdout
    python tests/firmware/cpyrunner.py --script FILE.py

sys.path gets firmware/, firmware/host/ (cryptolib stand-in, `micropython` shim that also adds
time.ticks_ms & co.) and tests/firmware/mp/. Each module runs with a clean set of firmware modules.
Exit status 0 when all passed, 1 on any failure or exception, 2 on usage errors.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from typing import TextIO

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PATHS = [os.path.join(REPO, "firmware"), os.path.join(REPO, "firmware", "host"), os.path.join(HERE, "mp")]
MARK = "@@MPTEST "


class _Splitter:
    """stdout stand-in: marked lines become JSON lines on the real stdout, the rest goes to stderr."""

    def __init__(self, module: str, out: TextIO, err: TextIO) -> None:
        self.module = module
        self.out = out
        self.err = err
        self.buf = ""
        self.failed = 0
        self.seen = 0

    def write(self, s: str) -> int:
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if line.startswith(MARK):
                rec = json.loads(line[len(MARK) :])
                self.seen += 1
                if not rec["ok"]:
                    self.failed += 1
                self.out.write(json.dumps(rec) + "\n")
            else:
                self.err.write(f"[{self.module}] {line}\n")
        return len(s)

    def flush(self) -> None:
        self.out.flush()


def main(argv: list[str]) -> int:
    sys.path[:0] = PATHS
    import micropython  # noqa: F401  (the host shim; patches time.ticks_* in first)

    if argv[:1] == ["--script"] and len(argv) == 2:
        try:
            runpy.run_path(argv[1], run_name="__main__")
        except SystemExit as e:
            return int(e.code or 0)
        return 0
    if not argv or any(a.startswith("--") for a in argv):
        sys.stderr.write("usage: cpyrunner.py (--script FILE.py | MODULE...)\n")
        return 2
    import mprun

    baseline = set(sys.modules)
    failed = 0
    for arg in argv:
        mod = os.path.basename(arg)[:-3] if arg.endswith(".py") else arg
        for name in set(sys.modules) - baseline:
            del sys.modules[name]
        real_out = sys.stdout
        out = _Splitter(mod, real_out, sys.stderr)
        sys.stdout = out
        try:
            mprun.run_module(mod)
        finally:
            sys.stdout = real_out
        failed += out.failed
        if out.seen == 0:
            failed += 1
            print(
                json.dumps(
                    {
                        "module": mod,
                        "test": "<none>",
                        "ok": False,
                        "ms": 0,
                        "error": "no test_* functions ran",
                    }
                )
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
