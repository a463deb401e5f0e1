"""The roof status page in a real browser (Debian's Chromium, headless) on the real daemon: simulated nodes
send uplinks over real UDP, the daemon forwards them to a real Mosquitto; the broker is stopped and started
and the page shows the sink down, its outbox growing, then draining and the sink up. Nothing leaves the
machine; axe-core finds no serious problem; the screenshots in docs/screenshots/ come from here."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.browser import Browser
from support.gateway_run import InProcessGateway, provision_sim, write_config
from support.mosquitto import Mosquitto

from havel.codecs.lorawan import phy
from havel.gateway import config
from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.relay.signing import SigningKey
from havel.gateway.sim.runner import Simulation, make_specs, parse_counts

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[3]
SHOTS = REPO / "docs" / "screenshots"
SINK = '#sinks li[data-sink="platform"]'


def wait(cond: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def push(eui: int, frame: bytes) -> bytes:
    """A GWMP v2 PUSH_DATA from concentrator ``eui`` carrying ``frame``."""
    rxpk = {
        "tmst": 5_000_000,
        "chan": 0,
        "rfch": 0,
        "freq": 868.1,
        "stat": 1,
        "modu": "LORA",
        "datr": "SF7BW125",
        "codr": "4/5",
        "rssi": -80,
        "lsnr": 5.0,
        "size": len(frame),
        "data": base64.b64encode(frame).decode(),
    }
    body = json.dumps({"rxpk": [rxpk]}).encode()
    return bytes([2, 1, 1, gwmp.PUSH_DATA]) + eui.to_bytes(8, "big") + body


def waiting(b: Browser) -> int:
    return int(b.evaluate(f"Number(document.querySelector('{SINK}').dataset.waiting)"))


def test_the_roof_page_follows_a_broker_outage(
    tmp_path: Path, mosquitto: Mosquitto, mosquitto_factory: Callable[..., Mosquitto]
) -> None:
    mesh = mosquitto_factory()  # the disaster relay's mesh broker, to the crisis centre
    sink = {
        "type": "mqtt",
        "name": "platform",
        "host": "127.0.0.1",
        "port": mosquitto.port,
        "tls": False,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
    }
    relay = f"""
