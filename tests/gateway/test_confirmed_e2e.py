"""A confirmed uplink whose ACK is lost on the air: the firmware's own MAC (in the simulator) sends the frame
again, and the real gateway answers it again over GWMP."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.sim_node import joined_node, run_until

READING = bytes.fromhex("1200f1013d4cba")  # a temperature reading (docs/payloads.md)


@pytest.mark.timeout(60)
def test_a_lost_ack_is_answered_when_the_node_sends_the_frame_again(tmp_path: Path) -> None:
    # real time (speed 1) and an hour between readings: after its join and first reading the node's own loop
    # stays asleep, and this test drives its MAC
    with joined_node(tmp_path, interval_s=3600, speed=1, wait_s=0.5) as (gw, sim):
        node = sim.nodes[0]
        mac = node.node.mac
        assert run_until(lambda: node.uplinks, 20), sim.history
        time.sleep(0.5)  # (its first reading's receive windows are over)
        node.lose_downlinks = 1  # the ACK of the first transmission never reaches the node
        result = mac.send(1, READING, confirmed=True, max_wait_ms=600_000)  # (its duty cycle may ask a wait)
        assert (result.status, result.tx_count) == ("acked", 2), (result.status, result.tx_count)
        assert gw.gateway.downlinks.counters["acked_again"] == 1
        fcnt = result.fcnt

        def ups() -> list[int]:
            lines = (tmp_path / "out.jsonl").read_text().splitlines()
            return [json.loads(x)["payload"]["fcnt"] for x in lines if '/up"' in x]

        run_until(lambda: fcnt in ups(), 5)
    assert ups().count(fcnt) == 1  # sent twice, stored and published once
    assert gw.gateway.metrics.get("uplinks_retransmitted_total") == 1
