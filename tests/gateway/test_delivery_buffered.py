"""``buffered`` is true whenever a record was not delivered within seconds of its reception, whatever the
cause (docs/mqtt.md): a broker outage shorter than ``down_after_s``, a late publication, a frame replayed
from the intake journal after a crash. Real Mosquitto, real subscriber, real daemon."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.gateway_run import InProcessGateway, register_abp, write_config
from support.mosquitto import Mosquitto
from support.mqtt_subscriber import Subscriber
from support.outbox_records import harness, uplink

from havel.codecs.lorawan import phy
from havel.gateway import config, db
from havel.gateway.backends.semtech_udp.rxpk import RxPacket
from havel.gateway.journal import Journal

pytestmark = pytest.mark.timeout(90)


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def received(dev: int, fcnt: int, at: float) -> dict[str, Any]:
    """An uplink record received at unix time ``at``."""
    rec = uplink(dev, fcnt)
    rec["received_at"] = rec["payload"]["received_at"] = iso(at)
    return rec


def plain(broker: Mosquitto) -> dict[str, Any]:
    return {
        "type": "mqtt",
        "name": "primary",
        "host": "127.0.0.1",
        "port": broker.port,
        "tls": False,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 0.5,
    }


def by_fcnt(sub: Subscriber) -> dict[int, bool]:
    return {m.json()["fcnt"]: m.json()["buffered"] for m in sub.messages if m.topic.endswith("/up")}


def test_a_short_outage_marks_what_waited_for_it(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The broker is away for less than down_after_s: the sink never counts as down, yet what was
    received while it was away waited for it."""

    async def run() -> None:
        with Subscriber(mosquitto.port, "havel/gw1/devices/+/up", persistent=True) as sub:
            async with harness(tmp_path, [plain(mosquitto)], down_after_s=60.0) as h:
                await h.forwarder.wait_state("primary", "up", 10)
                h.put([received(1, 1, time.time())])
                await h.forwarder.wait_idle(10)
                await asyncio.to_thread(sub.wait_for, 1, 10)
                mosquitto.stop()
                while h.sinks[0].connected:
                    await asyncio.sleep(0.02)
                h.put([received(1, 2, time.time())])  # received while the broker is away
                await asyncio.sleep(0.3)
                mosquitto.start()
                await h.forwarder.wait_idle(20)
                await asyncio.to_thread(sub.wait_for, 2, 10)
                assert [s.state for s in h.states] == ["up"]  # never down: shorter than down_after_s
                h.put([received(1, 3, time.time())])  # connected again: on time
                await h.forwarder.wait_idle(10)
                await asyncio.to_thread(sub.wait_for, 3, 10)
        assert by_fcnt(sub) == {1: False, 2: True, 3: False}

    asyncio.run(run())


def test_a_record_published_late_is_buffered(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Whatever kept it (a backlog, a slow path before the outbox): received more than buffered_after_s
    before its publication."""

    async def run() -> None:
        with Subscriber(mosquitto.port, "havel/gw1/devices/+/up") as sub:
            async with harness(tmp_path, [plain(mosquitto)], buffered_after_s=10.0) as h:
                await h.forwarder.wait_state("primary", "up", 10)
                now = time.time()
                h.put([received(1, 1, now - 60), received(1, 2, now - 12), received(1, 3, now - 1)])
                await h.forwarder.wait_idle(10)
                await asyncio.to_thread(sub.wait_for, 3, 10)
        assert by_fcnt(sub) == {1: True, 2: True, 3: False}

    asyncio.run(run())


NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
EUI, ADDR = 0x70B3D57ED0000600, 0x26060000


def test_frames_replayed_from_the_intake_journal_are_buffered(tmp_path: Path) -> None:
    """A crash left acknowledged frames in the intake journal: the restarted daemon publishes them as
    buffered, even when it is back within seconds."""
    out = tmp_path / "out.jsonl"
    cfg = config.load(write_config(tmp_path, sinks=[{"type": "file", "name": "file", "path": str(out)}]))
    conn = db.open_db(cfg.db_path)
    register_abp(conn, 1, dev_eui=EUI, dev_addr=ADDR, nwk_s_key=NWK, app_s_key=APP)
    journal = Journal(conn)
    for f in (1, 2):  # what the crashed run had journaled and acknowledged, one second ago
        data = phy.build_data_frame(
            uplink=True,
            confirmed=False,
            dev_addr=ADDR,
            fcnt32=f,
            fport=1,
            payload=bytes.fromhex("1200f1013d4cba"),
            nwk_s_key=NWK,
            app_s_key=APP,
        )
        rx = RxPacket(data=data, tmst=f * 1000, freq_hz=868_100_000, datr="SF7BW125", rssi=-80.0, lsnr=5.0)
        with db.unit_of_work(conn):
            journal.add(0xAA555A00000000AD, rx, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1), "local")
    conn.close()
    with InProcessGateway(cfg):
        deadline = time.monotonic() + 20
        while True:
            lines = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
            up = {x["payload"]["fcnt"]: x["payload"]["buffered"] for x in lines if x["topic"].endswith("/up")}
            if len(up) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert up == {1: True, 2: True}
