"""Bytes the gateway writes to its storage per uplink, at the city's pace and under load.

Usage: .venv/bin/python bench/storage_writes.py [--devices 500] [--seconds 60] [--rates 0.5,50]
       [--batch-s 30] [--mount-options commit=60] [--no-ext4] [--json]

A Raspberry Pi keeps the database on an SD card, and an SD card wears out by the bytes written to it, so
this says how long a card lasts on a roof. Setup as in ``bench/gateway_e2e.py``: a real Mosquitto on
loopback, the real daemon as its own process with an MQTT sink, ``--devices`` ABP devices. First a warm-up at
50 uplinks/s until the daemon's first checkpoint (``--warm-up`` seconds at most), so that the measured window
sees the write-ahead log at its working size, as on a roof that has run for a while. For each rate
(uplinks per second, one rxpk per PUSH_DATA, as a packet forwarder sends a frame it just heard) it sends
``--seconds`` worth of uplinks at a steady pace, waits until every one is acknowledged by the broker (stored,
published, deleted from the outbox) and the forwarder's acknowledgement commit is done, and reports per
uplink:

- ``wchar``: bytes the daemon handed to write calls (``/proc/<pid>/io``): the WAL, checkpoints, logs;
- ``write_bytes``: bytes the kernel accounted to the block device for the daemon (4 KiB per page of the
  page cache made dirty: a small fsynced write costs a whole page);
- ``device``: sectors written to the file system's block device (``/sys/block/<dev>/stat``), when the data
  directory is a loop-mounted ext4 image this bench makes (as root; ``--no-ext4`` or not root: skipped).
  This includes the file system's own journal and metadata, which the process counters do not. The
  image has 4 KiB blocks (as a Pi's card formatted by mkfs) and its inode tables and journal written at
  mkfs (``lazy_itable_init=0,lazy_journal_init=0``: no background initialisation writes in the window);
  ``--mount-options`` mounts it with more options (``commit=60``: docs/storage-wear.md);
- the breakdown per file: the intake log (the sectors of the records appended in the window, read from the
  log file), the WAL, and the rest of ``wchar`` (the checkpoints' copies into the main database file, logs);
- the WAL's breakdown: its frames are read as they are written (polled every 0.1 s) and each frame's page is
  named by the table or index it belongs to (SQLite's ``dbstat``); what ``wchar`` has beyond the WAL is
  the checkpoints' copies into the main database file (and logs).

Nothing is asserted; docs/gateway.md turns the figures into a card lifetime.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gateway_e2e import (  # noqa: E402
    GW,
    Mosquitto,
    free_port,
    register_devices,
    running_daemon,
    rxpk_of,
    status,
    uplink_frame,
)

from havel.gateway import db  # noqa: E402
from havel.gateway.backends.semtech_udp import gwmp  # noqa: E402
from havel.gateway.config import StorageConfig  # noqa: E402
from havel.gateway.intake_log import RECORD_HEADER, RECORD_MAGIC  # noqa: E402
from havel.gateway.intake_log_file import SECTOR  # noqa: E402

GOAL_BYTES = 4096  # bytes written per uplink at a city's pace, the goal


def proc_io(pid: int) -> dict[str, int]:
    """The process's I/O counters (Linux /proc; empty where there are none)."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def datagram(k: int, devices: int, token: int) -> bytes:
    """The k-th uplink (round robin over the devices, FCnt rising) as a PUSH_DATA of its own."""
    rxpk = rxpk_of(uplink_frame(k, devices), tmst=1000 + k * 997)
    return gwmp.encode_push_data(2, token & 0xFFFF, GW, rxpk=[rxpk])


@contextlib.contextmanager
def ext4_data_dir(where: Path, size_mb: int = 256, options: str = "") -> Iterator[str | None]:
    """An ext4 image (4 KiB blocks, inode tables and journal written at mkfs) loop-mounted at ``where``
    with ``options``; yields its block device's name (``loop3``), or None (and ``where`` a plain folder)
    when it cannot be mounted (not root, no loop devices)."""
    where.mkdir(parents=True, exist_ok=True)
    image = where.with_name(where.name + ".ext4")
    mkfs = ["mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0"]
    try:
        subprocess.run(["truncate", "-s", f"{size_mb}M", str(image)], check=True)
        subprocess.run([*mkfs, str(image)], check=True, capture_output=True)
        mount_opts = ",".join(o for o in ("loop", options) if o)
        subprocess.run(["mount", "-o", mount_opts, str(image), str(where)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        yield None
        return
    try:
        src = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(where)], capture_output=True, text=True)
        yield Path(src.stdout.strip()).name or None
    finally:
        subprocess.run(["umount", str(where)], check=False)
        image.unlink(missing_ok=True)


def sectors_written(dev: str | None) -> int:
    """Sectors (512 bytes) written to block device ``dev`` since boot (0 without one)."""
    if dev is None:
        return 0
    try:
        return int(Path(f"/sys/block/{dev}/stat").read_text().split()[6])
    except (OSError, IndexError, ValueError):
        return 0


