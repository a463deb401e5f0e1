"""What one durable append to the sector intake log costs: time and bytes, direct vs buffered.

Usage: .venv/bin/python bench/intake_log.py [--dir .build/bench-intake] [--appends 200] [--payload 300]
       [--json]

For each mode (``direct``: O_DIRECT|O_DSYNC; ``buffered``: pwrite + fdatasync) and batch size (1 record,
64 records) it makes a fresh 4 MiB log in ``--dir``, then times ``--appends`` appends of that many
``--payload``-byte records (the durable mark follows along, so the ring never fills). Per append it
prints the microseconds (wall clock) and the process's ``/proc/self/io`` write_bytes (for a buffered write,
the page-cache pages made dirty; for a direct one, its bytes). The figures depend on the file system and
device under ``--dir``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from havel.gateway.intake_log import IntakeLog

REPO = Path(__file__).resolve().parents[1]


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def cell(folder: Path, direct: bool, batch: int, appends: int, payload: int) -> dict[str, object]:
    path = folder / f"intake-{'direct' if direct else 'buffered'}-{batch}.log"
    path.unlink(missing_ok=True)
    log = IntakeLog.open(path, direct=direct)
    try:
        log.records_after(0)
        records = [bytes([i % 251]) * payload for i in range(batch)]
        for _ in range(3):  # warm-up: the buffer, the descriptor's first writes
            log.set_durable_mark(log.append(records)[-1])
        io0, t0 = write_bytes(), time.perf_counter()
        for _ in range(appends):
            seqs = log.append(records)
            if log.free_fraction() < 0.25:  # the database would have committed a batch by now
                log.set_durable_mark(seqs[-1])
        elapsed, written = time.perf_counter() - t0, write_bytes() - io0
        return {
            "mode": log.mode,
            "batch": batch,
            "us_per_append": round(elapsed / appends * 1e6, 1),
            "us_per_record": round(elapsed / appends / batch * 1e6, 2),
            "write_bytes_per_append": round(written / appends),
            "write_bytes_per_record": round(written / appends / batch),
        }
    finally:
        log.close()
        path.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=REPO / ".build" / "bench-intake")
    ap.add_argument("--appends", type=int, default=200)
    ap.add_argument("--payload", type=int, default=300, help="bytes per record (one sector up to 484)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for direct in (True, False):
            for batch in (1, 64):
                rows.append(cell(args.dir, direct, batch, args.appends, args.payload))
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    fs = os.statvfs(REPO)
    print(f"intake log: {args.appends} appends per cell, {args.payload}-byte records, in {args.dir}")
    print(f"(file system block size {fs.f_bsize})")
    print(f"{'mode':>9} {'batch':>5} {'us/append':>10} {'us/record':>10} {'wb/append':>10} {'wb/record':>10}")
    for r in rows:
        print(
            f"{r['mode']:>9} {r['batch']:>5} {r['us_per_append']:>10} {r['us_per_record']:>10} "
            f"{r['write_bytes_per_append']:>10} {r['write_bytes_per_record']:>10}"
        )


if __name__ == "__main__":
    main()
