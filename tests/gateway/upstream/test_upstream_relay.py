"""Upstream unreachable and the platform's broker down as well (one roof's uplink is gone): a followed
device's alarm reading still leaves the roof over the disaster relay (a real Mosquitto as the crisis
centre's broker), with the id every roof gives it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from support.gateway_run import InProcessGateway, free_tcp_port, free_udp_port

from havel.gateway.config import from_dict
from havel.gateway.network.following import import_epoch
from havel.gateway.relay.signing import SigningKey

from .helpers import NWK, Forwarder, abp, data_frame, register, wait_for

EUI = 0x70B3D57ED0000055
ADDR = 0x26015555


def relayed(payloads: list[bytes]) -> list[str]:
    """The ids of the alarm records in the relay's signed envelopes on the crisis centre's broker."""
    out = []
    for p in payloads:
        try:
            body = json.loads(json.loads(p)["body"])
        except (ValueError, KeyError, TypeError):
            continue
        if body.get("class") == "alarm":
            out.append(f"{body['dev_eui']}-{body['epoch']}-{body['fcnt']}")
    return out


@pytest.mark.timeout(90)
def test_followed_alarm_goes_over_the_relay_while_upstream_and_platform_are_down(
    tmp_path: Path, mosquitto_factory: Any
) -> None:
    platform = mosquitto_factory()
    crisis = mosquitto_factory()
    data = tmp_path / "gw"
    data.mkdir()
    SigningKey.generate().save(data / "relay.key")
    cfg = from_dict(
        {
            "gateway": {"id": "gw1", "data_dir": str(data)},
            "udp": {"port": free_udp_port()},
            "http": {"port": free_tcp_port()},
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
                "rules": [
                    {
                        "name": "humid",
                        "class": "alarm",
                        "codec": "temperature",
                        "field": "humidity",
                        "op": ">=",
                        "value": 30,
                    }
                ],
                "path": [{"type": "mqtt", "host": "127.0.0.1", "port": crisis.port, "tls": False}],
            },
            "upstream": {
                "follow": [f"{EUI:016X}"],
                "server": [
                    {
                        "name": "city",
                        "host": "127.0.0.1",
                        "port": free_udp_port(),
                        "keepalive_s": 0.2,
                        "down_after_s": 1.0,
                    }
                ],
            },
        }
    )
    register(cfg.db_path, [abp("followed-abp", EUI, ADDR)])
    got: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect("127.0.0.1", crisis.port)
    sub.subscribe("#", qos=1)
    sub.loop_start()
    try:
        with InProcessGateway(cfg) as roof:
            fwd = Forwarder(roof.udp)
            try:
                fwd.pull()
                fwd.push(data_frame(ADDR, 1))
                status = roof.gateway.status
                wait_for(lambda: not status()["upstream"]["servers"]["city"]["up"], 20, "upstream down")
                platform.stop()
                wait_for(
                    lambda: roof.gateway.metrics.render().count("havel_gateway_relay_primary_down 1"), 20, ""
                )
                fwd.push(data_frame(ADDR, 2))
                want = f"{EUI:016X}-{import_epoch(ADDR, NWK)}-2"
                wait_for(lambda: want in relayed(got), 30, "the alarm on the relay")
                # (the relayed record names the reading by the id the platform gets from the outbox later)
                assert (
                    roof.gateway.metrics.get("upstream_not_forwarded_total", upstream="city", reason="down")
                    >= 1
                )
            finally:
                fwd.close()
    finally:
        sub.loop_stop()
        sub.disconnect()
