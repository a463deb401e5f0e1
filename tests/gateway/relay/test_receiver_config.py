"""The receiver's ``[mqtt]`` and ``[publish]`` use the gateway's one MQTT settings block: the same TLS
names as a ``[[sink]]`` (``tls``, ``ca_file``, ``cert_file``, ``key_file``), verified against a real TLS
broker; the old names ``tls_ca``, ``client_cert``, ``client_key`` still work and are warned about."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.mosquitto import Mosquitto

from havel.errors import ConfigError
from havel.gateway.relay.receive.config import ReceiverConfig
from havel.gateway.relay.receive.mqtt_listener import MqttListener
from havel.gateway.relay.receive.publisher import Publisher
from havel.gateway.settings import TlsSettings


def raw(tmp_path: Path, mqtt: dict[str, Any], publish: dict[str, Any] | None = None) -> dict[str, Any]:
    key = tmp_path / "gw1.key"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    return {
        "data_dir": "data",
        "publish": publish or {},
        "sender": [{"name": "DB0ABC-10", "key_file": "gw1.key", "gateway_id": "gw1"}],
        "mqtt": mqtt,
    }


class _Core:
    def handle_envelope(self, data: bytes, via: str, kind: str) -> bool:
        return True

    def handle_status(self, topic: str, data: bytes) -> None:
        pass


@pytest.fixture
def tls_broker(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    return mosquitto_factory(tls=True)


@pytest.mark.timeout(60)
def test_sink_tls_names_reach_a_tls_broker(tmp_path: Path, tls_broker: Mosquitto) -> None:
    assert tls_broker.pki is not None and tls_broker.tls_port is not None
    table = {"port": tls_broker.tls_port, "tls": True, "ca_file": str(tls_broker.pki.ca_cert)}
    cfg = ReceiverConfig.from_dict(raw(tmp_path, {**table, "client_id": "cc-tls"}, table), base=tmp_path)
    assert cfg.mqtt is not None and cfg.mqtt.tls_settings == TlsSettings(str(tls_broker.pki.ca_cert))
    listener = MqttListener(_Core(), cfg.mqtt, cfg.mqtt_topic)
    listener.start()
    try:
        assert listener.subscribed.wait(20), "no TLS session with the broker"
    finally:
        listener.stop()
    publisher = Publisher(cfg.publish)
    assert publisher.mqtt.connected is False and publisher.port == tls_broker.tls_port


def test_old_names_still_work_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca, crt, key = (tmp_path / n for n in ("ca.pem", "cc.crt", "cc.key"))
    for p in (ca, crt, key):
        p.write_text("x")
    old = {"host": "broker", "tls_ca": "ca.pem", "client_cert": "cc.crt", "client_key": "cc.key"}
    with caplog.at_level(logging.WARNING, logger="havel.gateway.settings"):
        cfg = ReceiverConfig.from_dict(raw(tmp_path, old), base=tmp_path)
    assert cfg.mqtt is not None
    assert cfg.mqtt.tls_settings == TlsSettings(str(ca), str(crt), str(key))
    assert cfg.mqtt.port == 1883  # the old default port, kept for the old spelling
    assert "mqtt.tls_ca is deprecated: call it ca_file" in caplog.text
    assert "mqtt.client_cert is deprecated: call it cert_file" in caplog.text


def test_defaults_are_unchanged(tmp_path: Path) -> None:
    cfg = ReceiverConfig.from_dict(raw(tmp_path, {"host": "10.0.0.2"}), base=tmp_path)
    assert cfg.mqtt is not None and cfg.mqtt_topic == "+/+/relay/#"
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.tls_settings, cfg.mqtt.session_expiry_s) == (
        "10.0.0.2",
        1883,
        None,
        86400,
    )
    assert cfg.mqtt.clean_start is False and str(cfg.mqtt.client_id).startswith("havel-relay-receiver-")
    assert (cfg.publish.host, cfg.publish.port, cfg.publish.tls_settings) == ("127.0.0.1", 1883, None)


@pytest.mark.parametrize(
    ("mqtt", "publish", "message"),
    [
        ({"port": "1884"}, {}, "mqtt.port must be an integer"),
        ({"tls_ca": "nope.pem"}, {}, "mqtt.ca_file"),
        ({"topic": 5}, {}, "mqtt.topic must be a non-empty string"),
        ({"toppic": "a/#"}, {}, "unknown key 'mqtt.toppic'"),
        ({"password": "pw"}, {}, "mqtt.password is set without username"),
        ({"host": "h"}, {"port": 0}, "publish.port = 0 is out of range"),
        ({"host": "h"}, {"tls": "yes"}, "publish.tls must be true or false"),
    ],
)
def test_errors_name_the_key(
    tmp_path: Path, mqtt: dict[str, Any], publish: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        ReceiverConfig.from_dict(raw(tmp_path, mqtt, publish), base=tmp_path)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kiss": {"port": "8001", "callsign": "DB0KST-1"}}, "kiss.port must be an integer"),
        ({"kiss": {"path": [1], "callsign": "DB0KST-1"}}, "kiss.path[0] must be a non-empty string"),
        ({"kiss": {"ack": "yes", "callsign": "DB0KST-1"}}, "kiss.ack must be true or false"),
        ({"kiss": {"callsign": "DB0KST-1", "colour": 1}}, "unknown key 'kiss.colour'"),
        ({"reticulum": {"config_dir": "rns"}}, "reticulum.amateur is missing"),
        ({"reticulum": {"config_dir": "rns", "amateur": "no"}}, "reticulum.amateur must be true or false"),
        ({"prefix": 5}, "prefix must be a non-empty string"),
        ({"data_dir": ["x"]}, "data_dir must be a non-empty string"),
    ],
)
def test_listener_sections_name_the_key(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        ReceiverConfig.from_dict({**raw(tmp_path, {"host": "h"}), **change}, base=tmp_path)
    assert message in str(err.value)


def test_a_sender_of_the_wrong_type_names_its_key(tmp_path: Path) -> None:
    table = raw(tmp_path, {"host": "h"})
    table["sender"][0]["gateway_id"] = 5
    with pytest.raises(ConfigError, match=r"sender\[0\]\.gateway_id must be a non-empty string"):
        ReceiverConfig.from_dict(table, base=tmp_path)
