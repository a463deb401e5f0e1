"""SQLite written in batches, the intake journal in the sector log: the real daemon (as a process where a
crash matters), real UDP, real SQLite, the file sink; the CLI as a process of its own."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.gateway_run import (
    GatewayProcess,
    InProcessGateway,
    abp_uplink,
    free_tcp_port,
    free_udp_port,
    http_get,
    register_abp,
    write_config,
)
from support.mosquitto import Mosquitto
from support.mqtt_subscriber import Subscriber
from support.small_disk import SmallDisk

from havel.gateway import config, db
from havel.gateway.backends.semtech_udp.rxpk import RxPacket
from havel.gateway.journal import Journal
from havel.gateway.journal_log import LogJournal
from havel.gateway.sim.concentrator import Concentrator
from havel.gateway.write_batch import WriteBatch

NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
EUI0, ADDR0, GW = 0x70B3D57ED0000500, 0x26050000, 0xAA555A00000000C5
PAYLOAD = bytes.fromhex("1200f1013d4cba")


def build(dev: int, fcnt: int, confirmed: bool = False) -> bytes:
    return abp_uplink(ADDR0 + dev, fcnt, NWK, APP, PAYLOAD, confirmed=confirmed)


def rxpk(conc: Concentrator, data: bytes, tmst: int) -> dict[str, Any]:
    return conc.rxpk(data, tmst=tmst, freq_hz=868_100_000, datr="SF7BW125", rssi=-80, snr=5)


def delivered(out: Path) -> dict[str, dict[str, Any]]:
    """The uplinks the file sink wrote: message id -> message; a duplicate (at-least-once) must be the
    same message."""
    got: dict[str, dict[str, Any]] = {}
    for line in out.read_text().splitlines() if out.exists() else []:
        try:
            doc = json.loads(line)
        except ValueError:  # (a line being written)
            continue
        if not str(doc.get("topic", "")).endswith("/up"):
            continue
        m = doc["payload"]
        if m["id"] in got:
            a = {k: v for k, v in m.items() if k != "buffered"}
            b = {k: v for k, v in got[m["id"]].items() if k != "buffered"}
            assert a == b, (a, b)
        got[m["id"]] = m
    return got


def counters(cfg: config.Config) -> dict[str, int]:
    conn = db.open_db_readonly(cfg.db_path)
    try:
        return dict(conn.execute("SELECT dev_eui, fcnt_up FROM devices WHERE fcnt_up IS NOT NULL").fetchall())
    finally:
        conn.close()


def setup(
    tmp_path: Path, n: int = 4, storage: dict[str, Any] | None = None, network: dict[str, Any] | None = None
) -> tuple[Path, config.Config, int, int, Path]:
    http, udp = free_tcp_port(), free_udp_port()
    out = tmp_path / "out.jsonl"
    extra = "\n[storage]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in (storage or {}).items())
    cfg_path = write_config(
        tmp_path,
        http_port=http,
        udp_port=udp,
        network={"dedup_window_ms": 100, **(network or {})},
        sinks=[{"type": "file", "path": str(out), "name": "file"}],
        extra=extra,
    )
    cfg = config.load(cfg_path)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    return cfg_path, cfg, http, udp, out


def register(cfg: config.Config, n: int) -> None:
    conn = db.open_db(cfg.db_path)
    register_abp(conn, n, dev_eui=EUI0, dev_addr=ADDR0, nwk_s_key=NWK, app_s_key=APP, prefix="b")
    conn.close()


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ------------------------------------------------------------------------------------------ the journal


def test_log_journal_marks_in_the_unit_of_work_and_gives_back_what_a_lost_batch_held(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    j = LogJournal.open(conn, tmp_path / "intake.log", 64 * 512)
    now = datetime(2026, 12, 7, 15, 0, 0, 123456, tzinfo=UTC)
    rx = RxPacket(
        data=b"\x40abc", tmst=4_000_000_000, freq_hz=868_100_000, datr="SF7BW125", rssi=-80.5, lsnr=7.25
    )
    gps = RxPacket(
        data=b"\x80x", tmst=5, freq_hz=868_300_000, datr="SF12BW125", time=now, tmms=1_000_000_000_123
    )
    datagram = (
        b"\x02\x00\x01\x00"
        + (0xAA).to_bytes(8, "big")
        + json.dumps(
            {
                "rxpk": [
                    {
                        "tmst": 1,
                        "freq": 868.1,
                        "datr": "SF7BW125",
                        "stat": 1,
                        "rssi": -9,
                        "lsnr": 1.0,
                        "size": 2,
                        "data": "QAE=",
                    }
                ]
                * 3
            }
        ).encode()
    )
    ids = j.add_in_order([(1, rx, now, "local"), (2, datagram, now.timestamp(), 0b101), (3, gps, now, "gps")])
    assert ids == [1, 2, 3]
    pend = j.pending()
    assert [e.seq for e in pend] == [1, Journal.datagram_id(2, 0), Journal.datagram_id(2, 2), 3]
    assert pend[0].rx == rx and pend[0].received_at == now and pend[0].gateway_eui == 1
    assert pend[3].rx == gps and pend[3].time_source == "gps"

    def mark() -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = 'intake_log_mark'").fetchone()
        return int(row[0]) if row else 0

    conn.execute("BEGIN IMMEDIATE")  # a batch
    with db.unit_of_work(conn):
        j.forget([1, Journal.datagram_id(2, 0)])
    assert mark() == 1  # the datagram's rxpk 2 still waits
    with pytest.raises(RuntimeError), db.unit_of_work(conn):  # a unit that fails: its marks go
        j.forget([Journal.datagram_id(2, 2), 3])
        raise RuntimeError
    assert mark() == 1 and j.depth() == 2
    with db.unit_of_work(conn):
        j.forget([Journal.datagram_id(2, 2)])
    assert mark() == 2 and j.depth() == 1
    conn.execute("ROLLBACK")  # the batch is lost: everything after the durable mark (0) waits again
    j.reset()
    assert [e.seq for e in j.pending()] == [1, Journal.datagram_id(2, 0), Journal.datagram_id(2, 2), 3]
    with db.unit_of_work(conn):  # a transaction of its own: durable at once
        j.forget([1, Journal.datagram_id(2, 0), Journal.datagram_id(2, 2)])
    assert mark() == 2 and j.log.applied_mark == 2
    j.close()
    conn.close()
    conn = db.open_db(tmp_path / "havel.db")
    j = LogJournal.open(conn, tmp_path / "intake.log", 64 * 512)
    assert [e.seq for e in j.pending()] == [3]  # only what the database's mark does not cover
    j.close()
    conn.close()


# ------------------------------------------------------------------------------------ crashes under load


class Sender:
    """A forwarder pushing one frame of the next device each time, at about ``rate`` datagrams/s."""

    def __init__(self, conc: Concentrator, devices: int, rate: float) -> None:
        self.conc, self.devices, self.rate = conc, devices, rate
        self.next = dict.fromkeys(range(devices), 1)
        self.sent: list[tuple[int, int, int]] = []  # device, FCnt, token
        self.stop = threading.Event()

    def run_for(self, seconds: float) -> None:
        self.stop.clear()
        dev = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            fcnt = self.next[dev]
            token, _ = self.conc.push_token([rxpk(self.conc, build(dev, fcnt), fcnt * 1000)])
            self.sent.append((dev, fcnt, token))
            self.next[dev] = fcnt + 1
            dev = (dev + 1) % self.devices
            time.sleep(1 / self.rate)


@pytest.mark.timeout(180)
def test_sigkill_at_random_points_between_batches_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Killed three times while a forwarder sends (batches every 2 s, so most kills fall between them):
    every PUSH_ACKed uplink comes out with its message id, none was refused as a replay without being
    stored, and the counters in the database never go backwards."""
    devices = 8
    cfg_path, cfg, http, udp, out = setup(tmp_path, storage={"batch_s": 2})
    register(cfg, devices)
    rng = random.Random(18)
    seen: dict[str, int] = {}
    with Concentrator(("127.0.0.1", udp), GW) as conc:
        sender = Sender(conc, devices, rate=60)
        gw = GatewayProcess(cfg_path, http)
        try:
            for _ in range(3):
                gw.start()
                sender.run_for(rng.uniform(1.0, 4.0))
                gw.kill()
                now = counters(cfg)
                for dev, fcnt in seen.items():
                    assert now.get(dev, 0) >= fcnt, f"{dev}: counter went back from {fcnt} to {now.get(dev)}"
                seen = now
            gw.start()  # the last restart replays what the last kill left in the log
            wait_for(lambda: conc.counts["push_ack"] > 0, 10, "PUSH_ACKs")
            time.sleep(0.3)  # PUSH_ACKs still in flight
            assert gw.terminate() == 0
        finally:
            gw.kill()
        acked = [(d, f) for d, f, t in sender.sent if t in conc.acked_tokens]
    got = delivered(out)
    want = {f"{EUI0 + d:016X}-0-{f}" for d, f in acked}
    assert len(acked) > 50
    missing = want - set(got)
    assert not missing, sorted(missing)[:10]
    final = counters(cfg)
    for dev, fcnt in seen.items():
        assert final.get(dev, 0) >= fcnt
    highest: dict[str, int] = {}
    for m in got.values():
        highest[m["dev_eui"]] = max(highest.get(m["dev_eui"], 0), m["fcnt"])
    assert final == highest


