"""DeviceTimeReq from the firmware's own MAC (in the simulator), answered by the real gateway over GWMP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.sim_node import joined_node

GPS_EPOCH_UNIX = 315_964_800


@pytest.mark.timeout(90)
def test_the_node_learns_gps_time_from_the_gateway(tmp_path: Path) -> None:
    with joined_node(tmp_path, speed=3000, wait_s=0.3) as (_gw, sim):
        mac = sim.nodes[0].node.mac
        deadline = time.monotonic() + 30
        asked = 0.0
        while time.monotonic() < deadline and mac.device_time is None:
            if time.monotonic() - asked > 3:  # (asked again should the request meet an uplink being built)
                mac.request_device_time()
                asked = time.monotonic()
            time.sleep(0.05)
        now_gps_s = time.time() - GPS_EPOCH_UNIX + 18
    assert mac.device_time is not None, sim.history
    gps_ms, _clock_ms = mac.device_time
    # the gateway's clock at the uplink, in GPS time: within the few seconds this test took
    assert now_gps_s - 30 < gps_ms / 1000 <= now_gps_s + 1
