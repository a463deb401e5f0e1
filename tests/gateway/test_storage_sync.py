"""Which commits wait for the disk: a PUSH_ACK still means the frame is on disk (the intake journal commit is
fsynced), the commit that stores the frame and the forwarder's acknowledgement commit are not (the next fsync
takes them along), a downlink waits for the log to be fsynced, and a power cut that loses the commits after
the last fsync loses no frame. Real daemon in-process, real UDP, real SQLite files, the file sink."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.gateway_run import InProcessGateway, register_abp, write_config

from havel.codecs.lorawan import phy
from havel.gateway import config, db
from havel.gateway.sim.concentrator import Concentrator

NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
EUI0, ADDR0 = 0x70B3D57ED0000100, 0x26020000
GW = 0xAA555A00000000AA
PAYLOAD = bytes.fromhex("1200f1013d4cba")  # temperature: two probes, humidity, battery


def rxpk(conc: Concentrator, fcnt: int, *, confirmed: bool = False) -> dict[str, Any]:
    frame = phy.build_data_frame(
        uplink=True,
        confirmed=confirmed,
        dev_addr=ADDR0,
        fcnt32=fcnt,
        fport=1,
        payload=PAYLOAD,
        nwk_s_key=NWK,
        app_s_key=APP,
    )
    return conc.rxpk(frame, tmst=fcnt * 1_000_000, freq_hz=868_100_000, datr="SF7BW125", rssi=-90, snr=3)


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def published(folder: Path) -> list[dict[str, Any]]:
    """The uplink messages the file sink wrote (payloads; events left out)."""
    out = folder / "out.jsonl"
    lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return [m["payload"] for m in lines if m["topic"].endswith("/up")]


def gateway_in(folder: Path, network: dict[str, Any] | None = None) -> config.Config:
    # the commits of batch_s = 0 (a commit per store, the journal in SQLite); with batches:
    # tests/gateway/test_write_batch.py
    cfg = config.load(write_config(folder, network=network, extra="\n[storage]\nbatch_s = 0\n"))
    if not cfg.db_path.exists():
        conn = db.open_db(cfg.db_path)
        register_abp(conn, 1, dev_eui=EUI0, dev_addr=ADDR0, nwk_s_key=NWK, app_s_key=APP)
        conn.close()
    return cfg


def commits(statements: list[str]) -> list[tuple[str, str]]:
    """(synchronous level at COMMIT, the transaction's statements joined) for each committed transaction."""
    level, body, out = "FULL", [], []
    for s in statements:
        text = " ".join(s.split())
        upper = text.upper()
        if upper.startswith("PRAGMA SYNCHRONOUS="):
            level = upper.split("=", 1)[1]
        elif upper.startswith("BEGIN"):
            body = []
        elif upper == "COMMIT":
            out.append((level, "\n".join(body)))
        else:
            body.append(text)
    return out


def test_only_the_journal_commit_waits_for_the_disk(tmp_path: Path) -> None:
    cfg = gateway_in(tmp_path)
    statements: list[str] = []
    gw = InProcessGateway(cfg).start()
    try:
        conn = gw.gateway.conn
        assert conn is not None
        gw.loop.call_soon_threadsafe(conn.set_trace_callback, statements.append)
        time.sleep(0.2)
        with Concentrator(gw.udp, GW) as conc:
            assert conc.push([rxpk(conc, 1)], wait_ack_s=10)
            wait_for(lambda: len(published(tmp_path)) == 1, "the uplink published")
            wait_for(
                lambda: any("DELETE FROM outbox" in b for _, b in commits(list(statements))),
                "the acknowledgement commit",
            )
    finally:
        gw.stop()
    done = commits(statements)
    journal = [lvl for lvl, b in done if "INSERT INTO intake" in b]
    stored = [lvl for lvl, b in done if "INSERT OR IGNORE INTO outbox" in b]
    acked = [lvl for lvl, b in done if "DELETE FROM outbox" in b]
    assert journal == ["FULL"]  # the PUSH_ACK waited for an fsynced commit
    assert stored == ["NORMAL"] and acked and set(acked) == {"NORMAL"}
    # and the connection goes back to FULL after each of them
    pragmas = [s.upper() for s in statements if s.upper().startswith("PRAGMA SYNCHRONOUS=")]
    assert pragmas == ["PRAGMA SYNCHRONOUS=NORMAL", "PRAGMA SYNCHRONOUS=FULL"] * (len(pragmas) // 2)


def test_a_downlink_goes_out_only_after_the_log_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_sync = db.sync_wal

    def sync_wal(conn: sqlite3.Connection) -> None:
        real_sync(conn)
        events.append("fsync")

    monkeypatch.setattr(db, "sync_wal", sync_wal)
    cfg = gateway_in(tmp_path)
    gw = InProcessGateway(cfg).start()
    try:
        intake = gw.gateway.intake
        assert intake is not None and intake.backend is not None
        backend = intake.backend
        real_send = backend.send

        def send(*args: Any, **kwargs: Any) -> bool:
            events.append("send")
            return real_send(*args, **kwargs)

        monkeypatch.setattr(backend, "send", send)
        with Concentrator(gw.udp, GW, keepalive_s=0.5) as conc:
            wait_for(lambda: conc.counts["pull_ack"] > 0, "the forwarder's PULL_DATA acknowledged")
            assert conc.push([rxpk(conc, 1, confirmed=True)], wait_ack_s=10)
            wait_for(lambda: len(conc.downlinks) == 1, "the ACK downlink")
    finally:
        gw.stop()
    assert events[:2] == ["fsync", "send"]


def test_a_power_cut_after_the_last_fsync_loses_no_frame(tmp_path: Path) -> None:
    """What is on the disk at a power cut is at least what the last fsync wrote. Right after a PUSH_ACK
    that is the journal commit (the frame not yet stored: the dedup window is open); the commits after it
    (storing, acknowledging) were not fsynced and are lost. The daemon started on that copy publishes the
    frame again, with the same message id."""
    live, cut = tmp_path / "live", tmp_path / "cut"
    live.mkdir()
    cfg = gateway_in(live, network={"dedup_window_ms": 1500})
    gw = InProcessGateway(cfg).start()
    try:
        with Concentrator(gw.udp, GW) as conc:
            assert conc.push([rxpk(conc, 1)], wait_ack_s=10)
            # the disk as the PUSH_ACK left it: the database file and its write-ahead log as they are now
            (cut / "data").mkdir(parents=True)
            for name in ("havel.db", "havel.db-wal", "havel.db.id"):
                shutil.copyfile(live / "data" / name, cut / "data" / name)
            wait_for(lambda: len(published(live)) == 1, "the uplink published")
    finally:
        gw.stop()
    first = published(live)[0]
    again = InProcessGateway(gateway_in(cut)).start()
    try:
        wait_for(lambda: len(published(cut)) == 1, "the frame published again from the intake journal")
    finally:
        again.stop()
    second = published(cut)[0]
    assert second["id"] == first["id"] and second["fcnt"] == first["fcnt"] == 1


def test_a_new_database_has_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "new.db")
    assert conn.execute("PRAGMA page_size").fetchone()[0] == db.PAGE_SIZE == 1024
    conn.close()
    old = sqlite3.connect(tmp_path / "old.db")  # made by a version with SQLite's default pages
    old.execute("PRAGMA page_size=4096")
    old.execute("CREATE TABLE x (y)")
    old.close()
    conn = db.open_db(tmp_path / "old.db")
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert conn.execute("SELECT count(*) FROM devices").fetchone()[0] == 0  # migrated all the same
    conn.close()
