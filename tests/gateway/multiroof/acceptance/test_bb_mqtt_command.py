"""Black-box: a downlink command published on one roof's broker (docs/multiroof.md, "Downlink commands and
their results"; docs/mqtt.md) is sent once, through the best gateway, and its results come once each."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .roofkit import Broker, LoraPacket, Roof, Subscriber, put_abp, water_payload
from .test_bb_multiroof import EUIS, abp, pull_resps


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


def test_command_on_one_roofs_broker_is_sent_once_by_the_best_gateway(
    redis_server: Any, roofs: Callable[..., Roof], lora: LoraPacket, broker: Broker
) -> None:
    dev = abp(10)
    put_abp(redis_server.url, dev)
    sub = Subscriber(broker.port, client_id="bb-multiroof-sub")
    try:
        a = roofs(redis_server.url, "roof-a", EUIS[0], broker_port=broker.port)
        b = roofs(redis_server.url, "roof-b", EUIS[1], broker_port=broker.port)
        time.sleep(1.0)  # both roofs' command subscriptions in place
        cmd = {"fport": 10, "raw": "0102", "id": "cmd-mr-1"}
        sub.publish(f"havel/roof-a/devices/{dev.dev_eui}/down", json.dumps(cmd))
        queued = sub.wait_json("/down/result", 1, 10, where=lambda m: m["state"] == "queued")
        assert queued[0]["command_id"] == "cmd-mr-1"
        phy = lora.uplink(dev, 1, water_payload(110))
        a.fwd.push_acked([a.fwd.rxpk(phy, lsnr=-6.0, rssi=-112)])
        b.fwd.push_acked([b.fwd.rxpk(phy, lsnr=9.0, rssi=-78)])
        answers = pull_resps([a, b], 4.0)
        assert [eui for eui, _ in answers] == [EUIS[1]], answers
        sent = sub.wait_json("/down/result", 1, 10, where=lambda m: m["state"] == "sent")
        time.sleep(1.0)
        results = [(m["state"], m["id"]) for m in sub.json_on("/down/result")]
        assert sorted(s for s, _ in results) == ["queued", "sent"], results
        assert sent[0]["id"].startswith(f"{dev.dev_eui}-down-cmd-mr-1-")
        # the roof that transmitted it reports `sent` (multiroof.md): roof-b's gateway heard best
        sent_topics = [t for t, p, _ in sub.messages if t.endswith("/down/result") and b'"sent"' in p]
        assert sent_topics == [f"havel/roof-b/devices/{dev.dev_eui}/down/result"], sent_topics
        # the uplink itself: stored once with one id
        ups = a.ups() + b.ups()
        assert [r["id"] for r in ups] == [f"{dev.dev_eui}-0-1"]
    finally:
        sub.close()
