"""A database that lost its contents or is damaged is refused at start with a clear word, a backup brings the
gateway back, and /healthz answers even when the database fails under the running daemon. Real files."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.gateway_run import InProcessGateway, http_get, register_abp, write_config

from havel.cli import cli
from havel.errors import InputError, StorageError
from havel.gateway import config, db, runlock
from havel.gateway.outbox import Outbox

NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
EUI, ADDR = 0x70B3D57ED0000500, 0x26050000


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def used_gateway(tmp_path: Path) -> config.Config:
    """A data directory the gateway has used: three devices, a waiting outbox record."""
    cfg = config.load(write_config(tmp_path))
    conn = db.open_db(cfg.db_path)
    register_abp(conn, 3, dev_eui=EUI, dev_addr=ADDR, nwk_s_key=NWK, app_s_key=APP)
    ob = Outbox(conn, sinks=["file"])
    ob.put(
        {
            "id": "gw-test-event-1",
            "kind": "event",
            "received_at": "2026-12-01T00:00:00Z",
            "payload": {"event": "test"},
        }
    )
    conn.close()
    return cfg


def refused(cfg: config.Config) -> StorageError:
    with pytest.raises(StorageError) as err:
        InProcessGateway(cfg).start()
    deadline = time.monotonic() + 10  # (its thread lets go of the data directory just after)
    while runlock.running(cfg.data_dir) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return err.value


def test_zero_length_database_is_refused(tmp_path: Path) -> None:
    cfg = used_gateway(tmp_path)
    cfg.db_path.write_bytes(b"")  # what a crashed file system left
    err = refused(cfg)
    assert "empty file" in str(err) and "restore" in str(err)
    db.marker_path(cfg.db_path).unlink()  # even without the marker: a zero-length file is never a database
    assert "empty file" in str(refused(cfg))


def test_missing_or_emptied_database_is_refused_when_the_folder_had_one(tmp_path: Path) -> None:
    cfg = used_gateway(tmp_path)
    cfg.db_path.unlink()
    assert "is missing" in str(refused(cfg))
    sqlite3.connect(cfg.db_path).close()  # an empty SQLite file put in its place
    cfg.db_path.write_bytes(b"")
    conn = sqlite3.connect(cfg.db_path)
    conn.execute("CREATE TABLE x (a)")
    conn.execute("DROP TABLE x")
    conn.close()
    assert "lost every table" in str(refused(cfg))
    other = tmp_path / "other"
    db.open_db(other / "havel.db").close()  # another gateway's database moved in
    cfg.db_path.unlink()
    (other / "havel.db").rename(cfg.db_path)
    assert "is not the one this folder had" in str(refused(cfg))


def test_damaged_page_is_found_at_start(tmp_path: Path) -> None:
    cfg = used_gateway(tmp_path)
    conn = sqlite3.connect(cfg.db_path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'devices'").fetchone()[0]
    conn.close()
    with open(cfg.db_path, "r+b") as f:
        f.seek((root - 1) * page_size + 8)
        f.write(b"\xa5" * 200)
    err = refused(cfg)
    assert "damaged" in str(err) and "restore" in str(err)


def test_backup_and_restore_bring_a_lost_database_back(tmp_path: Path) -> None:
    cfg = used_gateway(tmp_path)
    data = str(cfg.data_dir)
    backup = tmp_path / "backup.db"
    with InProcessGateway(cfg):  # an online backup, while the daemon runs
        r = run("gateway", "backup", "--data-dir", data, "--to", str(backup))
        assert r.exit_code == 0, r.output
        r = run("gateway", "restore", "--data-dir", data, "--from", str(backup), "--yes")
        assert isinstance(r.exception, InputError) and "stop it" in str(r.exception)
    assert backup.stat().st_mode & 0o077 == 0
    cfg.db_path.write_bytes(b"")
    refused(cfg)
    r = run("gateway", "restore", "--data-dir", data, "--from", str(backup), "--yes")
    assert r.exit_code == 0 and "the old database is now" in r.output, r.output
    assert list(cfg.data_dir.glob("havel.db.replaced-*"))  # the replaced file is kept, never deleted
    with InProcessGateway(cfg) as gw:
        assert gw.gateway.registry.count() == 3
    # a damaged backup is not restored
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    r = run("gateway", "restore", "--data-dir", data, "--from", str(bad), "--yes")
    assert isinstance(r.exception, StorageError)


def test_healthz_answers_when_the_database_fails_under_the_daemon(tmp_path: Path) -> None:
    cfg = used_gateway(tmp_path)
    with InProcessGateway(cfg) as gw:
        port = gw.gateway.http_port
        assert port is not None and http_get(port, "/healthz")[0] == 200
        gw.call(lambda: gw.gateway.conn.close())  # every read now fails, as on an unreadable file
        code, body = http_get(port, "/healthz")
        doc = json.loads(body)
        assert code == 503 and doc["storage"]["ok"] is False and "error" in doc["outbox"], doc
        code, body = http_get(port, "/status")
        assert code == 200 and json.loads(body)["state"] == "degraded"
        gw.gateway.conn = None  # (already closed: the daemon's stop must not close it again)
