"""``make demo ROOFS=2``: several roofs sharing one Redis, shown live.

Starts a redis-server of its own (a temporary folder, a free loopback port, nothing saved), N roof processes
(:mod:`.roofd`) and ``havel sim`` with one concentrator per roof, the simulated firmware nodes heard by one
to three roofs; then prints, per roof, what it stored and which downlinks it sent, and at the end that no
message id was stored twice. Needs ``redis-server`` (tools/bootstrap.d/redis.sh installs it)."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from havel.gateway.demo_support import free_port


def _records(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [json.loads(r[0]) for r in conn.execute("SELECT payload FROM outbox ORDER BY seq")]
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Several Havel roofs sharing one Redis, with simulated nodes.")
    ap.add_argument("--roofs", type=int, default=2, choices=range(2, 6))
    ap.add_argument("--nodes", default="temperature=3")
    ap.add_argument("--duration", type=float, default=30.0, help="real seconds")
    args = ap.parse_args(argv)
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        sys.stderr.write("redis-server is not installed (run tools/bootstrap.sh as root)\n")
        return 1
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="havel-roofs-") as d:
        tmp = Path(d)
        port = free_port(socket.SOCK_STREAM)
        conf = tmp / "redis.conf"
        conf.write_text(f'bind 127.0.0.1\nport {port}\ndir {tmp}\nsave ""\nappendonly no\n')
        url = f"redis://127.0.0.1:{port}/0"
        try:
            procs.append(subprocess.Popen([redis_server, str(conf)], stdout=subprocess.DEVNULL, text=True))
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            names = [f"roof-{chr(ord('a') + i)}" for i in range(args.roofs)]
            dbs, udp = {}, {}
            for name in names:
                udp[name] = free_port(socket.SOCK_DGRAM)
                dbs[name] = tmp / f"{name}.db"
                settings = tmp / f"{name}.json"
                settings.write_text(
                    json.dumps(
                        {"roof": name, "store": url, "udp_port": udp[name], "db": str(dbs[name]), "duty": 1.0}
                    )
                )
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "havel.gateway.network.shared.roofd", str(settings)],
                        stdout=subprocess.PIPE,
                        stderr=(tmp / f"{name}.log").open("w"),
                        text=True,
                    )
                )
                assert procs[-1].stdout is not None
                procs[-1].stdout.readline()  # {"ready": ...}
            print(f"{len(names)} roofs on one Redis ({url}): {', '.join(names)}")
            sim = [sys.executable, "-m", "havel.cli", "sim", "--store", url, "--nodes", args.nodes]
            sim += ["--duration", str(args.duration), "--speed", "600"]
            for name in names:
                sim += ["--roof", f"127.0.0.1:{udp[name]}"]
            simp = subprocess.Popen(sim, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            while simp.poll() is None:
                time.sleep(2)
                line = []
                for name in names:
                    recs = _records(dbs[name])
                    ups = sum(1 for r in recs if "fcnt" in r)
                    line.append(f"{name}: {ups} uplinks stored")
                print("  ".join(line), flush=True)
            time.sleep(0.5)
            ids: Counter[str] = Counter()
            for name in names:
                recs = _records(dbs[name])
                ids.update(r["id"] for r in recs)
                joins = sum(1 for r in recs if r["id"].split("-")[1] == "join")
                heard = Counter(len(r.get("rx", [])) for r in recs if "fcnt" in r)
                print(
                    f"{name}: {len(recs) - joins} uplinks and {joins} joins stored; copies per uplink "
                    f"{dict(sorted(heard.items()))}"
                )
            twice = [i for i, n in ids.items() if n > 1]
            print(f"message ids stored twice: {len(twice)} of {len(ids)}")
            return 0 if not twice else 1
        finally:
            for p in reversed(procs):
                if p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        p.kill()


if __name__ == "__main__":
    sys.exit(main())