class WalWatcher:
    """Reads the WAL every 0.1 s and counts the frames written since the last look, by page number. A WAL
    pass is known by its salt: after a checkpoint SQLite starts writing from the beginning with new salts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pages: Counter[int] = Counter()
        self.frames = 0
        self.page_size = 0
        self._salt: bytes = b""
        self._seen = 0  # frames of the current pass already counted
        self.passes = 0  # WAL passes seen (each after the first began with a checkpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.look()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.look()

    def look(self) -> None:
        try:
            data = self.path.read_bytes()
        except OSError:
            return
        if len(data) < 32:
            return
        page_size = struct.unpack(">I", data[8:12])[0]
        salt = data[16:24]
        if salt != self._salt:
            self._salt, self._seen = salt, 0
            self.passes += 1
        self.page_size = page_size
        size = 24 + page_size
        n = 0
        for off in range(32, len(data) - size + 1, size):
            if data[off + 8 : off + 16] != salt:
                break
            if n >= self._seen:
                self.pages[struct.unpack(">I", data[off : off + 4])[0]] += 1
                self.frames += 1
            n += 1
        self._seen = max(self._seen, n)

    def take(self) -> tuple[Counter[int], int]:
        """The frames counted so far (by page) and their number; starts counting afresh."""
        self.look()
        pages, frames = self.pages, self.frames
        self.pages, self.frames = Counter(), 0
        return pages, frames


def log_sectors(path: Path) -> dict[int, int]:
    """The intake log's records: sequence number -> sectors (read beside the daemon; none without a log)."""
    try:
        image = path.read_bytes()
    except OSError:
        return {}
    out: dict[int, int] = {}
    for off in range(SECTOR, len(image), SECTOR):
        if image[off : off + 4] == RECORD_MAGIC:
            _, seq, _length, n, _ = RECORD_HEADER.unpack_from(image, off)
            out[seq] = n
    return out


def page_owners(path: Path) -> dict[int, str]:
    """Page number -> the table or index it belongs to (``dbstat``, read-only beside the daemon)."""
    conn = db.open_db_readonly(path)
    try:
        return {int(p): str(n) for p, n in conn.execute("SELECT pageno, name FROM dbstat")}
    except sqlite3.Error:
        return {}
    finally:
        conn.close()


def send_at(rate: float, n: int, devices: int, sock: socket.socket, sent: int) -> None:
    """``n`` uplinks at ``rate`` per second, each waiting for its PUSH_ACK (journaled)."""
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sock.send(datagram(sent + i, devices, sent + i))
        sock.recv(16)


