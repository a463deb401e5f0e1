"""The public hooks the relay uses on D2's MQTT sink: ``from_config(..., formatter=)`` and the read-only
``credentials``; the relay's command listener logs in with them on a password-protected broker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from havel.errors import ConfigError
from havel.gateway.formats import OutMessage
from havel.gateway.relay.emergency import EmergencySwitch
from havel.gateway.relay.mqtt_relay import MQTTRelay
from havel.gateway.relay.signing import CounterStore, Signer, SigningKey
from havel.gateway.sinks.mqtt import MqttSink

BASE = {"type": "mqtt", "name": "x", "host": "127.0.0.1", "port": 1883, "tls": False}


def test_from_config_takes_a_formatter_and_exposes_credentials() -> None:
    def mine(rec: Any, buffered: bool) -> list[OutMessage]:
        return [OutMessage("t/x", b"custom")]

    sink = MqttSink.from_config({**BASE, "username": "gw1", "password": "s3cret"}, formatter=mine)
    assert sink.formatter is mine
    assert sink.credentials == ("gw1", "s3cret")
    assert "s3cret" not in repr(sink)
    with pytest.raises(AttributeError):
        sink.credentials = ("other", "x")  # type: ignore[misc]  # read-only
    assert MqttSink.from_config(BASE).credentials is None
    plain = MqttSink.from_config({**BASE, "format": "json"})
    assert plain.formatter is not mine
    # a format chosen in the table cannot also be overridden: say so instead of ignoring it
    with pytest.raises(ConfigError, match=r"sink\[x\]\.format"):
        MqttSink.from_config({**BASE, "format": "fiware"}, formatter=mine)


def test_relay_sink_is_built_with_its_own_formatter(key_file: Path) -> None:
    relay = MQTTRelay(
        {"host": "127.0.0.1", "port": 1883, "tls": False},
        Signer(SigningKey.load(key_file), "gw1", CounterStore(None)),
        "gw1",
    )
    assert relay.sink.formatter == relay._format
    with pytest.raises(ConfigError, match=r"relay\.path"):
        MQTTRelay(
            {"host": "127.0.0.1", "port": 1883, "tls": False, "format": "json"},
            Signer(SigningKey.load(key_file), "gw1", CounterStore(None)),
            "gw1",
        )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("password,subscribes", [("pw-gw1", True), ("wrong", False)])
def test_command_listener_logs_in_with_the_sink_credentials(
    tmp_path: Path, key_file: Path, mosquitto_factory: Any, password: str, subscribes: bool
) -> None:
    broker = mosquitto_factory(users={"gw1": "pw-gw1"}, acl="pattern readwrite havel/%u/#\n")
    relay = MQTTRelay(
        {
            "host": "127.0.0.1",
            "port": broker.acl_port,
            "tls": False,
            "username": "gw1",
            "password": password,
            "emergency_commands": True,
        },
        Signer(SigningKey.load(key_file), "gw1", CounterStore(None)),
        "gw1",
        switch=EmergencySwitch(tmp_path),
        data_dir=tmp_path,
    )
    assert relay.commands is not None
    loop = asyncio.new_event_loop()
    loop.run_until_complete(relay.start())
    try:
        deadline = time.monotonic() + (10 if subscribes else 3)
        while time.monotonic() < deadline and not relay.commands.subscribed:
            loop.run_until_complete(asyncio.sleep(0.05))
        assert relay.commands.subscribed is subscribes
    finally:
        loop.run_until_complete(relay.stop())
        loop.close()
