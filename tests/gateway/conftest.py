"""Fixtures for the gateway tests (and tests/gateway/relay/): real Mosquitto brokers on loopback.

- ``mosquitto``: a plain broker (anonymous listener on ``.port``), fresh per test.
- ``mosquitto_factory``: ``make(**kwargs) -> Mosquitto`` (see ``support.mosquitto.Mosquitto``) for TLS, ACL,
  password and certificate-identity listeners; every broker made is stopped and removed after the test.
- ``mosquitto_secure``: TLS + users ``gw1``/``gw2`` (passwords ``pw-gw1``/``pw-gw2``) + the ACL that confines
  each gateway to ``havel/<user>/#`` + a certificate-identity listener.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.mosquitto import Mosquitto

GATEWAY_ACL = """\
# each gateway (user name = gateway id) owns its subtree of the json scheme and nothing else
pattern readwrite havel/%u/#
"""


@pytest.fixture
def mosquitto_factory() -> Iterator[Callable[..., Mosquitto]]:
    brokers: list[Mosquitto] = []

    def make(**kwargs: Any) -> Mosquitto:
        broker = Mosquitto(**kwargs)
        brokers.append(broker)
        broker.start()
        return broker

    try:
        yield make
    finally:
        for broker in brokers:
            broker.close()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    return mosquitto_factory()


@pytest.fixture
def mosquitto_secure(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    return mosquitto_factory(
        tls=True, users={"gw1": "pw-gw1", "gw2": "pw-gw2"}, acl=GATEWAY_ACL, cert_identity=True
    )
