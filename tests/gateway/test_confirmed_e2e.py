"""A confirmed uplink whose ACK is lost on the air: the firmware's own MAC (in the simulator) sends the frame
again, and the real gateway answers it again over GWMP."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.gateway_run import InProcessGateway, provision_sim, write_config

from havel.gateway import config
from havel.gateway.sim.runner import Simulation, make_specs, parse_counts

READING = bytes.fromhex("1200f1013d4cba")  # a temperature reading (docs/payloads.md)


@pytest.mark.timeout(60)
def test_a_lost_ack_is_answered_when_the_node_sends_the_frame_again(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, network={"dedup_window_ms": 40}))
    specs = make_specs(parse_counts("temperature=1"), interval_s=3600)
    provision_sim(cfg, specs)
    # real time (speed 1) and an hour between readings: after its join the node's own loop stays asleep,
    # and this test drives its MAC
    with InProcessGateway(cfg) as gw, Simulation(gw.udp, specs, speed=1, wait_s=0.5) as sim:
        node = sim.nodes[0]
        mac = node.node.mac
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (mac.joined and node.uplinks):
            time.sleep(0.05)
        assert mac.joined, sim.history
        time.sleep(0.5)  # (its first reading's receive windows are over)
        node.lose_downlinks = 1  # the ACK of the first transmission never reaches the node
        result = mac.send(1, READING, confirmed=True, max_wait_ms=600_000)  # (its duty cycle may ask a wait)
        assert (result.status, result.tx_count) == ("acked", 2), (result.status, result.tx_count)
        assert gw.gateway.downlinks.counters["acked_again"] == 1
        fcnt = result.fcnt
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ups = [json.loads(x)["payload"] for x in (tmp_path / "out.jsonl").read_text().splitlines()
                   if '/up"' in x]
            if any(u["fcnt"] == fcnt for u in ups):
                break
            time.sleep(0.1)
    assert [u["fcnt"] for u in ups].count(fcnt) == 1  # sent twice, stored and published once
    assert gw.gateway.metrics.get("uplinks_retransmitted_total") == 1
