"""ADR end to end: the firmware's own MAC (in the simulator) against the real gateway over GWMP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.gateway_run import http_get
from support.sim_node import joined_node, run_until


@pytest.mark.timeout(120)
def test_a_node_joined_at_sf12_on_a_good_link_is_stepped_to_sf7_and_less_power(tmp_path: Path) -> None:
    # 8.6 dB SNR (the simulator adds +-0.5) at SF12 (floor -20 dB), 10 dB margin: 18.1 to 19.1 dB = 6 steps ->
    # DR5 and TXPower 1; there the link is 2 dB weaker (6.6 dB: 4.1 to 5.1 over SF7's floor and the margin = 1
    # step) -> TXPower 2, then it holds (4.6 dB: at most 2.6 over floor and margin, under a step)
    with joined_node(tmp_path, speed=3000, wait_s=0.3, dr=0, signal=(-80.0, 8.6)) as (gw, sim):
        node = sim.nodes[0]
        mac = node.node.mac
        assert mac.dr == 0
        assert run_until(lambda: mac.dr == 5, 60), (mac.dr, node.uplinks)
        assert mac.tx_power == 1
        at_dr5 = node.uplinks
        assert run_until(lambda: mac.tx_power == 2, 60), (mac.tx_power, node.uplinks)
        assert node.uplinks - at_dr5 >= 20  # a whole new history at the new settings before the next step
        two = node.uplinks
        assert run_until(lambda: node.uplinks >= two + 25, 60)
        assert (mac.dr, mac.tx_power) == (5, 2)
        adr = gw.gateway.downlinks.adr
        assert adr.counters["accepted"] == 2 and adr.counters["refused"] == 0
        dev_eui = sim.specs[0].dev_eui
        session = gw.gateway.registry.get(dev_eui).session  # type: ignore[union-attr]
        assert session is not None and adr.tx_power(dev_eui, session.epoch) == 2
        metrics = http_get(gw.cfg.http.port, "/metrics")[1]
        assert 'havel_gateway_adr_requests_total{outcome="accepted"} 2' in metrics
    # the uplinks arrived at the new rate: the gateway saw SF7 after SF12
    ups = [json.loads(x)["payload"] for x in (tmp_path / "out.jsonl").read_text().splitlines() if '/up"' in x]
    datrs = [u["rx"][0]["datr"] for u in ups]
    assert datrs[0] == "SF12BW125" and datrs[-1] == "SF7BW125"


@pytest.mark.timeout(120)
def test_adr_ack_req_is_answered_so_the_node_never_backs_off(tmp_path: Path) -> None:
    # 2 dB at SF7 is under a step of margin: ADR has nothing to say, so no downlink comes for 64 uplinks and
    # the node sets ADRACKReq. Unanswered, it would drop its data rate after 32 more (LoRaWAN 1.0.2 4.3.1.1).
    with joined_node(tmp_path, speed=20000, wait_s=0.15, dr=5, signal=(-100.0, 2.0)) as (gw, sim):
        node = sim.nodes[0]
        mac = node.node.mac
        counters = gw.gateway.downlinks.counters

        def answered() -> bool:  # ADRACKReq went up (uplink 65 on), a downlink came back, the count restarted
            return counters["adr_ack_answered"] >= 1 and node.uplinks > 65 and mac.adr_ack_cnt < 64

        assert run_until(answered, 90), (mac.adr_ack_cnt, node.uplinks, counters["adr_ack_answered"])
        assert (mac.dr, mac.tx_power) == (5, 0)  # no back-off (it would lower the DR from uplink 128)
        assert gw.gateway.status()["downlinks"]["adr"]["requested"] == 0  # nothing to change: no LinkADRReq


@pytest.mark.timeout(120)
def test_a_node_losing_uplinks_is_told_to_send_each_one_twice(tmp_path: Path) -> None:
    # 4 dB at SF7: under a step of margin, so data rate and power stay; a quarter of the transmissions never
    # reach the concentrator: the history's loss (10 to 30 %) at NbTrans 1 asks for NbTrans 2
    with joined_node(tmp_path, speed=20000, wait_s=0.15, dr=5, signal=(-95.0, 4.0)) as (gw, sim):
        node = sim.nodes[0]
        mac = node.node.mac
        node.lose_uplinks = 0.25
        adr = gw.gateway.downlinks.adr
        dev_eui = sim.specs[0].dev_eui
        session = gw.gateway.registry.get(dev_eui).session  # type: ignore[union-attr]
        assert session is not None

        def twice() -> bool:
            return mac.nb_trans == 2 and adr.settings(dev_eui, session.epoch) == (0, 2)

        assert run_until(twice, 90), (mac.nb_trans, node.uplinks, adr.counters)
        assert (mac.dr, mac.tx_power) == (5, 0)
        # the link clears up: each uplink now goes out twice (unless a downlink answers the first)...
        node.lose_uplinks = 0.0
        sent, on_air = node.uplinks, node.transmissions
        assert run_until(lambda: node.uplinks >= sent + 6, 60)
        assert mac.nb_trans == 2 and node.transmissions - on_air >= 2 * (node.uplinks - sent) - 2
        # ... until a history without loss steps it back to one
        assert run_until(lambda: mac.nb_trans == 1 and adr.settings(dev_eui, session.epoch) == (0, 1), 90)
        assert adr.counters["refused"] == 0
