"""The firmware test runners themselves: failures and exceptions must turn into a non-zero exit
status and per-test JSON lines (MicroPython's own CLI exits 0 after an exception; ours must not)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

SAMPLE = """
def test_passes():
    assert 1 + 1 == 2

def test_fails():
    assert [1, 2] == [2, 1], "order"

def test_raises():
    raise KeyError("boom")
"""


def _stage(tmp: Path) -> Path:
    root = tmp / "repo"
    (root / "firmware").mkdir(parents=True)
    mp = root / "tests" / "firmware" / "mp"
    mp.mkdir(parents=True)
    for name in ("mprun.py", "mptest.py"):
        shutil.copy(HERE / "mp" / name, mp / name)
    (mp / "test_sample.py").write_text(SAMPLE)
    (mp / "test_broken.py").write_text("import no_such_module\n")
    (root / "tools").mkdir()
    (root / "tools" / "npm").symlink_to(REPO / "tools" / "npm")
    return root


def _node() -> str:
    node = shutil.which("node")
    assert node, "Node.js is needed (tools/bootstrap.sh)"
    return node


@pytest.mark.timeout(60)
def test_mprunner_reports_each_test_and_fails_the_run(tmp_path: Path) -> None:
    root = _stage(tmp_path)
    cmd = [_node(), str(HERE / "mprunner.mjs"), "--repo", str(root), "test_sample", "test_broken"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    recs = {(r["module"], r["test"]): r for r in map(json.loads, proc.stdout.splitlines())}
    assert recs[("test_sample", "test_passes")]["ok"] is True
    assert recs[("test_sample", "test_fails")]["ok"] is False
    assert "AssertionError" in recs[("test_sample", "test_fails")]["error"]
    assert "KeyError" in recs[("test_sample", "test_raises")]["error"]
    assert recs[("test_broken", "<import>")]["ok"] is False


@pytest.mark.timeout(60)
def test_runners_fail_a_script_that_raises(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("print('before')\nraise ValueError('late')\n")
    mp = subprocess.run(
        [_node(), str(HERE / "mprunner.mjs"), "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert mp.returncode == 1 and "before" in mp.stdout and "ValueError" in mp.stderr
    cmd = [sys.executable, str(HERE / "cpyrunner.py"), "--script", str(script)]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert cp.returncode != 0 and "before" in cp.stdout and "ValueError" in cp.stderr
    ok = tmp_path / "ok.py"
    ok.write_text("print('fine')\n")
    assert (
        subprocess.run(
            [_node(), str(HERE / "mprunner.mjs"), "--script", str(ok)], timeout=60, capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.timeout(60)
def test_cpyrunner_reports_failures() -> None:
    proc = subprocess.run(
        [sys.executable, str(HERE / "cpyrunner.py"), "test_no_such_module_here"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    rec = json.loads(proc.stdout.splitlines()[0])
    assert rec["test"] == "<import>" and rec["ok"] is False
    assert (
        subprocess.run(
            [sys.executable, str(HERE / "cpyrunner.py"), "--bogus"], capture_output=True, timeout=60
        ).returncode
        == 2
    )
