"""Downlink commands taken by a roof of a shared network (`SharedNetwork.submit`, what the daemon calls
for a command from MQTT): queued in the device's queue in Redis, or rejected with a reason; a damaged
device entry or an unreachable store rejects the command instead of failing the roof's storage."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from support.gateway_run import write_config
from support.redis import Gate, RedisServer

from havel.gateway import config, db
from havel.gateway.metrics import Metrics
from havel.gateway.network.shared.daemon import SharedNetwork
from havel.gateway.outbox import Outbox

from .helpers import abp_node


def network(tmp: Path, url: str, roof: str = "roof-a", **net: Any) -> SharedNetwork:
    folder = tmp / roof
    folder.mkdir(exist_ok=True)
    cfg = config.load(
        write_config(
            folder,
            network={"store": url, "roof": roof, "store_timeout_s": 0.5, "dedup_window_ms": 50, **net},
        )
    )
    conn = db.open_db(folder / "roof.db")
    return SharedNetwork(cfg, conn, Outbox(conn, sinks=["primary"]), Metrics())


def test_commands_are_queued_in_redis_or_rejected_by_reason(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    node = abp_node(60)
    with Gate(redis_server.port) as gate:
        net = network(tmp_path, gate.url)
        net.shared.put_device(node.device())
        eui = node.dev_eui

        def submit(body: object, dev_eui: int = eui) -> tuple[str, str]:
            p = net.submit(dev_eui, body)["payload"]
            return p["state"], p["detail"]

        assert submit({"fport": 7, "raw": "0102", "confirmed": True, "id": "c-1"}) == ("queued", "")
        (queued,) = net.shared.queued_commands(eui)
        stored = json.loads(queued)
        assert {k: stored[k] for k in ("fport", "data", "confirmed", "id", "eui", "name")} == {
            "fport": 7,
            "data": "0102",
            "confirmed": True,
            "id": "c-1",
            "eui": f"{eui:016X}",
            "name": node.name,
        }
        # it expires after the network's downlink_ttl_s (3600 s by default)
        assert 3590 < stored["exp"] - time.time() <= 3600
        # decoded data goes through the device's codec (temperature has no downlink on port 7)
        state, detail = submit({"fport": 7, "data": {"x": 1}})
        assert state == "rejected" and detail.startswith("bad_field")
        bads = ([1], {"fport": 0, "raw": "01"}, {"fport": 7}, {"fport": 7, "raw": "zz"}, {"fport": 7, "x": 1})
        for bad in bads:
            state, detail = submit(bad)
            assert state == "rejected" and detail.startswith("bad_field"), (bad, detail)
        state, detail = submit({"fport": 7, "raw": "01"}, eui + 1)
        assert state == "rejected" and detail.startswith("unknown_device")
        assert len(net.shared.queued_commands(eui)) == 1  # nothing rejected was queued
        # result ids differ per submission (the network's submission number)
        a, b = (net.submit(eui, {"fport": 7, "raw": "01", "id": "same"})["id"] for _ in range(2))
        assert a != b and a.endswith("-queued")
        # a damaged entry: rejected, named
        redis_server.client().set(f"havel:dev:{eui + 5:016X}", "not a hash")
        state, detail = submit({"fport": 7, "raw": "01"}, eui + 5)
        assert state == "rejected" and detail.startswith("damaged"), detail
        # the store cut off: rejected (a command kept only here could go out twice)
        gate.cut()
        state, detail = submit({"fport": 7, "raw": "01"})
        assert state == "rejected" and detail.startswith("storage"), detail
