"""The integrity check of a large database: at start only what the daemon needs before its first PUSH_ACK
(every table but the outbox), the whole file right after in the background; damage there stops the daemon
with the same word as damage found at start. Real files, the real daemon as a process."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from support.gateway_run import REPO, register_abp, write_config
from support.outbox_records import uplink

from havel.gateway import config, db, db_backup
from havel.gateway.integrity import check_at_start
from havel.gateway.outbox import Outbox

NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")


def a_gateway_with_a_backlog(tmp_path: Path) -> config.Config:
    cfg = config.load(write_config(tmp_path))
    conn = db.open_db(cfg.db_path)
    register_abp(conn, 3, dev_eui=0x70B3D57ED0000600, dev_addr=0x26060000, nwk_s_key=NWK, app_s_key=APP)
    ob = Outbox(conn, sinks=["file"])
    ob.put_many([uplink(i % 50, 1 + i // 50) for i in range(2000)])
    conn.close()
    return cfg


def damage_a_page_of(path: Path, table: str) -> None:
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    leaves = [
        r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (table,))
    ]
    conn.close()
    page = leaves[len(leaves) // 2]  # a leaf in the middle of the table
    with open(path, "r+b") as f:
        f.seek((page - 1) * page_size + 1)  # its header: the first free block, cell count, content offset
        f.write(b"\xff" * 7)


def test_damage_in_the_outbox_is_left_to_the_background_check(tmp_path: Path) -> None:
    cfg = a_gateway_with_a_backlog(tmp_path)
    conn = db.open_db(cfg.db_path)
    assert check_at_start(conn) == [] and db_backup.check_integrity(conn) == []
    conn.close()
    damage_a_page_of(cfg.db_path, "outbox")
    ro = db.open_db_readonly(cfg.db_path)
    assert check_at_start(ro) == []  # the registry, journal and queue are sound
    assert db_backup.check_integrity(ro) != []  # the whole file is not
    ro.close()


def test_damage_in_the_registry_is_found_at_start(tmp_path: Path) -> None:
    cfg = a_gateway_with_a_backlog(tmp_path)
    damage_a_page_of(cfg.db_path, "devices")
    ro = db.open_db_readonly(cfg.db_path)
    assert check_at_start(ro) != []
    ro.close()


def test_the_daemon_starts_then_stops_on_damage_the_background_check_finds(tmp_path: Path) -> None:
    cfg = a_gateway_with_a_backlog(tmp_path)
    damage_a_page_of(cfg.db_path, "outbox")
    proc = subprocess.run(
        [sys.executable, "-m", "havel", "gateway", "run", "--config", str(cfg.source)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert "GWMP on" in out, out[-2000:]  # it started (the start check passed) ...
    assert proc.returncode != 0  # ... and stopped with the error a damaged database gets at start
    assert "is damaged" in out and "restore" in out
