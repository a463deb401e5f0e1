"""Commands that look never write, find the running daemon from the data directory alone, and a sink that
leaves the config keeps its backlog until an operator discards it. Real daemon, real UDP, real SQLite."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.gateway_run import InProcessGateway, free_tcp_port, register_abp, write_config

from havel.cli import cli
from havel.codecs.lorawan import phy
from havel.errors import ConfigError, InputError
from havel.gateway import config, db
from havel.gateway.sim.concentrator import Concentrator

NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
EUI, ADDR, GW = 0x70B3D57ED0000400, 0x26040000, 0xAA555A00000000AC


def run(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=True)


def unreachable_mqtt(name: str) -> dict[str, Any]:
    """An mqtt sink whose broker is not there: its records wait in the outbox."""
    return {"type": "mqtt", "name": name, "host": "127.0.0.1", "port": free_tcp_port(), "tls": False}


def send_uplinks(gw: InProcessGateway, n: int, first: int = 1) -> None:
    with Concentrator(gw.udp, GW) as conc:
        for f in range(first, first + n):
            data = phy.build_data_frame(
                uplink=True,
                confirmed=False,
                dev_addr=ADDR,
                fcnt32=f,
                fport=1,
                payload=bytes.fromhex("1200f1013d4cba"),
                nwk_s_key=NWK,
                app_s_key=APP,
            )
            rx = conc.rxpk(data, tmst=f * 1000, freq_hz=868_100_000, datr="SF7BW125", rssi=-80, snr=5)
            assert conc.push([rx], wait_ack_s=5.0)


def wait_for(pred: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def uplink_ids(gw: InProcessGateway) -> list[str]:
    return [i for i in gw.call(lambda: gw.gateway.outbox.ids()) if "-event-" not in i]


def fingerprint(data_dir: Path) -> dict[str, tuple[str, int]]:
    """Content hash and mtime (ns) of every database file in the data directory."""
    return {
        f.name: (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
        for f in sorted(data_dir.iterdir())
        if f.name.startswith("havel.db")
    }


def test_status_with_data_dir_finds_the_running_daemon_and_releases_nothing(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, sinks=[unreachable_mqtt("primary")])
    cfg = config.load(cfg_path)
    conn = db.open_db(cfg.db_path)
    register_abp(conn, 1, dev_eui=EUI, dev_addr=ADDR, nwk_s_key=NWK, app_s_key=APP)
    conn.close()
    data = str(cfg.data_dir)
    with InProcessGateway(cfg) as gw:
        send_uplinks(gw, 5)
        wait_for(lambda: len(uplink_ids(gw)) == 5)
        before = uplink_ids(gw)
        # --data-dir alone: defaults (a file sink, HTTP port 9110) that are not the daemon's
        r = run("gateway", "status", "--data-dir", data, "--json")
        st = json.loads(r.output)
        assert st["state"] != "not running" and st["gateway_id"] == "gw-test", st
        assert st["outbox"]["depth"] >= 5 and "primary" in st["sinks"]
        human = run("gateway", "status", "--data-dir", data)
        first_line = human.output.splitlines()[0]
        assert "gw-test" in first_line and "not running" not in first_line, human.output
        assert "outbox: 0 waiting" not in human.output and "outbox: " in human.output
        assert uplink_ids(gw) == before  # nothing released behind the daemon's back
        shown = run("gateway", "outbox", "show", "--data-dir", data)
        assert "primary: " in shown.output and "(not configured)" not in shown.output
        # the running daemon's own sink cannot be discarded
        r = run("gateway", "outbox", "discard", "--data-dir", data, "--sink", "primary", "--yes")
        assert isinstance(r.exception, InputError) and "running daemon" in str(r.exception)
        assert uplink_ids(gw) == before

    # stopped: the read-only commands change no byte and no mtime of the database files, create none
    prints = fingerprint(cfg.data_dir)
    for args in (("gateway", "status"), ("gateway", "outbox", "show"), ("device", "list")):
        r = run(*args, "--data-dir", data)
        assert r.exit_code in (0, 3), r.output
    assert fingerprint(cfg.data_dir) == prints
    offline = json.loads(run("gateway", "status", "--data-dir", data, "--json").output)
    assert offline["state"] == "not running" and offline["outbox"]["waiting_per_sink"]["primary"] >= 5
    assert fingerprint(cfg.data_dir) == prints


def test_a_renamed_sink_keeps_its_backlog_until_discarded(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, sinks=[unreachable_mqtt("primary")])
    cfg = config.load(cfg_path)
    conn = db.open_db(cfg.db_path)
    register_abp(conn, 1, dev_eui=EUI, dev_addr=ADDR, nwk_s_key=NWK, app_s_key=APP)
    conn.close()
    with InProcessGateway(cfg) as gw:
        send_uplinks(gw, 4)
        wait_for(lambda: len(uplink_ids(gw)) == 4)
        waiting = uplink_ids(gw)

    # the sink is renamed in the config: the old name's backlog stays, the new name gets new records
    cfg_path = write_config(tmp_path, sinks=[unreachable_mqtt("platform")])
    cfg = config.load(cfg_path)
    with InProcessGateway(cfg) as gw:
        assert set(waiting) <= set(uplink_ids(gw))
        shown = run("gateway", "outbox", "show", "--config", str(cfg_path)).output
        assert "primary: " in shown and "(not configured)" in shown
        send_uplinks(gw, 1, first=5)
        wait_for(lambda: len(uplink_ids(gw)) == 5)
        # the operator is told how many go, and says no: nothing happens
        r = run("gateway", "outbox", "discard", "--config", str(cfg_path), "--sink", "primary", stdin="n\n")
        assert r.exit_code == 1 and "Drop the " in r.output and "waiting for sink 'primary'" in r.output
        assert set(waiting) <= set(uplink_ids(gw))
        r = run("gateway", "outbox", "discard", "--config", str(cfg_path), "--sink", "primary", "--yes")
        assert r.exit_code == 0 and "discarded sink primary" in r.output, r.output
        # what only the old sink needed is gone; the new record still waits for the configured sink
        wait_for(lambda: not set(waiting) & set(uplink_ids(gw)))
        assert len(uplink_ids(gw)) == 1
        r = run("gateway", "outbox", "discard", "--config", str(cfg_path), "--sink", "nope", "--yes")
        assert isinstance(r.exception, InputError) and "knows no sink" in str(r.exception)


def test_status_of_a_daemon_without_http_port_says_it_runs(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path)
    text = cfg_path.read_text().replace("[http]\nport = ", "[http]\nport = 0\n# was ")
    cfg_path.write_text(text)
    cfg = config.load(cfg_path)
    assert cfg.http.port == 0
    with InProcessGateway(cfg):
        r = run("gateway", "status", "--data-dir", str(cfg.data_dir), "--json")
        st = json.loads(r.output)
        assert r.exit_code == 0 and st["state"] == "running" and st["pid"] == os.getpid()
    r = run("gateway", "status", "--data-dir", str(cfg.data_dir))
    assert r.exit_code == 3 and "not running" in r.output


def test_a_second_daemon_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path))
    with InProcessGateway(cfg):
        (tmp_path / "second").mkdir()
        other = config.load(write_config(tmp_path / "second"))
        other = dataclasses.replace(other, data_dir=cfg.data_dir)  # other ports, the same data
        with pytest.raises(ConfigError, match="another gateway"):
            InProcessGateway(other).start()