# ------------------------------------------------------------------------------ durable before it leaves


@pytest.mark.timeout(60)
def test_a_confirmed_uplinks_ack_leaves_only_once_its_fcntdown_is_committed(tmp_path: Path) -> None:
    cfg_path, cfg, http, udp, _out = setup(tmp_path, storage={"batch_s": 600})
    register(cfg, 1)
    with GatewayProcess(cfg_path, http), Concentrator(("127.0.0.1", udp), GW, keepalive_s=0.5) as conc:
        wait_for(lambda: conc.counts["pull_ack"] > 0, 10, "PULL_ACK")
        for fcnt in (1, 2, 3):
            tmst = fcnt * 10_000_000
            waiter = conc.expect({tmst + 1_000_000, tmst + 2_000_000})
            assert conc.push([rxpk(conc, build(0, fcnt, confirmed=True), tmst)], wait_ack_s=5)
            assert waiter.event.wait(15), "no ACK downlink"
            # read by another process the moment the PULL_RESP is here: the counter it used is committed
            conn = db.open_db_readonly(cfg.db_path)
            row = conn.execute(
                "SELECT fcnt_down, fcnt_up FROM devices WHERE dev_eui = ?", (f"{EUI0:016X}",)
            ).fetchone()
            conn.close()
            assert row == (fcnt, fcnt), row  # FCntDown fcnt - 1 went out; the next one is stored


