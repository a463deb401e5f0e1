"""`make demo ROOFS=2` (the command it runs): two roofs on their own Redis, simulated nodes, no id twice."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.redis import redis_binary

REPO = Path(__file__).resolve().parents[3]


def test_make_demo_with_two_roofs_runs_the_multiroof_demo() -> None:
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (tools/bootstrap.d/redis.sh)")
    dry = subprocess.run(
        ["make", "-n", "demo", "ROOFS=2"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "havel.gateway.network.shared.demo --roofs 2" in dry.stdout
    run = subprocess.run(
        [sys.executable, "-m", "havel.gateway.network.shared.demo", "--roofs", "2", "--duration", "6"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert "2 roofs on one Redis" in run.stdout
    m = re.search(r"message ids stored twice: 0 of (\d+)", run.stdout)
    assert m is not None and int(m.group(1)) > 0
