"""What one durable write costs an ext4 file system, by strategy and mount options: the floor under the
gateway's bytes per uplink.

Usage: .venv/bin/python bench/storage_floor.py [--appends 60] [--interval 2.0] [--jobs 3] [--pages]
       [--internal-journal] [--json]
       .venv/bin/python bench/storage_floor.py --quick [--dir DIR]   (no mount, no root: a smoke run)
       .venv/bin/python bench/storage_floor.py --arithmetic          (the design arithmetic only)

Each cell (a mount option set and a write strategy) gets its own ext4 image (4 KiB blocks, inode tables
written at mkfs so that no background initialisation writes during the window), loop-mounted as root with
its journal on a loop device of its own, so that the bytes the jbd2 journal writes are counted apart from
the data. After the strategy's files are made, written and synced, ``--appends`` durable appends follow at
one per ``--interval`` seconds (2 s: the city's pace, one uplink every 2 s; the jbd2 commit timer makes the
pace matter), and the counters are read once the window (appends x interval) is over, without a sync: what
the kernel writes on its own timers during the window (jbd2 commits, writeback) is counted in proportion.
Per append it reports the device bytes (data device plus journal device, ``/sys/block/<dev>/stat``), the
journal's share, the jbd2 commits (``/proc/fs/jbd2/<dev>/info``) and the process's ``write_bytes``
(``/proc/self/io``: the page cache made dirty, whole pages or folios, and the bytes of direct writes).

Strategies (a durable append is one whose bytes are on the device when the call returns):
- ``sqlite-full``: an SQLite WAL commit (``synchronous=FULL``) updating one row of one 1 KiB page, the WAL
  at working size (warmed, then restarted by a checkpoint, as in a gateway that has run for a while);
- ``sqlite-full-exclusive``: the same with ``locking_mode=EXCLUSIVE`` (WAL index in memory, no ``-shm``);
- ``append-fdatasync``: a buffered 200-byte append to a growing file, then ``fdatasync``;
- ``prealloc-fdatasync``: the same at the next offset of a file written whole (zeros) beforehand;
- ``direct-dsync``: a 512-byte ``O_DIRECT|O_DSYNC`` write at the next sector of a file written beforehand;
- ``direct-dsync-unwritten``: the same into a file only ``fallocate``d (its extents still unwritten);
- ``direct-dsync-raw``: the same to a loop device with no file system (one cell, mount options do not apply).
``--pages`` adds SQLite WAL commits of 1..5 pages, FULL and NORMAL, page sizes 512/1024/4096, on one option
set (``--pages-mount``). Nothing is asserted; docs/storage-wear.md turns the figures into a design.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

from storage_cell import run_cell  # noqa: E402
from storage_strategies import FS_PAGE  # noqa: E402

GOAL_BYTES = 4096  # bytes written per uplink at the city's pace, the goal
MOUNTS = ("defaults", "noatime", "noatime,lazytime", "noatime,lazytime,commit=60")
STRATEGIES = (
    "sqlite-full",
    "sqlite-full-exclusive",
    "append-fdatasync",
    "prealloc-fdatasync",
    "direct-dsync",
    "direct-dsync-unwritten",
)
SECTOR = 512
# Measured with this bench (docs/storage-wear.md): one jbd2 commit of an inode changed by a write (its
# descriptor block, the inode table block, the commit block) writes 3 blocks of 4 KiB.
JBD2_COMMIT = 3 * FS_PAGE
CITY_INTERVAL_S = 2.0  # one uplink every 2 s
# The gateway's database as bench/storage_writes.py sets it up: 500 devices' rows in about 125 pages of
# 1 KiB; a batch also writes the intake log's mark and the outbox's totals row
DEVICE_PAGES, FIXED_PAGES = 125, 2
CHECKPOINT_PAGES = 10_000  # the gateway checkpoints at 10,000 pages of WAL


# --- the arithmetic --------------------------------------------------------------------------------


def pages_per_append(length: int, page: int = FS_PAGE) -> float:
    """File system pages a contiguous log writes per fsynced append of ``length`` bytes, on average: the
    partly written page at the end of one append is written whole again with the next, so an append
    costs every page its byte range touches. The offsets cycle through the multiples of gcd(length, page)."""
    step = math.gcd(length, page)
    offsets = range(0, page, step)
    touched = sum((o + length - 1) // page + 1 for o in offsets)
    return touched / len(offsets)


def wal_commit_bytes(pages: int, page_size: int) -> int:
    """Bytes an SQLite WAL commit of ``pages`` pages appends: each page in a frame with a 24-byte header."""
    return pages * (page_size + 24)


def timer_commits_per_append(interval_s: float, commit_s: float) -> float:
    """jbd2 commits per append from its timer alone, when every append dirties an inode: a transaction is
    committed ``commit_s`` after the append that opened it, and the next append opens the next one, so
    there is one commit per ceil(commit_s / interval_s) appends (measured: 0.33 at 2 s and commit=5)."""
    return 1.0 / max(1, math.ceil(commit_s / interval_s - 1e-9))


def distinct_pages(touches: float, pages: int) -> float:
    """Distinct pages hit by ``touches`` rows picked at random among ``pages`` pages (expected)."""
    return pages * (1.0 - (1.0 - 1.0 / pages) ** touches)


def gateway_now(interval_s: float = CITY_INTERVAL_S, commit_s: float = 5.0) -> dict[str, float]:
    """Bytes per uplink of the current design: one fsynced WAL commit of five 1 KiB pages per uplink
    (the intake journal's, the store's riding along) plus the jbd2 timer's commits (the WAL's inode
    changes at every commit)."""
    pages = pages_per_append(wal_commit_bytes(5, 1024))
    data = pages * FS_PAGE
    journal = timer_commits_per_append(interval_s, commit_s) * JBD2_COMMIT
    return {"wal_4k_pages": pages, "data": data, "jbd2": journal, "total": data + journal}


def gateway_plan(
    batch_s: float, commit_s: float, raw_log: bool, interval_s: float = CITY_INTERVAL_S
) -> dict[str, float]:
    """Bytes per uplink of the planned design with the broker up: each uplink one 512-byte durable
    sector of an intake log (in a written file, or on a block device of its own: ``raw_log``), and every
    ``batch_s`` one fsynced SQLite commit of what the uplinks since changed (each its device's counter
    page, plus the log's mark and the outbox totals: records the broker acknowledged within the batch are
    never written to SQLite). The file system's journal commits on its timer while the log file's or the
    WAL's inode is dirty; a checkpoint copies each page once into the database file (a 4 KiB page each)."""
    uplinks = batch_s / interval_s
    pages = math.ceil(distinct_pages(uplinks, DEVICE_PAGES)) + FIXED_PAGES
    wal_pages = pages_per_append(wal_commit_bytes(pages, 1024))
    batch = wal_pages * FS_PAGE / uplinks
    if raw_log:  # only the WAL's inode changes, once a batch
        journal = timer_commits_per_append(batch_s, commit_s) * JBD2_COMMIT / uplinks
    else:  # the log file's inode changes at every uplink
        journal = timer_commits_per_append(interval_s, commit_s) * JBD2_COMMIT
    per_checkpoint = CHECKPOINT_PAGES / (pages / uplinks)  # uplinks between two checkpoints
    checkpoint = (DEVICE_PAGES + FIXED_PAGES) * FS_PAGE / per_checkpoint
    total = SECTOR + batch + journal + checkpoint
    return {
        "uplinks": uplinks,
        "pages": pages,
        "wal_4k_pages": wal_pages,
        "log": SECTOR,
        "batch": batch,
        "jbd2": journal,
        "checkpoint": checkpoint,
        "total": total,
    }


