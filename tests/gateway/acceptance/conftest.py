"""Fixtures of the black-box gateway tests: a broker, the daemon, a forwarder, a subscriber, lora-packet."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bb_kit import Broker, Device, Forwarder, Gateway, LoraPacket, Subscriber, add_device


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def subscriber(broker: Broker) -> Iterator[Subscriber]:
    s = Subscriber(broker.port)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def lora() -> Iterator[LoraPacket]:
    lp = LoraPacket()
    try:
        yield lp
    finally:
        lp.close()


@pytest.fixture
def make_gateway(tmp_path: Path, broker: Broker) -> Iterator[Callable[..., Gateway]]:
    """``make(extra_toml="", devices=[...], start=True) -> Gateway``; every daemon is stopped afterwards."""
    made: list[Gateway] = []

    def make(
        extra: str = "", devices: tuple[Device, ...] = (), start: bool = True, name: str = "gw", udp: str = ""
    ) -> Gateway:
        gw = Gateway(tmp_path / f"{name}{len(made)}", broker.port, extra=extra, udp=udp)
        made.append(gw)
        for dev in devices:
            add_device(gw, dev, tmp_path)
        if start:
            gw.start()
        return gw

    try:
        yield make
    finally:
        for gw in made:
            gw.stop()


@pytest.fixture
def forwarders() -> Iterator[list[Forwarder]]:
    made: list[Forwarder] = []
    try:
        yield made
    finally:
        for f in made:
            f.close()
