"""The roof status page shows the upstream network servers' state: a roof in upstream mode whose server
is first silent (nothing on its port) and then a real one (a second daemon in standalone mode), seen in
Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.browser import Browser
from support.gateway_run import InProcessGateway, free_udp_port, write_config

from havel.gateway import config

from ..upstream.helpers import Forwarder, abp, data_frame, register, upstream_section

pytestmark = pytest.mark.timeout(180)

EUI = 0x70B3D57ED0000055
ADDR = 0x26015555


def test_the_page_shows_an_upstream_server_down_then_back(tmp_path: Path) -> None:
    (tmp_path / "roof").mkdir()
    (tmp_path / "up").mkdir()
    port = free_udp_port()  # nothing listens there yet
    roof_cfg = config.load(
        write_config(
            tmp_path / "roof",
            network={"dedup_window_ms": 40},
            extra=upstream_section(port, follow=[EUI], keepalive_s=0.2, down_after_s=1.0),
        )
    )
    register(roof_cfg.db_path, [abp("followed-abp", EUI, ADDR)])
    with InProcessGateway(roof_cfg) as roof, Browser.start() as b:
        fwd = Forwarder(roof.udp)
        fwd.pull()
        fwd.push(data_frame(ADDR, 1))  # goes up unanswered
        b.goto(f"http://127.0.0.1:{roof.gateway.http_port}/")
        b.wait_for('#upstream li.down[data-upstream="city"]', timeout=60)
        assert "✗ unreachable" in b.text("#upstream") and f"127.0.0.1:{port}" in b.text("#upstream")
        up_cfg = config.load(write_config(tmp_path / "up", network={"dedup_window_ms": 40}, udp_port=port))
        register(up_cfg.db_path, [abp("followed-abp", EUI, ADDR)])
        with InProcessGateway(up_cfg):
            b.wait_for('#upstream li.up[data-upstream="city"]', timeout=60)
            assert "✓ reachable" in b.text("#upstream") and "1 device(s) decoded here" in b.text("#upstream")
        assert b.problems() == []


def test_a_gateway_without_upstream_says_it_is_its_own_network_server(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path))
    with InProcessGateway(cfg) as gw, Browser.start() as b:
        b.goto(f"http://127.0.0.1:{gw.gateway.http_port}/")
        b.wait_for("#upstream li", timeout=60)
        assert "its own network server" in b.text("#upstream")
