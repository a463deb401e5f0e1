"""Bytes the gateway writes to its storage per uplink, at the city's pace and under load.

Usage: .venv/bin/python bench/storage_writes.py [--devices 500] [--seconds 40] [--rates 0.5,50,1000] [--json]

A Raspberry Pi keeps the database on an SD card, and an SD card wears out by the bytes written to it, so
this says how long a card lasts on a roof. Setup as in ``bench/gateway_e2e.py``: a real Mosquitto on
loopback, the real daemon as its own process with an MQTT sink, ``--devices`` ABP devices. For each rate
(uplinks per second, one rxpk per PUSH_DATA, as a packet forwarder sends a frame it just heard) it sends
``--seconds`` worth of uplinks at a steady pace, waits until every one is acknowledged by the broker (stored,
published, deleted from the outbox), and reads the daemon's ``/proc/<pid>/io``: ``wchar`` (bytes handed to
write calls: the SQLite WAL and checkpoints, logs) and ``write_bytes`` (bytes the kernel sent to the block
device, where this file system reports it). Each figure is per uplink; nothing is asserted.
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import socket
import sys
import tempfile
import time
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

from havel.gateway import db, gwmp  # noqa: E402


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--rates", default="0.5,50,1000", help="uplinks per second, comma-separated")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="havel-bench-writes-"))
    atexit.register(shutil.rmtree, tmp, True)  # the daemon's database, gone when the figures are out
    udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    results = []
    with Mosquitto() as broker:
        broker.start()
        conn = db.open_db(tmp / "data" / "havel.db")
        register_devices(conn, args.devices)
        conn.close()
        with running_daemon(tmp, udp, http, broker.port, cpu=0) as proc:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect(("127.0.0.1", udp))
            sock.settimeout(5)
            sent = 0
            for rate in rates:
                n = max(1, round(rate * args.seconds))
                io0 = proc_io(proc.pid)
                acked0 = status(http)["sinks"]["platform"]["acked"]
                start = time.perf_counter()
                for i in range(n):
                    due = start + i / rate
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    sock.send(datagram(sent, args.devices, sent))
                    sock.recv(16)  # PUSH_ACK: journaled
                    sent += 1
                deadline = time.perf_counter() + 120
                while status(http)["sinks"]["platform"]["acked"] < acked0 + n:
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"uplinks at {rate:g}/s were not all acknowledged within 120 s")
                    time.sleep(0.05)
                time.sleep(6.0)  # the last acknowledgements' commit (forwarder ack_interval_s: 5 s)
                io1 = proc_io(proc.pid)
                results.append({
                    "uplinks_per_s": rate,
                    "uplinks": n,
                    "wchar_bytes_per_uplink": round((io1.get("wchar", 0) - io0.get("wchar", 0)) / n),
                    "write_bytes_per_uplink": round(
                        (io1.get("write_bytes", 0) - io0.get("write_bytes", 0)) / n
                    ),
                })
    if args.json:
        print(json.dumps({"devices": args.devices, "results": results}))
        return 0
    print(f"{args.devices} ABP devices, one rxpk per PUSH_DATA, MQTT sink to a local Mosquitto")
    print(f"{'uplinks/s':>10} {'uplinks':>8} {'written (write calls)':>24} {'to the block device':>22}")
    for r in results:
        print(
            f"{r['uplinks_per_s']:>10g} {r['uplinks']:>8} {r['wchar_bytes_per_uplink']:>18,} B/up "
            f"{r['write_bytes_per_uplink']:>16,} B/up"
        )
    slow = results[0]
    per_day = slow["wchar_bytes_per_uplink"] * 500 * 96  # 500 nodes every 15 minutes
    print(
        f"at {slow['uplinks_per_s']:g}/s: 500 nodes reporting every 15 minutes write about "
        f"{per_day / 1e9:.2f} GB a day, {per_day * 365 / 1e12:.2f} TB a year (before the card's own write "
        "amplification)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
