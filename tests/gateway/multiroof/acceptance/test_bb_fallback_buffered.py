"""Black-box: a roof whose Redis and platform broker are both gone keeps storing the uplinks its gateway
hears (docs/multiroof.md, fallback with its cached sessions) and delivers them later, marked `buffered`
(docs/mqtt.md: stored before the sink's connection came back)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .roofkit import Broker, LoraPacket, Roof, Subscriber, put_abp, wait_for, water_payload
from .test_bb_multiroof import EUIS, abp


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


def test_cut_off_roof_delivers_its_stored_uplinks_later_as_buffered(
    redis_server: Any, roofs: Callable[..., Roof], lora: LoraPacket, broker: Broker
) -> None:
    dev = abp(11)
    put_abp(redis_server.url, dev)
    sub = Subscriber(broker.port, topic="havel/+/devices/+/up", client_id="bb-multiroof-buffered")
    try:
        roof = roofs(redis_server.url, "roof-a", EUIS[0], broker_port=broker.port)
        roof.fwd.push_acked([roof.fwd.rxpk(lora.uplink(dev, 1, water_payload(101)))])
        first = sub.wait_json("/up", 1, 10)
        assert first[0]["buffered"] is False
        broker.stop()
        redis_server.stop()
        for fcnt in (2, 3):
            roof.fwd.push_acked([roof.fwd.rxpk(lora.uplink(dev, fcnt, water_payload(100 + fcnt)))])
        wait_for(lambda: len(roof.ups()) == 3, 10, "stored while cut off (the file sink)")
        assert roof.status()["shared_store"]["reachable"] is False
        redis_server.start()
        broker.start()
        got = sub.wait_json("/up", 3, 20)
        late = {m["id"]: m for m in got if m["fcnt"] in (2, 3)}
        assert sorted(late) == [f"{dev.dev_eui}-0-2", f"{dev.dev_eui}-0-3"], got
        assert all(m["buffered"] is True for m in late.values()), late
        time.sleep(0.5)
        assert len(sub.json_on("/up")) == 3
    finally:
        sub.close()
