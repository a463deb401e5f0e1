"""The durable outbox and the drain to a broker, measured.

Usage: .venv/bin/python bench/outbox.py [--records 20000] [--cycles 2000] [--backlog 50000]
                                        [--devices 1000] [--cpu N] [--no-baseline] [--json]

1. put+ack/s of Havel's outbox next to persist-queue's SQLiteAckQueue, in one run, both on a file in the same
   folder at the same durability (WAL, synchronous=FULL: a record is on disk when put returns, and its
   acknowledgement when ack returns):
   - ``one record per transaction``: outbox.put + fetch + ack, each in its own commit, against
     SQLiteAckQueue put + get + ack (auto_commit) -- the per-operation cost of each design;
   - ``group commit``: how the gateway runs (the network server commits a batch of uplinks at a time, the
     delivery acknowledges every PUBACK that arrived in one commit): put_many(100) + fetch(500) +
     ack(500), against the same SQLiteAckQueue loop (it has no batch put or batch ack).
   The ratio printed is outbox (group commit) / persist-queue.
2. Drain rate: a backlog of ``--backlog`` records from ``--devices`` devices waits in the outbox (as after a
   broker outage); a real Mosquitto starts on loopback; the delivery (the outbox drain) publishes everything
   with QoS 1 and deletes each record on its PUBACK. Timed from the delivery's start to an empty outbox
   (msg/s), over
   plain TCP and over TLS. The broker gets ``max_inflight_messages 0`` (no Receive Maximum limit); with
   Mosquitto's default of 20 the window is 20 (printed too). Next to it, in the same process and
   conditions, the baseline: paho-mqtt alone publishing as many ready messages of the same size with
   QoS 1 from one thread driving its loop (no storage, no formatting: only the MQTT client's own cost).

The machine is shared, so next to the wall-clock rate the gateway's own CPU time per message is printed,
and what it means for one core the gateway has to itself. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from support.mosquitto import Mosquitto  # noqa: E402
from support.outbox_records import uplink  # noqa: E402

from havel.gateway import db  # noqa: E402
from havel.gateway.delivery import Delivery  # noqa: E402
from havel.gateway.outbox import Outbox  # noqa: E402
from havel.gateway.sinks import make_sinks  # noqa: E402


def records(n: int, devices: int) -> list[dict[str, Any]]:
    return [uplink(i % devices, 1 + i // devices) for i in range(n)]


# ----------------------------------------------------------------------------------------- outbox


def outbox_single(folder: Path, recs: list[dict[str, Any]]) -> float:
    conn = db.open_db(folder / "single.db")
    ob = Outbox(conn)
    t = time.perf_counter()
    for r in recs:
        ob.put(r)  # its own transaction
        (got,) = ob.fetch("primary", 1)
        ob.ack("primary", [got.id])
    dt = time.perf_counter() - t
    assert ob.depth() == 0
    conn.close()
    return len(recs) / dt


def outbox_grouped(folder: Path, recs: list[dict[str, Any]]) -> float:
    conn = db.open_db(folder / "grouped.db")
    ob = Outbox(conn)
    t = time.perf_counter()
    cursor = 0
    for k in range(0, len(recs), 100):
        ob.put_many(recs[k : k + 100])
        if (k // 100) % 5 == 4 or k + 100 >= len(recs):
            batch = ob.fetch("primary", 500, after_seq=cursor)
            cursor = batch[-1].seq
            ob.ack_seqs("primary", [b.seq for b in batch])
    dt = time.perf_counter() - t
    assert ob.depth() == 0
    conn.close()
    return len(recs) / dt


def persist_queue(folder: Path, recs: list[dict[str, Any]]) -> float:
    from persistqueue import SQLiteAckQueue

    q = SQLiteAckQueue(str(folder / "pq"), auto_commit=True, multithreading=False)
    for conn in {q._conn, q._putter, getattr(q, "_getter", q._conn)}:  # same durability as the outbox
        conn.execute("PRAGMA synchronous=FULL")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    t = time.perf_counter()
    for r in recs:
        q.put(r)
        item = q.get(block=False)
        q.ack(item)
    dt = time.perf_counter() - t
    q.close()
    return len(recs) / dt


# ----------------------------------------------------------------------------------------- drain


async def drain(folder: Path, n: int, devices: int, broker: Mosquitto, tls: bool) -> dict[str, Any]:
    conn = db.open_db(folder / f"drain-{tls}.db")
    cfg: dict[str, Any] = {
        "type": "mqtt",
        "name": "primary",
        "host": "127.0.0.1",
        "port": broker.port,
        "tls": False,
        "max_inflight": 1000,
    }
    if tls:
        assert broker.pki is not None
        cfg.update(port=broker.tls_port, tls=True, ca_file=str(broker.pki.ca_cert))
    sinks = make_sinks([cfg], gateway_id="bench")
    ob = Outbox(conn, sinks=["primary"])
    # made in chunks and let go: the backlog lives in SQLite, as in the gateway, not in Python's heap
    for k in range(0, n, 1000):
        ob.put_many([uplink(i % devices, 1 + i // devices) for i in range(k, min(n, k + 1000))])
    # a drain commits its acknowledgements by ack_batch (1000 a commit); the interval only times the last,
    # partial group, whose wait (5 s by default, to spare SD cards on a quiet gateway) is not drain time
    fwd = Delivery(ob, sinks, batch=500, window=2000, ack_interval_s=0.03)
    # transactions (one fsync each) the drain costs: every one ends in a COMMIT statement
    commits = [0]

    def trace(sql: str) -> None:
        if sql == "COMMIT":
            commits[0] += 1

    conn.set_trace_callback(trace)
    t = time.perf_counter()
    c = time.process_time()
    await fwd.start()
    await fwd.wait_idle(600)
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
    st = fwd.status("primary")
    window = sinks[0].window()
    await fwd.stop()
    conn.set_trace_callback(None)
    conn.close()
    return {
        "commits": commits[0],
        "msg_per_s": n / dt,
        "cpu_us_per_msg": cpu / n * 1e6,
        "acked": st.acked,
        "window": window,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=2000, help="put+ack cycles for the one-at-a-time runs")
    ap.add_argument("--records", type=int, default=20000, help="records for the group-commit run")
    ap.add_argument("--backlog", type=int, default=50000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU core")
    ap.add_argument(
        "--gc-threshold",
        type=int,
        default=None,
        help="gc.set_threshold(N) for the drain (a daemon may tune its collector like this)",
    )
    ap.add_argument(
        "--no-baseline", action="store_true", help="skip paho-mqtt alone publishing the same messages"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    out: dict[str, Any] = {
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(
        prefix="havel-bench-", dir=REPO / ".build" if (REPO / ".build").is_dir() else None
    ) as d:
        folder = Path(d)
        few = records(args.cycles, args.devices)
        many = records(args.records, args.devices)
        out["persist_queue_put_get_ack_per_s"] = persist_queue(folder, few)
        out["outbox_single_put_fetch_ack_per_s"] = outbox_single(folder, few)
        out["outbox_group_put_fetch_ack_per_s"] = outbox_grouped(folder, many)
        out["ratio_group_vs_persist_queue"] = (
            out["outbox_group_put_fetch_ack_per_s"] / out["persist_queue_put_get_ack_per_s"]
        )
        out["ratio_single_vs_persist_queue"] = (
            out["outbox_single_put_fetch_ack_per_s"] / out["persist_queue_put_get_ack_per_s"]
        )

        del few, many
        with Mosquitto(tls=True, max_inflight=0, persistence=False) as broker:
            if args.cpu is not None:
                os.sched_setaffinity(0, {args.cpu})  # after the broker started: it keeps every core
            if args.gc_threshold:
                import gc

                gc.set_threshold(args.gc_threshold, 50, 100)
                out["gc_threshold"] = args.gc_threshold
            out["drain_plain"] = asyncio.run(drain(folder, args.backlog, args.devices, broker, tls=False))
            out["drain_tls"] = asyncio.run(drain(folder, args.backlog, args.devices, broker, tls=True))
            if not args.no_baseline:
                from gateway_e2e import paho_alone

                size = 256  # about the size of one uplink in the json format
                rate, cpu = paho_alone(broker.port, min(args.backlog, 30000), b"x" * size, threaded=False)
                out["paho_alone_plain"] = {"msg_per_s": rate, "cpu_us_per_msg": cpu, "bytes": size}
        with Mosquitto(persistence=False) as default_broker:  # Mosquitto's default Receive Maximum (20)
            small = max(5000, args.backlog // 10)
            out["drain_plain_default_broker"] = asyncio.run(
                drain(folder, small, args.devices, default_broker, tls=False)
            )

    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"SQLite {out['sqlite']}, {out['cpus']} CPUs, load average {out['load']:.1f}; WAL + synchronous=FULL"
    )
    print(
        f"  persist-queue SQLiteAckQueue put+get+ack      {out['persist_queue_put_get_ack_per_s']:10,.0f} /s"
    )
    print(
        f"  outbox put+fetch+ack, one per commit         {out['outbox_single_put_fetch_ack_per_s']:10,.0f} /s"
        f"   ({out['ratio_single_vs_persist_queue']:.1f}x)"
    )
    print(
        f"  outbox put+fetch+ack, group commit            {out['outbox_group_put_fetch_ack_per_s']:10,.0f} /s"
        f"   ({out['ratio_group_vs_persist_queue']:.1f}x persist-queue)"
    )
    for key, label in (
        ("drain_plain", "plain TCP"),
        ("drain_tls", "TLS"),
        ("drain_plain_default_broker", "plain TCP, broker Receive Maximum 20"),
    ):
        if key not in out:
            continue
        r = out[key]
        print(
            f"  drain of a backlog to Mosquitto, QoS 1, {label:<38} {r['msg_per_s']:8,.0f} msg/s"
            f"  ({r['cpu_us_per_msg']:.0f} us CPU/msg in the gateway = {1e6 / r['cpu_us_per_msg']:,.0f} msg/s"
            f" per free core; window {r['window']};"
            f" {r['commits']:,} commits, {r['acked'] / max(r['commits'], 1):,.0f} acks/commit)"
        )
    if "paho_alone_plain" in out:
        r = out["paho_alone_plain"]
        print(
            f"  baseline: paho-mqtt alone, one thread driving loop(), QoS 1, {r['bytes']} B"
            f"{'':<13} {r['msg_per_s']:8,.0f} msg/s  ({r['cpu_us_per_msg']:.0f} us CPU/msg)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
