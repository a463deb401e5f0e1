"""The power component in the real daemon process, against a real upsd (dummy-ups) and a real Mosquitto:
mains loss is an alarm-class event with the runtime left, on status, metrics and MQTT; a low battery
flushes the outbox, tells the platform and stops the daemon cleanly; ``power-check`` keeps it from starting
while the battery is low; started again with mains, it says so and drains what it could not send."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from nut_server import UpsServer
from support.gateway_run import REPO, GatewayProcess, InProcessGateway, free_tcp_port, http_get, write_config
from support.mosquitto import Mosquitto
from support.mqtt_subscriber import Subscriber

from havel.cli import cli
from havel.gateway import config, db
from havel.gateway.outbox import Outbox

GW_ID = "gw-roof"


def _config(tmp_path: Path, broker_port: int, ups: str, **power: Any) -> tuple[Path, int]:
    http = free_tcp_port()
    keys = {
        "ups": ups,
        "poll_s": 0.3,
        "report_every_s": 1,
        "flush_timeout_s": 10,
        "low_runtime_s": 600,
        **power,
    }
    extra = "\n[power]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    sinks = [
        {
            "type": "mqtt",
            "name": "platform",
            "host": "127.0.0.1",
            "port": broker_port,
            "tls": False,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
        }
    ]
    return write_config(tmp_path, sinks=sinks, http_port=http, extra=extra, gateway_id=GW_ID), http


def events(sub: Subscriber) -> list[dict[str, Any]]:
    return [m.json() for m in list(sub.messages) if m.topic == f"havel/{GW_ID}/events"]


def names(sub: Subscriber) -> list[str]:
    return [e["event"] for e in events(sub) if e["event"].startswith("power_")]


def wait(pred: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def power_check(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "havel", "gateway", "power-check", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


@pytest.mark.timeout(120)
def test_mains_loss_low_battery_and_return(tmp_path: Path, ups: UpsServer, mosquitto: Mosquitto) -> None:
    cfg_path, http = _config(tmp_path, mosquitto.port, ups.address)
    cfg = config.load(cfg_path)
    with Subscriber(mosquitto.port, f"havel/{GW_ID}/#") as sub:
        gw = GatewayProcess(cfg_path, http).start()
        try:
            wait(lambda: json.loads(http_get(http, "/status")[1])["power"]["state"] == "mains")
            assert "havel_gateway_power_on_battery 0" in http_get(http, "/metrics")[1]

            ups.set("OB DISCHRG", charge=80, runtime=2400)  # mains lost
            lost = wait(lambda: [e for e in events(sub) if e["event"] == "power_on_battery"])[0]
            assert lost["runtime_s"] == 2400 and lost["charge_pct"] == 80 and lost["ups"] == ups.address
            st = json.loads(http_get(http, "/status")[1])["power"]
            assert st["state"] == "battery" and st["runtime_s"] == 2400
            text = " ".join(
                CliRunner().invoke(cli, ["gateway", "status", "--config", str(cfg_path)]).output.split()
            )
            assert f"power ({ups.address}): battery (OB DISCHRG), charge 80 %, runtime left 2400 s" in text
            # the retained status on MQTT, published with every event, shows it too
            wait(
                lambda: any(
                    m.json().get("power", {}).get("runtime_s") == 2400
                    for m in list(sub.messages)
                    if m.topic == f"havel/{GW_ID}/status"
                )
            )
            metrics = http_get(http, "/metrics")[1]
            assert "havel_gateway_power_on_battery 1" in metrics
            assert "havel_gateway_power_runtime_seconds 2400" in metrics
            assert "havel_gateway_power_battery_charge_percent 80" in metrics

            ups.set("OB DISCHRG", charge=50, runtime=1500)  # the runtime left is reported while on battery
            wait(lambda: [e for e in events(sub) if e["event"] == "power_battery" and e["runtime_s"] == 1500])

            ups.set("OB DISCHRG", charge=30, runtime=400)  # below Havel's 600 s: low
            assert gw.proc is not None
            assert gw.proc.wait(30) == 0  # stopped by itself, cleanly
            low = [e for e in events(sub) if e["event"] == "power_low_battery"]
            assert len(low) == 1 and low[0]["runtime_s"] == 400  # the platform was told before the stop
        finally:
            gw.kill()
        # the outbox was flushed and closed: nothing waits, and the reason is kept for the next start
        conn = db.open_db(cfg.db_path)
        assert Outbox(conn, sinks=["platform"]).depth() == 0
        conn.close()
        state = cfg.data_dir / "power-state.json"
        assert json.loads(state.read_text())["stopped"] == "low_battery"
        assert state.stat().st_mode & 0o777 == 0o600

        # systemd tries to start it again: refused while the battery is low, allowed with mains
        refused = power_check(cfg_path)
        assert refused.returncode == 1 and "not starting until mains is back" in refused.stdout
        ups.set("OL CHRG", charge=32, runtime=450)
        ups.wait_for("OL CHRG")
        assert power_check(cfg_path).returncode == 0

        gw = GatewayProcess(cfg_path, http).start()
        try:
            back = wait(lambda: [e for e in events(sub) if e["event"] == "power_restored"])[0]
            assert back["stopped_at"] > 0 and back["down_s"] >= 0
            assert not state.exists()
            assert json.loads(http_get(http, "/status")[1])["power"]["state"] == "mains"
        finally:
            assert gw.terminate() == 0
        assert names(sub) == ["power_on_battery", "power_battery", "power_low_battery", "power_restored"]


@pytest.mark.timeout(120)
def test_outage_without_backhaul_drains_after_return(
    tmp_path: Path, ups: UpsServer, mosquitto: Mosquitto
) -> None:
    """The backhaul fails with the power: the low-battery stop cannot flush; the events, stored as alarms,
    go out in order once the gateway starts again."""
    cfg_path, http = _config(tmp_path, mosquitto.port, ups.address, flush_timeout_s=1.5)
    cfg = config.load(cfg_path)
    gw = GatewayProcess(cfg_path, http).start()
    try:
        wait(lambda: json.loads(http_get(http, "/status")[1])["power"]["state"] == "mains")
        mosquitto.stop()
        ups.set("OB DISCHRG", charge=70, runtime=2000)
        wait(lambda: json.loads(http_get(http, "/status")[1])["power"]["state"] == "battery")
        ups.set("OB DISCHRG LB", charge=10, runtime=900)  # the UPS's own low-battery flag
        assert gw.proc is not None
        assert gw.proc.wait(30) == 0
    finally:
        gw.kill()
    conn = db.open_db(cfg.db_path)
    left = Outbox(conn, sinks=["platform"]).fetch("platform", 100)
    conn.close()
    power = [(r.payload["event"], r.priority) for r in left if r.payload["event"].startswith("power_")]
    assert power == [("power_on_battery", "alarm"), ("power_low_battery", "alarm")]
    assert json.loads((cfg.data_dir / "power-state.json").read_text())["outbox_left"] >= 2

    ups.set("OL", charge=15, runtime=1000)
    ups.wait_for("OL")
    mosquitto.start()
    with Subscriber(mosquitto.port, f"havel/{GW_ID}/#") as sub:
        gw = GatewayProcess(cfg_path, http).start()
        try:
            wait(lambda: "power_restored" in names(sub))
            assert names(sub) == ["power_on_battery", "power_low_battery", "power_restored"]
            drained = next(e for e in events(sub) if e["event"] == "power_low_battery")
            assert drained["buffered"] is True  # sent after the outage, from the outbox
            conn = db.open_db(cfg.db_path)
            wait(lambda: Outbox(conn, sinks=["platform"]).depth() == 0)
            conn.close()
        finally:
            assert gw.terminate() == 0


def test_an_unreachable_ups_is_reported_and_the_gateway_keeps_running(tmp_path: Path) -> None:
    port = free_tcp_port()  # nothing listens there
    cfg = config.load(
        write_config(
            tmp_path, extra=f'\n[power]\nups = "roofups@127.0.0.1:{port}"\npoll_s = 0.2\ntimeout_s = 1\n'
        )
    )
    out = tmp_path / "out.jsonl"
    with InProcessGateway(cfg) as gw:
        wait(lambda: out.exists() and '"power_ups_unreachable"' in out.read_text())
        st = gw.call(lambda: gw.gateway.status()["power"])
        assert (
            st["reachable"] is False and st["state"] == "unknown" and "cannot reach upsd" in st["last_error"]
        )
        assert 'havel_gateway_power_reads_total{result="connect"}' in http_get(cfg.http.port, "/metrics")[1]
        assert http_get(cfg.http.port, "/healthz")[0] in (200, 503)  # still serving
        text = " ".join(
            CliRunner().invoke(cli, ["gateway", "status", "--config", str(cfg.source)]).output.split()
        )
        assert "UPS not readable" in text and "cannot reach upsd" in text
    # power-check does not keep the gateway down for an unreachable upsd
    assert power_check(cfg.source).returncode == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("section", ["", 'ups = "x"\nbogus = 1', 'ups = "bad name"', 'ups = "x"\npoll_s = 0'])
def test_bad_power_config_is_refused(tmp_path: Path, section: str) -> None:
    from havel.errors import ConfigError

    with pytest.raises(ConfigError, match="power"):  # (refused as the config is read)
        InProcessGateway(config.load(write_config(tmp_path, extra=f"\n[power]\n{section}\n"))).start()
