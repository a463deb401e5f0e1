"""`havel kit serve`, the README's command: the page on localhost, until Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from havel.provisioning.kits import list_kits


@pytest.mark.timeout(120)
def test_kit_serve_serves_the_bench_on_localhost_until_ctrl_c(tmp_path: Path) -> None:
    cfg = tmp_path / "prov.json"
    cfg.write_text(json.dumps({"state_dir": str(tmp_path / "state"), "registry": str(tmp_path / "r.json")}))
    env = {**os.environ, "HAVEL_PROVISIONING_CONFIG": str(cfg), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "havel", "kit", "serve", "--http-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Ctrl-C as a volunteer's terminal sends it: a test runner's worker may ignore SIGINT, and a child
        # inherits an ignored signal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"Kit bench at (http://127\.0\.0\.1:\d+/)", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        url = m.group(1)
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200
            assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
            assert b"Havel kit bench" in r.read()
        with urllib.request.urlopen(url + "api/kits", timeout=30) as r:
            assert [k["name"] for k in json.loads(r.read())] == list_kits()
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
            raise AssertionError("kit serve did not stop within 30 s of Ctrl-C")
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kit_serve_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "HAVEL_PROVISIONING_CONFIG": str(tmp_path / "none.json"), "COLUMNS": "200"}
        proc = subprocess.run(
            [sys.executable, "-m", "havel", "kit", "serve", "--http-port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out and "--http-port" in out
    assert "Traceback" not in out
