"""Fixtures of the kit bench tests: a kit bench served on loopback with a signed bundle of the real
firmware, settings in a temporary folder, and a USB port list the test fills (empty: nothing plugged)."""

from __future__ import annotations

import http.client
import importlib.util
import json
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from serial.tools.list_ports_common import ListPortInfo

from havel.provisioning import bundle, kitbuild
from havel.provisioning.kits import firmware_dir, load_kit
from havel.provisioning.settings import Settings
from havel.provisioning.transport import Board
from havel.provisioning.web.bench import KitBench
from havel.web import serve

REPO = Path(__file__).resolve().parents[3]


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
    """The virtual board's pty as the USB port of a CP2102 bridge (as a Heltec V3 shows up)."""
    p = ListPortInfo(path, skip_link_detection=True)
    p.vid, p.pid, p.description = 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller"
    return p


def restage(vb: Any, sc: dict[str, Any]) -> None:
    """The volunteer rewires: new wiring on the same board (the flash contents stay)."""
    with Board(vb.path) as link:
        link.exec(f"f = open('/_vboard/scenario.json', 'w')\nf.write({json.dumps(sc)!r})\nf.close()")
        link.soft_reset()


def post(port: int, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


@pytest.fixture
def bench_env(tmp_path: Path, signing_key: Any) -> Iterator[Callable[[str], dict[str, Any]]]:
    """bench_env("air") -> {"bench", "settings", "plugged", "url", "port", "kit"} of a running bench."""
    started: list[tuple[KitBench, Any]] = []

    def make(kit_name: str) -> dict[str, Any]:
        kit = load_kit(kit_name)
        board = kit.board()
        assert board.radio is not None
        pub = tmp_path / "city.pub"
        pub.write_bytes(
            signing_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        bdir = tmp_path / "bundle" / kit.app
        bundle.build_bundle(firmware_dir(), kit.app, bdir, signing_key=signing_key, radios=[board.radio.chip])
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
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append((bench, srv))
        port = srv.server_address[1]
        return {
            "bench": bench,
            "settings": settings,
            "plugged": plugged,
            "url": f"http://127.0.0.1:{port}/",
            "port": port,
            "kit": kit,
        }

    yield make
    for bench, srv in started:
        bench.app.events.close()
        srv.shutdown()
        srv.server_close()
