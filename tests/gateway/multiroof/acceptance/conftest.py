"""Fixtures of the multi-roof black-box tests: roofs (real daemons) on the real redis-server of the
multiroof conftest, and lora-packet."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .roofkit import LoraPacket, Roof


@pytest.fixture
def lora() -> Iterator[LoraPacket]:
    lp = LoraPacket()
    try:
        yield lp
    finally:
        lp.close()


@pytest.fixture
def roofs(tmp_path: Path) -> Iterator[Callable[..., Roof]]:
    made: list[Roof] = []

    def make(store_url: str, name: str, eui: str, extra: str = "", broker_port: int = 0) -> Roof:
        roof = Roof(tmp_path / name, store_url, name, eui, extra, broker_port)
        made.append(roof)
        roof.start()
        roof.fwd.pull_acked()
        return roof

    try:
        yield make
    finally:
        for roof in made:
            with contextlib.suppress(Exception):
                roof.close()
