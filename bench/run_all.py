"""Run every benchmark script in bench/ in turn and let each print its own figures.

Usage: ``.venv/bin/python bench/run_all.py [NAME ...]`` (names without ``.py``; default: all).
Benchmarks measure; they never assert timings. Each script is run in its own process so that one
benchmark's warm caches or threads cannot flatter the next.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    """Run the named benchmarks (or all) and return non-zero if any of them failed."""
    me = Path(__file__).name
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != me and not p.name.startswith("_"))
    if argv:
        wanted = set(argv)
        scripts = [p for p in scripts if p.stem in wanted]
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        if rc != 0:
            failed.append(script.stem)
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
