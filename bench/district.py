"""A district's worth of nodes: 10,000 devices and a day's broker outage behind the gateway.

Usage: .venv/bin/python bench/district.py [--devices 10000] [--backlog 1000000] [--uplinks 2000]
       [--old-import] [--json]

What it measures, next to the goals (nothing is asserted):

1. ``havel device import`` of ``--devices`` ABP devices from a JSON file (the command as a volunteer runs it,
   interpreter start included). ``--old-import`` also times one transaction per device (how the command
   stored them before: an fsync and a cache rebuild for each), into a database of its own.
2. The backlog of a 24-hour broker outage: ``--backlog`` uplink records put straight into the outbox (as the
   network server stores them, 5,000 a commit; far faster than sending them over UDP, and the same rows).
3. ``havel gateway run`` started on that database with the broker down: start-up time (from the process's
   start to its first answer on /status) and resident memory (VmRSS, sampled every 0.1 s) while idle.
4. Storing: ``--uplinks`` uplinks over UDP (GWMP, one rxpk per PUSH_DATA, 200/s) with the broker still
   down; peak resident memory.
5. Draining: the broker comes back (a real Mosquitto); the time from the daemon's first acknowledgement to
   an empty outbox gives records/s; peak resident memory; a persistent QoS 1 subscriber counts the distinct
   message ids it received, so that a lost record shows.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gateway_e2e import (  # noqa: E402
    ADDR0,
    APP,
    EUI0,
    NWK,
    REPO,
    Mosquitto,
    free_port,
    rxpk_of,
    status,
    uplink_frame,
)
from support.outbox_records import uplink  # noqa: E402

from havel.gateway import db  # noqa: E402
from havel.gateway.backends.semtech_udp import gwmp  # noqa: E402
from havel.gateway.outbox import Outbox  # noqa: E402
from havel.gateway.registry import Registry  # noqa: E402
from havel.gateway.registry_io import parse_import  # noqa: E402

GW = 0xAA555A0000D15701
GOALS = {"import_s": 5.0, "startup_s": 3.0, "rss_mb": 64.0, "drain_per_s": 5000.0}


def device_file(path: Path, n: int) -> None:
    """``n`` ABP temperature devices in the import format (DevEUI EUI0+i, DevAddr ADDR0+i: the devices
    :func:`gateway_e2e.uplink_frame` sends for)."""
    path.write_text(
        json.dumps(
            [
                {
                    "name": f"node-{i}",
                    "dev_eui": f"{EUI0 + i:016X}",
                    "codec": "temperature",
                    "activation": "abp",
                    "dev_addr": f"{ADDR0 + i:08X}",
                    "nwk_s_key": NWK.hex().upper(),
                    "app_s_key": APP.hex().upper(),
                }
                for i in range(n)
            ]
        )
    )


def timed_import(data: Path, devices: Path) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "havel", "device", "import", "--data-dir", str(data), str(devices)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    return time.perf_counter() - t


def one_transaction_each(folder: Path, devices: Path) -> float:
    reg = Registry(db.open_db(folder / "havel.db"))
    parsed = parse_import(devices.read_bytes(), devices.name)
    t = time.perf_counter()
    for d in parsed:
        reg.add(d)
    dt = time.perf_counter() - t
    reg.conn.close()
    return dt


def fill_backlog(path: Path, n: int, devices: int) -> float:
    conn = db.open_db(path)
    ob = Outbox(conn, sinks=["platform"])
    t = time.perf_counter()
    for k in range(0, n, 5000):
        ob.put_many([uplink(i % devices, 1_000_000 + i // devices) for i in range(k, min(n, k + 5000))])
    dt = time.perf_counter() - t
    conn.close()
    return dt


class RssSampler:
    """VmRSS of a process every 0.1 s; :meth:`phase` starts a new peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()

    def sample(self) -> None:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        m = re.search(r"VmRSS:\s+(\d+) kB", text)
        if m:
            self.last = int(m.group(1)) * 1024
            self.peak = max(self.peak, self.last)

    def phase(self) -> int:
        """The peak since the last call (bytes); starts the next."""
        self.sample()
        peak, self.peak = self.peak, self.last
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Subscriber:
    """A persistent-session QoS 1 subscriber to every uplink, counting distinct message ids."""

    ID = re.compile(rb'"id":\s*"([^"]+)"')

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.ids: set[bytes] = set()
        self.messages = 0
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="district-bench", clean_session=False
        )
        self.client.on_connect = lambda c, *_: c.subscribe("havel/+/devices/+/up", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1.0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        self.messages += 1
        m = self.ID.search(msg.payload)
        if m:
            self.ids.add(m.group(1))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def start_daemon(tmp: Path, udp: int, http: int, broker_port: int) -> tuple[subprocess.Popen[bytes], float]:
    """``havel gateway run`` with an MQTT sink to ``broker_port``; returns the process and the seconds from
    its start to its first answer on /status."""
    cfg = tmp / "gateway.toml"
    cfg.write_text(f"""
[gateway]
id = "district"
data_dir = "{tmp / "data"}"
[udp]
port = {udp}
max_datagrams_per_s = 1000000
[http]
port = {http}
[log]
level = "warning"
[outbox]
quota_mb = 0
[[sink]]
type = "mqtt"
name = "platform"
host = "127.0.0.1"
port = {broker_port}
tls = false
""")
    log = open(tmp / "gateway.log", "wb")  # noqa: SIM115 (the daemon writes to it until it stops)
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "havel", "gateway", "run", "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            status(http)
            return proc, time.perf_counter() - t
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"gateway did not come up: {(tmp / 'gateway.log').read_text()[-2000:]}")
        time.sleep(0.02)


