"""Every test function in tests/firmware/mp/test_*.py, run inside real MicroPython (wasm) and CPython.

Each module runs once per runtime in its own interpreter (a subprocess: mprunner.mjs or cpyrunner.py);
each of its test functions is then reported as its own pytest test id, e.g.
`test_firmware[micropython-test_lw_crypto-test_cmac_rfc4493]`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MP_DIR = HERE / "mp"
REPO = HERE.parent.parent
RUNTIMES = ("micropython", "cpython")
_DEF = re.compile(r"^def (test_\w+)\(\s*\)\s*:", re.M)


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for path in sorted(MP_DIR.glob("test_*.py")):
        for name in _DEF.findall(path.read_text(encoding="utf-8")):
            for rt in RUNTIMES:
                cases.append((rt, path.stem, name))
    return cases


_results: dict[tuple[str, str], tuple[dict[str, dict], str]] = {}


def _run(runtime: str, module: str) -> tuple[dict[str, dict], str]:
    """Run one module in one runtime (once per session) and return (results by test name, stderr)."""
    key = (runtime, module)
    if key not in _results:
        if runtime == "micropython":
            node = shutil.which("node")
            if node is None:
                pytest.fail("Node.js is needed for the MicroPython runner (tools/bootstrap.sh)")
            cmd = [node, str(HERE / "mprunner.mjs"), module]
        else:
            cmd = [sys.executable, str(HERE / "cpyrunner.py"), module]
        res: dict[str, dict] = {}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
        except subprocess.TimeoutExpired as e:
            # remembered, so the module's other tests fail at once instead of waiting again
            err = f"{runtime} run of {module} timed out after 120 s"
            res["<runner>"] = {"ok": False, "error": err}
            _results[key] = (res, str(e.stderr or ""))
            return _results[key]
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                res[rec["test"]] = rec
        _results[key] = (res, proc.stderr)
    return _results[key]


@pytest.mark.timeout(150)
@pytest.mark.parametrize(("runtime", "module", "test"), _cases(), ids=lambda v: str(v))
def test_firmware(runtime: str, module: str, test: str) -> None:
    res, stderr = _run(runtime, module)
    for bad in ("<import>", "<runner>"):
        if bad in res:
            pytest.fail(f"{runtime} {module}: {bad}\n{res[bad]['error']}")
    if test not in res:
        pytest.fail(f"{runtime} did not report {module}.{test}\nstderr:\n{stderr[-3000:]}")
    rec = res[test]
    assert rec["ok"], f"{runtime} {module}.{test} failed:\n{rec['error']}"