# ----------------------------------------------------------------------------------- other processes


@pytest.mark.timeout(90)
def test_device_add_while_the_daemon_batches_succeeds_and_the_daemon_uses_the_device(tmp_path: Path) -> None:
    cfg_path, cfg, http, udp, out = setup(tmp_path, storage={"batch_s": 600})
    register(cfg, 1)
    with GatewayProcess(cfg_path, http), Concentrator(("127.0.0.1", udp), GW) as conc:
        assert conc.push([rxpk(conc, build(0, 1), 1000)], wait_ack_s=5)
        wait_for(lambda: len(delivered(out)) == 1, 15, "the first uplink")  # a batch is open now
        started = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-m", "havel", "device", "add", "--config", str(cfg_path), "--name", "new-1",
             "--dev-eui", f"{EUI0 + 1:016X}", "--codec", "temperature", "--abp", "--dev-addr",
             f"{ADDR0 + 1:08X}", "--nwk-s-key", NWK.hex(), "--app-s-key", APP.hex()],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        print(f"havel device add took {time.monotonic() - started:.1f} s")
        assert conc.push([rxpk(conc, build(1, 1), 2000)], wait_ack_s=5)
        wait_for(lambda: f"{EUI0 + 1:016X}-0-1" in delivered(out), 15, "the new device's uplink")


