"""The delivery (the outbox drain) against a real Mosquitto: restarts, a dead broker at start, a hung
broker, several sinks.

Every broker here is a real mosquitto child process on loopback (tests/support/mosquitto.py); the
subscriber that checks what arrived is a real paho client with a persistent session.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.mosquitto import Mosquitto
from support.mqtt_subscriber import Subscriber
from support.outbox_records import harness, uplink

pytestmark = pytest.mark.timeout(90)


def plain(broker: Mosquitto, **kw: Any) -> dict[str, Any]:
    return {
        "type": "mqtt",
        "name": "primary",
        "host": "127.0.0.1",
        "port": broker.port,
        "tls": False,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.4,
        **kw,
    }


def up_topic(dev: int) -> str:
    """The uplink topic of device number ``dev`` (wait for these: status messages would count too)."""
    return f"havel/gw1/devices/{uplink(dev, 1)['dev_eui']}/up"


def uplinks(sub: Subscriber) -> list[dict[str, Any]]:
    return [m.json() for m in sub.messages if m.topic.endswith("/up")]


def check_delivery(got: list[dict[str, Any]], expected_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Nothing lost, duplicates only as exact copies under the same id, per-device FCnt order."""
    first: dict[str, dict[str, Any]] = {}
    for msg in got:
        if msg["id"] in first:
            again = {k: v for k, v in msg.items() if k != "buffered"}
            assert again == {k: v for k, v in first[msg["id"]].items() if k != "buffered"}
        else:
            first[msg["id"]] = msg
    assert sorted(first) == sorted(expected_ids)
    last: dict[str, int] = {}
    for msg in first.values():  # dicts keep arrival order of the first copy
        assert msg["fcnt"] > last.get(msg["dev_eui"], -1), "per-device order broken"
        last[msg["dev_eui"]] = msg["fcnt"]
    return first


def test_broker_restarted_mid_stream_loses_nothing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async def run() -> None:
        with Subscriber(mosquitto.port, "havel/#", persistent=True) as sub:
            # (the fixture's receive times are fixed in the past: the age rule is off here, tested below)
            async with harness(
                tmp_path, [plain(mosquitto)], batch=50, window=100, down_after_s=1.0, buffered_after_s=1e9
            ) as h:
                before = [uplink(d, f) for f in range(1, 201) for d in range(5)]
                h.put(before)
                await h.forwarder.wait_state("primary", "up", 5)
                sink: Any = h.sinks[0]
                assert sink.session_present is False  # a new session ...
                while h.forwarder.status("primary").acked < 300:  # stop while records are in flight
                    await asyncio.sleep(0.005)
                mosquitto.stop()
                await h.forwarder.wait_state("primary", "down", 5)
                during = [uplink(d, f) for f in range(201, 301) for d in range(5)]
                h.put(during)  # readings keep coming while the platform is away
                await asyncio.sleep(0.3)
                mosquitto.start()
                await h.forwarder.wait_state("primary", "up", 10)
                assert sink.session_present is True  # ... that the broker kept over its restart
                await h.forwarder.wait_idle(30)
                assert h.outbox.depth() == 0
                st = h.forwarder.status("primary")
                assert st.acked == 1500 and st.buffered_sent >= 500
                assert [s.state for s in h.states] == ["up", "down", "up"]
            sub.wait_for(1500, 20, topic=None)
            await asyncio.sleep(0.3)
            first = check_delivery(uplinks(sub), [r["id"] for r in before + during])
            # what waited through the outage says so, and keeps its receive time
            for r in during:
                assert first[r["id"]]["buffered"] is True
                assert first[r["id"]]["received_at"] == r["received_at"]
            assert first[before[0]["id"]]["buffered"] is False
            dup = len(uplinks(sub)) - len(first)
            print(f"duplicates after the restart: {dup}")

    asyncio.run(run())


def test_dead_broker_at_start_keeps_records_until_it_comes(
    tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto]
) -> None:
    broker = mosquitto_factory()
    broker.stop()

    async def run() -> None:
        async with harness(tmp_path, [plain(broker)]) as h:
            records = [uplink(1, f) for f in range(1, 51)]
            h.put(records)
            await h.forwarder.wait_state("primary", "down", 5)
            st = h.forwarder.status("primary")
            assert not st.connected and "refused" in (st.last_error or "")
            await asyncio.sleep(0.3)
            assert h.outbox.depth() == 50  # nothing lost while nobody listens
            broker.start()
            with Subscriber(broker.port, "havel/#") as sub:
                # the subscriber is in before the gateway's reconnect back-off (<= 0.4 s) ends
                await h.forwarder.wait_idle(15)
                got = sub.wait_for(50, 10, topic=None)
            await h.forwarder.wait_state("primary", "up", 5)
        msgs = [m.json() for m in got if m.topic.endswith("/up")]
        first = check_delivery(msgs, [r["id"] for r in records])
        assert all(m["buffered"] is True for m in first.values())

    asyncio.run(run())


