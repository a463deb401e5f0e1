"""The kit bench in a real browser (Debian's Chromium driven by playwright-core), against the virtual
board: a volunteer picks the kit with the keyboard, plugs the board, meets three wiring faults one after
the other (each with its sentence and its wire highlighted), fixes them and ends with a registered node
and its label. Every request the page makes must go to the local server; axe-core finds no serious or
critical accessibility violation; the screenshots in docs/screenshots/ are made here."""

from __future__ import annotations

import http.client
import importlib.util
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from serial.tools.list_ports_common import ListPortInfo
from support.browser import Browser

from havel.provisioning import bundle, kitbuild
from havel.provisioning.kits import firmware_dir, load_kit
from havel.provisioning.registry import Registry
from havel.provisioning.settings import Settings
from havel.provisioning.transport import Board
from havel.provisioning.web.bench import KitBench
from havel.web import serve

REPO = Path(__file__).resolve().parents[3]
SHOTS = REPO / "docs" / "screenshots"
PASSPHRASE = "Havel lab bench 7 seas"


def _scenario_module() -> Any:
    name = "vboard_scenario"
    if name not in sys.modules:  # the provisioning conftest normally loaded it already
        spec = importlib.util.spec_from_file_location(name, REPO / "tools" / "vboard" / "scenario.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


scenario = _scenario_module()


def usb_port(path: str) -> ListPortInfo:
    p = ListPortInfo(path, skip_link_detection=True)
    p.vid, p.pid, p.description = 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller"
    return p


def restage(vb: Any, sc: dict[str, Any]) -> None:
    """The volunteer rewires: new wiring on the same board (the flash contents stay)."""
    with Board(vb.path) as link:
        link.exec(f"f = open('/_vboard/scenario.json', 'w')\nf.write({json.dumps(sc)!r})\nf.close()")
        link.soft_reset()


@pytest.fixture
def bench_env(tmp_path: Path, signing_key: Any) -> Iterator[dict[str, Any]]:
    """A signed bundle of the real air firmware, settings in tmp_path, and a kit bench served on loopback
    whose USB ports are a list the test fills (empty: no board plugged in)."""
    kit = load_kit("air")
    board = kit.board()
    assert board.radio is not None
    pub = tmp_path / "city.pub"
    pub.write_bytes(
        signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    bdir = tmp_path / "bundle"
    bundle.build_bundle(firmware_dir(), "air", bdir, signing_key=signing_key, radios=[board.radio.chip])
    settings = Settings(
        registry=tmp_path / "registry.json",
        state_dir=tmp_path / "state",
        label_dir=tmp_path / "labels",
        trusted_keys=[pub],
        join_eui=0x70B3D57ED0000000,
    )
    plugged: list[ListPortInfo] = []
    bench = KitBench(
        settings, kitbuild.BuildOptions(kit="", bundle_dir=bdir), list_ports=lambda: list(plugged)
    )
    srv = serve(bench.app, "127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield {
            "bench": bench,
            "settings": settings,
            "plugged": plugged,
            "url": f"http://127.0.0.1:{srv.server_address[1]}/",
            "port": srv.server_address[1],
            "kit": kit,
        }
    finally:
        bench.app.events.close()
        srv.shutdown()
        srv.server_close()


def post(port: int, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def failing_wires(b: Browser) -> list[int]:
    return list(
        b.evaluate("[...document.querySelectorAll('#wiring .wire.failing')].map(g => Number(g.dataset.wire))")
    )


def check_lines(b: Browser) -> list[dict[str, str]]:
    return list(
        b.evaluate(
            "[...document.querySelectorAll('#checklist li')].map(li => ({status: li.dataset.status, "
            "text: li.textContent, wires: li.dataset.wires || ''}))"
        )
    )


def start_build_by_keyboard(b: Browser, *, again: bool) -> None:
    b.fill("#passphrase", PASSPHRASE)
    if again:
        b.fill("#passphrase-again", PASSPHRASE)
    b.press("Enter", "#passphrase")  # submits the form, as a keyboard user would


@pytest.mark.timeout(600)
def test_volunteer_builds_a_kit_through_the_page(
    bench_env: dict[str, Any], start_board: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    kit, url, settings = bench_env["kit"], bench_env["url"], bench_env["settings"]
    board = kit.board()
    with Browser.start() as b:
        b.goto(url)
        b.wait_until("document.body.dataset.ready === '1'")
        # No board plugged in: the page says what to check.
        b.wait_for("#board-advice li")
        assert "No board found" in b.text("#board-status")
        advice = b.text("#board-advice")
        assert "USB data cable" in advice and "BOOT" in advice

        # Keyboard only: Tab reaches the kits, Space picks the first one (air).
        b.focus("#kit-air")
        b.press("Space")
        b.wait_for("#wiring svg")
        assert b.evaluate("document.getElementById('kit-air').checked") is True
        assert b.count("#wiring .wire") == len(kit.wiring)

        # The board is plugged in, wired with two faults: a BMP280 in the BME280's place, TX/RX crossed.
        vb = start_board(scenario.build(kit, board, {"bmp280", "sds011_swapped"}))
        bench_env["plugged"].append(usb_port(vb.path))
        b.click("#board-again")
        b.wait_until("document.getElementById('board-status').textContent.includes('Board found')")
        assert vb.path in b.text("#board-status")

        assert b.serious_violations() == []
        t0 = time.monotonic()
        start_build_by_keyboard(b, again=True)
        # A second volunteer on the same board is refused while this build runs.
        b.wait_until("document.querySelector('#step-flash').dataset.status !== 'pending'", timeout=120)
        status, answer = post(bench_env["port"], "/api/build", {"kit": "air", "passphrase": "x"})
        assert status == 409 and "one volunteer at a time" in answer["hint"], answer
        b.wait_until("document.querySelector('#step-flash').dataset.status === 'done'", timeout=300)
        b.wait_until("document.querySelector('#step-check').dataset.status === 'failed'", timeout=180)
        lines = check_lines(b)
        fails = [li for li in lines if li["status"] == "fail"]
        assert len(fails) == 2, lines
        bme = next(li for li in fails if "BME280" in li["text"])
        sds = next(li for li in fails if "SDS011" in li["text"])
        assert "BMP280" in bme["text"] and "replace it with a real BME280" in bme["text"]
        assert "swap the TX and RX wires" in sds["text"]
        # the BME280 is the wrong part (all five of its wires), the SDS011's TXD and RXD wires are crossed
        assert failing_wires(b) == [3, 4, 5, 6, 7, 8, 9]
        assert sds["wires"] == "3,4" and bme["wires"] == "5,6,7,8,9"
        assert "continues at the check" in b.text("#message")
        b.screenshot(SHOTS / "kit-bench-wiring-fault.png")
        assert b.serious_violations() == []

        # Third fault: with a real BME280 and TX/RX right, the SDS011's RXD wire is off.
        restage(vb, scenario.build(kit, board, {"sds011_rx_off", "sds011_active"}))
        assert "Check again" in b.text("#start")
        start_build_by_keyboard(b, again=True)
        b.wait_until("document.querySelector('#step-check').dataset.status === 'failed'", timeout=180)
        fails = [li for li in check_lines(b) if li["status"] == "fail"]
        assert len(fails) == 1 and "does not hear the board: connect its RXD" in fails[0]["text"], fails
        assert failing_wires(b) == [4]  # only the RXD wire
        assert b.text("#step-flash").count("unchanged") == 1  # resumed: nothing copied again

        # Fixed: the build goes on, asks to create the registry (answered Yes with the keyboard).
        restage(vb, scenario.build(kit, board, set()))
        start_build_by_keyboard(b, again=True)
        b.wait_for("#question", timeout=180)
        assert "Create a new encrypted registry" in b.text("#question-text")
        assert b.evaluate("document.activeElement.id") == "answer-yes"
        b.press("Enter")
        b.wait_until("document.querySelector('#step-label').dataset.status === 'done'", timeout=180)
        b.wait_until(
            "document.getElementById('label-img').complete && "
            "document.getElementById('label-img').naturalWidth > 0"
        )
        seconds = time.monotonic() - t0
        msg = b.text("#message")
        assert "Kit built" in msg and "A4CF12FFFEFE0C01" in msg
        assert failing_wires(b) == []
        assert all(li["status"] != "fail" for li in check_lines(b))
        assert b.serious_violations() == []
        b.screenshot(SHOTS / "kit-bench.png")
        b.viewport(390, 844)  # a phone
        b.screenshot(SHOTS / "kit-bench-phone.png", full_page=False)

        # Nothing left the machine: every request went to the bench's own server.
        reqs = b.requests()
        assert reqs and all(r["url"].startswith(url) for r in reqs), [r["url"] for r in reqs]
        assert b.problems() == []  # no console error, no CSP violation
        html = str(b.evaluate("document.documentElement.outerHTML"))

    # The node is registered; the passphrase is nowhere but in the registry's key derivation.
    reg = Registry.open(settings.registry, PASSPHRASE)
    assert [identity.unique_id for identity in reg.entries] == ["a4cf12fe0c01"]
    history = json.dumps(bench_env["bench"].app.events.history())
    state = (settings.state_dir / "kit-air.json").read_text()
    for where in (html, history, state, caplog.text):
        assert PASSPHRASE not in where
    assert reg.entries[0].app_key.hex() not in history.lower()
    print(f"\nkit build through the page, three faults and the fix included: {seconds:.1f} s")
