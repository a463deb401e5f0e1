"""The network server pipeline against the real SQLite registry, D2's real outbox and B's real codecs."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from havel.codecs.lorawan import crypto, phy
from havel.gateway import db
from havel.gateway.backends.semtech_udp.rxpk import RxPacket
from havel.gateway.config import NetworkConfig
from havel.gateway.network.joins import CFLIST_HZ
from havel.gateway.network.outcome import Outcome
from havel.gateway.network.reception import reception
from havel.gateway.network.server import NetworkServer
from havel.gateway.network.sessions import Device, Session
from havel.gateway.outbox import Outbox
from havel.gateway.outbox_records import record_row
from havel.gateway.registry import Registry

REPO = Path(__file__).resolve().parents[2]
NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
APP_KEY = bytes.fromhex("88888888888888888888888888888888")
ADDR = 0x26011BDA
ABP_EUI = 0x70B3D57ED0000001
OTAA_EUI = 0x70B3D57ED0000002
JOIN_EUI = 0x70B3D57ED0001000
GW1, GW2 = 0xAA555A0000000001, 0xAA555A0000000002
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def vector(codec: str, direction: str = "up") -> dict:  # type: ignore[type-arg]
    items = json.loads((REPO / "codecs" / "vectors" / f"{codec}.json").read_text())
    return next(v for v in items if v["direction"] == direction)


class Env:
    def __init__(self, tmp: Path, **net: object) -> None:
        self.conn = db.open_db(tmp / "havel.db")
        self.reg = Registry(self.conn)
        self.outbox = Outbox(self.conn, sinks=["primary"])
        self.net = replace(NetworkConfig(), **net)  # type: ignore[arg-type]
        self.ns = NetworkServer(self.reg, self.outbox, self.net, rng=random.Random(7))
        self.mono = 0.0

    def add_abp(
        self,
        name: str = "temp-1",
        eui: int = ABP_EUI,
        addr: int = ADDR,
        nwk: bytes = NWK,
        app: bytes = APP,
        codec: str = "temperature",
    ) -> None:
        self.reg.add(
            Device(name=name, dev_eui=eui, codec=codec, activation="abp", session=Session(addr, nwk, app))
        )

    def hear(
        self,
        data: bytes,
        gw: int = GW1,
        *,
        snr: float = 5.0,
        rssi: float = -80,
        stat: int = 1,
        tmst: int = 1_000_000,
        time: datetime | None = None,
        tmms: int | None = None,
    ) -> Outcome | None:
        rx = RxPacket(
            data=data,
            tmst=tmst,
            freq_hz=868_100_000,
            datr="SF7BW125",
            lsnr=snr,
            rssi=rssi,
            stat=stat,
            time=time,
            tmms=tmms,
        )
        return self.ns.receive(reception(gw, rx, NOW), self.mono)

    def flush(self) -> list[Outcome]:
        self.mono += 1.0  # past the dedup window
        return self.ns.flush(self.mono, NOW)

    def one(self, data: bytes, **kw: object) -> Outcome:
        early = self.hear(data, **kw)  # type: ignore[arg-type]
        if early is not None:
            return early
        outs = self.flush()
        assert len(outs) == 1
        return outs[0]

    def records(self) -> list[dict]:  # type: ignore[type-arg]
        return [r.payload for r in self.outbox.fetch("primary", 1000)]

    def fcnt_in_db(self, eui: int = ABP_EUI) -> int | None:
        row = self.conn.execute("SELECT fcnt_up FROM devices WHERE dev_eui = ?", (f"{eui:016X}",)).fetchone()
        return row[0]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    e.add_abp()
    yield e
    e.conn.close()


def up(
    fcnt: int,
    payload: bytes | None = None,
    *,
    fport: int = 1,
    addr: int = ADDR,
    nwk: bytes = NWK,
    app: bytes = APP,
    confirmed: bool = False,
) -> bytes:
    data = payload if payload is not None else bytes.fromhex(vector("temperature")["bytes"])
    return phy.build_data_frame(
        uplink=True,
        confirmed=confirmed,
        dev_addr=addr,
        fcnt32=fcnt,
        fport=fport,
        payload=data,
        nwk_s_key=nwk,
        app_s_key=app,
    )


def test_uplink_is_verified_decoded_and_stored_with_its_counter(env: Env) -> None:
    vec = vector("temperature")
    out = env.one(up(5))
    assert out.status == "accepted" and out.fcnt32 == 5
    [rec] = env.outbox.fetch("primary", 10)
    assert rec.id == f"{ABP_EUI:016X}-0-5"  # ABP: session epoch 0
    msg = rec.payload
    assert msg["id"] == rec.id and msg["device"] == "temp-1" and msg["dev_addr"] == f"{ADDR:08X}"
    assert msg["fcnt"] == 5 and msg["fport"] == 1 and msg["confirmed"] is False
    assert msg["codec"] == "temperature" and msg["data"] == vec["data"] and msg["raw"] == vec["bytes"]
    assert msg["received_at"] == "2026-06-01T12:00:00.000Z" and msg["time_source"] == "local"
    assert msg["rx"][0]["gateway"] == f"{GW1:016X}" and msg["rx"][0]["freq"] == 868.1
    assert env.fcnt_in_db() == 5


def test_stored_row_is_what_the_checked_path_stores(env: Env) -> None:
    # the network server hands its rows to the outbox as built (Outbox.put_rows), without record_row's checks:
    # they must be exactly the rows record_row makes of the same records, whatever the payload decodes to
    outs = [env.one(up(5)), env.one(up(6, bytes.fromhex("12"))), env.one(up(7, b"", fport=0))]
    outs.append(env.one(up(8, bytes.fromhex("1200f1"), fport=224)))  # test port: not decoded
    assert [o.status for o in outs] == ["accepted"] * 4
    columns = "id, kind, dev_eui, fcnt32, priority, received_at, payload, size"
    stored = env.conn.execute(f"SELECT {columns} FROM outbox ORDER BY seq").fetchall()
    assert stored == [record_row(o.record) for o in outs if o.record is not None]


def test_replayed_frame_is_rejected_and_stored_once(tmp_path: Path) -> None:
    env = Env(tmp_path, duplicate_ttl_s=5.0)
    env.add_abp()
    frame = up(7)
    assert env.one(frame).status == "accepted"
    # the same bytes soon after: a late copy, a duplicate
    assert (env.one(frame).status, env.one(frame).reason) == ("rejected", "duplicate")
    env.mono += 10  # past the duplicate TTL: now it is a replay of an old counter
    out = env.one(frame)
    assert (out.status, out.reason) == ("rejected", "replay")
    # an older counter with a valid MIC (a recorded frame) is a replay too
    assert env.one(up(6)).reason == "replay"
    assert [m["fcnt"] for m in env.records()] == [7]
    assert env.fcnt_in_db() == 7
    assert env.one(up(8)).status == "accepted"


def test_replay_after_restart_is_rejected(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.add_abp()
    frame = up(3)
    assert env.one(frame).status == "accepted"
    env.conn.close()
    again = Env(tmp_path)  # a new process: no in-memory duplicate cache, the counter comes from SQLite
    assert again.one(frame).reason == "replay"
    assert len(again.records()) == 1


def test_forged_mic_is_rejected_and_nothing_stored(env: Env) -> None:
    good = up(1)
    forged = good[:-4] + bytes(b ^ 0xFF for b in good[-4:])
    assert env.one(forged).reason == "mic"
    wrong_key = up(1, nwk=bytes(16))
    assert env.one(wrong_key).reason == "mic"
    assert env.records() == [] and env.fcnt_in_db() is None


def test_unknown_dev_addr_crc_and_garbage(env: Env) -> None:
    assert env.one(up(1, addr=0x01020304)).reason == "unknown_dev_addr"
    assert env.one(up(1), stat=-1).reason == "crc"
    assert env.one(b"\x40\x01\x02").reason == "frame"
    downlink = phy.build_data_frame(
        uplink=False,
        confirmed=False,
        dev_addr=ADDR,
        fcnt32=1,
        fport=1,
        payload=b"\x00",
        nwk_s_key=NWK,
        app_s_key=APP,
    )
    assert env.one(downlink).reason == "not_uplink"
    assert env.records() == []


def test_two_concentrators_one_record_best_signal_first(env: Env) -> None:
    frame = up(11)
    assert env.hear(frame, GW1, snr=-3.0, rssi=-115) is None
    assert env.hear(frame, GW2, snr=8.5, rssi=-70) is None
    assert env.ns.pending == 1
    outs = env.flush()
    assert len(outs) == 1 and outs[0].status == "accepted"
    [msg] = env.records()
    assert [r["gateway"] for r in msg["rx"]] == [f"{GW2:016X}", f"{GW1:016X}"]
    assert msg["rx"][0]["snr"] == 8.5
    # a third copy after the window closed is a duplicate, not a second record
    assert env.one(frame, gw=GW2).reason == "duplicate"
    assert len(env.records()) == 1


def test_shared_dev_addr_the_mic_decides(env: Env) -> None:
    other_nwk, other_app = bytes(range(16)), bytes(range(16, 32))
    env.add_abp("temp-2", 0x70B3D57ED0000003, ADDR, other_nwk, other_app)
    assert env.one(up(1, nwk=other_nwk, app=other_app)).device.name == "temp-2"  # type: ignore[union-attr]
    assert env.one(up(1)).device.name == "temp-1"  # type: ignore[union-attr]
    assert sorted(m["device"] for m in env.records()) == ["temp-1", "temp-2"]


def test_fcnt_beyond_16_bits(env: Env) -> None:
    assert env.one(up(65_535)).fcnt32 == 65_535
    out = env.one(up(65_537))  # 0x0001 on the air
    assert out.status == "accepted" and out.fcnt32 == 65_537
    assert env.records()[-1]["id"] == f"{ABP_EUI:016X}-0-65537"


def test_gps_time_is_used_only_with_a_gps_fix(env: Env) -> None:
    gps = datetime(2026, 6, 1, 11, 59, 59, 250000, tzinfo=UTC)
    env.one(up(1), time=gps, tmms=1_400_000_000_000)
    env.one(up(2), time=gps)  # a time without tmms: the forwarder's own clock, not trusted
    a, b = env.records()
    assert (a["received_at"], a["time_source"]) == ("2026-06-01T11:59:59.250Z", "gps")
    assert (b["received_at"], b["time_source"]) == ("2026-06-01T12:00:00.000Z", "local")


def test_undecodable_payload_is_kept_raw_with_an_error(env: Env) -> None:
    out = env.one(up(1, b"\xff\xff", fport=1))
    assert out.status == "accepted"
    [msg] = env.records()
    assert msg["raw"] == "ffff" and msg["errors"] and msg["data"] is None


def test_alarm_priority_from_the_water_codec(env: Env) -> None:
    env.add_abp("pegel-1", 0x70B3D57ED0000009, 0x26011BDB, codec="water")
    alarm = next(
        v
        for v in json.loads((REPO / "codecs/vectors/water.json").read_text())
        if v["direction"] == "up" and v["data"].get("alarm")
    )
    env.one(up(1, bytes.fromhex(alarm["bytes"]), addr=0x26011BDB))
    [rec] = env.outbox.fetch("primary", 10)
    assert rec.priority == "alarm"


def test_otaa_join_then_uplink_with_derived_keys(env: Env) -> None:
    env.reg.add(
        Device(
            name="cool-1",
            dev_eui=OTAA_EUI,
            codec="cooling",
            activation="otaa",
            join_eui=JOIN_EUI,
            app_key=APP_KEY,
        )
    )
    jr = phy.build_join_request(join_eui=JOIN_EUI, dev_eui=OTAA_EUI, dev_nonce=0x1234, app_key=APP_KEY)
    out = env.one(jr, tmst=4_294_000_000)
    assert out.status == "joined" and out.join_accept is not None
    plain = phy.parse_join_accept(crypto.decrypt_join_accept(APP_KEY, out.join_accept))
    assert plain.cflist_hz == CFLIST_HZ and plain.rx_delay == 1
    assert plain.dev_addr >> 25 == env.net.dev_addr_prefix >> 25
    # RX1 at + 5 s on the same channel and data rate (the counter wraps), RX2 at + 6 s on 869.525 MHz
    assert out.downlink_plan == [
        (868_100_000, "SF7BW125", (4_294_000_000 + 5_000_000) % 2**32),
        (869_525_000, "SF12BW125", (4_294_000_000 + 6_000_000) % 2**32),
    ]
    nwk, app = crypto.derive_session_keys(APP_KEY, plain.join_nonce, plain.net_id, 0x1234)
    [join_msg] = env.records()
    assert join_msg["id"] == f"{OTAA_EUI:016X}-join-1" and join_msg["dev_addr"] == f"{plain.dev_addr:08X}"
    cool = bytes.fromhex(vector("cooling")["bytes"])
    data = env.one(up(0, cool, addr=plain.dev_addr, nwk=nwk, app=app))
    assert data.status == "accepted" and data.device.name == "cool-1"  # type: ignore[union-attr]
    assert env.records()[-1]["data"] == vector("cooling")["data"]


def test_reused_dev_nonce_and_bad_join_mic(env: Env) -> None:
    env.reg.add(
        Device(
            name="cool-1",
            dev_eui=OTAA_EUI,
            codec="cooling",
            activation="otaa",
            join_eui=JOIN_EUI,
            app_key=APP_KEY,
        )
    )
    jr = phy.build_join_request(join_eui=JOIN_EUI, dev_eui=OTAA_EUI, dev_nonce=1, app_key=APP_KEY)
    assert env.one(jr).status == "joined"
    env.ns.dedup.forget_all()  # as after a restart: only the stored DevNonces protect
    assert env.one(jr).reason == "dev_nonce_reused"
    forged = phy.build_join_request(join_eui=JOIN_EUI, dev_eui=OTAA_EUI, dev_nonce=2, app_key=bytes(16))
    assert env.one(forged).reason == "mic"
    unknown = phy.build_join_request(
        join_eui=JOIN_EUI, dev_eui=0x1122334455667788, dev_nonce=2, app_key=APP_KEY
    )
    assert env.one(unknown).reason == "unknown_device"
    assert (
        env.one(
            phy.build_join_request(join_eui=JOIN_EUI, dev_eui=OTAA_EUI, dev_nonce=2, app_key=APP_KEY)
        ).status
        == "joined"
    )


def test_many_frames_one_commit_keep_per_device_order(env: Env) -> None:
    for f in range(1, 21):
        assert env.hear(up(f)) is None
    outs = env.flush()
    assert [o.fcnt32 for o in outs] == list(range(1, 21))
    assert [m["fcnt"] for m in env.records()] == list(range(1, 21))
    assert env.fcnt_in_db() == 20


def test_uplink_then_rejoin_in_one_batch_leaves_the_new_session_without_a_counter(env: Env) -> None:
    """A data frame of the old session and a join-request of the same device processed in one commit: the
    old session's counter (written with the batch's counters just before COMMIT) must not land on the new
    session, in the database or in the cache, or the new session's FCnt 0..41 would be taken for replays."""
    env.reg.add(
        Device(
            name="cool-1",
            dev_eui=OTAA_EUI,
            codec="cooling",
            activation="otaa",
            join_eui=JOIN_EUI,
            app_key=APP_KEY,
        )
    )
    jr = phy.build_join_request(join_eui=JOIN_EUI, dev_eui=OTAA_EUI, dev_nonce=1, app_key=APP_KEY)
    first = env.one(jr)
    plain = phy.parse_join_accept(crypto.decrypt_join_accept(APP_KEY, first.join_accept or b""))
    nwk, app = crypto.derive_session_keys(APP_KEY, plain.join_nonce, plain.net_id, 1)
    cool = bytes.fromhex(vector("cooling")["bytes"])
    assert env.hear(up(41, cool, addr=plain.dev_addr, nwk=nwk, app=app)) is None
    assert (
        env.hear(
            phy.build_join_request(join_eui=JOIN_EUI, dev_eui=OTAA_EUI, dev_nonce=2, app_key=APP_KEY), tmst=2
        )
        is None
    )
    outs = env.flush()
    assert [o.status for o in outs] == ["accepted", "joined"]
    assert env.fcnt_in_db(OTAA_EUI) is None
    dev = env.reg.get(OTAA_EUI)
    assert dev is not None and dev.session is not None and dev.session.fcnt_up is None
    plain2 = phy.parse_join_accept(crypto.decrypt_join_accept(APP_KEY, outs[1].join_accept or b""))
    nwk2, app2 = crypto.derive_session_keys(APP_KEY, plain2.join_nonce, plain2.net_id, 2)
    again = env.one(up(0, cool, addr=plain2.dev_addr, nwk=nwk2, app=app2))
    assert again.status == "accepted" and again.fcnt32 == 0


