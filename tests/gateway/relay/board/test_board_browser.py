"""The crisis-centre board in a real browser (Debian's Chromium, headless): a signed alarm published on a
real Mosquitto shows within seconds, unsigned and forged ones never show as fact, a path that goes down
shows as down since when; nothing leaves the machine; axe-core finds no serious problem; the screenshots
in docs/screenshots/ come from here."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.browser import Browser

REPO = Path(__file__).resolve().parents[4]
SHOTS = REPO / "docs" / "screenshots"
PEGEL_1 = "70B3D57ED0001234"
PEGEL_2 = "70B3D57ED0001235"


def wait(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def hhmmss(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def test_the_board_shows_signed_alarms_live_and_refuses_the_rest(board_env: Any) -> None:
    gw = board_env.gateway
    with Browser.start() as b:
        b.goto(board_env.url)
        b.wait_until("document.body.dataset.loaded === 'yes'")
        b.wait_for('#paths li[data-key="mqtt"].up')
        assert "no signed report yet" in b.text('#paths li[data-key="primary:potsdam-roof-1"]')

        # the water level of the last hours, as state readings relayed every 15 min while the primary is down
        now = time.time()
        outage = now - 3.2 * 3600
        gw.primary("down", outage)
        for i, (age_h, level) in enumerate(
            [(3.0, 92), (2.5, 101), (2.0, 112), (1.5, 124), (1.0, 133), (0.5, 141)]
        ):
            gw.reading(PEGEL_1, 100 + i, level, "state", now - age_h * 3600)
            gw.reading(PEGEL_2, 200 + i, round(level * 0.6, 1), "state", now - age_h * 3600, device="pegel-2")
        wait(lambda: board_env.rx.core.total("accepted") == 12, what="the state readings")
        b.wait_until("document.querySelectorAll('svg.chart').length === 2")
        down = b.text('#paths li[data-key="primary:potsdam-roof-1"]')
        assert "down" in down and f"since {hhmmss(outage)}" in down and "signed report" in down

        # a signed alarm: on the page within a second or so of its publication
        alarm_id = f"{PEGEL_1}-1-110"
        sent = gw.reading(PEGEL_1, 110, 163, "alarm", time.time())
        selector = f'li.alarm[data-id="{alarm_id}"]'
        b.wait_until(f"document.querySelector('{selector}') !== null", timeout=30)
        shown = float(b.evaluate(f"Number(document.querySelector('{selector}').dataset.shownAt)")) / 1000
        latency = shown - sent
        print(f"\nsigned alarm published -> shown on the board: {latency * 1000:.0f} ms")
        assert latency < 5.0
        card = b.text(selector)
        for part in ("pegel-1", "potsdam-roof-1", "level 163 cm", "level ≥ 150 cm", "Mesh MQTT", PEGEL_1):
            assert part in card, (part, card)
        assert "New alarm: pegel-1, level 163 cm" in b.text("#announce")
        assert "163 cm" in b.text(f'article[data-dev-eui="{PEGEL_1}"]')

        # unsigned and forged alarms with the same look: refused, counted, never shown as a reading
        forged = gw.envelope(gw.record(PEGEL_1, 111, 777, "alarm", time.time()), key=secrets.token_bytes(32))
        gw.publish("alarm", forged)
        plain = gw.record(PEGEL_1, 112, 999, "alarm", time.time())
        gw.publish("alarm", json.dumps({"v": 1, "sender": "DB0XYZ-10", "body": json.dumps(plain)}).encode())
        gw.publish("alarm", json.dumps(plain).encode())
        b.wait_for('#unverified li[data-reason="forged"]')
        b.wait_until(
            "(document.querySelector('#unverified li[data-reason=\"malformed\"]') || {}).textContent"
            "?.includes('1 malformed')"
        )
        assert "1 unsigned" in b.text('#unverified li[data-reason="unsigned"]')  # the one without sig
        assert "1 forged message" in b.text('#unverified li[data-reason="forged"]')
        assert b.count("li.alarm") == 1
        main_text = b.text("#alarms") + b.text("#devices")
        assert "777 cm" not in main_text and "999 cm" not in main_text
        assert "from 55.2 cm to 84.6 cm" in b.text(f'article[data-dev-eui="{PEGEL_2}"]')

        b.press("Tab")
        assert b.evaluate("document.activeElement.textContent") == "Skip to the alarms"
        b.press("Enter")
        assert b.evaluate("document.activeElement.id") == "alarms-h"
        violations = b.serious_violations()
        assert violations == [], violations

        b.evaluate("document.activeElement.blur()")
        b.screenshot(SHOTS / "crisis-board.png")
        b.viewport(390, 844)
        b.wait_until("document.documentElement.scrollWidth <= 390")  # no sideways scrolling on a phone
        b.evaluate("window.scrollTo(0, 0)")
        b.screenshot(SHOTS / "crisis-board-phone.png", full_page=False)
        b.viewport(1280, 900)

        # the mesh broker goes away: the receiver's MQTT path is down, since when the board saw it go
        before = time.time()
        board_env.broker.stop()
        b.wait_for('#paths li[data-key="mqtt"].down', timeout=30)
        path = next(p for p in board_env.board.snapshot()["paths"] if p["key"] == "mqtt")
        assert before - 1 <= path["since"] <= time.time()
        assert f"since {hhmmss(path['since'])}" in b.text('#paths li[data-key="mqtt"]')

        # nothing left the machine: every request went to the board itself
        requests = b.requests()
        assert requests and all(r["url"].startswith(board_env.url) for r in requests), requests
        assert b.problems() == []
