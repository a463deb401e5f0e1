"""Message ids across OTAA rejoins: ``<DevEUI>-<SessionEpoch>-<FCnt32>``.

The frame counter restarts at 0 with every join. Without the session epoch a new reading would get the id
of an old one and be dropped as a duplicate (by the outbox, or by the platform's deduplication): data loss.
The daemon here is real (UDP, SQLite, file sink); the node side is built with the real frame layer."""

from __future__ import annotations

import base64
import sqlite3
import time
from pathlib import Path

import pytest
from support.gateway_run import InProcessGateway, write_config

from havel.codecs.lorawan import crypto, phy
from havel.gateway import config, db
from havel.gateway.network.sessions import Device
from havel.gateway.registry import Registry
from havel.gateway.sim.concentrator import Concentrator

from .test_daemon import lines, push, ups, wait

EUI = 0x70B3D57ED00000A1
JOIN_EUI = 0x70B3D57ED0001000
APP_KEY = bytes.fromhex("8A5C0D7B6E0F11223344556677889900")
GW = 0xAA555A00000000A1
COOLING = (
    bytes.fromhex("14000000000000000000df012c0118"),  # cool morning
    bytes.fromhex("1c0003021c007d0192013a012c0118"),  # hot afternoon
    bytes.fromhex("140101007800150226014a012c0118"),  # reservoir low
)


def join(c: Concentrator, dev_nonce: int, tmst: int) -> tuple[int, bytes, bytes]:
    """Send a join-request, take the join-accept the gateway sends -> (DevAddr, NwkSKey, AppSKey)."""
    before = len(c.downlinks)
    jr = phy.build_join_request(join_eui=JOIN_EUI, dev_eui=EUI, dev_nonce=dev_nonce, app_key=APP_KEY)
    push(c, jr, tmst=tmst)
    wait(lambda: len(c.downlinks) > before)
    accept = base64.b64decode(c.downlinks[before]["data"])
    plain = phy.parse_join_accept(crypto.decrypt_join_accept(APP_KEY, accept))
    nwk, app = crypto.derive_session_keys(APP_KEY, plain.join_nonce, plain.net_id, dev_nonce)
    return plain.dev_addr, nwk, app


def uplink(addr: int, nwk: bytes, app: bytes, fcnt: int, payload: bytes) -> bytes:
    return phy.build_data_frame(
        uplink=True,
        confirmed=False,
        dev_addr=addr,
        fcnt32=fcnt,
        fport=1,
        payload=payload,
        nwk_s_key=nwk,
        app_s_key=app,
    )


@pytest.mark.timeout(60)
def test_readings_after_a_rejoin_get_new_ids_and_all_reach_the_sink(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, network={"dedup_window_ms": 50}))
    conn = db.open_db(cfg.db_path)
    Registry(conn).add(
        Device(
            name="cool-1", dev_eui=EUI, codec="cooling", activation="otaa", join_eui=JOIN_EUI, app_key=APP_KEY
        )
    )
    conn.close()
    out = tmp_path / "out.jsonl"
    eui = f"{EUI:016X}"
    with InProcessGateway(cfg) as gw, Concentrator(gw.udp, GW) as c:
        wait(lambda: c.counts["pull_ack"] > 0)  # the gateway knows where to send join-accepts
        tmst = 10_000_000
        for epoch, dev_nonce in ((1, 0x0101), (2, 0x0202)):
            addr, nwk, app = join(c, dev_nonce, tmst)
            for fcnt in range(3):  # the counter restarts at 0 in every session
                tmst += 2_000_000
                push(c, uplink(addr, nwk, app, fcnt, COOLING[fcnt]), tmst=tmst)
            wait(lambda n=3 * epoch: len(ups(out)) >= n)
            tmst += 10_000_000
        # A replay within the (second) session is still rejected: an old counter with another payload
        push(c, uplink(addr, nwk, app, 1, COOLING[0]), tmst=tmst + 1_000_000)
        m = gw.gateway.metrics
        wait(lambda: m.get("uplinks_rejected_total", reason="replay") == 1)
        time.sleep(0.3)
        ids = [u["id"] for u in ups(out)]
        joins = [x["payload"] for x in lines(out) if x["topic"].endswith("/join")]
    expected = [f"{eui}-{e}-{f}" for e in (1, 2) for f in range(3)]
    assert ids == expected  # six readings, six distinct ids, nothing dropped as a duplicate
    assert [j["session_epoch"] for j in joins] == [1, 2]
    # the epoch survives a restart: it is in the registry with the session
    conn = db.open_db(cfg.db_path)
    try:
        dev = Registry(conn).get(EUI)
        assert dev is not None and dev.session is not None and dev.session.epoch == 2
    finally:
        conn.close()


def test_database_of_an_earlier_version_gets_the_epoch_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    # the devices table as the first release created it (no session_epoch)
    raw.executescript(
        "CREATE TABLE devices (dev_eui TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, join_eui TEXT, "
        "codec TEXT NOT NULL, activation TEXT NOT NULL, app_key BLOB, dev_addr INTEGER, nwk_s_key BLOB, "
        "app_s_key BLOB, fcnt_up INTEGER, fcnt_down INTEGER NOT NULL DEFAULT 0, rx1_delay INTEGER NOT NULL "
        "DEFAULT 1, rx1_dr_offset INTEGER NOT NULL DEFAULT 0, rx2_dr INTEGER NOT NULL DEFAULT 0, "
        "rx2_freq_hz INTEGER NOT NULL DEFAULT 869525000, battery INTEGER, battery_at REAL, last_seen REAL, "
        "created_at REAL NOT NULL);"
        "INSERT INTO devices (dev_eui, name, codec, activation, dev_addr, nwk_s_key, app_s_key, fcnt_up, "
        "created_at) VALUES ('70B3D57ED00000A2', 'old-1', 'cooling', 'abp', 1, x'00', x'00', 41, 0);"
    )
    raw.commit()
    raw.close()
    conn = db.open_db(path)
    try:
        dev = Registry(conn).get(0x70B3D57ED00000A2)
        assert dev is not None and dev.session is not None
        assert dev.session.epoch == 0 and dev.session.fcnt_up == 41
        Registry(conn)  # a second open changes nothing
    finally:
        conn.close()