def test_decoded_value_json_cannot_hold_keeps_the_frame_with_an_error(env: Env) -> None:
    """A codec bug giving NaN must not poison the batch: the frame is stored, raw bytes kept, error said."""

    class NanCodec:
        def decode(self, data: bytes, fport: int) -> dict:  # type: ignore[type-arg]
            return {"codec": "temperature", "data": {"t": float("nan")}, "units": {}, "warnings": []}

    env.ns.messages.codec_lookup = lambda name: NanCodec()
    assert env.hear(up(1)) is None and env.hear(up(2), tmst=5) is None
    outs = env.flush()
    assert [o.status for o in outs] == ["accepted", "accepted"]
    recs = env.records()
    assert [r["fcnt"] for r in recs] == [1, 2]
    assert recs[0]["data"] is None and "not JSON" in recs[0]["errors"][0] and recs[0]["raw"]


def test_device_removed_and_added_again_keeps_its_ids_unique(env: Env) -> None:
    """Re-provisioning a kit (remove, add with the same DevEUI, FCnt from 1 again) while its old readings
    still wait in the outbox: the new ones get new ids (the epoch continues), nothing is dropped as a
    duplicate, in the outbox or at the platform."""
    assert env.one(up(1)).status == "accepted"
    env.reg.remove(ABP_EUI)
    env.add_abp()  # same DevEUI, same keys: the node restarted its counter
    again = env.one(up(1, bytes.fromhex(vector("temperature")["bytes"])[:-1] + b"\x00"))
    assert again.status == "accepted"
    ids = [r["id"] for r in env.records()]
    assert ids == [f"{ABP_EUI:016X}-0-1", f"{ABP_EUI:016X}-1-1"]
    # and after a restart of the gateway (the registry read from the database)
    dev = Registry(env.conn).get(ABP_EUI)
    assert dev is not None and dev.session is not None and dev.session.epoch == 1


def test_two_batches_in_one_transaction_cannot_accept_a_replay(env: Env) -> None:
    """The session cache is updated at COMMIT. If a caller ran two flushes in one transaction, the second
    would check its frames against the counter from before the first: the registry refuses the write that
    would take the counter backwards, so the replay is not stored."""
    assert env.one(up(5)).status == "accepted"
    with env.reg.transaction():
        assert env.hear(up(9)) is None
        first = env.flush()
        assert [o.status for o in first] == ["accepted"]
        assert env.hear(up(7, bytes.fromhex(vector("temperature")["bytes"])[:-1] + b"\x01")) is None
        second = env.flush()  # FCnt 7 is above the cached 5, but not above the 9 written just now
        assert [o.reason for o in second] == ["storage"]
    assert env.fcnt_in_db() == 9
    assert [r["fcnt"] for r in env.records()] == [5, 9]
