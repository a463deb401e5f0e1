"""Downlink commands through the real path: a real Mosquitto broker, the daemon's command subscription, the
scheduler and the outbox, results read back from the broker.

- Poison messages on ``.../down`` each get a ``down/result`` (where the topic names a device), are counted
  by reason, and the subscription keeps working for the next good command.
- Only the sink with ``commands = true`` takes commands.
- The command examples of docs/mqtt.md are sent as they stand and queued, and the first one reaches the
  device as the cooling codec's bytes.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from support.gateway_run import InProcessGateway, write_config
from support.mosquitto import Mosquitto
from support.mqtt_subscriber import Subscriber

from havel.codecs.lorawan import crypto, phy
from havel.codecs.payload import get_codec
from havel.gateway import config, db
from havel.gateway.backends.semtech_udp.txpk import txpk_data
from havel.gateway.network.sessions import Device, Session
from havel.gateway.registry import Registry
from havel.gateway.sim.concentrator import Concentrator

REPO = Path(__file__).resolve().parents[2]
NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
EUI, ADDR, GW1 = 0x70B3D57ED0000001, 0x26011BDA, 0xAA555A0000000001
BASE = f"havel/gw-test/devices/{EUI:016X}"


def wait(pred: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def gateway_config(tmp: Path, broker: Mosquitto, **extra_sinks: dict[str, Any]) -> config.Config:
    platform = {
        "type": "mqtt",
        "name": "platform",
        "host": "127.0.0.1",
        "port": broker.port,
        "tls": False,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
        "commands": True,
    }
    cfg = config.load(
        write_config(tmp, network={"dedup_window_ms": 50}, sinks=[platform, *extra_sinks.values()])
    )
    conn = db.open_db(cfg.db_path)
    Registry(conn).add(
        Device(
            name="kuehlung-1", dev_eui=EUI, codec="cooling", activation="abp", session=Session(ADDR, NWK, APP)
        )
    )
    conn.close()
    return cfg


def results(sub: Subscriber) -> list[dict[str, Any]]:
    return [m.json() for m in list(sub.messages) if m.topic.endswith("/down/result")]


def subscribed(gw: InProcessGateway) -> Any:
    subs = gw.gateway.components.northbound.subscribers
    return subs if subs and all(s.subscribed for s in subs) else None


# The poison: (topic suffix under havel/gw-test/devices/, payload, the reason its result gives)
UNKNOWN = "0011223344556677"
POISON: list[tuple[str, bytes, str]] = [
    (f"{EUI:016X}", b"{not json", "not_json"),
    (f"{EUI:016X}", b"\xff\xfe\x00 not utf-8", "not_json"),
    (f"{EUI:016X}", b"[" * 2000 + b"]" * 2000, "too_deep"),
    (f"{EUI:016X}", b'{"fport": 23, "data": ' + b'{"a": ' * 30 + b"1" + b"}" * 31, "too_deep"),
    (f"{EUI:016X}", b'{"fport": 23, "raw": "00", "id": "\\ud800"}', "bad_text"),
    (f"{EUI:016X}", b'{"fport": 23, "raw": "00", "\\udfff": 1}', "bad_text"),
    (f"{EUI:016X}", b'{"fport": 23, "raw": "00", "ttl_s": 1e400}', "bad_number"),
    (f"{EUI:016X}", b'{"fport": 23, "raw": "00", "ttl_s": NaN}', "bad_number"),
    (f"{EUI:016X}", b'{"fport": 23, "raw": "00", "ttl_s": -Infinity}', "bad_number"),
    (f"{EUI:016X}", b'{"fport": 1' + b"0" * 3000 + b', "raw": "00"}', "bad_field"),
    (f"{EUI:016X}", b'{"fport": 23, "raw": "00", "ttl_s": 1' + b"0" * 400 + b"}", "bad_ttl"),
    (f"{EUI:016X}", b'{"fport": "23", "raw": "00"}', "bad_field"),
    (f"{EUI:016X}", b'{"fport": 23, "raw": 1}', "bad_field"),
    (f"{EUI:016X}", b'{"fport": 23, "data": {"state": "sideways"}}', "codec"),
    (f"{EUI:016X}", b'{"fport": 23, "raw": "00", "id": "no spaces please"}', "bad_id"),
    (f"{EUI:016X}", b'"just text"', "not_object"),
    (f"{EUI:016X}", b"[1, 2]", "not_object"),
    (f"{EUI:016X}", b"x" * 100_000, "too_large"),
    (f"{EUI:016X}", b"", "not_json"),
    (UNKNOWN, b'{"fport": 23, "raw": "00"}', "unknown_device"),
]


@pytest.mark.timeout(90)
def test_poison_commands_each_get_a_result_by_reason_and_the_subscription_keeps_working(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    cfg = gateway_config(tmp_path, mosquitto)
    with (
        Subscriber(mosquitto.port, "havel/gw-test/devices/#") as sub,
        InProcessGateway(cfg) as gw,
    ):
        wait(lambda: subscribed(gw))
        for suffix, payload, _ in POISON:
            sub.client.publish(f"havel/gw-test/devices/{suffix}/down", payload, qos=1)
        # a topic whose DevEUI is no DevEUI: no result topic, counted and logged
        sub.client.publish("havel/gw-test/devices/not-a-dev-eui/down", b'{"fport": 23, "raw": "00"}', qos=1)
        sub.client.publish(f"{BASE}/down", json.dumps({"fport": 24, "raw": "1001", "id": "after"}), qos=1)
        got = wait(lambda: (r := results(sub)) and len(r) >= len(POISON) + 1 and r)
        time.sleep(0.3)  # (nothing more may come)
        got = results(sub)
        assert len(got) == len(POISON) + 1
        rejected = [r for r in got if r["state"] == "rejected"]
        assert sorted(r["detail"].split(":")[0] for r in rejected) == sorted(p[2] for p in POISON)
        for r in got:
            json.dumps(r, allow_nan=False).encode("utf-8")  # every result is plain JSON
        unknown = [r for r in rejected if r["dev_eui"] == UNKNOWN]
        assert len(unknown) == 1 and unknown[0]["device"] is None
        [good] = [r for r in got if r["state"] == "queued"]
        assert good["command_id"] == "after" and good["request"] == {"fport": 24, "raw": "1001"}
        # counted by reason, in the status the daemon serves
        status = gw.gateway.status()
        by_reason = status["downlinks"]["rejected_by_reason"]
        expected: dict[str, int] = {}
        for _, _, reason in POISON:
            expected[reason] = expected.get(reason, 0) + 1
        assert by_reason == expected
        commands = status["sinks"]["commands"]
        assert commands["refused"] == {"bad_dev_eui": 1} and commands["subscribed"]
        assert commands["received"] == len(POISON) + 2


@pytest.mark.timeout(60)
def test_only_the_sink_with_commands_true_subscribes(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A second mqtt sink (another party's broker, here the same one under another prefix) only publishes:
    a command on its topic scheme is not taken."""
    other = {
        "type": "mqtt",
        "name": "city",
        "host": "127.0.0.1",
        "port": mosquitto.port,
        "tls": False,
        "prefix": "city",
        "status_topic": "",
    }
    cfg = gateway_config(tmp_path, mosquitto, other=other)
    assert cfg.command_sink == "platform"
    with (
        Subscriber(mosquitto.port, ["havel/gw-test/devices/#", "city/gw-test/devices/#"]) as sub,
        InProcessGateway(cfg) as gw,
    ):
        wait(lambda: subscribed(gw))
        assert [s.topic for s in gw.gateway.components.northbound.subscribers] == [
            "havel/gw-test/devices/+/down"
        ]
        sub.client.publish(f"city/gw-test/devices/{EUI:016X}/down", b'{"fport": 24, "raw": "1001"}', qos=1)
        sub.client.publish(f"{BASE}/down", b'{"fport": 24, "raw": "1000", "id": "platform-one"}', qos=1)
        got = wait(lambda: [m for m in list(sub.messages) if m.topic.endswith("/down/result")])
        time.sleep(0.5)
        # (every sink publishes every result: the one command's result comes under both prefixes)
        assert {r["command_id"] for r in results(sub)} == {"platform-one"} and got
        assert gw.gateway.downlinks.depth() == 1


