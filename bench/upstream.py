"""The latency upstream mode adds to an uplink on its way to the network server.

Usage: .venv/bin/python bench/upstream.py [--uplinks 500] [--json]

A real roof daemon (in this process, on its own event loop thread) with ``[upstream]`` pointing at a UDP
socket that stands for the network server; a scripted packet forwarder sends one PUSH_DATA at a time (a
data frame of a device the roof does not know, so it goes up untouched) and the time from its send to its
arrival at the server's socket is measured. The baseline is the same datagram sent straight to that socket,
so the difference is what the roof adds (parsing, routing, the forward). Both on loopback.

Also measured: the same for a followed device's frame (ABP, in ``follow``), whose reading the roof also
verifies, decodes and stores (its outbox commit) before or after the forward: what the extra work costs.

The machine is shared by several people; figures vary by tens of percent between runs. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.gateway_run import InProcessGateway, write_config  # noqa: E402

from havel.codecs.lorawan import phy  # noqa: E402
from havel.gateway import config, db  # noqa: E402
from havel.gateway.network.sessions import Device, Session  # noqa: E402
from havel.gateway.registry import Registry  # noqa: E402

GW_EUI = bytes.fromhex("AA555A0000000101")
NWK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
APP = bytes.fromhex("F0E0D0C0B0A090807060504030201000")
STRANGER_ADDR = 0x26011234
FOLLOWED_ADDR = 0x26014444
FOLLOWED_EUI = 0x70B3D57ED0000044
IDLE_S = 0.03  # after each uplink: the roof's journal group commit (8 ms) and outbox commit are done


def frame(dev_addr: int, fcnt: int) -> bytes:
    return phy.build_data_frame(
        uplink=True,
        confirmed=False,
        dev_addr=dev_addr,
        fcnt32=fcnt,
        fport=1,
        payload=bytes.fromhex("1200f1013d4cba"),
        nwk_s_key=NWK,
        app_s_key=APP,
    )


def push(token: int, data: bytes, tmst: int) -> bytes:
    import base64

    rxpk = {
        "tmst": tmst,
        "chan": 0,
        "rfch": 0,
        "freq": 868.1,
        "stat": 1,
        "modu": "LORA",
        "datr": "SF7BW125",
        "codr": "4/5",
        "rssi": -87,
        "lsnr": 7.5,
        "size": len(data),
        "data": base64.b64encode(data).decode(),
    }
    return b"\x02" + token.to_bytes(2, "big") + b"\x00" + GW_EUI + json.dumps({"rxpk": [rxpk]}).encode()


def stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "median_ms": round(statistics.median(s) * 1000, 3),
        "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1000, 3),
    }


def receive_push(server: socket.socket, want: bytes) -> float:
    """Wait for the PUSH_DATA carrying ``want`` (answering every datagram as a server does)."""
    while True:
        d, addr = server.recvfrom(65536)
        at = time.perf_counter()
        if len(d) >= 4 and d[3] in (0, 2):  # PUSH_DATA / PULL_DATA: acknowledge, as a server does
            server.sendto(d[:3] + (b"\x01" if d[3] == 0 else b"\x04"), addr)
        if d[3] == 0 and want in d:
            return at


def run(n: int) -> dict[str, Any]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(10)
    port = server.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        extra = (
            f'\n[upstream]\nfollow = ["{FOLLOWED_EUI:016X}"]\n[[upstream.server]]\nname = "city"\n'
            f'host = "127.0.0.1"\nport = {port}\nkeepalive_s = 60\ndown_after_s = 600\n'
        )
        cfg = config.load(
            write_config(folder, sinks=[{"type": "file", "path": str(folder / "out.jsonl")}], extra=extra)
        )
        conn = db.open_db(cfg.db_path)
        reg = Registry(conn)
        with reg.transaction():
            reg.add(Device("f", FOLLOWED_EUI, "temperature", "abp", session=Session(FOLLOWED_ADDR, NWK, APP)))
        conn.close()
        fwd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fwd.bind(("127.0.0.1", 0))
        out: dict[str, Any] = {"uplinks": n}
        with InProcessGateway(cfg) as roof:
            direct, via, followed = [], [], []
            token = 0
            # one uplink at a time with the roof idle in between (its commits of the previous frame done),
            # so each figure is one frame's own path; the first 20 warm up (sockets, caches)
            for i in range(n + 20):
                token = (token + 1) & 0xFFFF
                dg = push(token, frame(STRANGER_ADDR, i + 1), 1000 * i)
                t0 = time.perf_counter()
                server.sendto(dg, ("127.0.0.1", port))  # straight to the server: the baseline
                t1 = receive_push(server, dg[12:60])
                token = (token + 1) & 0xFFFF
                dg = push(token, frame(STRANGER_ADDR, 100_000 + i), 1000 * i + 1)
                t2 = time.perf_counter()
                fwd.sendto(dg, roof.udp)
                t3 = receive_push(server, dg[12:60])
                if i >= 20:
                    direct.append(t1 - t0)
                    via.append(t3 - t2)
                time.sleep(IDLE_S)
            for i in range(n + 20):
                token = (token + 1) & 0xFFFF
                dg = push(token, frame(FOLLOWED_ADDR, i + 1), 1000 * i + 2)
                t4 = time.perf_counter()
                fwd.sendto(dg, roof.udp)
                t5 = receive_push(server, dg[12:60])
                if i >= 20:
                    followed.append(t5 - t4)
                time.sleep(IDLE_S)
            out["direct"] = stats(direct)
            out["via_roof"] = stats(via)
            out["via_roof_followed"] = stats(followed)
            out["added"] = stats([v - d for v, d in zip(via, direct, strict=True)])
            out["added_followed"] = stats([v - d for v, d in zip(followed, direct, strict=True)])
        fwd.close()
    server.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uplinks", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = run(args.uplinks)
    if args.json:
        print(json.dumps(res))
        return
    print(f"{res['uplinks']} uplinks, one at a time, loopback")
    for key, label in (
        ("direct", "forwarder -> server directly"),
        ("via_roof", "forwarder -> roof -> server (device unknown to the roof)"),
        ("via_roof_followed", "forwarder -> roof -> server (followed device, decoded and stored too)"),
        ("added", "added by the roof (unknown device)"),
        ("added_followed", "added by the roof (followed device)"),
    ):
        r = res[key]
        print(f"  {label:<72} median {r['median_ms']:7.3f} ms   p99 {r['p99_ms']:7.3f} ms")


if __name__ == "__main__":
    main()
