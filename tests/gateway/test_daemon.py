"""The daemon with real UDP sockets, a real file sink, a real Mosquitto and (where it matters) a process."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.gateway_run import (
    GatewayProcess,
    InProcessGateway,
    free_tcp_port,
    http_get,
    register_abp,
    write_config,
)
from support.mosquitto import Mosquitto
from support.mqtt_subscriber import Subscriber

from havel.codecs.lorawan import crypto, phy
from havel.gateway import config, db
from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.backends.semtech_udp.rxpk import RxPacket, rxpk_to_json
from havel.gateway.backends.semtech_udp.txpk import txpk_data
from havel.gateway.sim.concentrator import Concentrator

NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
EUI = 0x70B3D57ED0000001
ADDR = 0x26011BDA
GW1, GW2 = 0xAA555A0000000001, 0xAA555A0000000002
COOLING_UP = bytes.fromhex("14000000000000000000df012c0118")


def frame(
    fcnt: int, *, addr: int = ADDR, confirmed: bool = False, ack: bool = False, payload: bytes = COOLING_UP
) -> bytes:
    return phy.build_data_frame(
        uplink=True,
        confirmed=confirmed,
        dev_addr=addr,
        fcnt32=fcnt,
        fport=1,
        payload=payload,
        ack=ack,
        nwk_s_key=NWK,
        app_s_key=APP,
    )


def register(cfg: config.Config, n: int = 1, codec: str = "cooling") -> None:
    conn = db.open_db(cfg.db_path)
    register_abp(conn, n, dev_eui=EUI, dev_addr=ADDR, nwk_s_key=NWK, app_s_key=APP, codec=codec)
    conn.close()


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def wait(pred: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def ups(path: Path) -> list[dict[str, Any]]:
    return [x["payload"] for x in lines(path) if x["topic"].endswith("/up")]


def push(c: Concentrator, data: bytes, *, tmst: int = 5_000_000, rssi: float = -80, snr: float = 5.0) -> None:
    assert c.push(
        [c.rxpk(data, tmst=tmst, freq_hz=868_100_000, datr="SF7BW125", rssi=rssi, snr=snr)], wait_ack_s=2.0
    ), "no PUSH_ACK"


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[InProcessGateway]:
    two = {"allowed_gateways": [f"{GW1:016X}", f"{GW2:016X}"]}  # several concentrators must be listed
    cfg = config.load(write_config(tmp_path, network={"dedup_window_ms": 80}, udp=two))
    register(cfg)
    with InProcessGateway(cfg) as g:
        yield g


def test_bad_datagrams_are_counted_and_the_gateway_keeps_working(
    gw: InProcessGateway, tmp_path: Path
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    eui = GW1.to_bytes(8, "big")
    bad = [
        b"",
        b"\x02\x01",
        b"hello world, not gwmp",
        b"\x03\x00\x01\x00" + eui + b"{}",
        b"\x02\x00\x01\x00" + eui + b'{"rxpk": [{"data": "AQ',
        b"\x02\x00\x01\x00" + eui[:5],
        b"\x02\x00\x01\x00"
        + eui
        + b'{"rxpk": [{"tmst": 1, "freq": 868.1, "datr": "SF7BW125", "data": "%%"}]}',
    ]
    for b in bad:
        sock.sendto(b, gw.udp)
    # the last one is a readable PUSH_DATA with an unreadable rxpk: acknowledged, the rxpk dropped
    assert sock.recv(64) == b"\x02\x00\x01\x01"
    # a valid datagram is acknowledged at once, even after garbage
    sock.sendto(gwmp.encode_pull_data(2, 0x1234, GW1), gw.udp)
    assert sock.recv(64) == b"\x02\x12\x34\x04"
    sock.close()
    with Concentrator(gw.udp, GW1) as c:
        push(c, frame(1))
        wait(lambda: ups(tmp_path / "out.jsonl"))
    m = gw.gateway.metrics
    assert m.get("datagrams_rejected_total", reason="truncated") == 3
    assert m.get("datagrams_rejected_total", reason="version") == 2  # version 3, and "hello" (0x68)
    assert m.get("datagrams_rejected_total", reason="json") == 1
    assert m.get("datagrams_rejected_total", reason="rxpk") == 1
    assert [u["fcnt"] for u in ups(tmp_path / "out.jsonl")] == [1]


def test_replay_forged_and_unknown_are_rejected_by_reason(gw: InProcessGateway, tmp_path: Path) -> None:
    good = frame(3)
    forged = good[:-1] + bytes([good[-1] ^ 1])
    with Concentrator(gw.udp, GW1) as c:
        push(c, good)
        wait(lambda: ups(tmp_path / "out.jsonl"))
        push(c, forged)
        push(c, frame(9, addr=0x01010101))
        push(c, good, tmst=9_000_000)  # the same bytes again: a duplicate / replay
        push(c, frame(2))  # an older counter with a valid MIC: a replay
        push(c, frame(4), snr=1.0)
        wait(lambda: len(ups(tmp_path / "out.jsonl")) == 2)
        time.sleep(0.3)
    m = gw.gateway.metrics
    assert m.get("uplinks_rejected_total", reason="mic") == 1
    assert m.get("uplinks_rejected_total", reason="unknown_dev_addr") == 1
    assert m.get("uplinks_rejected_total", reason="duplicate") == 1
    assert m.get("uplinks_rejected_total", reason="replay") == 1
    assert [u["fcnt"] for u in ups(tmp_path / "out.jsonl")] == [3, 4]
    status, body = http_get(gw.cfg.http.port, "/metrics")
    assert status == 200 and 'havel_gateway_uplinks_rejected_total{reason="mic"} 1' in body


def test_two_concentrators_hearing_one_frame_give_one_message(gw: InProcessGateway, tmp_path: Path) -> None:
    with Concentrator(gw.udp, GW1) as a, Concentrator(gw.udp, GW2) as b:
        f = frame(5)
        push(a, f, rssi=-110, snr=-4.0)
        push(b, f, rssi=-72, snr=9.5)
        [msg] = wait(lambda: ups(tmp_path / "out.jsonl"))
        time.sleep(0.3)
    assert len(ups(tmp_path / "out.jsonl")) == 1
    assert [r["gateway"] for r in msg["rx"]] == [f"{GW2:016X}", f"{GW1:016X}"]
    assert msg["id"] == f"{EUI:016X}-0-5"  # ABP: session epoch 0


def test_confirmed_uplink_is_acked_in_rx1_and_tx_ack_error_falls_back_to_rx2(gw: InProcessGateway) -> None:
    with Concentrator(gw.udp, GW1) as c:
        wait(lambda: gw.gateway.udp.can_send(GW1))
        c.tx_errors.append("TOO_LATE")
        push(c, frame(1, confirmed=True), tmst=10_000_000)
        wait(lambda: len(c.downlinks) >= 2)
    rx1, rx2 = c.downlinks[:2]
    assert (rx1["tmst"], rx1["freq"], rx1["datr"]) == (11_000_000, 868.1, "SF7BW125")
    assert (rx2["tmst"], rx2["freq"], rx2["datr"]) == (12_000_000, 869.525, "SF12BW125")
    assert rx1["data"] == rx2["data"] and rx1["ipol"] is True
    down = phy.parse(txpk_data(rx2))
    assert isinstance(down, phy.DataFrame) and not down.uplink and down.ack and down.dev_addr == ADDR
    assert crypto.verify_mic(crypto.data_mic(NWK, False, ADDR, down.fcnt16, down.msg), down.mic)
    assert gw.gateway.metrics.get("downlinks_tx_ack_total", error="TOO_LATE") == 1


def test_a_water_alarm_sent_again_for_a_missed_ack_is_acked_again_and_published_once(
    gw: InProcessGateway, tmp_path: Path
) -> None:
    with Concentrator(gw.udp, GW1) as c:
        wait(lambda: gw.gateway.udp.can_send(GW1))
        alarm = frame(1, confirmed=True)
        push(c, alarm, tmst=10_000_000)
        wait(lambda: len(c.downlinks) >= 1)
        # the node missed the ACK (say, a passing truck): after its RX2 window and ACK_TIMEOUT it sends the
        # very same frame again, FCnt and all
        time.sleep(2.3)
        push(c, alarm, tmst=14_000_000)
        wait(lambda: len(c.downlinks) >= 2)
    first, second = (phy.parse(txpk_data(d)) for d in c.downlinks[:2])
    assert isinstance(first, phy.DataFrame) and isinstance(second, phy.DataFrame)
    assert first.ack and second.ack and second.fcnt16 == first.fcnt16 + 1
    assert c.downlinks[1]["tmst"] == 15_000_000  # in the second transmission's RX1
    assert crypto.verify_mic(crypto.data_mic(NWK, False, ADDR, second.fcnt16, second.msg), second.mic)
    wait(lambda: ups(tmp_path / "out.jsonl"))
    time.sleep(0.3)
    assert [u["fcnt"] for u in ups(tmp_path / "out.jsonl")] == [1]  # published once
    assert gw.gateway.metrics.get("uplinks_retransmitted_total") == 1
    assert "havel_gateway_uplinks_retransmitted_total 1" in http_get(gw.cfg.http.port, "/metrics")[1]
    up = gw.call(lambda: gw.gateway.status()["uplinks"])
    assert up["retransmitted"] == 1 and up["accepted"] == 1 and "duplicate" not in up["rejected"]


def test_silent_forwarder_is_an_alarm_and_stat_is_kept(gw: InProcessGateway, tmp_path: Path) -> None:
    port = gw.cfg.http.port
    with Concentrator(gw.udp, GW1, keepalive_s=0.5) as c:
        c.send_stat()
        wait(lambda: any(f["stat"] for f in gw.gateway.udp.health()))
        assert http_get(port, "/healthz")[0] == 200
        c.paused = True  # the packet forwarder dies quietly
        wait(lambda: http_get(port, "/healthz")[0] == 503, timeout=8)
        health = json.loads(http_get(port, "/healthz")[1])
        assert health["forwarders"][0]["silent"] is True and health["forwarders"][0]["stat"]["rxnb"] == 0
        assert f'havel_gateway_forwarder_silent{{gateway="{GW1:016X}"}} 1' in http_get(port, "/metrics")[1]
        events = wait(
            lambda: [
                x["payload"]
                for x in lines(tmp_path / "out.jsonl")
                if x["topic"].endswith("/events") and x["payload"]["event"] == "forwarder_silent"
            ]
        )
        assert events[0]["gateway"] == f"{GW1:016X}"
        c.paused = False
        wait(lambda: http_get(port, "/healthz")[0] == 200, timeout=5)


def _mqtt_cfg(tmp_path: Path, broker: Mosquitto, **network: Any) -> config.Config:
    return config.load(
        write_config(
            tmp_path,
            network={"dedup_window_ms": 50, **network},
            sinks=[
                {
                    "type": "mqtt",
                    "name": "platform",
                    "host": "127.0.0.1",
                    "port": broker.port,
                    "tls": False,
                    "reconnect_min_s": 0.2,
                    "reconnect_max_s": 1.0,
                    "commands": True,
                }
            ],
        )
    )


@pytest.mark.timeout(60)
def test_downlink_command_over_mqtt_goes_out_in_rx1_and_its_fate_is_published(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    cfg = _mqtt_cfg(tmp_path, mosquitto)
    register(cfg)
    topic = f"havel/gw-test/devices/{EUI:016X}"
    with (
        Subscriber(mosquitto.port, f"{topic}/#") as sub,
        InProcessGateway(cfg) as gw,
        Concentrator(gw.udp, GW1) as c,
    ):
        wait(lambda: gw.gateway.components.northbound.subscribers[0].subscribed)
        sub.client.publish(
            f"{topic}/down",
            json.dumps(
                {"fport": 23, "data": {"state": "open", "ttl": 900}, "confirmed": True, "id": "valve-1"}
            ),
            qos=1,
        )
        sub.client.publish(f"{topic}/down", json.dumps({"fport": 23, "data": {"state": "sideways"}}), qos=1)
        sub.client.publish(f"{topic}/down", b"not json", qos=1)
        wait(lambda: len([m for m in sub.messages if m.topic.endswith("/down/result")]) >= 3)
        results = [m.json() for m in sub.messages if m.topic.endswith("/down/result")]
        assert {r["state"] for r in results} == {"queued", "rejected"}
        assert sum(r["state"] == "rejected" for r in results) == 2
        wait(lambda: gw.gateway.udp.can_send(GW1))
        push(c, frame(1), tmst=20_000_000)
        wait(lambda: c.downlinks)
        txpk = c.downlinks[0]
        assert txpk["tmst"] == 21_000_000
        down = phy.parse(txpk_data(txpk))
        assert isinstance(down, phy.DataFrame) and down.confirmed and down.fport == 23
        plain = crypto.crypt_frm_payload(APP, False, ADDR, down.fcnt16, down.frm_payload)
        assert plain == bytes.fromhex("10010384")  # the cooling codec's override open for 900 s
        # the device acknowledges in its next uplink: the command is done
        push(c, frame(2, ack=True), tmst=40_000_000)
        acked = wait(
            lambda: [
                m.json()
                for m in sub.messages
                if m.topic.endswith("/down/result") and m.json()["state"] == "acked"
            ]
        )
        assert acked[0]["command_id"] == "valve-1" and acked[0]["fcnt_down"] == down.fcnt16
        ups_ = wait(
            lambda: (
                [m.json() for m in sub.messages if m.topic.endswith("/up")]
                if len([m for m in sub.messages if m.topic.endswith("/up")]) >= 2
                else None
            )
        )
        assert [u["fcnt"] for u in ups_] == [1, 2] and ups_[0]["data"]["mode"] == "auto"


@pytest.mark.timeout(60)
def test_real_process_sigterm_is_clean_and_speaks_sd_notify(tmp_path: Path) -> None:
    http = free_tcp_port()
    cfg_path = write_config(tmp_path, http_port=http, network={"dedup_window_ms": 50})
    cfg = config.load(cfg_path)
    register(cfg)
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(10)
    proc = GatewayProcess(cfg_path, http, env={"NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "1000000"})
    try:
        proc.start()
        got: list[str] = []
        while not any("WATCHDOG=1" in g for g in got):
            got.append(sock.recv(4096).decode())
        assert got[0].startswith("READY=1")
        with Concentrator(cfg.udp.port and ("127.0.0.1", cfg.udp.port), GW1) as c:
            push(c, frame(1))
            wait(lambda: ups(tmp_path / "out.jsonl"))
        assert proc.terminate() == 0
        while "STOPPING=1" not in got[-1]:
            got.append(sock.recv(4096).decode())
        assert "gateway stopped" in proc.log.read_text()
    finally:
        proc.kill()
        sock.close()
    conn = db.open_db(cfg.db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT fcnt_up FROM devices").fetchone()[0] == 1
    conn.close()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[udp]\nport = 99999\n", r"udp\.port"),
        ('[network]\ndev_addr_prefix = "26000001/7"\n', r"dev_addr_prefix"),
        ('[gateway]\nid = "a/b"\n', r"gateway\.id"),
        ('[udp]\nbind = "localhost"\ncolour = 1\n', r"udp\.colour"),
        ('[[sink]]\ntype = "kafka"\n', r"sink\[0\]\.type"),
        ("[network]\nadr = 1\n", r"network\.adr must be true or false"),
        ("[network]\nadr_margin_db = -3\n", r"network\.adr_margin_db"),
        ("not toml at all = = =", "TOML"),
    ],
)
def test_config_errors_stop_the_start_with_the_key_named(tmp_path: Path, text: str, named: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(config.ConfigError, match=named):
        config.load(bad)


def test_the_example_config_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "gateway" / "gateway.example.toml"
    cfg = config.load(example)
    assert cfg.udp.port == 1700 and cfg.sinks[0]["type"] == "mqtt"
    assert cfg.network.adr and cfg.network.adr_margin_db == 10.0


def test_sd_notify_is_silent_without_systemd() -> None:
    from havel.gateway.sdnotify import Notifier

    n = Notifier({})
    assert not n.enabled and n.ready() is False and n.watchdog_s is None
    assert (
        Notifier(
            {"NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
        ).watchdog_s
        == 2.0
    )


def test_frames_left_in_the_intake_journal_are_stored_after_a_restart_without_downlinks(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime

    from havel.gateway.journal import Journal

    cfg = config.load(write_config(tmp_path, network={"dedup_window_ms": 50}))
    register(cfg)
    # as if the previous run journaled two acknowledged frames and was killed before storing them
    conn = db.open_db(cfg.db_path)
    journal = Journal(conn)
    then = datetime(2026, 11, 26, 3, 0, 0, tzinfo=UTC)
    with db.unit_of_work(conn):
        for f in (1, 2):
            rx = RxPacket(
                data=frame(f, confirmed=True),
                tmst=1000 * f,
                freq_hz=868_100_000,
                datr="SF7BW125",
                lsnr=4.0,
                rssi=-99,
            )
            journal.add(GW1, rx, then, "local")
    conn.close()
    with InProcessGateway(cfg) as gw, Concentrator(gw.udp, GW1) as c:
        got = wait(lambda: ups(tmp_path / "out.jsonl") if len(ups(tmp_path / "out.jsonl")) == 2 else None)
        time.sleep(0.3)
        assert gw.call(lambda: gw.gateway.journal.depth()) == 0
        assert c.downlinks == []  # confirmed, but their receive windows passed hours ago: no ACK sent
    assert [u["fcnt"] for u in got] == [1, 2]
    assert {u["received_at"] for u in got} == {"2026-11-26T03:00:00.000Z"}


def test_a_journaled_datagram_gives_back_only_its_rxpk_not_yet_stored(tmp_path: Path) -> None:
    """The journal keeps a PUSH_DATA whole, with a mask of its rxpk still waiting. After a kill, the
    restart stores those (FCnt 2 and 3, in the order they came) and does not process rxpk 0 again, which
    the previous run had stored: a second pass would count it as a rejected replay."""
    from datetime import UTC, datetime

    from havel.gateway.journal import Journal

    cfg = config.load(write_config(tmp_path, network={"dedup_window_ms": 50}))
    register(cfg)
    conn = db.open_db(cfg.db_path)
    journal = Journal(conn)
    rxs = [
        RxPacket(data=frame(f), tmst=1000 * f, freq_hz=868_100_000, datr="SF7BW125", lsnr=4.0, rssi=-99)
        for f in (1, 2, 3)
    ]
    datagram = gwmp.encode_push_data(2, 7, GW1, rxpk=[rxpk_to_json(rx) for rx in rxs])
    then = datetime(2026, 11, 26, 3, 0, 0, tzinfo=UTC)
    with db.unit_of_work(conn):
        [seq] = journal.add_datagrams([(GW1, datagram, then.timestamp(), 0b111)])
    with db.unit_of_work(conn):  # the previous run stored rxpk 0 (FCnt 1) in a batch of its own
        journal.forget([Journal.datagram_id(seq, 0)])
        conn.execute("UPDATE devices SET fcnt_up = 1")
    journal.settle()  # (and its next journal commit took rxpk 0 off the row)
    conn.close()
    with InProcessGateway(cfg) as gw:
        got = wait(lambda: ups(tmp_path / "out.jsonl") if len(ups(tmp_path / "out.jsonl")) == 2 else None)
        time.sleep(0.3)
        assert gw.call(lambda: gw.gateway.journal.depth()) == 0
        status = gw.call(lambda: gw.gateway.status())
    assert [u["fcnt"] for u in got] == [2, 3]
    assert {u["received_at"] for u in got} == {"2026-11-26T03:00:00.000Z"}
    assert status["uplinks"]["rejected"] == {} and status["uplinks"]["accepted"] == 2


def test_a_datagram_with_more_rxpk_than_a_journal_mask_holds(gw: InProcessGateway, tmp_path: Path) -> None:
    """64 rxpk in one PUSH_DATA: 62 go into the datagram's journal row, the last two into rows of their
    own; every one is acknowledged, stored once and leaves the journal."""
    with Concentrator(gw.udp, GW1) as c:
        rxpk = [
            c.rxpk(frame(f), tmst=1000 * f, freq_hz=868_100_000, datr="SF7BW125", rssi=-80, snr=5.0)
            for f in range(1, 65)
        ]
        assert c.push(rxpk, wait_ack_s=2.0)
        got = wait(lambda: ups(tmp_path / "out.jsonl") if len(ups(tmp_path / "out.jsonl")) == 64 else None)
        wait(lambda: gw.call(lambda: gw.gateway.journal.depth()) == 0)
    assert [u["fcnt"] for u in got] == list(range(1, 65))


def test_a_datagram_with_one_rxpk_waiting_is_journaled_compactly(tmp_path: Path) -> None:
    """One rxpk waiting (a city's pace): a compact row of its own; several: one row for the datagram."""
    # (a long dedup window: the rows are looked at while the frames wait in it, even on a busy machine; the
    # journal in SQLite, as with batch_s = 0: with batches it is the intake log, test_write_batch.py)
    cfg = config.load(
        write_config(tmp_path, network={"dedup_window_ms": 4000}, extra="\n[storage]\nbatch_s = 0\n")
    )
    register(cfg)

    def rows(gw: InProcessGateway) -> tuple[int, list[int]]:
        conn = gw.gateway.conn
        single = conn.execute("SELECT count(*) FROM intake").fetchone()[0]
        masks = [m for (m,) in conn.execute("SELECT wanted FROM intake_datagrams ORDER BY seq")]
        return single, masks

    with InProcessGateway(cfg) as gw, Concentrator(gw.udp, GW1) as c:
        push(c, frame(1), tmst=1000)  # returns once PUSH_ACKed, i.e. journaled
        assert gw.call(lambda: rows(gw)) == (1, [])
        rxpk = [
            c.rxpk(frame(f), tmst=1000 * f, freq_hz=868_100_000, datr="SF7BW125", rssi=-80, snr=5.0)
            for f in (2, 3, 4)
        ]
        assert c.push(rxpk, wait_ack_s=2.0)
        assert gw.call(lambda: rows(gw)) == (1, [0b111])
        got = wait(lambda: ups(tmp_path / "out.jsonl") if len(ups(tmp_path / "out.jsonl")) == 4 else None)
        wait(lambda: gw.call(lambda: gw.gateway.journal.depth()) == 0)
        # stored frames leave the journal with its next commit (which writes its page anyway)
        push(c, frame(5), tmst=5000)
        assert gw.call(lambda: rows(gw)) == (1, [])
    assert [u["fcnt"] for u in got] == [1, 2, 3, 4]


def test_protocol_v1_forwarder_with_gps_time(gw: InProcessGateway, tmp_path: Path) -> None:
    with Concentrator(gw.udp, GW2, version=1, gps=True) as c:
        wait(lambda: gw.gateway.udp.can_send(GW2))
        push(c, frame(1, confirmed=True), tmst=3_000_000)
        [msg] = wait(lambda: ups(tmp_path / "out.jsonl"))
        wait(lambda: c.downlinks)
    assert msg["time_source"] == "gps" and c.counts["tx_ack"] == 0  # v1 has no TX_ACK
    assert c.downlinks[0]["tmst"] == 4_000_000
    assert gw.gateway.metrics.get("uplinks_received_total", time_source="gps") == 1


def test_http_endpoints_and_json_logs(gw: InProcessGateway) -> None:
    import io
    import logging

    from havel.gateway.process import setup_logging

    port = gw.cfg.http.port
    assert http_get(port, "/nothing")[0] == 404
    status = json.loads(http_get(port, "/status")[1])
    assert (
        status["gateway_id"] == "gw-test"
        and status["devices"] == 1
        and status["udp"].startswith("127.0.0.1:")
    )

    # (the start event's acknowledgement is committed within the forwarder's ack_interval_s)
    def drained() -> str | None:
        text = http_get(port, "/metrics")[1]
        return text if 'havel_gateway_outbox{what="depth"} 0' in text else None

    metrics = wait(drained)
    assert "# TYPE havel_gateway_uplinks_accepted_total counter" in metrics
    assert 'havel_gateway_sink_up{sink="file"} 1' in metrics
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("json", "info", stream)
        logging.getLogger("havel.gateway.test").warning("forwarder %s silent", "AA55")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["level"] == "warning" and line["message"] == "forwarder AA55 silent" and line["logger"]
    # the time as every time the gateway publishes: RFC 3339 UTC, milliseconds, "Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line["time"]


def test_a_bad_sink_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, sinks=[{"type": "mqtt", "name": "platform", "tls": False}]))
    with pytest.raises(config.ConfigError, match=r"sink\[platform\]\.host"):
        InProcessGateway(cfg).start()
    p = subprocess.run(
        [sys.executable, "-m", "havel", "gateway", "run", "--config", str(tmp_path / "gateway.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and "sink[platform].host" in p.stderr


@pytest.mark.timeout(60)
def test_status_topic_carries_forwarder_health_and_the_silence_alarm(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    cfg = _mqtt_cfg(tmp_path, mosquitto)
    register(cfg)
    with (
        Subscriber(mosquitto.port, ["havel/gw-test/status", "havel/gw-test/events"]) as sub,
        InProcessGateway(cfg) as gw,
        Concentrator(gw.udp, GW1, keepalive_s=0.5) as c,
    ):
        wait(lambda: gw.gateway.udp.forwarders)
        c.paused = True
        alarm = wait(
            lambda: [
                m.json()
                for m in sub.messages
                if m.topic.endswith("/events") and m.json()["event"] == "forwarder_silent"
            ],
            timeout=10,
        )
        status = wait(
            lambda: [
                m.json()
                for m in sub.messages
                if m.topic.endswith("/status") and m.json().get("health") == "degraded"
            ]
        )
    assert alarm[0]["gateway"] == f"{GW1:016X}"
    assert status[-1]["state"] == "online" and status[-1]["forwarders"][0]["silent"] is True


def test_a_command_nobody_collects_expires_and_says_so(gw: InProcessGateway, tmp_path: Path) -> None:
    queued = gw.call(
        gw.gateway.submit_downlink, EUI, {"fport": 24, "raw": "1001", "ttl_s": 0.5, "id": "late"}
    )
    assert queued["payload"]["state"] == "queued"
    results = wait(
        lambda: (
            [x["payload"] for x in lines(tmp_path / "out.jsonl") if x["topic"].endswith("/down/result")]
            if len([x for x in lines(tmp_path / "out.jsonl") if x["topic"].endswith("/down/result")]) >= 2
            else None
        ),
        timeout=8,
    )
    assert [(r["command_id"], r["state"]) for r in results] == [("late", "queued"), ("late", "expired")]
    assert gw.call(gw.gateway.downlinks.depth) == 0


def test_a_command_the_database_does_not_take_is_rejected_for_storage(
    gw: InProcessGateway, tmp_path: Path
) -> None:
    """A database error while a command is queued (a real SQLite error, raised by a trigger on the queue
    table) loses no answer: the command is not queued and its result says ``rejected``, reason
    ``storage``; the error still reaches the caller (the storage health)."""
    from havel.errors import StorageError

    conn = gw.gateway.registry.conn
    sql = "CREATE TEMP TRIGGER no_room BEFORE INSERT ON downlinks BEGIN SELECT RAISE(ABORT, 'no room'); END"
    gw.call(conn.execute, sql)
    with pytest.raises(StorageError, match="no room"):
        gw.call(gw.gateway.submit_downlink, EUI, {"fport": 24, "raw": "1001", "id": "lost"})
    gw.call(conn.execute, "DROP TRIGGER no_room")
    results = wait(
        lambda: [x["payload"] for x in lines(tmp_path / "out.jsonl") if x["topic"].endswith("/down/result")],
        timeout=8,
    )
    assert [(r["command_id"], r["state"], r["request"]) for r in results] == [
        ("lost", "rejected", {"fport": 24, "raw": "1001"})
    ]
    assert results[0]["detail"].startswith("storage: ") and "no room" in results[0]["detail"]
    assert gw.call(gw.gateway.downlinks.depth) == 0
    assert gw.gateway.downlinks.rejected_by_reason == {"storage": 1}


def test_the_daemon_process_sets_its_garbage_collection_for_a_long_run() -> None:
    """`havel gateway run` freezes what exists once started and collects the young generation less often
    (in a process of its own here: the test process's collector is left alone)."""
    import subprocess
    import sys

    code = (
        "import gc\n"
        "import havel.gateway.daemon\n"
        "from havel.gateway.process import tune_gc\n"
        "before = gc.get_freeze_count()\n"
        "tune_gc()\n"
        "print(before, gc.get_freeze_count() > 1000, gc.get_threshold()[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["0", "True", "10000"]


def test_status_tells_delivered_records_from_waiting_ones(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, network={"dedup_window_ms": 80}))
    # the deletion waits (the product's is 5 s)
    cfg = dataclasses.replace(cfg, forwarder=dataclasses.replace(cfg.forwarder, ack_interval_s=30.0))
    register(cfg)
    with InProcessGateway(cfg) as g, Concentrator(g.udp, GW1) as c:
        push(c, frame(1), tmst=1_000_000)
        wait(lambda: ups(tmp_path / "out.jsonl"))
        ob = wait(lambda: (o := g.call(lambda: g.gateway.status()["outbox"]))["delivered"] and o)
        assert ob["depth"] >= 1 and ob["delivered"] == ob["depth"]  # stored still, but nothing waits
        metrics = http_get(cfg.http.port, "/metrics")[1]
        assert f'havel_gateway_outbox{{what="delivered"}} {ob["delivered"]}' in metrics
