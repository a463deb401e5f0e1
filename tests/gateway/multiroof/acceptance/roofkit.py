"""Black-box plumbing for several `havel gateway run` roofs on one real redis-server, written from
docs/multiroof.md, docs/gateway.md and docs/mqtt.md only: each roof a real daemon process with a file sink,
its own scripted GWMP forwarder over real UDP, frames from lora-packet (the black-box kit of
tests/gateway/acceptance)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "acceptance"))

from bb_kit import Broker, Device, Forwarder, Gateway, LoraPacket, Subscriber, wait_for, water_payload

__all__ = [
    "Broker",
    "Device",
    "Forwarder",
    "LoraPacket",
    "Roof",
    "Subscriber",
    "put_abp",
    "put_otaa",
    "shared_state",
    "wait_for",
    "water_payload",
]


class Roof(Gateway):
    """One roof: the daemon with ``[network] store``, a file sink, and its own concentrator."""

    def __init__(
        self, folder: Path, store_url: str, name: str, eui: str, extra: str = "", broker_port: int = 0
    ) -> None:
        self.out = folder / "out.jsonl"
        net = f'[network]\nstore = "{store_url}"\nroof = "{name}"\ndedup_window_ms = 200\n{extra}\n'
        super().__init__(folder, 0, gateway_id=name, extra=net)
        # replace the MQTT sink of the black-box kit by a file sink (no broker needed)
        text = self.config.read_text().split("[[sink]]")[0]
        text += f'[[sink]]\ntype = "file"\nname = "local"\npath = "{self.out}"\n'
        if broker_port:  # and the platform's broker, taking commands (docs/mqtt.md)
            text += (
                f'[[sink]]\ntype = "mqtt"\nname = "platform"\nhost = "127.0.0.1"\nport = {broker_port}\n'
                "tls = false\ncommands = true\n"
            )
        self.config.write_text(text)
        self.fwd = Forwarder(self.udp_port, eui)

    def records(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        lines = [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]
        return [line["payload"] for line in lines if "/devices/" in line["topic"]]

    def ups(self) -> list[dict[str, Any]]:
        return [
            r for r in self.records() if "fcnt" in r and "-join-" not in r["id"] and "-down-" not in r["id"]
        ]

    def close(self) -> None:
        self.stop()
        self.fwd.close()


def shared_state(url: str) -> Any:
    import redis

    from havel.gateway.network.shared.state import SharedState

    return SharedState(redis.Redis.from_url(url))


def put_abp(url: str, dev: Device) -> None:
    """The documented way to register a device in the store: ``SharedState.put_device``."""
    from havel.gateway.network.sessions import Device as HDevice
    from havel.gateway.network.sessions import Session

    s = Session(int(dev.dev_addr, 16), bytes.fromhex(dev.nwk_s_key), bytes.fromhex(dev.app_s_key), epoch=0)
    shared_state(url).put_device(HDevice(dev.name, int(dev.dev_eui, 16), dev.codec, "abp", session=s))


def put_otaa(url: str, dev: Device) -> None:
    from havel.gateway.network.sessions import Device as HDevice

    shared_state(url).put_device(
        HDevice(
            dev.name,
            int(dev.dev_eui, 16),
            dev.codec,
            "otaa",
            join_eui=int(dev.join_eui, 16),
            app_key=bytes.fromhex(dev.app_key),
        )
    )
