"""Class-A downlink scheduling: queue, MAC answers, RX1/RX2, FPending, retries, expiry, duty cycle."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from havel.codecs.lorawan import crypto, maccmds, phy
from havel.gateway import db
from havel.gateway.adr_rules import HISTORY
from havel.gateway.backends.base import DownlinkFrame
from havel.gateway.backends.semtech_udp.rxpk import RxPacket
from havel.gateway.config import NetworkConfig
from havel.gateway.downlink_commands import parse_down_topic
from havel.gateway.downlinks import DownlinkScheduler, Transmission
from havel.gateway.dutycycle import DutyCycle, airtime_s
from havel.gateway.network.dedup import MAX_ACKS_AGAIN
from havel.gateway.network.outcome import Outcome
from havel.gateway.network.reception import reception
from havel.gateway.network.server import NetworkServer
from havel.gateway.network.sessions import Device, Session
from havel.gateway.outbox import Outbox
from havel.gateway.registry import Registry

NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
EUI, ADDR, GW = 0x70B3D57ED0000001, 0x26011BDA, 0xAA555A0000000001
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class Env:
    def __init__(self, tmp: Path, **net: object) -> None:
        self.conn = db.open_db(tmp / "havel.db")
        self.reg = Registry(self.conn)
        self.outbox = Outbox(self.conn, sinks=["primary"])
        self.net = replace(NetworkConfig(), **net)  # type: ignore[arg-type]
        self.clock = Clock()
        self.ns = NetworkServer(self.reg, self.outbox, self.net, rng=random.Random(1))
        self.dl = DownlinkScheduler(self.reg, self.net, clock=self.clock)
        self.reg.add(
            Device(
                name="cool-1", dev_eui=EUI, codec="cooling", activation="abp", session=Session(ADDR, NWK, APP)
            )
        )
        self.fcnt = 0
        self.mono = 0.0

    def command(self, body: object) -> dict:  # type: ignore[type-arg]
        with self.reg.transaction():
            res = self.dl.submit(EUI, body)
            self.outbox.put(res)
        return res["payload"]  # type: ignore[no-any-return]

    def uplink(
        self,
        *,
        confirmed: bool = False,
        ack: bool = False,
        fopts: bytes = b"",
        datr: str = "SF7BW125",
        freq: int = 868_100_000,
        reachable: bool = True,
        battery_fresh: bool = True,
        adr: bool = False,
        adr_ack_req: bool = False,
        snr: float = 6.0,
    ) -> tuple[Transmission | None, list[dict]]:  # type: ignore[type-arg]
        self.fcnt += 1
        if battery_fresh:
            with self.reg.transaction():
                self.reg.set_battery(EUI, 200, self.clock())
        data = phy.build_data_frame(
            uplink=True,
            confirmed=confirmed,
            dev_addr=ADDR,
            fcnt32=self.fcnt,
            fport=1,
            payload=bytes.fromhex("14000000000000000000df012c0118"),
            ack=ack,
            fopts=fopts,
            adr=adr,
            adr_ack_req=adr_ack_req,
            nwk_s_key=NWK,
            app_s_key=APP,
        )
        self.last_data = data
        rx = RxPacket(data=data, tmst=7_000_000, freq_hz=freq, datr=datr, lsnr=snr, rssi=-80)
        assert self.ns.receive(reception(GW, rx, NOW), self.mono) is None
        self.mono += 1
        result: list[tuple[Transmission | None, list[dict]]] = []  # type: ignore[type-arg]

        def after(out: Outcome) -> None:
            result.append(self.dl.on_uplink(out, lambda _eui: reachable))

        [out] = self.ns.flush(self.mono, NOW, after_store=after)
        assert out.status == "accepted"
        return result[0]

    def again(self, after_s: float, tmst: int) -> tuple[str, Transmission | None]:
        """The last uplink's frame, byte for byte, ``after_s`` later (a device sending it again, or a late
        copy): what became of it and the downlink it got."""
        self.mono += after_s
        rx = RxPacket(
            data=self.last_data, tmst=tmst, freq_hz=868_100_000, datr="SF7BW125", lsnr=3.0, rssi=-90
        )
        early = self.ns.receive(reception(GW, rx, NOW), self.mono)
        if early is not None:
            return f"{early.status} {early.reason}", None
        self.mono += 1
        sent: list[Transmission | None] = []

        def after(out: Outcome) -> None:
            assert out.status == "retransmission"
            sent.append(self.dl.ack_again(out, lambda _eui: True))

        [out] = self.ns.flush(self.mono, NOW, after_store=after)
        return f"{out.status} {out.reason}", sent[0] if sent else None

    def results(self) -> list[dict]:  # type: ignore[type-arg]
        return [r.payload for r in self.outbox.fetch("primary", 1000) if r.kind == "down_result"]


def decode(tx: Transmission) -> tuple[phy.DataFrame, bytes]:
    frame = phy.parse(tx.frame.data)
    assert isinstance(frame, phy.DataFrame) and not frame.uplink
    assert crypto.verify_mic(crypto.data_mic(NWK, False, ADDR, frame.fcnt16, frame.msg), frame.mic)
    plain = (
        crypto.crypt_frm_payload(APP, False, ADDR, frame.fcnt16, frame.frm_payload)
        if frame.frm_payload
        else b""
    )
    return frame, plain


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_nothing_to_send_means_no_downlink(env: Env) -> None:
    tx, results = env.uplink()
    assert tx is None and results == []


def test_queued_command_goes_out_in_rx1_with_fpending_and_counters(env: Env) -> None:
    assert env.command({"fport": 23, "data": {"state": "open", "ttl": 900}, "id": "a"})["state"] == "queued"
    assert env.command({"fport": 24, "raw": "1001", "id": "b"})["state"] == "queued"
    tx, results = env.uplink()
    assert tx is not None and tx.window == "RX1" and tx.command_id == "a"
    # a backend-neutral frame: the scheduler builds no wire format (GWMP's txpk is the backend's business)
    assert tx.frame == DownlinkFrame(tx.frame.data, 868_100_000, "SF7BW125", 8_000_000, 14)
    assert tx.fallback == DownlinkFrame(tx.frame.data, 869_525_000, "SF12BW125", 9_000_000, 14)
    frame, plain = decode(tx)
    assert frame.fport == 23 and plain == bytes.fromhex("10010384") and frame.fpending and frame.fcnt16 == 0
    assert [r["payload"]["state"] for r in results] == ["sent"]
    tx2, _ = env.uplink()
    assert tx2 is not None
    frame2, plain2 = decode(tx2)
    assert frame2.fport == 24 and plain2 == b"\x10\x01" and not frame2.fpending and frame2.fcnt16 == 1
    assert env.dl.depth() == 0


def test_confirmed_uplink_gets_an_ack_and_mac_answers(env: Env) -> None:
    link_check = maccmds.encode([{"name": "LinkCheckReq"}], True)
    tx, _ = env.uplink(confirmed=True, fopts=link_check, battery_fresh=False)
    assert tx is not None
    frame, _ = decode(tx)
    assert frame.ack and frame.fport is None
    cmds = maccmds.decode(frame.fopts, False)
    names = [c["name"] for c in cmds]
    assert names == ["LinkCheckAns", "DevStatusReq"]  # battery unknown: ask for it
    assert cmds[0]["gw_cnt"] == 1 and cmds[0]["margin_db"] == round(6.0 + 7.5)
    # the device answers DevStatus: its battery is recorded, and not asked again soon
    tx, _ = env.uplink(
        fopts=maccmds.encode([{"name": "DevStatusAns", "battery": 180, "margin_db": 5}], True),
        battery_fresh=False,
    )
    assert tx is None
    assert env.reg.get(EUI).battery == 180  # type: ignore[union-attr]


def test_confirmed_downlink_is_retried_until_acked(env: Env) -> None:
    env.command({"fport": 23, "data": {"state": "closed", "ttl": 60}, "confirmed": True, "id": "c"})
    tx1, r1 = env.uplink()
    tx2, r2 = env.uplink()  # no ACK bit: sent again with a new counter
    assert tx1 is not None and tx2 is not None and r2 == []
    # "sent" at the first transmission (the resend is no new fate), then "acked"
    assert [(r["payload"]["state"], r["payload"]["fcnt_down"] is not None) for r in r1] == [("sent", True)]
    f1, _ = decode(tx1)
    f2, _ = decode(tx2)
    assert f1.confirmed and f2.confirmed and f2.fcnt16 == f1.fcnt16 + 1
    _, r3 = env.uplink(ack=True)
    assert [(r["payload"]["state"], r["payload"]["command_id"]) for r in r3] == [("acked", "c")]
    assert env.dl.depth() == 0


def test_confirmed_downlink_fails_after_its_attempts(tmp_path: Path) -> None:
    env = Env(tmp_path, confirmed_retries=2)
    env.command({"fport": 24, "raw": "1000", "confirmed": True, "id": "d"})
    env.uplink()
    env.uplink()
    _, results = env.uplink()
    assert [(r["payload"]["state"], r["payload"]["detail"]) for r in results] == [
        ("failed", "no ACK after 2 attempts")
    ]


def test_commands_expire_and_bad_ones_are_rejected(env: Env) -> None:
    env.command({"fport": 24, "raw": "1001", "ttl_s": 30, "id": "e"})
    env.clock.t += 31
    with env.reg.transaction():
        expired = env.dl.expire()
    assert [(r["payload"]["state"], r["payload"]["command_id"]) for r in expired] == [("expired", "e")]
    for bad in (
        {"fport": 0, "raw": "00"},
        {"fport": 23, "raw": "zz"},
        {"fport": 23},
        {"fport": 23, "raw": "00", "data": {}},
        {"fport": 23, "data": {"state": "sideways"}},
        {"fport": 23, "raw": "00", "ttl_s": -1},
        {"fport": 23, "raw": "00", "colour": "red"},
        {"fport": 23, "raw": "00" * 60},
        "not an object",
    ):
        assert env.command(bad)["state"] == "rejected", bad
    with env.reg.transaction():
        unknown = env.dl.submit(0x1122334455667788, {"fport": 1, "raw": "00"})
    assert unknown["payload"]["state"] == "rejected" and "not registered" in unknown["payload"]["detail"]


def test_duty_cycle_moves_to_rx2_then_holds(env: Env) -> None:
    duty = env.dl.duty
    # the default channels' sub-band (1 %) is used up by this gateway: RX1 is not allowed, RX2 (10 %) is
    duty.record(GW, 868_100_000, 36.0, env.clock())
    env.command({"fport": 24, "raw": "1001", "id": "f"})
    tx, _ = env.uplink()
    assert tx is not None and tx.window == "RX2" and tx.frame.freq_hz == 869_525_000 and tx.fallback is None
    duty.record(GW, 869_525_000, 360.0, env.clock())
    env.command({"fport": 24, "raw": "1000", "id": "g"})
    tx, _ = env.uplink()
    assert tx is None and env.dl.counters["duty_cycle_blocked"] == 1 and env.dl.depth() == 1
    env.clock.t += 3601  # an hour later the budget is back
    tx, _ = env.uplink()
    assert tx is not None and tx.window == "RX1"


def test_no_reachable_forwarder_keeps_the_queue(env: Env) -> None:
    env.command({"fport": 24, "raw": "1001", "id": "h"})
    tx, _ = env.uplink(reachable=False)
    assert tx is None and env.dl.depth() == 1


def test_duty_cycle_and_airtime_figures() -> None:
    # 13 B at SF9 is 164.864 ms with CRC (AN1200.13); a downlink has none: 5 symbols of 4.096 ms fewer
    assert airtime_s(13, "SF9BW125") == pytest.approx(0.164864 - 5 * 0.004096, abs=1e-6)
    d = DutyCycle()
    assert d.allows(GW, 868_100_000, 36.0, 0) and not d.allows(GW, 868_100_000, 36.1, 0)
    assert not d.allows(GW, 870_500_000, 0.1, 0)  # outside EU868


def test_duty_cycle_survives_the_clock_going_back() -> None:
    d = DutyCycle()
    d.record(GW, 868_100_000, 36.0, 1_000_000.0)  # the whole hour's 1 % in one go
    assert not d.allows(GW, 868_100_000, 0.1, 1_000_000.0)
    # NTP sets the clock a day back: the budget comes back an hour later, not a day and an hour later
    back = 1_000_000.0 - 86_400
    assert not d.allows(GW, 868_100_000, 0.1, back)
    assert not d.allows(GW, 868_100_000, 0.1, back + 3599)
    assert d.allows(GW, 868_100_000, 0.1, back + 3601)


def test_down_topic_parsing() -> None:
    assert parse_down_topic(f"havel/gw1/devices/{EUI:016X}/down", "havel", "gw1") == EUI
    assert parse_down_topic(f"city/a/havel/gw1/devices/{EUI:016X}/down", "city/a/havel", "gw1") == EUI
    for bad in (
        f"havel/gw2/devices/{EUI:016X}/down",
        "havel/gw1/devices/XYZ/down",
        f"havel/gw1/devices/{EUI:016X}/up",
        "havel/gw1/down",
    ):
        assert parse_down_topic(bad, "havel", "gw1") is None


def test_a_rolled_back_uplink_leaves_no_counter_behind(env: Env) -> None:
    with pytest.raises(RuntimeError), env.reg.transaction():
        env.reg.set_fcnt_up(EUI, 99, 1.0)
        raise RuntimeError("crash before COMMIT")
    assert env.reg.get(EUI).session.fcnt_up is None  # type: ignore[union-attr]
    assert env.conn.execute("SELECT fcnt_up FROM devices").fetchone()[0] is None
    with env.reg.transaction():
        with pytest.raises(RuntimeError), env.reg.transaction():
            env.reg.set_fcnt_up(EUI, 98, 1.0)
            raise RuntimeError("inner")
        env.reg.set_fcnt_up(EUI, 5, 1.0)
    assert env.conn.execute("SELECT fcnt_up FROM devices").fetchone()[0] == 5
    # the cache has the committed counter (updated in place: an object handed out before sees it too)
    dev = env.reg.get(EUI)
    assert dev is not None and dev.session is not None and dev.session.fcnt_up == 5 and dev.last_seen == 1.0
    with env.reg.transaction():
        env.reg.set_fcnt_up(EUI, 6, 2.0)
        assert dev.session.fcnt_up == 5  # not before COMMIT
    assert env.reg.get(EUI) is dev and dev.session.fcnt_up == 6 and dev.last_seen == 2.0
    assert [d.session.fcnt_up for d in env.reg.by_dev_addr(dev.session.dev_addr)] == [6]  # type: ignore[union-attr]


def test_adr_ack_req_gets_a_downlink_even_with_nothing_to_say(env: Env) -> None:
    # without one the device backs off towards SF12 after ADR_ACK_DELAY more uplinks
    tx, _ = env.uplink(adr=True, adr_ack_req=True, datr="SF9BW125")
    assert tx is not None and tx.window == "RX1"
    frame, plain = decode(tx)
    assert frame.fport is None and frame.fopts == b"" and plain == b""
    assert env.uplink(adr=True)[0] is None  # an uplink without ADRACKReq needs nothing


def test_adr_steps_a_device_up_and_remembers_its_power(env: Env) -> None:
    sent = [env.uplink(adr=True, datr="SF12BW125", snr=8.0)[0] for _ in range(HISTORY)]
    assert sent[:-1] == [None] * (HISTORY - 1)
    tx = sent[-1]
    assert tx is not None
    frame, _ = decode(tx)
    [cmd] = maccmds.decode(frame.fopts, False)
    # 8 dB against SF12's -20 dB floor and the 10 dB margin: 6 steps, DR0 -> DR5 and one of power
    assert (cmd["name"], cmd["data_rate"], cmd["tx_power"], cmd["ch_mask_cntl"], cmd["nb_trans"]) == (
        "LinkADRReq",
        5,
        1,
        6,
        1,
    )
    ans = maccmds.encode(
        [{"name": "LinkADRAns", "channel_mask_ack": True, "data_rate_ack": True, "power_ack": True}], True
    )
    assert env.uplink(adr=True, datr="SF7BW125", snr=8.0, fopts=ans)[0] is None
    assert env.conn.execute("SELECT dev_eui, epoch, tx_power, nb_trans FROM adr_power").fetchall() == [
        (f"{EUI:016X}", 0, 1, 1)
    ]
    assert env.dl.adr.counters["accepted"] == 1
    # a restarted gateway knows the power the device uses; a new history is needed for the next step
    again = DownlinkScheduler(env.reg, env.net, clock=env.clock)
    assert again.adr.tx_power(EUI, 0) == 1


def test_adr_power_of_a_database_from_before_nb_trans_is_kept(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "havel.db")  # as an earlier release left it (no schema version)
    conn.execute(
        "CREATE TABLE adr_power (dev_eui TEXT PRIMARY KEY, epoch INTEGER NOT NULL, tx_power INTEGER NOT NULL)"
    )
    conn.execute("INSERT INTO adr_power VALUES (?, 0, 3)", (f"{EUI:016X}",))
    conn.commit()
    conn.close()
    env = Env(tmp_path)  # opens it again: the column is added, NbTrans 1 as those devices use
    assert env.dl.adr.settings(EUI, 0) == (3, 1)
    with env.reg.transaction():
        env.dl.adr.store.save_settings(EUI, 0, 3, 2)
    assert DownlinkScheduler(env.reg, env.net, clock=env.clock).adr.settings(EUI, 0) == (3, 2)


def test_adr_can_be_switched_off_in_the_config(tmp_path: Path) -> None:
    env = Env(tmp_path, adr=False)
    assert all(env.uplink(adr=True, datr="SF12BW125", snr=8.0)[0] is None for _ in range(2 * HISTORY))
    assert env.uplink(adr=True, adr_ack_req=True)[0] is not None  # ADRACKReq is still answered


def test_device_time_req_is_answered_with_gps_time(env: Env) -> None:
    tx, _ = env.uplink(fopts=maccmds.encode([{"name": "DeviceTimeReq"}], True))
    assert tx is not None
    frame, _ = decode(tx)
    [ans] = maccmds.decode(frame.fopts, False)
    # this machine's receive time (the rxpk has no GPS time) plus GPS's 18 s ahead of UTC
    gps_s = (NOW - datetime(1980, 1, 6, tzinfo=UTC)).total_seconds() + 18
    assert ans["name"] == "DeviceTimeAns"
    assert ans["gps_time_s"] + ans["fraction_s"] == gps_s


def test_device_time_prefers_the_concentrators_gps_clock() -> None:
    from havel.gateway.downlink_mac import gps_time_ms

    rx = RxPacket(
        data=b"", tmst=1, freq_hz=868_100_000, datr="SF7BW125", lsnr=1.0, rssi=-90, tmms=1_400_000_123_456
    )
    out = Outcome("accepted", best=reception(GW, rx, NOW), copies=[reception(GW, rx, NOW)])
    assert gps_time_ms(out) == 1_400_000_123_456


def test_adr_request_counts_only_when_a_downlink_carries_it(env: Env) -> None:
    for _ in range(HISTORY + 1):  # no packet forwarder to send through: decided each time, never sent
        assert env.uplink(adr=True, datr="SF12BW125", snr=8.0, reachable=False)[0] is None
    assert env.dl.adr.counters["requested"] == 0
    tx, _ = env.uplink(adr=True, datr="SF12BW125", snr=8.0)
    assert tx is not None
    assert [c["name"] for c in maccmds.decode(decode(tx)[0].fopts, False)] == ["LinkADRReq"]
    assert env.dl.adr.counters["requested"] == 1


def test_a_confirmed_frame_sent_again_after_its_windows_is_acked_again_and_stored_once(env: Env) -> None:
    tx, _ = env.uplink(confirmed=True)
    assert tx is not None and decode(tx)[0].ack
    # a copy from a slow concentrator, inside the frame's receive windows: a duplicate, no second downlink
    assert env.again(0.3, tmst=7_000_000) == ("rejected duplicate", None)
    # the device missed the ACK and sends the same frame after ACK_TIMEOUT: an ACK again, with a new FCnt
    status, again = env.again(3.0, tmst=11_000_000)
    assert status == "retransmission None" and again is not None
    frame, plain = decode(again)
    assert frame.ack and frame.fport is None and plain == b"" and frame.fcnt16 == decode(tx)[0].fcnt16 + 1
    assert (again.frame.tmst, again.window) == (12_000_000, "RX1")
    assert env.dl.counters["acked_again"] == 1
    ups = [r for r in env.outbox.fetch("primary", 100) if r.kind == "up"]
    assert len(ups) == 1  # stored once


def test_only_confirmed_frames_are_acked_again_and_not_without_end(env: Env) -> None:
    env.uplink()  # unconfirmed: a copy inside the windows is a duplicate; a repeat (NbTrans) after them is
    assert env.again(0.3, tmst=7_000_000) == ("rejected duplicate", None)  # a retransmission, without ACK
    assert env.again(3.0, tmst=11_000_000) == ("retransmission None", None)
    assert env.dl.counters["acked_again"] == 0
    assert len([r for r in env.outbox.fetch("primary", 100) if r.kind == "up"]) == 1
    env.uplink(confirmed=True)
    got = [env.again(3.0, tmst=11_000_000 + k * 4_000_000)[0] for k in range(MAX_ACKS_AGAIN + 2)]
    assert got == ["retransmission None"] * MAX_ACKS_AGAIN + ["rejected duplicate"] * 2


def test_an_nb_trans_repeat_on_another_sub_band_right_after_rx2_is_a_retransmission(env: Env) -> None:
    env.uplink()
    # sent 2.05 s after the first (RX2 closed, no duty-cycle wait on another sub-band), processed a dedup
    # window (0.2 s) after the first arrived: 1.85 s after processing, still a repeat, not a late copy
    assert env.again(1.85, tmst=9_050_000) == ("retransmission None", None)


def test_a_forged_frame_with_a_stored_frames_bytes_but_another_device_is_not_acked(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.uplink(confirmed=True)
    with env.reg.transaction():  # the session moves on (say a rejoin): that frame is nobody's last any more
        env.reg.set_fcnt_up(EUI, 50, 0.0)
    env.reg.refresh()
    status, tx = env.again(3.0, tmst=11_000_000)
    assert (status, tx) == ("rejected duplicate", None)


def test_the_concentrators_own_clock_tells_a_late_copy_from_a_frame_sent_again(env: Env) -> None:
    env.uplink(confirmed=True)  # heard by GW at tmst 7,000,000
    # delivered 5 s late (a slow backhaul), but sent 0.1 s after the original by that concentrator's clock:
    # the same transmission, not a new one
    assert env.again(5.0, tmst=7_100_000) == ("rejected duplicate", None)
    # the concentrator counted 2.5 s since the original: past its RX2 window, so the device sent it again
    status, tx = env.again(0.1, tmst=9_500_000)
    assert status == "retransmission None" and tx is not None
