"""The emergency switch as a signed MQTT command from the crisis centre, over the relay's broker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from support.mqtt_subscriber import Subscriber

from havel.gateway.mqtt import LoopThread
from havel.gateway.relay.cli import relay as relay_cli
from havel.gateway.relay.emergency import EmergencySwitch
from havel.gateway.relay.envelope import sign_body
from havel.gateway.relay.mqtt_relay import MQTTRelay
from havel.gateway.relay.signing import CounterStore, Signer, SigningKey


def wait_until(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


@pytest.mark.timeout(60)
def test_signed_emergency_command_over_mqtt(tmp_path: Path, key_file: Path, mosquitto: Any) -> None:
    gw_dir = tmp_path / "gw"
    gw_dir.mkdir()
    switch = EmergencySwitch(gw_dir)
    relay = MQTTRelay(
        {"host": "127.0.0.1", "port": mosquitto.port, "tls": False, "emergency_commands": True},
        Signer(SigningKey.load(key_file), "gw1", CounterStore(None)),
        "gw1",
        switch=switch,
        data_dir=gw_dir,
    )
    rcfg = tmp_path / "receiver.toml"
    rcfg.write_text(f"""data_dir = "cc"
[publish]
port = {mosquitto.port}
[[sender]]
name = "gw1"
key_file = "{key_file}"
gateway_id = "gw1"
[mqtt]
port = {mosquitto.port}
""")
    loop = LoopThread("test-relay")  # the relay's MQTT clients run in an event loop, as in the gateway
    loop.run(relay.start(), 10)
    try:
        assert relay.commands is not None and wait_until(lambda: relay.commands.subscribed, 10)
        with Subscriber(mosquitto.port, "havel/gw1/relay/emergency") as sub:
            res = CliRunner().invoke(
                relay_cli, ["emergency", "on", "--receiver-config", str(rcfg), "--gateway", "gw1"]
            )
            assert res.exit_code == 0, res.output
            assert wait_until(switch.is_on, 10) and switch.state().source == "mqtt"
            captured = sub.wait_for(1, 5)[0].payload
        res = CliRunner().invoke(
            relay_cli, ["emergency", "off", "--receiver-config", str(rcfg), "--gateway", "gw1"]
        )
        assert res.exit_code == 0 and wait_until(lambda: not switch.is_on(), 10)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        forged = sign_body(
            Signer(SigningKey.generate(), "CONTROL", CounterStore(None)),
            "control",
            {"emergency": "on", "gateway_id": "gw1"},
        )
        other_gw = sign_body(
            Signer(SigningKey.load(key_file), "CONTROL", CounterStore(tmp_path / "c2")),
            "control",
            {"emergency": "on", "gateway_id": "gw2"},
        )
        for payload in (captured, forged, other_gw, b"garbage"):  # a replay, a forgery, not for us, junk
            pub.publish("havel/gw1/relay/emergency", payload, qos=1).wait_for_publish(5)
        assert wait_until(lambda: relay.commands is not None and relay.commands.stats["rejected"] == 4, 10)
        pub.loop_stop()
        pub.disconnect()
        assert not switch.is_on() and relay.commands.stats["applied"] == 2
    finally:
        loop.run(relay.stop(), 10)
        loop.close()