def arithmetic() -> list[str]:
    """The design arithmetic docs/storage-wear.md quotes, from the measured floor's constants."""
    now = gateway_now()
    lines = [
        f"now: one fsynced WAL commit of 5 x 1,048 B = {wal_commit_bytes(5, 1024):,} B per uplink spans "
        f"{now['wal_4k_pages']:.2f} pages of 4 KiB = {now['data']:,.0f} B; the jbd2 timer (commit=5) "
        f"{timer_commits_per_append(CITY_INTERVAL_S, 5):.2f} x {JBD2_COMMIT:,} B = {now['jbd2']:,.0f} B; "
        f"{now['total']:,.0f} B per uplink before checkpoints and -shm writeback",
    ]
    for batch_s, commit_s, raw in ((30, 5, False), (30, 60, False), (30, 5, True), (60, 60, True)):
        p = gateway_plan(batch_s, commit_s, raw)
        where = "log on a block device of its own" if raw else "log file on the data file system"
        verdict = "meets" if p["total"] <= GOAL_BYTES else "misses"
        lines.append(
            f"plan, batch every {batch_s} s ({p['uplinks']:.0f} uplinks, {p['pages']} pages), "
            f"commit={commit_s}, {where}: log {p['log']:,.0f} + batch {p['batch']:,.0f} + jbd2 "
            f"{p['jbd2']:,.0f} + checkpoint {p['checkpoint']:,.0f} = {p['total']:,.0f} B per uplink "
            f"({verdict} {GOAL_BYTES:,})"
        )
    return lines


