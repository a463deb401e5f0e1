"""The forwarder watchdog in the real daemon: a packet forwarder that hangs is restarted by the configured
command, with back-off and a limit, and every step is an event (out through the sinks), a metric and part
of /status. The "forwarder" is a real process speaking GWMP over UDP (the simulator's concentrator: there is
no concentrator here) and the restart command a real script in place of ``systemctl restart``."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.gateway_run import InProcessGateway, http_get, write_config

from havel.cli import cli
from havel.errors import ConfigError
from havel.gateway import config
from havel.gateway.sim.concentrator import Concentrator

GW = 0xB827EBFFFE6C1D2A

FORWARDER = """
import sys, time
from havel.gateway.sim.concentrator import Concentrator
c = Concentrator(("127.0.0.1", int(sys.argv[1])), int(sys.argv[2], 16), keepalive_s=0.3).start()
c.send_stat()  # PUSH_DATA at once, as a restarted forwarder's first uplink or stat would be
while True:
    time.sleep(1)
"""

RESTART = """#!/bin/sh
# stands in for `systemctl restart havel-pktfwd.service`: replaces the forwarder process
echo restart >> "$WD_DIR/restarts.log"
if [ -f "$WD_DIR/fwd.pid" ]; then kill -KILL "$(cat "$WD_DIR/fwd.pid")" 2>/dev/null || true; fi
"$WD_PYTHON" "$WD_DIR/forwarder.py" "$WD_PORT" "$WD_EUI" > /dev/null 2>&1 &
echo $! > "$WD_DIR/fwd.pid"
echo "forwarder restarted (pid $!)"
"""

FAILING = """#!/bin/sh
echo "$(date +%s.%N)" >> "$WD_DIR/restarts.log"
echo "Job for havel-pktfwd.service failed because the control process exited with error code." >&2
exit 1
"""


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["topic"].endswith("/events"):
            out.append(rec["payload"])
    return out


def wait(pred: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def wd_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "wd"
    d.mkdir()
    (d / "forwarder.py").write_text(FORWARDER)
    yield d
    pid = d / "fwd.pid"
    if pid.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid.read_text()), signal.SIGKILL)


def _gateway(
    tmp_path: Path, script: str, wd_dir: Path, mp: pytest.MonkeyPatch, **watchdog: Any
) -> InProcessGateway:
    exe = wd_dir / "restart.sh"
    exe.write_text(script)
    exe.chmod(0o755)
    keys = {"restart_command": [str(exe)], **watchdog}
    extra = "\n[watchdog]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    cfg = config.load(write_config(tmp_path, extra=extra))
    for k, v in dict(
        WD_DIR=str(wd_dir), WD_PYTHON=sys.executable, WD_PORT=str(cfg.udp.port), WD_EUI=f"{GW:016X}"
    ).items():
        mp.setenv(k, v)  # the restart script's environment (the daemon's, passed on)
    return InProcessGateway(cfg)


def test_a_hung_forwarder_is_restarted_and_comes_back(
    tmp_path: Path, wd_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    with _gateway(tmp_path, RESTART, wd_dir, monkeypatch, backoff_s=30) as gw:
        port = gw.cfg.http.port
        os.system(f"{wd_dir / 'restart.sh'} > /dev/null")  # systemd starts the forwarder at boot
        wait(lambda: gw.gateway.udp.health())
        first_pid = int((wd_dir / "fwd.pid").read_text())
        os.kill(first_pid, signal.SIGSTOP)  # the forwarder hangs (a wedged SPI bus, a stuck concentrator)
        got = wait(
            lambda: (
                [e["event"] for e in events(out)][-3:]
                == ["forwarder_silent", "forwarder_restart", "forwarder_back"]
                and events(out)
            )
        )
        restart = next(e for e in got if e["event"] == "forwarder_restart")
        assert restart["gateway"] == f"{GW:016X}" and restart["attempt"] == 1 and restart["of"] == 5
        assert restart["result"] == "ok" and restart["exit_status"] == 0
        assert restart["output"].startswith("forwarder restarted")
        assert int((wd_dir / "fwd.pid").read_text()) != first_pid
        assert (wd_dir / "restarts.log").read_text().count("restart") == 2  # the boot start and one restart
        assert 'havel_gateway_forwarder_restarts_total{result="ok"} 1' in http_get(port, "/metrics")[1]
        status = json.loads(http_get(port, "/status")[1])
        assert status["watchdog"]["forwarders"] == {}  # back: nothing to do
        assert status["state"] == "ok"


def test_restarts_back_off_and_give_up(tmp_path: Path, wd_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.jsonl"
    with _gateway(tmp_path, FAILING, wd_dir, monkeypatch, backoff_s=0.5, max_restarts=3) as gw:
        port = gw.cfg.http.port
        with Concentrator(gw.udp, GW, keepalive_s=0.3) as c:
            wait(lambda: gw.gateway.udp.health())
            c.paused = True
            wait(lambda: any(e["event"] == "forwarder_restart_gave_up" for e in events(out)), timeout=30)
            restarts = [e for e in events(out) if e["event"] == "forwarder_restart"]
            assert [r["attempt"] for r in restarts] == [1, 2, 3]
            assert all(r["result"] == "failed" and r["exit_status"] == 1 for r in restarts)
            assert "control process exited with error code" in restarts[0]["output"]
            times = [float(t) for t in (wd_dir / "restarts.log").read_text().split()]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert len(times) == 3 and gaps[0] >= 0.45 and gaps[1] >= 0.95  # 0.5 s, then doubled
            metrics = http_get(port, "/metrics")[1]
            assert 'havel_gateway_forwarder_restarts_total{result="failed"} 3' in metrics
            assert 'havel_gateway_forwarder_restarts_total{result="gave_up"} 1' in metrics
            st = json.loads(http_get(port, "/status")[1])["watchdog"]["forwarders"][f"{GW:016X}"]
            assert st["state"] == "gave_up" and st["attempts"] == 3
            res = CliRunner().invoke(cli, ["gateway", "status", "--config", str(gw.cfg.source)])
            text = " ".join(res.output.split())
            assert f"forwarder watchdog {GW:016X}: gave_up, 3 restart(s), last failed: Job for" in text
            c.paused = False  # someone on the roof fixed it
            wait(lambda: json.loads(http_get(port, "/status")[1])["watchdog"]["forwarders"] == {})
        assert len((wd_dir / "restarts.log").read_text().split()) == 3  # no restart after giving up


@pytest.mark.parametrize(
    "section",
    ['restart_command = "systemctl restart x"', "restart_command = []", "max_restarts = 0", "bogus = 1"],
)
def test_bad_watchdog_config_is_refused(tmp_path: Path, section: str) -> None:
    with pytest.raises(ConfigError, match="watchdog"):  # (refused as the config is read)
        InProcessGateway(config.load(write_config(tmp_path, extra=f"\n[watchdog]\n{section}\n"))).start()
