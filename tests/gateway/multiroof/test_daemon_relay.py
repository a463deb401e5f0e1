"""The disaster relay of a roof in a shared network: `havel gateway run`'s daemon with `[network] store`
and `[relay]`, its platform broker down, relays a flood alarm that one of its concentrators heard (over
real UDP, the session in a real Redis) to the crisis centre's broker, signed, under the uplink's id."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from support.gateway_run import InProcessGateway, free_udp_port
from support.mqtt_subscriber import Subscriber
from support.redis import RedisServer

from havel.gateway.config import from_dict
from havel.gateway.network.shared.connection import StoreSettings, connect
from havel.gateway.network.shared.state import SharedState
from havel.gateway.relay.receive.config import ReceiverConfig
from havel.gateway.relay.receive.receiver import Receiver
from havel.gateway.relay.signing import SigningKey

from .helpers import abp_node
from .roofs import Concentrator

GW = 0xAA00000000000001
ALARM = bytes.fromhex("1a019c0622008cb3")  # water, FPort 1: level 412 cm, alarm (codecs/vectors/water.json)
RULES = [{"name": "flood", "class": "alarm", "codec": "water", "field": "level", "op": ">=", "value": 150}]


def test_a_shared_store_roof_relays_an_alarm_while_its_platform_is_down(
    redis_server: RedisServer, mosquitto_factory: Any, tmp_path: Path
) -> None:
    platform = mosquitto_factory()
    crisis = mosquitto_factory()
    node = abp_node(70)
    SharedState(connect(StoreSettings(redis_server.url))).put_device(replace(node.device(), codec="water"))
    data = tmp_path / "gw"
    data.mkdir()
    SigningKey.generate().save(data / "relay.key")
    udp_port = free_udp_port()
    cfg = from_dict(
        {
            "gateway": {"id": "gw1", "data_dir": str(data)},
            "udp": {"port": udp_port},
            "http": {"port": 0},
            "network": {"store": redis_server.url, "roof": "roof-a", "dedup_window_ms": 50},
            "forwarder": {"down_after_s": 1.0, "up_after_s": 1.0},
            "sink": [
                {
                    "type": "mqtt",
                    "name": "platform",
                    "host": "127.0.0.1",
                    "port": platform.port,
                    "tls": False,
                    "reconnect_min_s": 0.2,
                    "reconnect_max_s": 1.0,
                }
            ],
            "relay": {
                "down_after_s": 1.0,
                "up_after_s": 1.0,
                "tick_s": 0.1,
                "sender": "gw1",
                "rules": RULES,
                "path": [{"type": "mqtt", "host": "127.0.0.1", "port": crisis.port, "tls": False}],
            },
        }
    )
    rcfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": crisis.port},
            "sender": [{"name": "gw1", "key_file": str(data / "relay.key"), "gateway_id": "gw1"}],
            "mqtt": {"port": crisis.port, "topic": "havel/+/relay/#"},
        }
    )
    with (
        Receiver(rcfg),
        Subscriber(crisis.port, "havel/gw1/devices/#") as sub,
        InProcessGateway(cfg) as gw,
    ):
        conc = Concentrator(GW, udp_port)
        try:
            platform.stop()
            time.sleep(2.5)  # the platform counts as down after down_after_s
            conc.hear(node.uplink(ALARM), 4.0)
            msgs = sub.wait_for(1, 20)
        finally:
            conc.close()
        assert gw.gateway.shared is not None and gw.gateway.shared.store.online
    got = [m.json() for m in msgs]
    assert [m["id"] for m in got] == [f"{node.dev_eui:016X}-0-1"] and got[0]["via"] == "mqtt"
