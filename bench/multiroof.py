"""Several roofs sharing one Redis, measured against one roof on SQLite.

Usage: .venv/bin/python bench/multiroof.py [--uplinks 3000] [--devices 100] [--batch 50] [--json]

Everything is real but the radio: a redis-server on loopback (append-only file, fsync every second, as
docs/multiroof.md recommends), three roofs in this process, each with its own SQLite outbox and network
server, every uplink heard by all three (a copy per roof); the baseline is one roof with the SQLite registry
(no Redis). The dedup window is 0 here, so the figures are the processing cost, not the window.

1. Uplinks/s across the three roofs (the frames stored once, each with three copies), and for one roof.
2. Added latency per uplink: from the first copy's receive to the stored message (lock, copy list, merge,
   the shared script at commit), median and p99, three roofs against one roof; one uplink at a time.
3. Partition: a relay between one roof and Redis is cut while uplinks flow every 20 ms: the time until
   the roof works from its cache (``fallback``), and after the relay is restored, the time until it is
   online again (it retries every 250 ms, as the roof process does; counters reconciled on the way).
4. The daemons end to end: three ``havel gateway run`` processes on the one Redis, each with a simulated
   concentrator over real UDP (GWMP), every uplink heard by all three, against one daemon on SQLite: the
   uplinks/s from the first PUSH_DATA until the last message is in the sinks' files (the intake journal,
   the 200 ms dedup window, the outbox and the delivery included), sent in rounds of one frame per device
   0.25 s apart (so at most devices / 0.25 s). ``--daemon-uplinks 0`` leaves it out.

The machine is shared by several people; figures vary by tens of percent between runs. Asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.redis import Gate, RedisServer  # noqa: E402

# the multi-roof tests' in-process roofs (loaded by path: this script's own name is "multiroof")
_spec = importlib.util.spec_from_file_location(
    "multiroof_helpers", REPO / "tests/gateway/multiroof/helpers.py"
)
assert _spec is not None and _spec.loader is not None
_helpers = importlib.util.module_from_spec(_spec)
sys.modules["multiroof_helpers"] = _helpers  # (dataclasses look their module up)
_spec.loader.exec_module(_helpers)
NOW, RoofUnderTest, abp_node, copy = _helpers.NOW, _helpers.RoofUnderTest, _helpers.abp_node, _helpers.copy

from support.gateway_run import GatewayProcess, free_tcp_port, write_config  # noqa: E402

_spec = importlib.util.spec_from_file_location("multiroof_roofs", REPO / "tests/gateway/multiroof/roofs.py")
assert _spec is not None and _spec.loader is not None
_roofs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_roofs)
Concentrator, free_udp_port = _roofs.Concentrator, _roofs.free_udp_port

from havel.gateway import db  # noqa: E402
from havel.gateway.config import NetworkConfig  # noqa: E402
from havel.gateway.network.server import NetworkServer  # noqa: E402
from havel.gateway.outbox import Outbox  # noqa: E402
from havel.gateway.registry import Registry  # noqa: E402

GWS = (0xAA00000000000001, 0xBB00000000000001, 0xCC00000000000001)


def single_roof(tmp: Path, nodes: list[Any]) -> tuple[NetworkServer, Any]:
    conn = db.open_db(tmp / "single.db")
    reg = Registry(conn)
    with reg.transaction():
        for n in nodes:
            reg.add(n.device())
    ns = NetworkServer(reg, Outbox(conn, sinks=["primary"]), replace(NetworkConfig(), dedup_window_ms=0))
    return ns, conn


def throughput(args: argparse.Namespace, tmp: Path, url: str) -> dict[str, float]:
    nodes = [abp_node(1000 + i) for i in range(args.devices)]
    roofs = [RoofUnderTest(f"roof-{i}", url, tmp, window_ms=0) for i in range(3)]
    for n in nodes:
        roofs[0].shared.put_device(n.device())
    rng = random.Random(1)
    frames = [rng.choice(nodes).uplink() for _ in range(args.uplinks)]
    t0 = time.perf_counter()
    for i in range(0, len(frames), args.batch):
        for f in frames[i : i + args.batch]:
            for r, gw in zip(roofs, GWS, strict=True):
                r.hear(gw, f, snr=rng.uniform(-5, 10))
        for r in roofs:
            r.flush()
    multi = len(frames) / (time.perf_counter() - t0)
    stored = sum(len(r.records()) for r in roofs)
    # the same frames through one roof on SQLite (new counters: fresh nodes with the same keys)
    nodes1 = [abp_node(1000 + i) for i in range(args.devices)]
    ns, _ = single_roof(tmp, nodes1)
    rng = random.Random(1)
    frames1 = [rng.choice(nodes1).uplink() for _ in range(args.uplinks)]
    mono = 0.0
    t0 = time.perf_counter()
    for i in range(0, len(frames1), args.batch):
        for f in frames1[i : i + args.batch]:
            ns.receive(copy(GWS[0], f, snr=5.0), mono)
        mono += 1.0
        ns.flush(mono, NOW)
    single = len(frames1) / (time.perf_counter() - t0)
    return {"three_roofs_uplinks_s": multi, "one_roof_uplinks_s": single, "stored_three_roofs": stored}


def latency(args: argparse.Namespace, tmp: Path, url: str) -> dict[str, float]:
    n = min(args.uplinks, 1000)
    node = abp_node(2000)
    roofs = [RoofUnderTest(f"lat-{i}", url, tmp, window_ms=0) for i in range(3)]
    roofs[0].shared.put_device(node.device())
    multi: list[float] = []
    for _ in range(n):
        f = node.uplink()
        t0 = time.perf_counter()
        for r, gw in zip(roofs, GWS, strict=True):
            r.hear(gw, f, snr=1.0)
        for r in roofs:
            r.flush()
        multi.append(time.perf_counter() - t0)
    node1 = abp_node(2000)
    (tmp / "lat").mkdir()
    ns, _ = single_roof(tmp / "lat", [node1])
    single: list[float] = []
    mono = 0.0
    for _ in range(n):
        f = node1.uplink()
        t0 = time.perf_counter()
        ns.receive(copy(GWS[0], f, snr=1.0), mono)
        mono += 1.0
        ns.flush(mono, NOW)
        single.append(time.perf_counter() - t0)

    def q(xs: list[float], p: float) -> float:
        return statistics.quantiles(xs, n=100)[int(p) - 1] * 1000

    return {
        "three_roofs_median_ms": statistics.median(multi) * 1000,
        "three_roofs_p99_ms": q(multi, 99),
        "one_roof_median_ms": statistics.median(single) * 1000,
        "one_roof_p99_ms": q(single, 99),
        "added_median_ms": (statistics.median(multi) - statistics.median(single)) * 1000,
        "added_p99_ms": q(multi, 99) - q(single, 99),
    }


def partition(tmp: Path, server: RedisServer) -> dict[str, float]:
    node = abp_node(3000)
    with Gate(server.port) as gate:
        roof = RoofUnderTest("part", gate.url, tmp, window_ms=0)
        roof.shared.put_device(node.device())
        roof.store.warm()

        def uplink() -> None:
            roof.hear(GWS[0], node.uplink(), snr=1.0)
            roof.flush()

        for _ in range(5):
            uplink()
        t0 = time.monotonic()
        gate.cut()
        while roof.store.online:
            uplink()
            time.sleep(0.02)
        to_fallback = time.monotonic() - t0
        for _ in range(5):
            uplink()
        t1 = time.monotonic()
        gate.restore()
        next_tick = t1
        while True:
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + 0.25
                if roof.roof.tick(now):
                    break
            uplink()
            time.sleep(0.02)
        back = time.monotonic() - t1
    return {"cut_to_fallback_s": to_fallback, "restored_to_online_s": back}


def _daemon(folder: Path, name: str, network: dict[str, Any]) -> tuple[GatewayProcess, int, Path]:
    folder.mkdir()
    out = folder / "out.jsonl"
    port, http = free_udp_port(), free_tcp_port()
    path = write_config(
        folder,
        sinks=[{"type": "file", "path": str(out)}],
        gateway_id=name,
        udp_port=port,
        http_port=http,
        network=network,
    )
    return GatewayProcess(path, http), port, out


def _delivered(files: list[Path]) -> int:
    n = 0
    for f in files:
        if f.exists():
            n += sum(1 for line in f.read_text().splitlines() if '"fcnt"' in line)
    return n


def _drive(n: int, nodes: list[Any], concs: list[Any], files: list[Path]) -> float:
    """Uplinks/s: ``n`` frames heard by every concentrator, until all are in the sinks' files. The frames go
    in rounds, one per device, 0.25 s apart: a class A device cannot send again before its receive windows
    closed (2 s), and two frames of one device inside one dedup window, claimed by two roofs, could commit
    out of order (the later counter first: the earlier frame would be refused as a replay)."""
    rng = random.Random(4)
    t0 = time.perf_counter()
    sent = 0
    while sent < n:
        for node in rng.sample(nodes, min(len(nodes), n - sent)):
            f = node.uplink()
            for c in concs:
                c.hear(f, rng.uniform(-5, 10))
            sent += 1
            if sent % 20 == 0:
                time.sleep(0.005)  # (a datagram per reception: keep the socket buffers from overflowing)
        time.sleep(0.25)
    deadline = time.monotonic() + 120
    while _delivered(files) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return _delivered(files) / (time.perf_counter() - t0)


def daemons(args: argparse.Namespace, tmp: Path, server: RedisServer) -> dict[str, float]:
    from havel.gateway.registry import Registry

    base = tmp / "daemons"
    base.mkdir()
    server.client().flushall()
    nodes = [abp_node(4000 + i) for i in range(args.devices)]
    shared = RoofUnderTest("loader", server.url, base, window_ms=0).shared
    for n in nodes:
        shared.put_device(n.device())
    procs: list[GatewayProcess] = []
    concs: list[Any] = []
    try:
        files = []
        for i in range(3):
            name = f"roof-{i}"
            proc, port, out = _daemon(base / name, name, {"store": server.url, "roof": name})
            proc.start()
            procs.append(proc)
            concs.append(Concentrator(GWS[i], port))
            files.append(out)
        time.sleep(1.0)  # every concentrator's PULL_DATA reached its daemon
        multi = _drive(args.daemon_uplinks, nodes, concs, files)
    finally:
        for c in concs:
            c.close()
        for p in procs:
            p.terminate()
    nodes1 = [abp_node(4000 + i) for i in range(args.devices)]
    proc, port, out = _daemon(base / "single", "single", {})
    data = base / "single" / "data"
    data.mkdir()
    conn = db.open_db(data / "havel.db")
    reg = Registry(conn)
    with reg.transaction():
        for n in nodes1:
            reg.add(n.device())
    conn.close()
    conc = Concentrator(GWS[0], port)
    try:
        proc.start()
        time.sleep(1.0)
        single = _drive(args.daemon_uplinks, nodes1, [conc], [out])
    finally:
        conc.close()
        proc.terminate()
    return {"three_daemons_uplinks_s": multi, "one_daemon_uplinks_s": single}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uplinks", type=int, default=3000)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--daemon-uplinks", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d, RedisServer(appendonly=True) as server:
        tmp = Path(d)
        out["throughput"] = throughput(args, tmp, server.url)
        out["latency"] = latency(args, tmp, server.url)
        out["partition"] = partition(tmp, server)
        if args.daemon_uplinks:
            out["daemons"] = daemons(args, tmp, server)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    t, lat, p = out["throughput"], out["latency"], out["partition"]
    print(
        "uplinks/s, three roofs sharing one Redis (each heard by all three): "
        f"{t['three_roofs_uplinks_s']:.0f}"
    )
    print(f"uplinks/s, one roof on SQLite:                                    {t['one_roof_uplinks_s']:.0f}")
    print(
        f"latency per uplink, three roofs: median {lat['three_roofs_median_ms']:.2f} ms, p99 "
        f"{lat['three_roofs_p99_ms']:.2f} ms; one roof: median {lat['one_roof_median_ms']:.2f} ms, p99 "
        f"{lat['one_roof_p99_ms']:.2f} ms; added: median {lat['added_median_ms']:.2f} ms, "
        f"p99 {lat['added_p99_ms']:.2f} ms (plus the dedup window, 200 ms by default, on both)"
    )
    print(
        f"partition: cut -> fallback {p['cut_to_fallback_s'] * 1000:.0f} ms (refused connection; a silent "
        f"one takes the store timeout); restored -> online {p['restored_to_online_s'] * 1000:.0f} ms"
    )
    if "daemons" in out:
        dm = out["daemons"]
        print(
            "end to end through havel gateway run: three daemons on Redis "
            f"{dm['three_daemons_uplinks_s']:.0f} uplinks/s, one daemon on SQLite "
            f"{dm['one_daemon_uplinks_s']:.0f} uplinks/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