# -------------------------------------------------------------------------------- storage failures


def health(port: int) -> tuple[int, dict[str, Any]]:
    code, body = http_get(port, "/healthz")
    return code, json.loads(body)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("log_mb", [4.0, 0.01], ids=["batch-refused", "log-full"])
def test_a_refused_batch_then_space_back_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, log_mb: float
) -> None:
    """The disk fills: the batch COMMIT is refused. With a 4 MiB log the frames go on into the log (each
    PUSH_ACK still means on the device); with a log of 20 sectors the log fills up and PUSH_ACKs are
    withheld. Space back: health ok, every acknowledged frame out, each counter stored once."""
    cfg_path, cfg, http, udp, out = setup(tmp_path, storage={"batch_s": 1, "log_mb": log_mb})
    disk = SmallDisk(cfg.data_dir)
    if not disk.mounted:
        disk.close()
        pytest.skip("needs a tmpfs (root): the write limit fallback also limits the intake log")
    gw: GatewayProcess | None = None
    try:
        register(cfg, 1)
        gw = GatewayProcess(cfg_path, http).start()
        acked: set[int] = set()
        unacked: set[int] = set()
        fcnts = iter(range(1, 10_000))
        with Concentrator(("127.0.0.1", udp), GW) as conc:

            def send() -> bool:
                f = next(fcnts)
                ok = conc.push([rxpk(conc, build(0, f), f * 1000)], wait_ack_s=3.0)
                (acked if ok else unacked).add(f)
                return ok

            assert all(send() for _ in range(3))
            disk.fill()
            wait_for(lambda: (send(), health(http)[0] == 503)[1], 60, "the refused batch seen as a failure")
            for _ in range(40):
                send()
            if log_mb < 1:
                assert unacked, "PUSH_ACKs went on with the log full"
            else:
                assert not unacked, "frames the log held were not acknowledged"
            code, doc = health(http)
            assert code == 503 and doc["storage"]["ok"] is False, doc
            disk.free()
            wait_for(lambda: health(http)[0] == 200, 60, "storage ok again")
            assert all(send() for _ in range(3))
        wait_for(lambda: acked <= {m["fcnt"] for m in delivered(out).values()}, 30, "every acked frame out")
        assert gw.terminate() == 0
        got = delivered(out)
        assert acked <= {m["fcnt"] for m in got.values()}
        assert counters(cfg) == {f"{EUI0:016X}": max(m["fcnt"] for m in got.values())}
        conn = sqlite3.connect(cfg.db_path)
        stored = conn.execute("SELECT count(*), count(DISTINCT id) FROM outbox").fetchone()
        conn.close()
        assert stored[0] == stored[1]  # (whatever waits in the outbox waits once)
    finally:
        if gw is not None:
            gw.kill()
        disk.close()


# ------------------------------------------------------------------------------------- old databases


@pytest.mark.timeout(60)
def test_rows_in_the_old_sqlite_journal_are_replayed_before_the_log_takes_over(tmp_path: Path) -> None:
    _cfg_path, cfg, _http, _udp, out = setup(tmp_path, storage={"batch_s": 30})
    register(cfg, 1)
    conn = db.open_db(cfg.db_path)
    journal = Journal(conn)
    rx = RxPacket(data=build(0, 7), tmst=7000, freq_hz=868_100_000, datr="SF7BW125", rssi=-80, lsnr=5.0)
    with db.unit_of_work(conn):
        journal.add(GW, rx, datetime.now(UTC), "local")
    conn.close()
    with InProcessGateway(cfg) as gw:
        assert isinstance(gw.gateway.journal, LogJournal)
        wait_for(lambda: f"{EUI0:016X}-0-7" in delivered(out), 15, "the replayed frame")
    conn = db.open_db(cfg.db_path)
    left = conn.execute("SELECT (SELECT count(*) FROM intake) + (SELECT count(*) FROM intake_datagrams)")
    assert left.fetchone()[0] == 0
    conn.close()
    assert (cfg.data_dir / "intake.log").exists()