def test_commands_true_is_refused_off_mqtt_and_on_two_sinks(tmp_path: Path) -> None:
    base = {"gateway": {"id": "g", "data_dir": str(tmp_path)}}
    mqtt = {"type": "mqtt", "host": "127.0.0.1", "commands": True}
    with pytest.raises(config.ConfigError, match="commands"):
        config.from_dict({**base, "sink": [{"type": "file", "path": "-", "commands": True}]})
    with pytest.raises(config.ConfigError, match="already takes downlink commands"):
        config.from_dict({**base, "sink": [{**mqtt, "name": "a"}, {**mqtt, "name": "b"}]})
    with pytest.raises(config.ConfigError, match="commands"):
        config.from_dict({**base, "sink": [{**mqtt, "commands": "yes"}]})
    plain = config.from_dict({**base, "sink": [{"type": "mqtt", "host": "127.0.0.1"}]})
    assert plain.command_sink is None and "commands" not in plain.sinks[0]


# ------------------------------------------------------------------------------------------ the docs
def doc_section() -> str:
    text = (REPO / "docs" / "mqtt.md").read_text()
    start = text.index("### Downlink command (`.../down`)")
    return text[start : text.index("\n### ", start + 10)]


def doc_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", doc_section(), re.S)


def test_the_docs_toml_names_the_command_sink() -> None:
    [block] = doc_blocks("toml")
    cfg = config.from_dict({"gateway": {"id": "g", "data_dir": "/tmp/x"}, **tomllib.loads(block)})
    assert cfg.command_sink == "platform"