def run_cells(cells: list[dict[str, object]], jobs: int) -> list[dict[str, object]]:
    """Cells on their own mounts run ``jobs`` at a time, each in a process of its own (``write_bytes`` is
    per process); without a mount, one after the other here."""
    if not cells or cells[0]["mount"] is None:
        return [run_cell(c) for c in cells]

    def child(cell: dict[str, object]) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, str(HERE), "--cell", json.dumps(cell)], capture_output=True, text=True
        )
        if out.returncode:
            return {**cell, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
        return dict(json.loads(out.stdout.splitlines()[-1]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(child, cells))


# --- the report --------------------------------------------------------------------------------------


def fmt(v: object) -> str:
    return "-" if v is None else f"{v:,.0f}" if isinstance(v, float | int) else str(v)


def table(results: list[dict[str, object]]) -> list[str]:
    lines = [
        f"{'mount options':<28} {'strategy':<24} {'device':>8} {'jbd2':>8} {'commits':>8} {'write_bytes':>12}"
    ]
    for r in results:
        what = str(r["strategy"])
        if what == "sqlite":
            what = f"sqlite {r['pages']}x{r['page_size']} {str(r['sync']).lower()}"
        if "error" in r:
            lines.append(f"{fmt(r['mount']):<28} {what:<24} {r['error']}")
            continue
        commits = "-" if r["commits"] is None else f"{r['commits']:.2f}"
        lines.append(
            f"{fmt(r['mount']):<28} {what:<24} {fmt(r['device']):>8} {fmt(r['jbd2']):>8} {commits:>8} "
            f"{fmt(r['write_bytes']):>12}"
        )
    return lines


def find(results: list[dict[str, object]], mount: str, strategy: str) -> dict[str, object] | None:
    for r in results:
        if r["mount"] == mount and r["strategy"] == strategy and "error" not in r and r["device"] is not None:
            return r
    return None


def meaning(results: list[dict[str, object]]) -> list[str]:
    """What the cells say about the hypotheses and the goal (cells that ran on a device only)."""
    out: list[str] = []
    for mount in (*MOUNTS, "raw block device"):
        cells = [r for r in results if r["mount"] == mount and "error" not in r and r["device"] is not None]
        cells = [r for r in cells if r["strategy"] != "sqlite"]
        if cells:
            best = min(cells, key=lambda r: float(r["device"]))  # type: ignore[arg-type]
            out.append(
                f"{mount}: cheapest durable append {best['strategy']}, {fmt(best['device'])} B on the "
                f"device, {fmt(best['jbd2'])} B of it the journal's"
            )
    grow, pre = find(results, "defaults", "append-fdatasync"), find(results, "defaults", "prealloc-fdatasync")
    if grow and pre:
        data = float(pre["device"]) - float(pre["jbd2"] or 0)  # type: ignore[arg-type]
        out.append(
            f"an fdatasync of a 200-byte write: {fmt(data)} B of data on the device; into a growing file: "
            f"{grow['commits']:.2f} journal commits per append ({fmt(grow['jbd2'])} B)"
        )
    plain, lazy = find(results, "noatime", "direct-dsync"), find(results, "noatime,lazytime", "direct-dsync")
    if plain and lazy and plain["commits"]:
        kept = float(lazy["commits"]) >= 0.8 * float(plain["commits"])  # type: ignore[arg-type]
        out.append(
            f"lazytime: {plain['commits']:.2f} -> {lazy['commits']:.2f} journal commits per sector write: "
            + ("the inode changes are journaled on the timer all the same" if kept else "it spares them")
        )
    return [*out, *arithmetic()]


def cells_for(args: argparse.Namespace, root: Path, mounted: bool) -> list[dict[str, object]]:
    base = {
        "appends": args.appends,
        "interval": args.interval,
        "internal_journal": args.internal_journal,
        "lock": str(root / "setup.lock"),
    }
    specs: list[dict[str, object]] = []
    mounts: tuple[str | None, ...] = MOUNTS if mounted else (None,)
    for mount in mounts:
        for strategy in STRATEGIES:
            specs.append({"mount": mount, "strategy": strategy})
    if mounted:  # the same writes to a block device of their own, without a file system
        specs.append({"mount": "raw block device", "strategy": "direct-dsync-raw"})
    if args.only:
        specs = [s for s in specs if any(w in f"{s['mount']} {s['strategy']}" for w in args.only.split(","))]
    if args.pages:
        for page_size in (512, 1024, 4096):
            for pages in range(1, 6):
                for sync in ("FULL", "NORMAL"):
                    specs.append(
                        {
                            "mount": args.pages_mount if mounted else None,
                            "strategy": "sqlite",
                            "pages": pages,
                            "sync": sync,
                            "page_size": page_size,
                        }
                    )
    cells = []
    for spec in specs:
        cell_root = Path(tempfile.mkdtemp(prefix="cell-", dir=root))
        cells.append({**base, **spec, "root": str(cell_root)})
    return cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--appends", type=int, default=60)
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between appends (2: city pace)")
    ap.add_argument("--jobs", type=int, default=3, help="cells at once (each its own loop devices)")
    ap.add_argument("--pages", action="store_true", help="also SQLite WAL commits of 1..5 pages")
    ap.add_argument("--pages-mount", default="noatime,lazytime")
    ap.add_argument("--only", help="run only the cells whose mount or strategy holds one of these words")
    ap.add_argument("--internal-journal", action="store_true", help="the journal inside the image")
    ap.add_argument("--quick", action="store_true", help="no mount: a few appends on --dir, unpaced")
    ap.add_argument("--dir", type=Path, default=None, help="where to work (default: a temporary folder)")
    ap.add_argument("--arithmetic", action="store_true", help="print the design arithmetic and stop")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cell", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cell:
        print(json.dumps(run_cell(json.loads(args.cell))))
        return 0
    if args.arithmetic:
        print("\n".join(arithmetic()))
        return 0
    if args.quick:
        args.appends, args.interval = 5, 0.0
    mounted = not args.quick
    if mounted and os.geteuid() != 0:
        raise SystemExit("the measurement mounts ext4 images: run it as root (or --quick for a smoke run)")
    with tempfile.TemporaryDirectory(prefix="havel-floor-", dir=args.dir) as tmp:
        results = run_cells(cells_for(args, Path(tmp), mounted), args.jobs)
    if args.json:
        print(json.dumps(results))
        return 0
    journal = "inside the image" if args.internal_journal else "on a device of its own"
    setup = f"ext4, 4 KiB blocks, loop-mounted, journal {journal}" if mounted else "no mount, write_bytes"
    print(f"{args.appends} durable appends at one per {args.interval:g} s, per append in bytes ({setup})")
    print("\n".join(table(results)))
    if mounted:
        print("\n".join(meaning(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