[relay]
primary = "platform"
sender = "gw-test"
down_after_s = 1.0
up_after_s = 1.0
tick_s = 0.2
[[relay.path]]
type = "mqtt"
host = "127.0.0.1"
port = {mesh.port}
tls = false
"""
    (tmp_path / "data").mkdir()
    SigningKey.generate().save(tmp_path / "data" / "relay.key")
    cfg = config.load(
        write_config(
            tmp_path,
            sinks=[sink],
            network={"dedup_window_ms": 40},
            extra=relay,
            udp={"allowed_gateways": ["AA555A0000000001", "AA555A00000000FF"]},  # the sim's, and a stranger's
        )
    )
    specs = make_specs(parse_counts("temperature=2,water=1"), interval_s=300)
    provision_sim(cfg, specs)
    with InProcessGateway(cfg) as gw, Simulation(gw.udp, specs) as sim, Browser.start() as b:
        port = gw.gateway.http_port
        url = f"http://127.0.0.1:{port}/"
        metrics = gw.gateway.metrics
        wait(lambda: all(n.node.mac.joined for n in sim.nodes), what="the nodes' joins")
        wait(lambda: metrics.total("uplinks_accepted_total") >= 6, what="uplinks")

        b.goto(url)
        b.wait_until("document.body.dataset.loaded === 'yes'")
        b.wait_for(f'{SINK}[data-state="up"]')
        assert "✓ up" in b.text(SINK)
        assert b.count("#forwarders li.up") == 1  # the simulated concentrator, heard
        # the chart: bars for the uplinks of this minute, and a text alternative that says the numbers
        b.wait_until("Number(document.querySelector('#chart').dataset.total) > 0", timeout=30)
        assert b.count("#chart svg rect.bar") >= 1
        assert "uplinks in the last 60 minutes" in b.evaluate(
            "document.querySelector('#chart desc').textContent"
        )
        assert "Havel" in b.text("#about") and "free of" in b.text("#about")
        assert b.text("#state-text").startswith("✓ OK")
        assert "✓ up" in b.text('#relay li[data-relay="primary"]')
        assert "off" in b.text('#relay li[data-relay="emergency"]')
        assert "Not known" in b.text("#power")  # no UPS configured here

        # keyboard: the first Tab reaches the skip link, Enter moves to the state
        b.press("Tab")
        assert b.evaluate("document.activeElement.textContent") == "Skip to the gateway's state"
        b.press("Enter")
        assert b.evaluate("document.activeElement.id") == "state-h"
        violations = b.serious_violations()
        assert violations == [], violations
        b.evaluate("document.activeElement.blur()")
        b.screenshot(SHOTS / "roof-status.png")

        # the broker goes away: the sink shows down, and what waits for it grows as uplinks keep coming
        mosquitto.stop()
        b.wait_for(f'{SINK}[data-state="down"]', timeout=60)
        assert "✗ down since" in b.text(SINK)
        b.wait_until("document.querySelector('#state').dataset.state === 'degraded'")
        first = waiting(b)
        b.wait_until(f"Number(document.querySelector('{SINK}').dataset.waiting) >= {first + 3}", timeout=60)
        assert "waiting for it" in b.text(SINK)
        # the relay's outage detector sees the platform gone: alarms now go over the mesh
        b.wait_for('#relay li[data-relay="primary"].down', timeout=60)
        b.viewport(390, 844)  # an operator's phone on the roof
        b.wait_until("document.documentElement.scrollWidth <= 390")  # no sideways scrolling
        b.evaluate("window.scrollTo(0, 0)")
        b.screenshot(SHOTS / "roof-status-outage-phone.png", full_page=False)
        b.viewport(1280, 900)
        violations = b.serious_violations()  # the down state is as readable as the up one
        assert violations == [], violations

        # it comes back: the sink is up again and its backlog drains to nothing
        mosquitto.start()
        b.wait_for(f'{SINK}[data-state="up"]', timeout=60)
        b.wait_until("document.querySelector('#state').dataset.state === 'ok'", timeout=30)
        b.wait_for('#relay li[data-relay="primary"].up', timeout=60)
        sim.stop()  # (the nodes stop, so the backlog can reach zero)
        b.wait_until(f"Number(document.querySelector('{SINK}').dataset.waiting) === 0", timeout=60)

        # the chart counts every accepted uplink (sampled every few seconds)
        accepted = int(metrics.total("uplinks_accepted_total"))
        b.wait_until(f"Number(document.querySelector('#chart').dataset.total) === {accepted}", timeout=60)
        assert f"{accepted} uplinks in the last 60 minutes" in b.evaluate(
            "document.querySelector('#chart desc').textContent"
        )

        # a frame from a device nobody registered, through a second forwarder: a rejection by its reason
        assert b.count("#rejections li") == 0
        stranger = phy.build_data_frame(
            uplink=True,
            confirmed=False,
            dev_addr=0x26012345,
            fcnt32=1,
            fport=1,
            payload=b"\x01",
            ack=False,
            nwk_s_key=secrets.token_bytes(16),
            app_s_key=secrets.token_bytes(16),
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(push(0xAA555A00000000FF, stranger), gw.udp)
        b.wait_for('#rejections li[data-reason="unknown_dev_addr"]', timeout=60)
        assert b.text('#rejections li[data-reason="unknown_dev_addr"]').startswith("1 ")
        # both forwarders fall silent (the nodes stopped): since when, not just how long
        b.wait_for('#forwarders li.down[data-gateway="AA555A00000000FF"]', timeout=60)
        assert "✗ silent since" in b.text('#forwarders li[data-gateway="AA555A00000000FF"]')

        # nothing left the machine, and the page had no error or CSP violation
        requests = b.requests()
        assert requests and all(r["url"].startswith(url) for r in requests), requests
        assert b.problems() == []