@pytest.mark.timeout(90)
def test_the_docs_command_examples_are_accepted_and_reach_the_device(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    commands_block, result_block = doc_blocks("json")
    commands = [json.loads(line) for line in commands_block.splitlines() if line.strip()]
    example_result = json.loads(result_block)
    assert len(commands) >= 2
    cfg = gateway_config(tmp_path, mosquitto)
    with (
        Subscriber(mosquitto.port, f"{BASE}/#") as sub,
        InProcessGateway(cfg) as gw,
        Concentrator(gw.udp, GW1) as c,
    ):
        wait(lambda: subscribed(gw))
        for cmd in commands:
            sub.client.publish(f"{BASE}/down", json.dumps(cmd), qos=1)
        got = wait(lambda: (r := results(sub)) and len(r) >= len(commands) and r)
        assert [r["state"] for r in got] == ["queued"] * len(commands), got
        first = got[0]
        assert first["command_id"] == commands[0]["id"]
        # the documented result has the fields of the real one, and repeats the request as it does
        assert set(example_result) == set(first)
        assert example_result["request"] == first["request"]
        assert example_result["command_id"] == first["command_id"]
        # the device's next uplink takes the first command down, encoded by the cooling codec
        wait(lambda: gw.gateway.udp.can_send(GW1))
        up = phy.build_data_frame(
            uplink=True,
            confirmed=False,
            dev_addr=ADDR,
            fcnt32=1,
            fport=1,
            payload=bytes.fromhex("14000000000000000000df012c0118"),
            nwk_s_key=NWK,
            app_s_key=APP,
        )
        assert c.push(
            [c.rxpk(up, tmst=20_000_000, freq_hz=868_100_000, datr="SF7BW125", rssi=-80, snr=5.0)],
            wait_ack_s=2.0,
        )
        wait(lambda: c.downlinks)
        down = phy.parse(txpk_data(c.downlinks[0]))
        assert isinstance(down, phy.DataFrame) and down.fport == commands[0]["fport"]
        plain = crypto.crypt_frm_payload(APP, False, ADDR, down.fcnt16, down.frm_payload)
        assert plain == get_codec("cooling").encode(
            commands[0]["data"], commands[0]["fport"], direction="down"
        )
