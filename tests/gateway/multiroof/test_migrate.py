"""A roof's SQLite registry moved into the shared store: message ids continue where they were (same session
epoch and counters), used DevNonces stay used, the JoinNonce counter never goes back."""

from __future__ import annotations

from pathlib import Path

from support.redis import RedisServer

from havel.gateway import db
from havel.gateway.network.outcome import Reason, Status
from havel.gateway.network.sessions import Session
from havel.gateway.network.shared.migrate import main
from havel.gateway.registry import Registry

from .helpers import RoofUnderTest, abp_node

GA = 0xAA00000000000001


def test_a_registry_moved_into_redis_keeps_ids_nonces_and_counters(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    abp, otaa = abp_node(60), abp_node(61)
    otaa.otaa = True
    conn = db.open_db(tmp_path / "havel.db")
    reg = Registry(conn)
    with reg.transaction():
        reg.add(abp.device())
        reg.add(otaa.device())
    with reg.transaction():
        reg.set_fcnt_up(abp.dev_eui, 41, 0.0)
    for nonce in (7, 8):  # two joins: the session epoch is 2
        with reg.transaction():
            reg.activate(
                otaa.dev_eui,
                Session(otaa.dev_addr, otaa.nwk, otaa.app),
                nonce,
                rx1_delay=1,
                rx1_dr_offset=0,
                rx2_dr=0,
            )
    conn.execute("UPDATE meta SET value = 500 WHERE key = 'join_nonce'")
    conn.close()
    assert main(["--db", str(tmp_path / "havel.db"), "--store", redis_server.url]) == 0
    roof = RoofUnderTest("roof-a", redis_server.url, tmp_path)
    abp.fcnt = 41
    roof.hear(GA, abp.uplink(), snr=1.0)
    roof.hear(GA, otaa.uplink(), snr=1.0)
    outs = roof.flush()
    assert [o.status for o in outs] == [Status.ACCEPTED, Status.ACCEPTED]
    assert [r["id"] for r in roof.records()] == [f"{abp.dev_eui:016X}-0-42", f"{otaa.dev_eui:016X}-2-1"]
    otaa.dev_nonce = 7  # the device's next join-request uses 8 again: refused
    roof.hear(GA, otaa.join_request(), snr=1.0)
    (out,) = roof.flush()
    assert out.status == Status.REJECTED and out.reason == Reason.DEV_NONCE_REUSED
    assert roof.shared.next_join_nonce() == 501
