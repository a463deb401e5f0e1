"""The mqtt sink against a real Mosquitto: TLS verification, client certificates, passwords, the ACL,
the retained status and last will, and all three formats as a real subscriber sees them."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from support.mosquitto import Mosquitto
from support.mqtt_subscriber import Subscriber
from support.outbox_records import harness, uplink

pytestmark = pytest.mark.timeout(60)

EUI1 = "70B3D57ED0000001"


def tls_cfg(broker: Mosquitto, **kw: Any) -> dict[str, Any]:
    assert broker.pki is not None
    return {
        "type": "mqtt",
        "name": "primary",
        "host": "127.0.0.1",
        "port": broker.tls_port,
        "ca_file": str(broker.pki.ca_cert),
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.4,
        **kw,
    }


def test_tls_verified_delivery_status_and_last_will(tmp_path: Path, mosquitto_secure: Mosquitto) -> None:
    broker = mosquitto_secure

    async def run() -> None:
        with Subscriber(broker.port, "havel/#") as sub:
            async with harness(tmp_path, [tls_cfg(broker)], down_after_s=3.0) as h:
                h.put([uplink(1, f) for f in range(1, 4)])
                await h.forwarder.wait_idle(10)
                sink: Any = h.sinks[0]
                assert sink.connected and sink.tls is not None
                statuses = [m for m in sub.wait_for(1, 5, topic="havel/gw1/status")]
                assert json.loads(statuses[0].payload)["state"] == "online"
                sink.publish_status({"uplinks": 3})
                await asyncio.sleep(0.2)
                # the connection dies without DISCONNECT (power cut, dead link): the broker sends the will
                sink.mqtt.client.socket().shutdown(socket.SHUT_RDWR)
                for _ in range(250):  # it reconnects by itself, within the back-off
                    if sink.connects >= 2 and sink.connected:
                        break
                    await asyncio.sleep(0.02)
                assert sink.connects == 2
                # a hiccup shorter than down_after_s is not an outage (hysteresis)
                assert [s.state for s in h.states] == ["up"]
            ups = [m.json() for m in sub.messages if m.topic.endswith("/up")]
            assert [u["id"] for u in ups[:3]] == [f"{EUI1}-{f}" for f in range(1, 4)]
            states = [json.loads(m.payload) for m in sub.wait_for(5, 5, topic="havel/gw1/status")]
            assert [s["state"] for s in states] == ["online", "online", "offline", "online", "offline"]
            assert states[1]["uplinks"] == 3
            assert states[2] == {"state": "offline", "gateway_id": "gw1"}  # the will
        # retained: a newcomer learns the gateway is offline after the clean stop
        with Subscriber(broker.port, "havel/gw1/status") as late:
            (m,) = late.wait_for(1, 5)
            last = json.loads(m.payload)
            assert m.retain and last["state"] == "offline"
            assert "since" in last  # our own clean-stop message, not the will: the DISCONNECT went out

    asyncio.run(run())


def test_wrong_ca_is_refused(tmp_path: Path, mosquitto_secure: Mosquitto) -> None:
    broker = mosquitto_secure
    assert broker.pki is not None

    async def run() -> None:
        with Subscriber(broker.port, "havel/#") as sub:
            async with harness(tmp_path, [tls_cfg(broker, ca_file=str(broker.pki.wrong_ca_cert))]) as h:
                h.put([uplink(1, 1)])
                st = await h.forwarder.wait_state("primary", "down", 5)
                assert not st.connected
                assert "certificate" in (st.last_error or "")
                assert h.outbox.depth() == 1
            await asyncio.sleep(0.2)
            assert sub.messages == []

    asyncio.run(run())


def test_client_certificate_identity_and_acl(tmp_path: Path, mosquitto_secure: Mosquitto) -> None:
    broker = mosquitto_secure
    assert broker.pki is not None
    cert, key = broker.pki.client("gw1")

    async def run() -> None:
        with Subscriber(broker.port, "havel/#") as sub:
            cfg = tls_cfg(broker, port=broker.acl_tls_port, cert_file=str(cert), key_file=str(key))
            async with harness(tmp_path / "ok", [cfg]) as h:  # CN gw1 may use havel/gw1/#
                h.put([uplink(1, 1)])
                await h.forwarder.wait_idle(10)
            (tmp_path / "bad").mkdir()
            async with harness(tmp_path / "bad", [cfg], gateway_id="gw2") as h:  # not its subtree
                h.put([uplink(1, 2)])
                await h.forwarder.wait_state("primary", "up", 5)
                for _ in range(100):
                    if h.forwarder.status("primary").refused:
                        break
                    await asyncio.sleep(0.02)
                assert h.forwarder.status("primary").refused >= 1
                assert h.sinks[0].last_reason_code == 135  # MQTT v5 "not authorized" from the ACL
                assert h.outbox.depth() == 1
            await asyncio.sleep(0.2)
            topics = {m.topic for m in sub.messages}
            assert f"havel/gw1/devices/{EUI1}/up" in topics
            assert not any(t.startswith("havel/gw2/") for t in topics)

    asyncio.run(run())


def test_certificate_from_another_ca_and_wrong_password_are_refused(
    tmp_path: Path, mosquitto_secure: Mosquitto
) -> None:
    broker = mosquitto_secure
    assert broker.pki is not None
    cert, key = broker.pki.stranger("gw1")

    async def run() -> None:
        cfg = tls_cfg(broker, port=broker.acl_tls_port, cert_file=str(cert), key_file=str(key))
        async with harness(tmp_path / "a", [cfg]) as h:
            h.put([uplink(1, 1)])
            st = await h.forwarder.wait_state("primary", "down", 5)
            assert not st.connected and st.last_error
        (tmp_path / "b").mkdir()
        cfg = {
            "type": "mqtt",
            "name": "primary",
            "host": "127.0.0.1",
            "port": broker.acl_port,
            "tls": False,
            "username": "gw1",
            "password": "wrong",
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.4,
        }
        async with harness(tmp_path / "b", [cfg]) as h:
            h.put([uplink(1, 1)])
            st = await h.forwarder.wait_state("primary", "down", 5)
            assert "refused the connection" in (st.last_error or "")
            assert h.sinks[0].last_reason_code in (134, 135)  # bad user name or password / not authorized
            assert h.outbox.depth() == 1

    asyncio.run(run())


def test_sensorthings_and_fiware_through_the_broker(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async def run() -> None:
        base = {"type": "mqtt", "host": "127.0.0.1", "port": mosquitto.port, "tls": False, "status_topic": ""}
        sta = {
            **base,
            "name": "sta",
            "format": "sensorthings",
            "sensorthings": {"datastreams": {EUI1: {"water_level_cm": 17, "battery.mv": 18}}},
        }
        iota = {
            **base,
            "name": "iota",
            "format": "fiware",
            "fiware": {"apikey": "potsdam", "device_ids": {EUI1: "pegel-1"}},
        }
        with Subscriber(mosquitto.port, ["v1.1/#", "/json/#", "havel/#"]) as sub:
            async with harness(tmp_path, [sta, iota], buffered_after_s=1e9) as h:  # (fixed past times)
                h.put([uplink(1, 7, data={"water_level_cm": 131, "battery": {"mv": 3600}}), uplink(2, 7)])
                await h.forwarder.wait_idle(10)
                # acked counts records: the first one's two Observations make one delivery, the second
                # record (no Datastream mapped) one with nothing to send
                assert h.forwarder.status("sta").acked == 2 and h.outbox.depth() == 0
            got = sub.wait_for(4, 5)
        by_topic = {m.topic: m.json() for m in got}
        assert set(by_topic) == {
            "v1.1/Datastreams(17)/Observations",
            "v1.1/Datastreams(18)/Observations",
            "/json/potsdam/pegel-1/attrs",
            "/json/potsdam/70B3D57ED0000002/attrs",
        }
        obs = by_topic["v1.1/Datastreams(17)/Observations"]
        assert obs["result"] == 131 and obs["phenomenonTime"] == "2026-11-26T09:00:07.000Z"
        assert obs["parameters"]["id"] == f"{EUI1}-7" and obs["parameters"]["unit"] == "cm"
        attrs = by_topic["/json/potsdam/pegel-1/attrs"]
        assert attrs == {
            "water_level_cm": 131,
            "battery_mv": 3600,
            "TimeInstant": "2026-11-26T09:00:07.000Z",
            "havelId": f"{EUI1}-7",
            "fcnt": 7,
            "buffered": False,
        }
        assert not any(m.topic.startswith("havel/") for m in got)  # status_topic = "" : no status, no will

    asyncio.run(run())


def test_json_scheme_through_the_broker(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async def run() -> None:
        cfg = {
            "type": "mqtt",
            "name": "primary",
            "host": "127.0.0.1",
            "port": mosquitto.port,
            "tls": False,
            "prefix": "potsdam",
        }
        join = {
            "id": f"{EUI1}-join-77",
            "kind": "join",
            "dev_eui": EUI1,
            "fcnt32": None,
            "priority": "state",
            "received_at": "2026-11-26T09:00:00.000Z",
            "payload": {"dev_eui": EUI1, "dev_addr": "26000001"},
        }
        event = {
            "id": "gw1-event-1",
            "kind": "event",
            "dev_eui": None,
            "fcnt32": None,
            "priority": "alarm",
            "received_at": "2026-11-26T09:00:01.000Z",
            "payload": {"event": "forwarder_silent"},
        }
        with Subscriber(mosquitto.port, "potsdam/#") as sub:
            # (fixed receive times in the past: the age rule of `buffered` is off here)
            async with harness(tmp_path, [cfg], buffered_after_s=1e9) as h:
                h.put([join, uplink(1, 1), event])
                await h.forwarder.wait_idle(10)
            sub.wait_for(1, 5, topic="potsdam/gw1/events")  # the last one: the others came before it
            got = [m for m in sub.messages if not m.topic.endswith("/status")]
        assert [m.topic for m in got] == [
            f"potsdam/gw1/devices/{EUI1}/join",
            f"potsdam/gw1/devices/{EUI1}/up",
            "potsdam/gw1/events",
        ]
        up = got[1].json()
        fields = {
            "id",
            "device",
            "dev_eui",
            "dev_addr",
            "fcnt",
            "fport",
            "confirmed",
            "received_at",
            "buffered",
            "rx",
            "codec",
            "data",
            "units",
            "warnings",
            "errors",
            "raw",
        }
        assert set(up) == fields
        assert got[0].json() == {
            "id": f"{EUI1}-join-77",
            "dev_eui": EUI1,
            "dev_addr": "26000001",
            "buffered": False,
        }

    asyncio.run(run())


def test_host_name_is_verified(tmp_path: Path, mosquitto_factory: Any) -> None:
    """A certificate from the trusted CA but for another host is refused too."""
    broker = mosquitto_factory(tls=True, server_names=("broker.example.org",))

    async def run() -> None:
        async with harness(tmp_path, [tls_cfg(broker)]) as h:
            h.put([uplink(1, 1)])
            st = await h.forwarder.wait_state("primary", "down", 5)
            assert "certificate" in (st.last_error or "") and "127.0.0.1" in (st.last_error or "")
            assert h.outbox.depth() == 1

    asyncio.run(run())


@pytest.mark.timeout(90)
def test_reconnects_within_seconds_after_a_long_outage(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Default back-off: after the broker was away for a while, the sink is back a few seconds after the
    broker, not half a minute later; every retry is logged at debug level with its delay."""
    caplog.set_level(logging.DEBUG, logger="havel.gateway.mqtt")
    cfg = {"type": "mqtt", "name": "primary", "host": "127.0.0.1", "port": mosquitto.port, "tls": False}

    async def run() -> float:
        async with harness(tmp_path, [cfg]) as h:
            sink: Any = h.sinks[0]
            assert (sink.reconnect_min_s, sink.reconnect_max_s) == (1.0, 5.0)
            await h.forwarder.wait_state("primary", "up", 10)
            mosquitto.stop()
            while sink.connected:
                await asyncio.sleep(0.05)
            await asyncio.sleep(12)  # long enough for an uncapped doubling back-off to reach 8-16 s
            mosquitto.start()
            back = time.monotonic()
            while not sink.connected:
                await asyncio.sleep(0.05)
            return time.monotonic() - back

    took = asyncio.run(run())
    retries = [
        r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and "again in" in r.getMessage()
    ]
    assert len(retries) >= 4, retries
    delays = [float(m.split("again in ", 1)[1].split(" s", 1)[0]) for m in retries]
    assert max(delays) <= 5.0, delays
    assert took < 5.0 + 10.0, took  # at most one capped wait plus a connect, with room for a slow machine
