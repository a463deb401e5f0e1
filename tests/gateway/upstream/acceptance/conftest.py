"""Fixtures of the black-box upstream tests: a broker, our network server, the daemon in front of it
(configured as docs/gateway.md shows) and a scripted packet forwarder."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from upstream_kit import (
    FOLLOWED,
    FOLLOWED_ABP,
    FWD_EUI,
    HOST,
    LOCAL,
    Broker,
    Forwarder,
    Frames,
    Gateway,
    NetworkServer,
    Subscriber,
    add_device,
)


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
    s = Subscriber(broker.port, client_id="bb-upstream-subscriber")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def frames() -> Iterator[Frames]:
    f = Frames()
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def server() -> Iterator[NetworkServer]:
    s = NetworkServer()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def roof(tmp_path: Path, broker: Broker, server: NetworkServer) -> Iterator[Gateway]:
    """The daemon configured as docs/gateway.md shows, with our server as "city" (short timers)."""
    extra = (
        "[upstream]\n"
        f'follow = ["{FOLLOWED.dev_eui}", "{FOLLOWED_ABP.dev_eui}"]\n'
        'sessions_file = "followed-sessions.json"\n'
        "[[upstream.server]]\n"
        'name = "city"\n'
        f'host = "{HOST}"\n'
        f"port = {server.port}\n"
        "keepalive_s = 1\n"
        "down_after_s = 4\n"
        "up_after = 2\n"
    )
    gw = Gateway(tmp_path / "roof", broker.port, extra=extra)
    for dev in (FOLLOWED, FOLLOWED_ABP, LOCAL):
        add_device(gw, dev, tmp_path)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def fwd(roof: Gateway) -> Iterator[Forwarder]:
    f = Forwarder(roof.udp_port, FWD_EUI)
    try:
        f.pull_acked()
        yield f
    finally:
        f.close()
