"""`havel sim --roof ... --store ...`: the firmware's own node code (simulated) between three roof processes
on one real Redis, each node heard by one to three roofs' concentrators over real UDP: every node joins
once with one join-accept, every uplink is stored once whichever roof heard it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from support.redis import RedisServer

from havel.gateway.network.shared.connection import StoreSettings, connect
from havel.gateway.network.shared.state import SharedState

from .helpers import read_records
from .roofs import RoofProcess


def test_simulated_firmware_nodes_between_three_roofs(redis_server: RedisServer, tmp_path: Path) -> None:
    roofs = [RoofProcess(n, redis_server.url, tmp_path, duty=1.0) for n in ("roof-a", "roof-b", "roof-c")]
    try:
        for r in roofs:
            r.start()
        cmd = [
            sys.executable,
            "-m",
            "havel.cli",
            "sim",
            "--store",
            redis_server.url,
            "--nodes",
            "temperature=4",
        ]
        cmd += ["--speed", "600", "--duration", "10", "--json"]
        for r in roofs:
            cmd += ["--roof", f"127.0.0.1:{r.port}"]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
        joined = {e["dev_eui"] for e in events if e["event"] == "join"}
        assert len(joined) == 4  # every node joined through the roofs
        time.sleep(0.5)  # the last frames' dedup window
        records = [rec for r in roofs for rec in read_records(r.db)]
        ids = Counter(rec["id"] for rec in records)
        assert [i for i, n in ids.items() if n > 1] == []  # stored once, whichever roofs heard it
        joins = Counter(rec["dev_eui"] for rec in records if rec["id"].split("-")[1] == "join")
        accepts = Counter(tx["dev_eui"] for r in roofs for tx in r.sent if tx["kind"] == "join")
        assert joins == accepts and set(joins) == joined  # one join-accept per accepted join
        ups = [rec for rec in records if "fcnt" in rec]
        assert len(ups) >= 4 * 3
        # frames of nodes heard by several roofs list every roof's gateway
        assert max(len(rec["rx"]) for rec in ups) >= 2
        # the shared counters follow the stored uplinks
        shared = SharedState(connect(StoreSettings(redis_server.url)))
        for eui in joined:
            dev = shared.device(int(eui, 16))
            assert dev is not None and dev.session is not None
            assert dev.session.fcnt_up == max((u["fcnt"] for u in ups if u["dev_eui"] == eui), default=None)
            assert dev.session.epoch == joins[eui]
    finally:
        for r in roofs:
            r.stop()