def run_rate(
    rate: float,
    seconds: float,
    devices: int,
    sock: socket.socket,
    pid: int,
    http: int,
    dev: str | None,
    wal: WalWatcher,
    dbfile: Path,
    sent: int,
) -> dict[str, object]:
    n = max(1, round(rate * seconds))
    wal.take()
    logfile = dbfile.with_name("intake.log")
    seq0 = max(log_sectors(logfile), default=0)
    io0, sec0 = proc_io(pid), sectors_written(dev)
    acked0 = status(http)["sinks"]["platform"]["acked"]
    send_at(rate, n, devices, sock, sent)
    deadline = time.perf_counter() + 120
    while status(http)["sinks"]["platform"]["acked"] < acked0 + n:
        if time.perf_counter() > deadline:
            raise SystemExit(f"uplinks at {rate:g}/s were not all acknowledged within 120 s")
        time.sleep(0.05)
    time.sleep(6.0)  # the last acknowledgements' commit (forwarder ack_interval_s: 5 s)
    if dev is not None:
        subprocess.run(["sync", "-f", str(dbfile)], check=False)  # what the kernel still holds, to the device
    io1, sec1 = proc_io(pid), sectors_written(dev)
    log_bytes = sum(k for s, k in log_sectors(logfile).items() if s > seq0) * SECTOR
    pages, frames = wal.take()
    owners = page_owners(dbfile)
    by_owner: Counter[str] = Counter()
    for page, count in pages.items():
        by_owner[owners.get(page, "(free or new page)")] += count
    frame_bytes = 24 + wal.page_size
    wal_bytes = frames * frame_bytes
    wchar = io1.get("wchar", 0) - io0.get("wchar", 0)
    return {
        "uplinks_per_s": rate,
        "uplinks": n,
        "wchar_bytes_per_uplink": round(wchar / n),
        "write_bytes_per_uplink": round((io1.get("write_bytes", 0) - io0.get("write_bytes", 0)) / n),
        "device_bytes_per_uplink": round((sec1 - sec0) * 512 / n) if dev is not None else None,
        "page_size": wal.page_size,
        "wal_bytes_per_uplink": round(wal_bytes / n),
        "intake_log_bytes_per_uplink": round(log_bytes / n),
        "main_db_and_other_bytes_per_uplink": round(max(0, wchar - wal_bytes - log_bytes) / n),
        "wal_bytes_per_uplink_by_table": {k: round(v * frame_bytes / n) for k, v in by_owner.most_common()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rates", default="0.5,50", help="uplinks per second, comma-separated")
    ap.add_argument("--no-ext4", action="store_true", help="no loop-mounted ext4 image for the data")
    ap.add_argument(
        "--page-size",
        type=int,
        default=db.PAGE_SIZE,
        help="page size of the database the bench makes (to compare; the daemon keeps it)",
    )
    ap.add_argument(
        "--warm-up",
        type=float,
        default=240.0,
        help="at most this many seconds of 50 uplinks/s first, not counted: until the first checkpoint, so "
        "that the WAL has its working size (a WAL still growing costs the file system a metadata write per "
        "fsync) and the measured window starts a pass of it",
    )
    ap.add_argument(
        "--batch-s",
        type=float,
        default=StorageConfig().batch_s,
        help="[storage] batch_s of the daemon (0: a SQLite commit per stored batch of uplinks)",
    )
    ap.add_argument("--mount-options", default="", help="more mount options of the ext4 image: commit=60")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="havel-bench-writes-"))
    atexit.register(shutil.rmtree, tmp, True)  # the daemon's database, gone when the figures are out
    udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    results = []
    fs = (
        contextlib.nullcontext(None)
        if args.no_ext4
        else ext4_data_dir(tmp / "data", options=args.mount_options)
    )
    with fs as dev, Mosquitto() as broker:
        broker.start()
        dbfile = tmp / "data" / "havel.db"
        db.PAGE_SIZE = args.page_size
        conn = db.open_db(dbfile)
        register_devices(conn, args.devices)
        conn.close()
        extra = f"\n[storage]\nbatch_s = {args.batch_s}\n"
        with running_daemon(tmp, udp, http, broker.port, cpu=0, extra=extra) as proc:
            wal = WalWatcher(dbfile.with_name("havel.db-wal"))
            wal.start()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect(("127.0.0.1", udp))
            sock.settimeout(5)
            sent = 0
            try:
                warm_until = time.monotonic() + args.warm_up
                while time.monotonic() < warm_until and wal.passes < 2:
                    send_at(50.0, 100, args.devices, sock, sent)
                    sent += 100
                warmed = wal.passes >= 2
                time.sleep(6.0)  # (the warm-up's last acknowledgements)
                for rate in rates:
                    results.append(
                        run_rate(
                            rate, args.seconds, args.devices, sock, proc.pid, http, dev, wal, dbfile, sent
                        )
                    )
                    sent += int(results[-1]["uplinks"])  # type: ignore[call-overload]
            finally:
                wal.stop()
    report = {
        "devices": args.devices,
        "warmed_to_a_checkpoint": warmed,
        "ext4_device": dev,
        "mount_options": args.mount_options or "defaults",
        "batch_s": args.batch_s,
        "goal_bytes_per_uplink": GOAL_BYTES,
        "results": results,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    where = f"a loop-mounted ext4 image ({dev}, {args.mount_options or 'defaults'})" if dev else "a folder"
    print(
        f"{args.devices} ABP devices, one rxpk per PUSH_DATA, MQTT sink to a local Mosquitto; "
        f"data on {where}; "
        f"[storage] batch_s = {args.batch_s:g}; "
        + ("warmed up to the first checkpoint" if warmed else "the warm-up ended before the first checkpoint")
    )
    print(
        f"{'uplinks/s':>10} {'uplinks':>8} {'write calls':>12} {'write_bytes':>12} {'device':>10}"
        f"   (bytes per uplink; goal at city pace <= {GOAL_BYTES:,})"
    )
    for r in results:
        device = r["device_bytes_per_uplink"]
        print(
            f"{r['uplinks_per_s']:>10g} {r['uplinks']:>8} {r['wchar_bytes_per_uplink']:>12,} "
            f"{r['write_bytes_per_uplink']:>12,} {device if device is None else format(device, ','):>10}"
        )
    for r in results:
        print(
            f"at {r['uplinks_per_s']:g}/s, page size {r['page_size']}: intake log "
            f"{r['intake_log_bytes_per_uplink']:,} B, WAL {r['wal_bytes_per_uplink']:,} B per uplink, main "
            f"database (checkpoints) and logs {r['main_db_and_other_bytes_per_uplink']:,} B"
        )
        for name, b in r["wal_bytes_per_uplink_by_table"].items():  # type: ignore[attr-defined]
            print(f"    {name:<40} {b:>8,} B")
    slow = results[0]
    per_up = slow["device_bytes_per_uplink"] or slow["write_bytes_per_uplink"]
    per_day = int(per_up) * 500 * 96  # type: ignore[call-overload]  # 500 nodes every 15 minutes
    print(
        f"at {slow['uplinks_per_s']:g}/s: 500 nodes reporting every 15 minutes write about "
        f"{per_day / 1e9:.2f} GB a day, {per_day * 365 / 1e12:.3f} TB a year (before the card's own write "
        "amplification)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