def send_uplinks(udp: int, n: int, devices: int, rate: float) -> int:
    """``n`` uplinks at ``rate``/s, one rxpk per PUSH_DATA; returns how many were acknowledged."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", udp))
    sock.settimeout(5)
    acked = 0
    start = time.perf_counter()
    for k in range(n):
        pause = start + k / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        rxpk = rxpk_of(uplink_frame(k, devices), tmst=1000 + k * 997)
        sock.send(gwmp.encode_push_data(2, k & 0xFFFF, GW, rxpk=[rxpk]))
        try:
            sock.recv(16)
            acked += 1
        except TimeoutError:
            pass
    sock.close()
    return acked


def depth(http: int) -> int:
    return int(status(http)["outbox"]["depth"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--backlog", type=int, default=1_000_000)
    ap.add_argument("--uplinks", type=int, default=2000)
    ap.add_argument("--old-import", action="store_true", help="also time one transaction per device")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, Any] = {"devices": args.devices, "backlog": args.backlog, "goals": GOALS}
    tmp = Path(tempfile.mkdtemp(prefix="havel-bench-district-"))
    try:
        devices = tmp / "devices.json"
        device_file(devices, args.devices)
        out["import_s"] = timed_import(tmp / "data", devices)
        if args.old_import:
            (tmp / "old").mkdir()
            out["import_one_transaction_each_s"] = one_transaction_each(tmp / "old", devices)
        out["backlog_fill_s"] = fill_backlog(tmp / "data" / "havel.db", args.backlog, args.devices)
        udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
        with Mosquitto(max_queued=args.backlog + args.uplinks + 10_000) as broker:
            broker.start()
            sub = Subscriber(broker.port)
            time.sleep(0.5)  # (its subscription is in the broker's session before the outage)
            broker.stop()
            proc, out["startup_s"] = start_daemon(tmp, udp, http, broker.port)
            rss = RssSampler(proc.pid)
            try:
                time.sleep(3.0)
                out["rss_idle_mb"] = rss.phase() / 2**20
                out["uplinks_acked"] = send_uplinks(udp, args.uplinks, args.devices, 200.0)
                time.sleep(1.0)
                out["depth_before_drain"] = depth(http)
                out["rss_storing_mb"] = rss.phase() / 2**20
                acked0 = status(http)["sinks"]["platform"]["acked"]
                broker.start()
                deadline = time.monotonic() + 3600
                while status(http)["sinks"]["platform"]["acked"] == acked0:
                    if time.monotonic() > deadline:
                        raise SystemExit("the drain did not start")
                    time.sleep(0.01)
                t = time.perf_counter()
                while depth(http) > 0:
                    if time.monotonic() > deadline:
                        raise SystemExit("the drain did not finish within an hour")
                    time.sleep(0.1)
                dt = time.perf_counter() - t
                out["drained"] = out["depth_before_drain"]
                out["drain_per_s"] = out["depth_before_drain"] / dt
                out["rss_draining_mb"] = rss.phase() / 2**20
                deadline = time.monotonic() + 60
                while len(sub.ids) < out["depth_before_drain"] and time.monotonic() < deadline:
                    time.sleep(0.2)
                out["subscriber_distinct_ids"] = len(sub.ids)
                out["subscriber_messages"] = sub.messages
            finally:
                rss.stop()
                sub.close()
                proc.terminate()
                proc.wait(60)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
        return 0
    g = GOALS

    def line(what: str, value: str, goal: str) -> None:
        print(f"  {what:<52} {value:>14}   goal {goal}")

    print(f"{args.devices:,} ABP devices, {args.backlog:,} records waiting (a broker outage), then the drain")
    line("havel device import", f"{out['import_s']:.2f} s", f"< {g['import_s']:g} s")
    if "import_one_transaction_each_s" in out:
        line("  (one transaction per device, as before)", f"{out['import_one_transaction_each_s']:.2f} s", "")
    line("filling the outbox (bench setup)", f"{out['backlog_fill_s']:.1f} s", "")
    line(
        "start-up with the backlog (to the first /status)",
        f"{out['startup_s']:.2f} s",
        f"< {g['startup_s']:g} s",
    )
    line("resident memory, idle", f"{out['rss_idle_mb']:.1f} MB", f"<= {g['rss_mb']:g} MB")
    line(
        f"resident memory, storing ({out['uplinks_acked']} uplinks acknowledged)",
        f"{out['rss_storing_mb']:.1f} MB",
        f"<= {g['rss_mb']:g} MB",
    )
    line("resident memory, draining", f"{out['rss_draining_mb']:.1f} MB", f"<= {g['rss_mb']:g} MB")
    line(
        f"drain of {out['drained']:,} records",
        f"{out['drain_per_s']:,.0f} /s",
        f">= {g['drain_per_s']:,.0f} /s",
    )
    line(
        "distinct message ids the subscriber got",
        f"{out['subscriber_distinct_ids']:,}",
        f"= {out['drained']:,} (nothing lost)",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
