"""`make demo` runs `havel demo`: the real gateway, a local Mosquitto and the simulated nodes.

Run here compressed (15 s at 3600x, about 15 simulated hours) so that the flood crosses the water alarm
and the heat opens the cooling valve; the summary must show every uplink accepted, all joins, the alarm,
the valve actions and the downlink sent over MQTT.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from havel.gateway.sim.nodes import KINDS


@pytest.mark.timeout(120)
def test_demo_runs_the_whole_chain_and_ends_cleanly() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "havel", "demo", "--duration", "15", "--speed", "3600", "--plain"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    summary = " ".join(out[out.rfind("summary") :].split())
    sent = int(re.search(r"(\d+) uplinks sent by their firmware MACs", summary).group(1))
    accepted = int(re.search(r"gateway: (\d+) accepted", summary).group(1))
    assert sent > 20
    assert accepted == sent, summary
    nodes = len(KINDS) + 1  # one of every simulated kind, two temperature nodes
    assert f"joins {nodes}" in summary, summary
    # nothing is refused but a late copy of a frame already processed (a gateway's copy arriving after the
    # dedup window, as on a loaded machine): every frame sent was accepted once, above
    rejected = re.search(r"rejected \{([^}]*)\}", summary).group(1)
    assert set(re.findall(r"'(\w+)'", rejected)) <= {"duplicate"}, summary
    assert int(re.search(r"(\d+) water alarms", summary).group(1)) >= 1, summary
    assert int(re.search(r"(\d+) valve actions", summary).group(1)) >= 1, summary
    assert "sent" in re.search(r"downlink results \(([^)]*)\)", summary).group(1), summary
    assert "a local mosquitto on port" in summary, summary
    # Decoded readings of every node kind reached the platform side.
    flat = " ".join(out.split())  # rich wraps long lines
    for kind in KINDS:
        assert f"/up: sim-{kind}-1" in flat, kind
