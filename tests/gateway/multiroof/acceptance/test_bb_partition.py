"""Black-box: two `havel gateway run` roofs on one real redis-server, one of them reaching it through a
TCP relay the test cuts (docs/multiroof.md, "When things fail")."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from support.redis import Gate

from .roofkit import LoraPacket, Roof, put_abp, wait_for, water_payload
from .test_bb_multiroof import EUIS, abp


def test_cut_roof_and_online_roof_store_one_frame_with_one_id(
    redis_server: Any, roofs: Callable[..., Roof], lora: LoraPacket
) -> None:
    """A frame heard by a roof cut off from Redis and by a roof that reaches it may come twice, with one
    id; the cut roof is degraded, and takes part again when Redis is reachable."""
    dev = abp(9)
    put_abp(redis_server.url, dev)
    with Gate(redis_server.port) as gate:
        a = roofs(redis_server.url, "roof-a", EUIS[0])
        b = roofs(gate.url, "roof-b", EUIS[1])
        phy = lora.uplink(dev, 1, water_payload(101))
        for roof in (a, b):
            roof.fwd.push_acked([roof.fwd.rxpk(phy)])
        wait_for(lambda: len(a.ups()) + len(b.ups()) >= 1, 10, "FCnt 1")
        time.sleep(1.5)
        assert len(a.ups()) + len(b.ups()) == 1
        gate.cut()
        phy = lora.uplink(dev, 2, water_payload(102))
        for roof in (a, b):
            roof.fwd.push_acked([roof.fwd.rxpk(phy)])
        wait_for(lambda: len(a.ups()) + len(b.ups()) >= 3, 10, "FCnt 2 from both roofs")
        ids = {r["id"] for r in a.ups() + b.ups() if r["fcnt"] == 2}
        assert ids == {f"{dev.dev_eui}-0-2"}
        st = b.status()
        assert st["shared_store"]["reachable"] is False and st["state"] == "degraded"
        assert a.status()["shared_store"]["reachable"] is True
        gate.restore()
        wait_for(lambda: b.status()["shared_store"]["reachable"] is True, 10, "roof-b back online")
        phy = lora.uplink(dev, 3, water_payload(103))
        for roof in (a, b):
            roof.fwd.push_acked([roof.fwd.rxpk(phy)])
        wait_for(lambda: any(r["fcnt"] == 3 for r in a.ups() + b.ups()), 10, "FCnt 3")
        time.sleep(1.5)
        assert [r["id"] for r in a.ups() + b.ups() if r["fcnt"] == 3] == [f"{dev.dev_eui}-0-3"]
