"""Downlink commands at the scheduler: every command gets a result (also odd ttl_s values and messages that
are not JSON), a device's queue is capped, ids are scoped per device, and join-accepts and MAC answers
come before application commands in the gateway's duty cycle; a join that cannot be answered is not
recorded. Real SQLite registry and outbox, the real network server and codecs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from havel.codecs.lorawan import crypto, phy
from havel.gateway import db
from havel.gateway.backends.semtech_udp.rxpk import RxPacket
from havel.gateway.config import NetworkConfig
from havel.gateway.downlink_commands import read_command
from havel.gateway.downlinks import APP_DUTY_SHARE, DownlinkScheduler, Transmission
from havel.gateway.network.outcome import Outcome
from havel.gateway.network.reception import reception
from havel.gateway.network.sessions import Device, Session
from havel.gateway.registry import Registry

from .test_netserver_downlinks import ADDR, APP, EUI, GW, NOW, NWK, Env, decode
from .test_netserver_downlinks import env as env

OTHER_EUI, OTHER_ADDR = 0x70B3D57ED0000009, 0x26011BDB
OTAA_EUI, JOIN_EUI = 0x70B3D57ED000000A, 0x70B3D57ED0001000
APP_KEY = bytes.fromhex("88888888888888888888888888888888")
OVERRIDE = {"fport": 23, "data": {"state": "open", "ttl": 900}}


def submit(env: Env, dev_eui: int, body: object) -> dict:  # type: ignore[type-arg]
    with env.reg.transaction():
        res = env.dl.submit(dev_eui, body)
        env.outbox.put(res)
    return res["payload"]  # type: ignore[no-any-return]


def test_every_ttl_gets_a_result_also_infinite_nan_and_huge(env: Env) -> None:
    for ttl in (float("inf"), float("nan"), 10**400, 0, -5, 31 * 86_400, "3600", True, None):
        res = env.command({**OVERRIDE, "ttl_s": ttl, "id": "t"})
        assert res["state"] == "rejected" and res["detail"].startswith("bad_ttl"), (ttl, res)
        json.dumps(res, allow_nan=False)  # the result itself is JSON
    # as they arrive over MQTT: 1e400 is infinity to a JSON parser, NaN is no JSON at all
    for text in (b'{"fport": 23, "raw": "00", "ttl_s": 1e400}', b'{"fport": 23, "raw": "00", "ttl_s": NaN}'):
        body = read_command(text)
        assert env.command(body)["detail"].startswith("bad_number")
    assert env.command({**OVERRIDE, "ttl_s": 30 * 86_400})["state"] == "queued"
    assert env.dl.depth() == 1
    assert env.dl.rejected_by_reason == {"bad_ttl": 9, "bad_number": 2}


def test_a_devices_queue_is_capped_and_says_so(tmp_path: Path) -> None:
    env = Env(tmp_path, downlink_queue_max=3)
    for i in range(3):
        assert env.command({"fport": 24, "raw": "1001", "id": f"c{i}"})["state"] == "queued"
    full = env.command({"fport": 24, "raw": "1001", "id": "c3"})
    assert full["state"] == "rejected" and full["command_id"] == "c3"
    assert full["detail"].startswith("queue_full") and "downlink_queue_max = 3" in full["detail"]
    # a command replacing a queued one of the same id takes its place
    assert env.command({"fport": 24, "raw": "1000", "id": "c1"})["state"] == "queued"
    assert env.dl.depth() == 3
    env.uplink()  # one goes out: room for one more
    assert env.command({"fport": 24, "raw": "1001", "id": "c4"})["state"] == "queued"
    assert env.dl.rejected_by_reason == {"queue_full": 1}


def test_command_ids_are_scoped_per_device(env: Env) -> None:
    env.reg.add(
        Device(
            name="cool-2",
            dev_eui=OTHER_EUI,
            codec="cooling",
            activation="abp",
            session=Session(OTHER_ADDR, NWK, APP),
        )
    )
    assert submit(env, EUI, {"fport": 24, "raw": "1001", "id": "valve"})["state"] == "queued"
    assert submit(env, OTHER_EUI, {"fport": 24, "raw": "1000", "id": "valve"})["state"] == "queued"
    assert env.dl.depth() == 2
    assert [c.payload for c in env.dl.queue(EUI)] == [bytes.fromhex("1001")]
    assert [c.payload for c in env.dl.queue(OTHER_EUI)] == [bytes.fromhex("1000")]
    tx, results = env.uplink()  # the first device's command goes out; the other's stays
    assert tx is not None and decode(tx)[1] == bytes.fromhex("1001")
    assert [(r["dev_eui"], r["payload"]["state"]) for r in results] == [(f"{EUI:016X}", "sent")]
    assert [c.payload for c in env.dl.queue(OTHER_EUI)] == [bytes.fromhex("1000")]


def test_a_database_with_ids_unique_over_all_devices_is_rebuilt(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "havel.db")  # as an earlier release left it (no schema version)
    old.execute(
        "CREATE TABLE downlinks (id TEXT PRIMARY KEY, dev_eui TEXT NOT NULL, fport INTEGER NOT NULL, payload "
        "BLOB NOT NULL, confirmed INTEGER NOT NULL, expires_at REAL NOT NULL, attempts INTEGER NOT NULL "
        "DEFAULT 0, awaiting INTEGER NOT NULL DEFAULT 0, fcnt_down INTEGER, request TEXT NOT NULL, "
        "created_at REAL NOT NULL)"
    )
    old.execute(
        "INSERT INTO downlinks VALUES ('valve', ?, 24, x'1001', 1, 9e9, 2, 1, 7, '{}', 1.0)", (f"{EUI:016X}",)
    )
    old.commit()
    old.close()
    conn = db.open_db(tmp_path / "havel.db")
    env_reg = Registry(conn)
    dl = DownlinkScheduler(env_reg, NetworkConfig())
    [cmd] = dl.queue(EUI)
    assert (cmd.id, cmd.attempts, cmd.awaiting, cmd.fcnt_down) == ("valve", 2, True, 7)
    pk = [r[1] for r in sorted(conn.execute("PRAGMA table_info(downlinks)"), key=lambda r: r[5]) if r[5]]
    assert pk == ["dev_eui", "id"]
    with env_reg.transaction():
        conn.execute(
            "INSERT INTO downlinks (id, dev_eui, fport, payload, confirmed, expires_at, request, created_at) "
            "VALUES ('valve', ?, 24, x'1000', 0, 9e9, '{}', 2.0)",
            (f"{OTHER_EUI:016X}",),
        )
    assert dl.depth() == 2
    DownlinkScheduler(env_reg, NetworkConfig())  # opening it again changes nothing
    assert dl.depth() == 2
    try:
        conn.execute(
            "INSERT INTO downlinks (id, dev_eui, fport, payload, confirmed, expires_at, request, "
            "created_at) VALUES ('valve', ?, 24, x'00', 0, 1, '{}', 3.0)",
            (f"{EUI:016X}",),
        )
    except sqlite3.IntegrityError:
        pass
    else:
        raise AssertionError("(dev_eui, id) is the key")
    conn.close()


# ------------------------------------------------------------------------------------ joins and duty cycle
def _add_otaa(env: Env) -> None:
    env.reg.add(
        Device(
            name="pegel-9",
            dev_eui=OTAA_EUI,
            codec="water",
            activation="otaa",
            join_eui=JOIN_EUI,
            app_key=APP_KEY,
        )
    )


def _join(env: Env, nonce: int, *, reachable: bool = True) -> tuple[Outcome, Transmission | None]:
    jr = phy.build_join_request(join_eui=JOIN_EUI, dev_eui=OTAA_EUI, dev_nonce=nonce, app_key=APP_KEY)
    rx = RxPacket(data=jr, tmst=9_000_000, freq_hz=868_100_000, datr="SF12BW125", lsnr=-5.0, rssi=-110)
    assert env.ns.receive(reception(GW, rx, NOW), env.mono) is None
    env.mono += 1
    sent: list[Transmission] = []

    def after(out: Outcome) -> None:  # what the daemon does for a joined outcome
        sent.append(env.dl.join_accept(out, lambda _eui: reachable))

    [out] = env.ns.flush(env.mono, NOW, after_store=after)
    return out, (sent[0] if sent else None)


def test_commands_cannot_use_up_the_duty_cycle_a_join_accept_needs(tmp_path: Path) -> None:
    """The platform queues command after command for a device at SF12: they go out until they have used
    their share of both windows' sub-bands; then a join-request of another device is still answered, and
    a confirmed uplink still gets its ACK (without the command, FPending set)."""
    env = Env(tmp_path, downlink_queue_max=10_000)
    _add_otaa(env)
    airtime = {"RX1": 0.0, "RX2": 0.0}
    for i in range(400):
        env.command({"fport": 24, "raw": "1001", "id": f"cmd{i}"})
        tx, _ = env.uplink(datr="SF12BW125")
        if tx is None:
            break
        airtime[tx.window] += tx.airtime_s
    else:
        raise AssertionError("the commands never ran out of duty cycle")
    assert env.dl.counters["duty_cycle_blocked"] == 1
    # they used their share of RX1's sub-band (1 %) and RX2's (10 %), not more
    assert 3600 * 0.01 * APP_DUTY_SHARE * 0.9 < airtime["RX1"] <= 3600 * 0.01 * APP_DUTY_SHARE
    assert 3600 * 0.1 * APP_DUTY_SHARE * 0.9 < airtime["RX2"] <= 3600 * 0.1 * APP_DUTY_SHARE
    out, tx = _join(env, 1)
    assert out.status == "joined" and tx is not None and tx.kind == "join_accept"
    env.dl.counters["duty_cycle_blocked"] = 0
    ack, _ = env.uplink(datr="SF12BW125", confirmed=True)
    assert ack is not None and ack.command_id is None
    frame, plain = decode(ack)
    assert frame.ack and frame.fpending and frame.fport is None and plain == b""


def test_a_join_that_cannot_be_answered_is_not_recorded(env: Env) -> None:
    _add_otaa(env)
    out, tx = _join(env, 5, reachable=False)  # no PULL_DATA from the forwarder yet: nothing can go down
    assert (out.status, out.reason) == ("rejected", "join_unanswered") and tx is None
    dev = env.reg.get(OTAA_EUI)
    assert dev is not None and dev.session is None  # no session the device does not know of
    assert not env.reg.dev_nonce_used(OTAA_EUI, 5)
    assert [r.kind for r in env.outbox.fetch("primary", 100)] == []  # no join published
    assert env.dl.counters["join_unanswered"] == 1
    env.ns.dedup.forget_all()  # the device asks again (here with the same DevNonce, as 1.0.2 nodes may)
    out, tx = _join(env, 5)
    assert out.status == "joined" and tx is not None
    plain = phy.parse_join_accept(crypto.decrypt_join_accept(APP_KEY, out.join_accept or b""))
    dev = env.reg.get(OTAA_EUI)
    assert dev is not None and dev.session is not None and dev.session.dev_addr == plain.dev_addr
    assert [r.kind for r in env.outbox.fetch("primary", 100)] == ["join"]
    assert plain.dev_addr != ADDR


def test_fpending_and_acks_with_a_long_queue(tmp_path: Path) -> None:
    """The scheduler reads only the head of a queue per uplink: the ACKed head, the next command and
    FPending are still right with hundreds waiting."""
    env = Env(tmp_path, downlink_queue_max=500)
    env.command({"fport": 24, "raw": "1001", "confirmed": True, "id": "head"})
    for i in range(300):
        env.command({"fport": 24, "raw": "1000", "id": f"n{i}"})
    tx, _ = env.uplink()
    assert tx is not None and decode(tx)[0].confirmed and decode(tx)[0].fpending
    tx, results = env.uplink(ack=True)
    assert [(r["payload"]["command_id"], r["payload"]["state"]) for r in results] == [
        ("head", "acked"),
        ("n0", "sent"),
    ]
    assert tx is not None and decode(tx)[0].fpending and env.dl.depth() == 299
    for i in range(1, 300):
        tx, results = env.uplink()
        assert tx is not None and [r["payload"]["command_id"] for r in results] == [f"n{i}"]
    assert not decode(tx)[0].fpending and env.dl.depth() == 0


def test_every_result_has_an_id_of_its_own_also_when_a_command_id_is_used_again(env: Env) -> None:
    """Result ids are ``<DevEUI>-down-<command id>-<submission number>-<state>``: a command id used again
    after the first command went, a command replacing its queued namesake and a bad command sent twice
    each get results the outbox keeps (none is dropped as a duplicate of an earlier one)."""
    first = env.command({"fport": 24, "raw": "1001", "id": "a"})
    tx, sent = env.uplink()
    assert tx is not None and [r["payload"]["state"] for r in sent] == ["sent"]
    with env.reg.transaction():
        env.outbox.put_many(sent)
    again = env.command({"fport": 24, "raw": "1001", "id": "a"})  # the first one is gone: a new command
    replaced = env.command({"fport": 24, "raw": "1003", "id": "a"})  # replaces the one still queued
    bad = [env.command({"fport": 24, "raw": "1001", "id": "b", "colour": "red"}) for _ in range(2)]
    ids = [first["id"], sent[0]["id"], again["id"], replaced["id"], bad[0]["id"], bad[1]["id"]]
    assert len(set(ids)) == 6, ids
    assert first["id"] == f"{EUI:016X}-down-a-1-queued" and sent[0]["id"] == f"{EUI:016X}-down-a-1-sent"
    assert [r["id"] for r in env.results()] == ids  # all stored: the outbox dropped none as a duplicate
    assert [c.payload for c in env.dl.queue(EUI)] == [bytes.fromhex("1003")]
    _, went = env.uplink()
    assert [(r["payload"]["state"], r["payload"]["request"]["raw"]) for r in went] == [("sent", "1003")]
    assert went[0]["id"] == replaced["id"].replace("-queued", "-sent")


def test_a_redelivered_command_changes_nothing(tmp_path: Path) -> None:
    """An MQTT QoS 1 re-delivery (the same id and request) of a confirmed command waiting for its ACK
    keeps its attempts: it fails after confirmed_retries attempts in all, and its result is the first
    one again (same id and time), which the outbox drops as a duplicate."""
    env = Env(tmp_path, confirmed_retries=2)
    body = {"fport": 24, "raw": "1000", "confirmed": True, "id": "d"}
    first = env.command(body)
    env.uplink()  # attempt 1
    env.clock.t += 60
    assert env.command(dict(body)) == first
    [cmd] = env.dl.queue(EUI)
    assert (cmd.attempts, cmd.awaiting) == (1, True)
    assert [r["state"] for r in env.results()] == ["queued"]
    env.uplink()  # attempt 2
    _, results = env.uplink()
    assert [(r["payload"]["state"], r["payload"]["detail"]) for r in results] == [
        ("failed", "no ACK after 2 attempts")
    ]
    assert env.dl.counters["queued"] == 1 and env.dl.counters["sent"] == 1
    # a different request under the same id is a new command: it replaces the queued one
    env.command(body)
    changed = env.command({**body, "raw": "1001"})
    assert changed["id"] != first["id"] and [c.payload.hex() for c in env.dl.queue(EUI)] == ["1001"]


def test_removing_a_device_fails_its_queued_commands(env: Env) -> None:
    """`havel device remove` moves the device's queued commands aside; the daemon's housekeeping publishes
    a "failed" result for each, and a device added again under the DevEUI gets none of them."""
    queued = env.command({"fport": 24, "raw": "1001", "id": "valve"})
    env.reg.remove(EUI)
    assert env.dl.depth() == 0 and env.dl.any_expired()
    with env.reg.transaction():
        results = env.dl.expire()
    assert [(r["payload"]["state"], r["payload"]["detail"], r["payload"]["device"]) for r in results] == [
        ("failed", "device removed", "cool-1")
    ]
    assert results[0]["id"] == queued["id"].replace("-queued", "-failed")
    assert not env.dl.any_expired()
    env.reg.add(
        Device(name="cool-1", dev_eui=EUI, codec="cooling", activation="abp", session=Session(ADDR, NWK, APP))
    )
    tx, got = env.uplink()
    assert tx is None and got == []  # nothing of the removed device's queue goes to the new one
