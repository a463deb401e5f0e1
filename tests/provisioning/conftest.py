"""Fixtures of the provisioning tests: the virtual board (real MicroPython wasm behind a pty), a small
firmware tree to bundle, and a signing key."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VBOARD_DIR = REPO / "tools" / "vboard"


def _load(name: str) -> ModuleType:
    """Import tools/vboard/<name>.py under a private name (no sys.path change that could shadow others)."""
    spec = importlib.util.spec_from_file_location(f"vboard_{name}", VBOARD_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses and friends look their module up here
    spec.loader.exec_module(mod)
    return mod


vboard = _load("vboard")
scenario = _load("scenario")


@pytest.fixture
def start_board(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """start_board(scenario_dict, baud=None) -> a running VirtualBoard (stopped after the test)."""
    boards: list[Any] = []

    def start(sc: dict[str, Any], *, baud: int | None = None) -> Any:
        d = tmp_path / f"vb{len(boards)}"
        d.mkdir()
        vb = vboard.VirtualBoard(sc, d, baud=baud).start()
        boards.append(vb)
        return vb

    yield start
    for vb in boards:
        vb.stop()


@pytest.fixture
def kit_board(start_board: Callable[..., Any]) -> Callable[..., Any]:
    """kit_board("air", {"bmp280"}) -> a virtual board wired like the kit, with the faults staged."""
    from havel.provisioning.kits import load_kit

    def make(kit_name: str, faults: set[str] | None = None, **kw: Any) -> Any:
        kit = load_kit(kit_name)
        return start_board(scenario.build(kit, kit.board(), faults or set(), **kw))

    return make


FIRMWARE_FILES = {
    "boot.py": "# boot: nothing to do before main\n",
    "main.py": "import apps.air\napps.air.run()\n",
    "config.py": "import json\n\n\ndef load(path='config.json'):\n"
    "    with open(path) as f:\n        return json.load(f)\n",
    "lw/__init__.py": "",
    "lw/mac.py": "from micropython import const\n\n_X = const(3)\n\n\ndef triple(x):\n    return x * _X\n",
    "lw/crypto.py": "def xor(a, b):\n    return bytes(x ^ y for x, y in zip(a, b))\n" + "# padding\n" * 200,
    "apps/__init__.py": "",
    "apps/air.py": "import lw.mac\n\n\ndef run():\n    return lw.mac.triple(14)\n",
    "apps/water.py": "def run():\n    return 'water'\n",
    "radio/__init__.py": "",
    "radio/sx1262.py": "CHIP = 'sx1262'\n",
    "radio/sx1276.py": "CHIP = 'sx1276'\n",
    "host/cryptolib.py": "# host only, never flashed\n",
}


@pytest.fixture
def firmware_tree(tmp_path: Path) -> Path:
    """A small firmware/ tree with a bundle.json (the layout of contracts section C)."""
    root = tmp_path / "firmware"
    for rel, text in FIRMWARE_FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (root / "bundle.json").write_text(
        json.dumps(
            {
                "keep_as_py": ["boot.py", "main.py"],
                "common": ["boot.py", "main.py", "config.py", "lw", "radio/__init__.py"],
                "radio": {"sx1262": ["radio/sx1262.py"], "sx1276": ["radio/sx1276.py"]},
                "apps": {
                    "air": ["apps/__init__.py", "apps/air.py"],
                    "water": ["apps/__init__.py", "apps/water.py"],
                },
            }
        )
    )
    return root


@pytest.fixture(scope="session")
def signing_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()
