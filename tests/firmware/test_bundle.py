"""firmware/bundle.json and hw/boards/*.json: the data provisioning builds bundles from.

Every file a node imports (followed statically from boot.py, main.py, the board glue, its radio
driver and its app) is in its bundle; every listed file exists; every board definition passes the
firmware's own board check and names a radio the bundle knows.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FW = REPO / "firmware"
BUNDLE = json.loads((FW / "bundle.json").read_text())
BOARDS = sorted((REPO / "hw" / "boards").glob("*.json"))


def _module_file(name: str) -> Path | None:
    p = FW.joinpath(*name.split("."))
    if p.with_suffix(".py").is_file():
        return p.with_suffix(".py")
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    return None


def _imports(path: Path) -> set[Path]:
    """Firmware files `path` imports (packages bring their __init__.py), host/ excluded."""
    out: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [node.module + "." + a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                f = _module_file(".".join(parts[:i]))
                if f is not None and "host" not in f.relative_to(FW).parts:
                    out.add(f)
    return out


def _closure(roots: list[str]) -> set[str]:
    todo = [FW / r for r in roots]
    seen: set[Path] = set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo.extend(_imports(f))
    return {str(f.relative_to(FW)) for f in seen}


@pytest.mark.parametrize("app", sorted(BUNDLE["apps"]))
@pytest.mark.parametrize("chip", sorted(BUNDLE["radio"]))
def test_bundle_covers_every_import(app: str, chip: str) -> None:
    files = set(BUNDLE["common"]) | set(BUNDLE["radio"][chip]) | set(BUNDLE["apps"][app])
    needed = _closure(["boot.py", "main.py", "apps/board.py", f"radio/{chip}.py", f"apps/{app}.py"])
    assert needed - files == set(), f"{app}/{chip}: imported but not bundled"
    for other in set(BUNDLE["apps"]) - {app}:
        assert f"apps/{other}.py" not in needed, f"{app} pulls in the {other} app"


def test_bundle_files_exist() -> None:
    listed = (
        set(BUNDLE["common"])
        | {f for fs in BUNDLE["radio"].values() for f in fs}
        | {f for fs in BUNDLE["apps"].values() for f in fs}
    )
    missing = [f for f in sorted(listed) if not (FW / f).is_file()]
    assert not missing
    assert not any(f.startswith("host/") for f in listed)
    assert set(BUNDLE["keep_as_py"]) <= set(BUNDLE["common"])


def test_boards_pass_the_firmware_board_check() -> None:
    names = {"heltec_wifi_lora_32_v3", "tbeam_sx1262", "tbeam_sx1276", "ttgo_lora32", "pico_sx1262"}
    assert {b.stem for b in BOARDS} == names
    code = (
        "import json, sys\n"
        "sys.path[:0] = ['firmware', 'firmware/host']\n"
        "import config\n"
        "for p in sys.argv[1:]:\n"
        "    b = config.check_board(json.load(open(p)))\n"
        "    print(b['name'], b['radio']['chip'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, BOARDS)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for line, path in zip(proc.stdout.splitlines(), BOARDS, strict=True):
        name, chip = line.split()
        assert name == path.stem
        assert chip in BUNDLE["radio"]


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_board_facts(path: Path) -> None:
    b = json.loads(path.read_text())
    for usb in b["usb_ids"]:
        vid, pid = usb.split(":")
        assert len(vid) == 4 and len(pid) == 4 and int(vid, 16) and int(pid, 16)
    mp = b["micropython"]
    assert mp["port"] in ("esp32", "rp2") and mp["board"]
    assert (mp["port"] == "rp2") == (b["mcu"] == "rp2040")
    pins = [b["valve"]["pin"], b["onewire"], b["ultrasonic"]["trig"]]
    if b["mcu"] == "esp32":
        # strapping pins glitch or decide the boot mode: never drive the valve or a trigger from them
        assert not set(pins) & {0, 2, 5, 12, 15}, pins
    if b["mcu"] == "esp32s3":
        assert not set(pins) & {0, 3, 45, 46}, pins
    if b["deep_sleep"]:
        assert b["mcu"].startswith("esp32")


def test_kit_settings_pass_the_firmware_config_check() -> None:
    """hw/kits/*.json settings (what provisioning writes into config.json) are accepted at boot."""
    kits = sorted((REPO / "hw" / "kits").glob("*.json"))
    assert kits, "hw/kits/*.json: no kit definitions"
    code = (
        "import json, sys\n"
        "sys.path[:0] = ['firmware', 'firmware/host']\n"
        "import micropython\n"
        "import config\n"
        "for p in sys.argv[1:]:\n"
        "    kit = json.load(open(p))\n"
        "    board = json.load(open('hw/boards/%s.json' % kit['board']))\n"
        "    cfg = {'board': kit['board'], 'app': kit['app'], 'name': 'x', 'region': 'EU868',\n"
        "           'lorawan': {'activation': 'otaa', 'dev_eui': '70B3D57ED0000001',\n"
        "                       'join_eui': '70B3D57ED0000000', 'app_key': '00' * 16}}\n"
        "    cfg.update(kit.get('settings', {}))\n"
        "    config.check_config(cfg, config.check_board(board))\n"
        "    print('ok', p)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, kits)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("ok ") == len(kits)


def test_one_list_of_node_kinds() -> None:
    """The firmware's APPS (apps/__init__.py), bundle.json's apps, config.py's sensor options and the host's
    node kinds (codecs/payload/registry.py) are the same list: a kind missing from one of them fails here."""
    from havel.codecs.payload import KIND_NAMES

    tree = ast.parse((FW / "apps" / "__init__.py").read_text())
    apps = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "APPS"
    )
    config = ast.parse((FW / "config.py").read_text())
    sensors = next(
        n.value
        for n in config.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "APP_SENSORS"
    )
    assert isinstance(sensors, ast.Dict)
    assert tuple(apps) == KIND_NAMES
    assert list(BUNDLE["apps"]) == list(apps)
    assert [ast.literal_eval(k) for k in sensors.keys if k is not None] == list(apps)
    for app in apps:
        assert (FW / "apps" / f"{app}.py").is_file() and (FW / "payload" / f"{app}.py").is_file(), app