def test_gateway_restart_resends_unacknowledged(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Records fetched but never acknowledged (the gateway died) go out again after a restart."""

    async def run() -> None:
        mosquitto.pause()  # accepts TCP, answers nothing: no PUBACK will come
        async with harness(tmp_path, [plain(mosquitto, connect_timeout_s=0.5)]) as h:
            h.put([uplink(1, f) for f in range(1, 21)])
            await asyncio.sleep(0.5)
        mosquitto.resume()
        with Subscriber(mosquitto.port, "havel/#") as sub:
            async with harness(tmp_path, [plain(mosquitto)]) as h2:
                assert h2.outbox.depth() == 20
                await h2.forwarder.wait_idle(15)
            msgs = [m.json() for m in sub.wait_for(20, 10, topic=up_topic(1))]
        check_delivery(msgs, [uplink(1, f)["id"] for f in range(1, 21)])

    asyncio.run(run())


def test_hung_broker_is_detected_and_recovers(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async def run() -> None:
        with Subscriber(mosquitto.port, "havel/#", persistent=True) as sub:
            async with harness(tmp_path, [plain(mosquitto, keepalive_s=30)]) as h:
                h.put([uplink(2, 1)])
                await h.forwarder.wait_idle(5)
                mosquitto.pause()  # TCP stays up, PUBACKs stop: only the missing acks tell
                h.put([uplink(2, f) for f in range(2, 12)])
                down = await h.forwarder.wait_state("primary", "down", 5)
                assert down.connected  # the transport still looks fine
                assert h.outbox.depth() == 10
                mosquitto.resume()
                await h.forwarder.wait_state("primary", "up", 5)
                await h.forwarder.wait_idle(10)
                changes = [(s.state, s.since) for s in h.states]
                assert [c[0] for c in changes] == ["up", "down", "up"]
                assert changes[0][1] < changes[1][1] < changes[2][1]
            msgs = [m.json() for m in sub.wait_for(11, 10, topic=up_topic(2))]
        check_delivery(msgs, [uplink(2, f)["id"] for f in range(1, 12)])

    asyncio.run(run())


def test_every_sink_must_acknowledge(tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto]) -> None:
    broker = mosquitto_factory()
    broker.stop()
    out = tmp_path / "out.jsonl"

    async def run() -> None:
        cfgs = [plain(broker), {"type": "file", "name": "log", "path": str(out)}]
        async with harness(tmp_path, cfgs) as h:
            h.put([uplink(3, f) for f in range(1, 31)])
            await h.forwarder.wait_idle(5, sink="log")
            assert h.outbox.depth() == 30 and h.outbox.depth("primary") == 30  # the broker has not acked
            broker.start()
            await h.forwarder.wait_idle(10)
            assert h.outbox.depth() == 0

    asyncio.run(run())
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["payload"]["fcnt"] for x in lines] == list(range(1, 31))
    assert lines[0]["topic"] == "havel/gw1/devices/70B3D57ED0000003/up"


def test_refused_records_stay_and_are_retried(tmp_path: Path, mosquitto_secure: Mosquitto) -> None:
    """A broker ACL refusing a topic (MQTT v5 reason code 135) keeps the record in the outbox."""
    broker = mosquitto_secure

    async def run() -> None:
        # user gw1 may only use havel/gw1/#; this sink claims to be gw2
        cfg = plain(broker, port=broker.acl_port, username="gw1", password="pw-gw1")
        async with harness(tmp_path, [cfg], gateway_id="gw2") as h:
            h.put([uplink(4, 1)])
            await h.forwarder.wait_state("primary", "up", 5)
            for _ in range(200):
                if h.forwarder.status("primary").refused >= 2:
                    break
                await asyncio.sleep(0.02)
            st = h.forwarder.status("primary")
            assert st.refused >= 2 and st.acked == 0  # refused, retried after retry_s, refused again
            assert h.sinks[0].last_reason_code == 135
            assert h.outbox.depth() == 1

    asyncio.run(run())


def test_quota_during_an_outage_keeps_every_alarm(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A long outage fills the quota: routine readings are dropped (counted), alarms all arrive later."""
    mosquitto.stop()

    remaining = 0

    async def run() -> None:
        nonlocal remaining
        size = len(json.dumps(uplink(1, 100)["payload"])) + 120
        async with harness(tmp_path, [plain(mosquitto)], quota_bytes=40 * size) as h:
            alarms, stored = [], 0
            for f in range(100, 400):
                prio = "alarm" if f % 20 == 0 else "background"
                r = uplink(1, f, priority=prio)
                stored += h.put([r])
                if prio == "alarm":
                    alarms.append(r["id"])
            dropped = h.outbox.dropped()
            assert dropped["background"] > 200 and dropped["state"] == 0
            assert stored == 300  # every put was stored at first; older routine ones made room
            remaining = h.outbox.depth()
            assert remaining == 300 - dropped["background"]
            assert h.outbox.size_bytes() <= 40 * size
            mosquitto.start()
            with Subscriber(mosquitto.port, "havel/#") as sub:
                await h.forwarder.wait_idle(15)
                got = sub.wait_for(h.forwarder.status("primary").acked, 10, topic=up_topic(1))
        ids = [m.json()["id"] for m in got]
        assert set(alarms) <= set(ids)
        assert len(set(ids)) == remaining

    asyncio.run(run())


def test_stop_flushes_what_is_stored(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async def run() -> None:
        with Subscriber(mosquitto.port, "havel/#") as sub:
            async with harness(tmp_path, [plain(mosquitto)], batch=50, window=100) as h:
                await h.forwarder.wait_state("primary", "up", 5)
                h.put([uplink(5, f) for f in range(1, 1001)])
            # the harness stopped the forwarder at once: it sent everything before closing
            assert h.depth_at_stop == 0
            msgs = [m.json() for m in sub.wait_for(1000, 10, topic=up_topic(5))]
        check_delivery(msgs, [uplink(5, f)["id"] for f in range(1, 1001)])

    asyncio.run(run())
