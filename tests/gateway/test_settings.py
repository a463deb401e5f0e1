"""The shared config reader and the one MQTT settings block (gateway/settings.py)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from havel.errors import ConfigError
from havel.gateway.settings import MqttSettings, TlsSettings, key, keys_of, read


@dataclass(frozen=True)
class Demo:
    port: int = key(1700, lo=1, hi=65535)
    rate: float = key(2.0, lo=0.0)
    on: bool = key(True)
    name: str | None = key(None)
    level: str = key("info", choices=("info", "debug"))
    calls: tuple[str, ...] = key(())
    derived: int = key(0, toml=False)


def test_defaults_come_from_the_declaration() -> None:
    assert read(Demo, {}, "demo") == Demo()
    assert keys_of(Demo) == ["port", "rate", "on", "name", "level", "calls"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"port": "1700"}, "demo.port must be an integer"),
        ({"port": 1700.0}, "demo.port must be an integer"),
        ({"port": 0}, "demo.port = 0 is out of range"),
        ({"port": True}, "demo.port must be an integer"),
        ({"rate": "x"}, "demo.rate must be a number"),
        ({"rate": float("nan")}, "demo.rate = nan is not a finite number"),
        ({"on": 1}, "demo.on must be true or false"),
        ({"name": 5}, "demo.name must be a non-empty string"),
        ({"level": "loud"}, "demo.level is 'loud'"),
        ({"calls": "DB0ABC"}, "demo.calls must be a list"),
        ({"calls": ["DB0ABC", 5]}, "demo.calls[1] must be a non-empty string"),
        ({"derived": 3}, "unknown key 'demo.derived'"),
        ({"porrt": 1}, "unknown key 'demo.porrt'"),
    ],
)
def test_every_error_names_the_exact_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        read(Demo, table, "demo")
    assert message in str(err.value)


def test_a_table_of_the_wrong_kind() -> None:
    with pytest.raises(ConfigError, match="demo must be a table"):
        read(Demo, [1], "demo")


def test_mqtt_defaults_follow_tls() -> None:
    s, rest = MqttSettings.from_table({"host": "b", "prefix": "p"}, "sink[x]")
    assert (s.host, s.port, s.tls, s.tls_settings, rest) == ("b", 8883, True, TlsSettings(), {"prefix": "p"})
    s, _ = MqttSettings.from_table({"host": "b", "tls": False}, "sink[x]")
    assert (s.port, s.tls_settings) == (1883, None)
    s, _ = MqttSettings.from_table({}, "mqtt", tls=False, session_expiry_s=86400)
    assert (s.host, s.port, s.session_expiry_s) == ("127.0.0.1", 1883, 86400)
    s, _ = MqttSettings.from_table({"keepalive_s": 30.0}, "mqtt")
    assert s.keepalive_s == 30 and isinstance(s.keepalive_s, int)


def test_old_receiver_tls_spelling_is_read_and_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca, crt, k = (tmp_path / n for n in ("ca.pem", "c.crt", "c.key"))
    for p in (ca, crt, k):
        p.write_text("x")
    table = {"tls_ca": "ca.pem", "client_cert": "c.crt", "client_key": "c.key"}
    with caplog.at_level(logging.WARNING, logger="havel.gateway.settings"):
        s, rest = MqttSettings.from_table(table, "mqtt", base=tmp_path, tls=False)
    assert s.tls_settings == TlsSettings(str(ca), str(crt), str(k)) and s.port == 8883 and rest == {}
    assert "mqtt.tls_ca is deprecated: call it ca_file" in caplog.text
    with pytest.raises(ConfigError, match=r"mqtt\.tls_ca and mqtt\.ca_file are the same setting"):
        MqttSettings.from_table({"tls_ca": "ca.pem", "ca_file": "ca.pem"}, "mqtt", base=tmp_path)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"port": 70000}, "relay.path[0].port = 70000 is out of range"),
        ({"port": "1883"}, "relay.path[0].port must be an integer"),
        ({"tls": "yes"}, "relay.path[0].tls must be true or false"),
        ({"tls": False, "ca_file": "/etc/hostname"}, "relay.path[0].ca_file is set but tls = false"),
        ({"ca_file": "/nonexistent/ca.pem"}, "relay.path[0].ca_file: /nonexistent/ca.pem does not exist"),
        ({"cert_file": "/etc/hostname"}, "relay.path[0]: cert_file and key_file go together"),
        ({"password": "pw"}, "relay.path[0].password is set without username"),
        ({"client_id": ["a"]}, "relay.path[0].client_id must be a non-empty string"),
        ({"reconnect_min_s": 9, "reconnect_max_s": 2}, "relay.path[0].reconnect_max_s is below"),
        ({"keepalive_s": 2.5}, "relay.path[0].keepalive_s must be an integer"),
        ({"clean_start": 0}, "relay.path[0].clean_start must be true or false"),
    ],
)
def test_mqtt_errors_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        MqttSettings.from_table(table, "relay.path[0]")
    assert message in str(err.value)


def test_password_file(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    os.chmod(pw, 0o600)
    s, _ = MqttSettings.from_table({"username": "u", "password_file": str(pw)}, "sink[p]")
    assert s.password == "s3cret" and "s3cret" not in repr(s)
    os.chmod(pw, 0o640)
    with pytest.raises(ConfigError, match="can be read by other users"):
        MqttSettings.from_table({"username": "u", "password_file": str(pw)}, "sink[p]")
    os.chmod(pw, 0o600)
    with pytest.raises(ConfigError, match="password and password_file both set"):
        MqttSettings.from_table({"username": "u", "password": "x", "password_file": str(pw)}, "sink[p]")


def test_an_mqtt_sink_reads_the_shared_block(tmp_path: Path) -> None:
    from havel.gateway.sinks import make_sink

    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    pw.chmod(0o600)
    table = {"type": "mqtt", "name": "p", "host": "b", "username": "gw", "password_file": str(pw)}
    sink = make_sink({**table, "tls": False, "keepalive_s": 45}, gateway_id="gw")
    assert sink.credentials == ("gw", "from-file") and sink.port == 1883 and sink.keepalive_s == 45
    assert "from-file" not in repr(sink)
    with pytest.raises(ConfigError, match=r"sink\[p\]\.clean_start must be false"):
        make_sink({**table, "clean_start": True}, gateway_id="gw")
    with pytest.raises(ConfigError, match=r"sink\[p\]\.port must be an integer"):
        make_sink({**table, "port": "8883"}, gateway_id="gw")


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(MqttSettings.key_names() | {"tls_ca", "client_key", "x"})), _VALUES
    )
)
def test_random_mqtt_tables_give_config_errors_only(table: dict[str, object]) -> None:
    try:
        s, rest = MqttSettings.from_table(table, "mqtt", tls=False)
    except ConfigError as exc:
        assert str(exc).startswith("mqtt") or "unknown key 'mqtt." in str(exc), exc
    else:
        assert isinstance(s.port, int) and set(rest) <= {"x"}
