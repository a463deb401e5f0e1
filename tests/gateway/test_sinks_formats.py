"""The pure northbound formats (json scheme, SensorThings, FIWARE) and the sink config validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from havel.errors import ConfigError, InputError
from havel.gateway.formats import flatten, make_formatter
from havel.gateway.formats.jsonscheme import device_topic, down_topic_filter, gateway_topic, with_buffered
from havel.gateway.outbox_records import OutboxRecord
from havel.gateway.sinks import make_sink, make_sinks

EUI = "70B3D57ED0000001"


def record(kind: str = "up", dev_eui: str | None = EUI, **payload: Any) -> OutboxRecord:
    rid = f"{dev_eui}-42" if kind == "up" else f"{dev_eui}-join-7" if kind == "join" else "gw1-event-1"
    body = {
        "id": rid,
        "device": "pegel-1",
        "dev_eui": dev_eui,
        "fcnt": 42,
        "received_at": "2026-11-26T09:00:00.123Z",
        "data": {"water_level_cm": 159, "temperature": 21.5, "valve": {"open": True}, "note": None},
        "units": {"water_level_cm": "cm", "temperature": "Cel"},
        **payload,
    }
    return OutboxRecord(7, rid, kind, dev_eui, 42, "background", "2026-11-26T09:00:00.123Z", json.dumps(body))


def test_json_scheme_topics_and_payload() -> None:
    fmt = make_formatter({"format": "json", "prefix": "havel", "gateway_id": "gw1"})
    (m,) = fmt(record(), False)
    assert m.topic == f"havel/gw1/devices/{EUI}/up"
    body = json.loads(m.payload)
    assert body["id"] == f"{EUI}-42" and body["buffered"] is False
    assert body["received_at"] == "2026-11-26T09:00:00.123Z"
    assert json.loads(fmt(record(), True)[0].payload)["buffered"] is True
    assert fmt(record("join"), False)[0].topic == f"havel/gw1/devices/{EUI}/join"
    assert fmt(record("down_result"), False)[0].topic == f"havel/gw1/devices/{EUI}/down/result"
    assert fmt(record("event", None), False)[0].topic == "havel/gw1/events"
    assert gateway_topic("havel", "gw1", "status") == "havel/gw1/status"
    assert down_topic_filter("havel", "gw1") == "havel/gw1/devices/+/down"
    assert device_topic("city", "roof-3", EUI.lower(), "up") == f"city/roof-3/devices/{EUI}/up"


def test_with_buffered_splices_valid_json() -> None:
    assert json.loads(with_buffered('{"id":"a","x":{"y":1}}', True)) == {
        "id": "a",
        "x": {"y": 1},
        "buffered": True,
    }
    assert json.loads(with_buffered("{}", False)) == {"buffered": False}
    assert json.loads(with_buffered('{ "a": "ü" } ', False)) == {"a": "ü", "buffered": False}
    with pytest.raises(InputError):
        with_buffered("[1]", True)


def test_json_scheme_bad_records() -> None:
    fmt = make_formatter({"gateway_id": "gw1"})
    with pytest.raises(InputError):
        fmt(record(dev_eui="not-hex"), False)
    with pytest.raises(InputError):
        fmt(record(dev_eui=None), False)


def test_sensorthings_observations() -> None:
    cfg = {
        "format": "sensorthings",
        "sensorthings": {
            "datastreams": {
                EUI.lower(): {"water_level_cm": 42, "temperature": "t-1", "valve.open": 44, "missing": 45}
            }
        },
    }
    fmt = make_formatter(cfg)
    msgs = fmt(record(), True)
    assert [m.topic for m in msgs] == [
        "v1.1/Datastreams(42)/Observations",
        "v1.1/Datastreams('t-1')/Observations",
        "v1.1/Datastreams(44)/Observations",
    ]
    obs = [json.loads(m.payload) for m in msgs]
    assert obs[0] == {
        "phenomenonTime": "2026-11-26T09:00:00.123Z",
        "resultTime": "2026-11-26T09:00:00.123Z",
        "result": 159,
        "parameters": {
            "id": f"{EUI}-42",
            "field": "water_level_cm",
            "dev_eui": EUI,
            "fcnt": 42,
            "buffered": True,
            "unit": "cm",
        },
    }
    assert obs[2]["result"] is True and "unit" not in obs[2]["parameters"]
    # joins, events and unmapped devices produce nothing for this format
    assert fmt(record("join"), False) == []
    other = OutboxRecord(
        1, "X-1", "up", "70B3D57ED00000FF", 1, "background", "t", json.dumps({"data": {"a": 1}})
    )
    assert fmt(other, False) == []
    # mapping by device name works too
    by_name = make_formatter(
        {"format": "sensorthings", "sensorthings": {"datastreams": {"pegel-1": {"temperature": 9}}}}
    )
    assert by_name(record(), False)[0].topic == "v1.1/Datastreams(9)/Observations"


def test_fiware_measurements() -> None:
    fmt = make_formatter(
        {"format": "fiware", "fiware": {"apikey": "k3y", "device_ids": {EUI: "pegel-havel-1"}}}
    )
    (m,) = fmt(record(), False)
    assert m.topic == "/json/k3y/pegel-havel-1/attrs"
    assert json.loads(m.payload) == {
        "water_level_cm": 159,
        "temperature": 21.5,
        "valve_open": True,
        "TimeInstant": "2026-11-26T09:00:00.123Z",
        "havelId": f"{EUI}-42",
        "fcnt": 42,
        "buffered": False,
    }
    default = make_formatter({"format": "fiware", "fiware": {"apikey": "k3y"}})
    assert default(record(), True)[0].topic == f"/json/k3y/{EUI}/attrs"
    assert default(record("join"), False) == []


def test_flatten() -> None:
    assert flatten({"a": {"b": {"c": 1}}, "d": [1, 2], "e": None, "f": "x"}) == {"a.b.c": 1, "f": "x"}


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({"format": "xml"}, "format"),
        ({"format": "json", "prefix": "a/#"}, "prefix"),
        ({"format": "json", "gateway_id": "+"}, "gateway_id"),
        ({"format": "fiware", "fiware": {}}, "apikey"),
        ({"format": "fiware", "fiware": {"apikey": "k", "device_ids": {EUI: "a/b"}}}, "device_ids"),
        ({"format": "fiware", "fiware": {"apikey": "k", "colour": 1}}, "colour"),
        ({"format": "sensorthings", "sensorthings": {"datastreams": {EUI: {"t": True}}}}, "datastreams"),
        ({"format": "sensorthings", "sensorthings": {"datastreams": {EUI: 5}}}, "datastreams"),
        ({"format": "sensorthings", "sensorthings": {"datastreams": {EUI: {"t": -1}}}}, "datastreams"),
        ({"format": "sensorthings", "sensorthings": {"things": {}}}, "things"),
    ],
)
def test_format_config_errors_name_the_key(cfg: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_formatter({"gateway_id": "gw1", **cfg})
    assert key in str(info.value)


def _mqtt(**kw: Any) -> dict[str, Any]:
    return {"type": "mqtt", "name": "primary", "host": "broker.example.org", **kw}


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({"type": "kafka"}, "type"),
        (_mqtt(host=None), "host"),
        (_mqtt(port=70000), "port"),
        (_mqtt(port="1883"), "port"),
        (_mqtt(tls="yes"), "tls"),
        (_mqtt(ca_file="/nonexistent/ca.pem"), "ca_file"),
        (_mqtt(tls=False, ca_file="/etc/hostname"), "ca_file"),
        (_mqtt(cert_file="/etc/hostname"), "cert_file"),
        (_mqtt(password="x"), "password"),
        (_mqtt(keepalive_s=0), "keepalive_s"),
        (_mqtt(reconnect_min_s=10, reconnect_max_s=1), "reconnect_max_s"),
        (_mqtt(status_topic="a/+/b"), "status_topic"),
        (_mqtt(colour="red"), "colour"),
        ({"type": "file", "path": 3}, "path"),
        ({"type": "file", "fsync": "yes"}, "fsync"),
        ({"type": "file", "rotate": True}, "rotate"),
    ],
)
def test_sink_config_errors_name_the_key(cfg: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_sink(cfg, gateway_id="gw1")
    assert key in str(info.value)


def test_sink_config_defaults_and_secrets(tmp_path: Path) -> None:
    sink = make_sink(_mqtt(username="gw1", password="s3cret-pw"), gateway_id="gw1")
    assert sink.port == 8883 and sink.tls is not None and sink.tls.ca_file is None  # verified TLS by default
    assert sink.client_id == "havel-gw1-primary" and sink.status_topic == "havel/gw1/status"
    assert "s3cret-pw" not in repr(sink) and "s3cret-pw" not in json.dumps(sink.describe())
    plain = make_sink(_mqtt(tls=False), gateway_id="gw1")
    assert plain.port == 1883 and plain.tls is None
    with pytest.raises(ConfigError):
        make_sinks([_mqtt(), _mqtt()], gateway_id="gw1")
    files = make_sinks([{"type": "file", "path": str(tmp_path / "out.jsonl")}], gateway_id="gw1")
    assert files[0].name == "file"