# --------------------------------------------------------------------------------- downlink commands


@pytest.mark.timeout(60)
def test_a_downlink_commands_result_goes_out_only_after_its_queue_row_is_committed(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    platform = {
        "type": "mqtt",
        "name": "platform",
        "host": "127.0.0.1",
        "port": mosquitto.port,
        "tls": False,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
        "commands": True,
    }
    cfg = config.load(write_config(tmp_path, sinks=[platform], extra="\n[storage]\nbatch_s = 600\n"))
    register(cfg, 1)
    seen: list[tuple[dict[str, Any], list[str]]] = []

    def queued() -> list[str]:  # another connection: it sees only what is committed
        conn = db.open_db_readonly(cfg.db_path)
        try:
            return [
                r[0] for r in conn.execute("SELECT id FROM downlinks WHERE dev_eui = ?", (f"{EUI0:016X}",))
            ]
        finally:
            conn.close()

    with Subscriber(mosquitto.port, "havel/gw-test/devices/#") as sub:
        collect = sub.client.on_message

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            if msg.topic.endswith("/down/result"):  # read the moment the result arrives
                seen.append((json.loads(msg.payload), queued()))
            collect(client, userdata, msg)

        sub.client.on_message = on_message
        with InProcessGateway(cfg) as gw:
            wait_for(
                lambda: all(s.subscribed for s in gw.gateway.components.northbound.subscribers), 15, "sub"
            )
            batch = gw.gateway.batch
            assert batch is not None
            with Concentrator(gw.udp, GW) as conc:  # uplinks until one leaves a write batch open (a reply
                for f in range(1, 6):  # with a MAC command, DevStatusReq, commits it before it leaves)
                    assert conc.push([rxpk(conc, build(0, f), f * 1000)], wait_ack_s=5)
                    sub.wait_for(f, timeout=15, topic=f"havel/gw-test/devices/{EUI0:016X}/up")
                    if gw.call(lambda: batch.open):
                        break
                assert gw.call(lambda: batch.open)
            for n in range(3):
                cmd = {"fport": 24, "raw": "1001", "id": f"c-{n}"}
                sub.client.publish(f"havel/gw-test/devices/{EUI0:016X}/down", json.dumps(cmd), qos=1)
                wait_for(lambda n=n: len(seen) > n, 15, "the command's result")
    for n, (result, rows) in enumerate(seen):
        assert result["state"] == "queued" and result["command_id"] == f"c-{n}", result
        assert f"c-{n}" in rows, (result, rows)


def test_a_batch_holding_much_in_memory_commits_before_its_interval(tmp_path: Path) -> None:
    """A drain acknowledges thousands of records a second, and each acknowledgement recorded in the open batch
    is kept in memory until the batch commits: past ``max_held`` the batch commits at the next check instead
    of after its interval (a district's drain grew the daemon by 6 MB in 30 s without this)."""
    conn = db.open_db(tmp_path / "h.db")
    held = [0]
    committed: list[int] = []
    batch = WriteBatch(
        conn, 600.0, on_commit=lambda: committed.append(held[0]), on_lost=lambda exc: None,
        held=lambda: held[0], max_held=5_000,
    )  # fmt: skip
    batch.begin()
    conn.execute("UPDATE db_identity SET db_id = db_id")
    held[0] = 4_999
    batch.due()
    assert batch.open and committed == []  # under the bound and the interval: still open
    held[0] = 5_000
    batch.due()
    assert not batch.open and not conn.in_transaction and committed == [5_000]
    conn.close()
