"""The roof status page shows the power state where it is known: a real upsd (NUT, dummy-ups driver)
behind the real daemon, the UPS switched from mains to battery and back, seen in Chromium."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.browser import Browser
from support.gateway_run import InProcessGateway, write_config

from havel.gateway import config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "power"))
from nut_server import UpsServer, available  # (the power tests' real upsd)

pytestmark = pytest.mark.timeout(120)


def test_the_page_shows_mains_battery_and_back(tmp_path: Path) -> None:
    if not available():
        pytest.skip("NUT (upsd, dummy-ups) is not installed: tools/bootstrap.d/roof.sh installs it")
    (tmp_path / "ups").mkdir()
    with UpsServer(tmp_path / "ups") as ups:
        extra = f'\n[power]\nups = "{ups.address}"\npoll_s = 0.3\n'
        cfg = config.load(write_config(tmp_path, extra=extra))
        with InProcessGateway(cfg) as gw, Browser.start() as b:
            b.goto(f"http://127.0.0.1:{gw.gateway.http_port}/")
            b.wait_for('#power li[data-power="mains"]', timeout=60)
            assert "✓ on mains" in b.text("#power")
            ups.set("OB DISCHRG", charge=80, runtime=2400)
            b.wait_for('#power li.down[data-power="battery"]', timeout=60)
            text = b.text("#power")
            assert "✗ on battery since" in text and "charge 80 %" in text and "runtime left 40 min" in text
            ups.set("OL CHRG", charge=85, runtime=3000)
            b.wait_for('#power li.up[data-power="mains"]', timeout=60)
            assert b.problems() == []
