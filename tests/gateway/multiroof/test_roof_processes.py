"""Three roof processes on one real redis-server, each with its own simulated concentrator over real UDP
(GWMP), nodes heard by two or three of them: each uplink stored once, one join-accept per join, one
downlink per command, counters consistent after a roof is SIGKILLed (inside a dedup window) and restarted."""

from __future__ import annotations

import base64
import time
from collections import Counter
from pathlib import Path

from support.redis import RedisServer

from havel.gateway.network.shared.connection import StoreSettings, connect
from havel.gateway.network.shared.state import SharedState

from .helpers import abp_node, battery_known, read_records
from .roofs import Concentrator, RoofProcess, command_downlinks, join_accepts

GWS = {"roof-a": 0xAA00000000000001, "roof-b": 0xBB00000000000001, "roof-c": 0xCC00000000000001}
# which roofs hear each node, with the SNR each hears it with
HEARD = [
    {"roof-a": 5.0, "roof-b": -2.0},
    {"roof-b": 7.0, "roof-c": 1.0},
    {"roof-a": -4.0, "roof-c": 3.0},
    {"roof-a": 2.0, "roof-b": 8.0, "roof-c": -6.0},
    {"roof-a": 9.0, "roof-b": 0.5, "roof-c": 4.5},
]
JOINER_HEARD = {"roof-a": 2.0, "roof-c": 6.0}


def wait_for(pred, timeout_s: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_three_roof_processes_store_each_uplink_once_through_a_kill(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    shared = SharedState(connect(StoreSettings(redis_server.url)))
    nodes = [abp_node(30 + i) for i in range(len(HEARD))]
    joiner = abp_node(40)
    joiner.otaa = True
    for n in [*nodes, joiner]:
        shared.put_device(n.device())
        battery_known(shared, n.dev_eui)
    shared.queue_command(nodes[0].dev_eui, {"fport": 7, "data": "01"})
    shared.queue_command(nodes[3].dev_eui, {"fport": 7, "data": "02"})
    roofs = {name: RoofProcess(name, redis_server.url, tmp_path, duty=1.0) for name in GWS}
    concs: dict[str, Concentrator] = {}
    try:
        for name, r in roofs.items():
            r.start()
            concs[name] = Concentrator(GWS[name], r.port)
        assert wait_for(lambda: all(c.downlinks is not None for c in concs.values()))
        time.sleep(0.7)  # every concentrator's PULL_DATA reached its roof (sent every 0.5 s)

        def records() -> list[dict]:  # type: ignore[type-arg]
            return [rec for r in roofs.values() for rec in read_records(r.db)]

        # the join, heard by A and C: one join-accept, through C (best SNR)
        jr = joiner.join_request()
        for name, snr in JOINER_HEARD.items():
            concs[name].hear(jr, snr)
        assert wait_for(lambda: sum(len(c.downlinks) for c in concs.values()) == 1)
        (txpk,) = concs["roof-c"].downlinks
        joiner.take_join_accept(base64.b64decode(txpk["data"]))
        everyone = [*zip(nodes, HEARD, strict=True), (joiner, JOINER_HEARD)]

        expected: set[str] = set()
        for rnd in range(8):
            for n, heard in everyone:
                frame = n.uplink()
                epoch = 1 if n is joiner else 0
                expected.add(f"{n.dev_eui:016X}-{epoch}-{n.fcnt}")
                for name, snr in heard.items():
                    concs[name].hear(frame, snr)
            if rnd == 3:
                roofs["roof-b"].kill()  # inside the dedup window of the frames it just took
            if rnd == 5:
                roofs["roof-b"].start()
                time.sleep(0.7)
            got = {rec["id"] for rec in records() if "fcnt" in rec}
            assert wait_for(lambda: expected <= {rec["id"] for rec in records() if "fcnt" in rec}, 30), (
                sorted(expected - got)
            )
        ids = Counter(rec["id"] for rec in records() if "fcnt" in rec)
        assert set(ids) == expected
        assert [i for i, k in ids.items() if k > 1] == []  # every uplink once, whichever roof stored it
        for n in [*nodes, joiner]:
            dev = shared.device(n.dev_eui)
            assert dev is not None and dev.session is not None and dev.session.fcnt_up == 8
        # one join-accept and one downlink per command, each through one roof (node 3 is heard best by B,
        # node 0 by A); the other data downlinks carry MAC commands alone
        assert wait_for(lambda: len(command_downlinks(concs)) == 2, 10)
        time.sleep(0.5)
        assert join_accepts(concs) == 1
        assert sorted((name, d.dev_addr) for name, d in command_downlinks(concs)) == sorted(
            [("roof-a", nodes[0].dev_addr), ("roof-b", nodes[3].dev_addr)]
        )
    finally:
        for c in concs.values():
            c.close()
        for r in roofs.values():
            r.stop()


def test_a_roof_process_survives_bad_datagrams(redis_server: RedisServer, tmp_path: Path) -> None:
    import json as _json
    import socket

    from havel.gateway.backends.semtech_udp import gwmp

    shared = SharedState(connect(StoreSettings(redis_server.url)))
    node = abp_node(70)
    shared.put_device(node.device())
    roof = RoofProcess("roof-a", redis_server.url, tmp_path)
    roof.start()
    conc = Concentrator(GWS["roof-a"], roof.port)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            head = gwmp.encode_push_data(2, 1, GWS["roof-a"], rxpk=[])[:12]
            for bad in (
                b"\x02",  # truncated
                head + b"{not json",
                head + _json.dumps({"rxpk": 5}).encode(),  # rxpk not a list
                head + _json.dumps({"rxpk": [{"tmst": "x"}, 7]}).encode(),  # broken rxpk entries
            ):
                s.sendto(bad, ("127.0.0.1", roof.port))
        # a damaged session behind the DevAddr does not stop the roof either
        redis_server.client().sadd(f"havel:addr:{node.dev_addr:08X}", "70B3D57ED0000777")
        redis_server.client().set("havel:dev:70B3D57ED0000777", "not a hash")
        conc.hear(node.uplink(), 3.0)
        assert wait_for(lambda: len(read_records(roof.db)) == 1, 20)
        assert roof.proc is not None and roof.proc.poll() is None
        assert "left out" in roof.log.read_text()
    finally:
        conc.close()
        roof.stop()
