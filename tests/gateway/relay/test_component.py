"""The relay as a component of the real gateway daemon (D1's Gateway, D2's forwarder and MQTT sink):
configured by ``[relay]``, it watches the platform sink and relays alarms over MQTT to the crisis centre
when the platform's broker goes down."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.mqtt_subscriber import Subscriber

from havel.errors import LegalError
from havel.gateway.config import from_dict
from havel.gateway.daemon import Gateway
from havel.gateway.relay.receive.config import ReceiverConfig
from havel.gateway.relay.receive.receiver import Receiver
from havel.gateway.relay.signing import SigningKey

from .conftest import load_harness
from .test_outage_e2e import RULES, record


def gateway_config(data_dir: Path, platform_port: int, relay: dict[str, Any], http_port: int = 0) -> Any:
    return from_dict(
        {
            "gateway": {"id": "gw1", "data_dir": str(data_dir)},
            "udp": {"port": load_harness().free_port(2)},  # SOCK_DGRAM
            "http": {"port": http_port},
            "forwarder": {"down_after_s": 1.0, "up_after_s": 1.0},
            "sink": [
                {
                    "type": "mqtt",
                    "name": "platform",
                    "host": "127.0.0.1",
                    "port": platform_port,
                    "tls": False,
                    "max_inflight": 20,
                    "reconnect_min_s": 0.2,
                    "reconnect_max_s": 1.0,
                }
            ],
            "relay": relay,
        }
    )


@pytest.mark.timeout(60)
def test_daemon_component_relays_alarm_when_platform_is_down(tmp_path: Path, mosquitto_factory: Any) -> None:
    platform = mosquitto_factory()
    crisis = mosquitto_factory()
    data = tmp_path / "gw"
    data.mkdir()
    SigningKey.generate().save(data / "relay.key")
    cfg = gateway_config(
        data,
        platform.port,
        {
            "down_after_s": 1.0,
            "up_after_s": 1.0,
            "tick_s": 0.1,
            "sender": "gw1",
            "rules": RULES,
            "path": [
                {"type": "mqtt", "host": "127.0.0.1", "port": crisis.port, "tls": False, "max_inflight": 20}
            ],
        },
    )
    rcfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": crisis.port},
            "sender": [{"name": "gw1", "key_file": str(data / "relay.key"), "gateway_id": "gw1"}],
            "mqtt": {"port": crisis.port, "topic": "havel/+/relay/#"},
        }
    )

    async def scenario(sub: Subscriber, rx: Receiver) -> dict[str, Any]:
        gw = Gateway(cfg)
        await gw.start()
        try:
            comp = gw.components.relay
            fwd = gw.components.northbound.forwarder  # the documented way (docs/gateway.md)
            # the network server stores uplinks with the relay's rules too (outbox priority)
            assert gw.netserver.rules is not None
            assert gw.netserver.rules.classify({"codec": "water", "data": {"level": 163}}).cls == "alarm"
            await fwd.wait_state("platform", "up", 10)
            assert comp._primary_health()[0] is True  # reads the forwarder's state of the platform sink
            platform.stop()
            gw.outbox.put(record("70B3D57ED0000001", 3, "water", {"level": 163}))
            gw.outbox.put(record("70B3D57ED0000009", 1, "temperature", {"probes": [20.0]}))
            msgs = await asyncio.to_thread(sub.wait_for, 1, 20)
            await asyncio.sleep(0.5)
            owed = [r.id for r in gw.outbox.fetch("platform", 100) if r.kind == "up"]
            metrics = gw.metrics.render()
            return {
                "msgs": msgs,
                "health": comp.health(),
                "owed": owed,
                "metrics": metrics,
                "status": dict(rx.core.status["gw1"]),
            }
        finally:
            await gw.stop()

    with Receiver(rcfg) as rx, Subscriber(crisis.port, "havel/gw1/devices/#") as sub:
        res = asyncio.run(scenario(sub, rx))
    got = [m.json() for m in res["msgs"]]
    assert [m["id"] for m in got] == ["70B3D57ED0000001-1-3"] and got[0]["via"] == "mqtt"
    assert res["health"]["primary"] == "down" and res["health"]["alarms"] == 1
    assert res["health"]["background_held"] == 1
    assert res["owed"] == ["70B3D57ED0000001-1-3", "70B3D57ED0000009-1-1"]  # both still owed to the platform
    assert res["status"]["primary"] == "down"
    assert "havel_gateway_relay_primary_down 1" in res["metrics"]
    assert (
        'havel_gateway_relay_messages{path="mqtt",what="sent"} 1' in res["metrics"]
    )  # the outage was published on the relay path


def test_daemon_refuses_aprs_relay_without_callsign(tmp_path: Path) -> None:
    data = tmp_path / "gw"
    data.mkdir()
    SigningKey.generate().save(data / "relay.key")
    cfg = gateway_config(data, 1883, {"path": [{"type": "aprs", "addressee": "N0CALL-1"}]})

    async def start() -> None:
        gw = Gateway(cfg)
        try:
            await gw.start()
        finally:
            await gw.stop()

    t0 = time.monotonic()
    with pytest.raises(LegalError):
        asyncio.run(start())
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("callsign", [None, "  "])
def test_gateway_check_refuses_aprs_relay_without_callsign(tmp_path: Path, callsign: str | None) -> None:
    """`havel gateway check` said "config ok" for it (and `run` then refused it)."""
    import subprocess
    import sys

    data = tmp_path / "gw"
    data.mkdir()
    SigningKey.generate().save(data / "relay.key")
    aprs = {"type": "aprs", "addressee": "N0CALL-1"}
    if callsign is not None:
        aprs["callsign"] = callsign
    conf = tmp_path / "gateway.toml"
    lines = [f'[gateway]\nid = "gw1"\ndata_dir = "{data}"\n', '[[sink]]\ntype = "file"\nname = "log"\n']
    lines.append(f'path = "{tmp_path / "out.jsonl"}"\n[relay]\n[[relay.path]]\n')
    lines += [f"{k} = {json.dumps(v)}\n" for k, v in aprs.items()]
    conf.write_text("".join(lines))
    res = subprocess.run(
        [sys.executable, "-m", "havel", "gateway", "check", "--config", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0 and "config ok" not in res.stdout
    assert "callsign" in res.stderr and "Traceback" not in res.stderr


def test_daemon_refuses_unknown_primary_sink(tmp_path: Path) -> None:
    from havel.errors import ConfigError

    data = tmp_path / "gw"
    data.mkdir()
    SigningKey.generate().save(data / "relay.key")
    cfg = gateway_config(data, 1883, {"primary": "platfrom", "path": []})

    async def start() -> None:
        gw = Gateway(cfg)
        try:
            await gw.start()
        finally:
            await gw.stop()

    with pytest.raises(ConfigError, match=r"relay\.primary"):
        asyncio.run(start())


@pytest.mark.timeout(60)
def test_a_command_handler_that_raises_is_counted_on_healthz_and_the_listener_goes_on(
    tmp_path: Path, mosquitto_factory: Any
) -> None:
    """The gateway's emergency on/off listener: should an exception escape its handler (a bug put in on
    purpose, in the handler and in its error counting), the error is on /healthz, the connection stays,
    and a signed command is applied afterwards."""
    import json
    import threading
    import urllib.request

    import paho.mqtt.client as mqtt

    from havel.gateway.relay.envelope import sign_body
    from havel.gateway.relay.signing import CounterStore, Signer

    platform = mosquitto_factory()
    crisis = mosquitto_factory()
    data = tmp_path / "gw"
    data.mkdir()
    key = SigningKey.generate()
    key.save(data / "relay.key")
    path = {"type": "mqtt", "host": "127.0.0.1", "port": crisis.port, "tls": False}
    path["emergency_commands"] = True
    cfg = gateway_config(data, platform.port, {"sender": "gw1", "path": [path]}, load_harness().free_port())

    def publish(payload: bytes) -> None:
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", crisis.port)
        pub.loop_start()
        pub.publish("havel/gw1/relay/emergency", payload, qos=1).wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()

    async def scenario() -> tuple[dict[str, Any], bool]:
        gw = Gateway(cfg)
        await gw.start()
        try:
            commands = gw.components.relay.relays[0].commands
            deadline = time.monotonic() + 10
            while not commands.subscribed and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            handle, reject, hit = commands.handle, commands._reject, threading.Event()
            connects = commands.mqtt.connects

            def explode(*args: Any) -> None:
                commands.handle = handle
                hit.set()
                raise RuntimeError("a bug in a handler")

            def explode_reject(*args: Any) -> None:
                commands._reject = reject
                raise RuntimeError("a bug in the error counting")

            commands.handle = explode
            commands._reject = explode_reject
            await asyncio.to_thread(publish, b"anything")
            assert await asyncio.to_thread(hit.wait, 10)
            deadline = time.monotonic() + 15
            while commands.handler_errors < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert commands.mqtt.connects == connects
            url = f"http://127.0.0.1:{gw.http_port}/healthz"
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
            signer = Signer(key, "CONTROL", CounterStore(tmp_path / "control-counter"))
            cmd = {"emergency": "on", "gateway_id": "gw1", "at": int(time.time())}
            await asyncio.to_thread(publish, sign_body(signer, "control", cmd))
            deadline = time.monotonic() + 15
            while not gw.components.relay.switch.is_on() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return json.loads(body), gw.components.relay.switch.is_on()
        finally:
            await gw.stop()

    health, switched_on = asyncio.run(scenario())
    listener = health["relay"]["relays"]["mqtt"]["emergency_commands"]
    assert listener["handler_errors"] == 1 and listener["error"] == 0
    assert switched_on
