"""Fixtures of the black-box kit-check tests: a virtual board started from our own scenario."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bbprov_kit import VBoard


@pytest.fixture
def vboard(tmp_path: Path) -> Iterator[Callable[..., VBoard]]:
    """`vboard(scenario, baud=None)` starts a virtual board; every board is stopped after the test."""
    with ExitStack() as stack:
        count = 0

        def start(scenario: dict[str, Any], baud: int | None = None) -> VBoard:
            nonlocal count
            count += 1
            return stack.enter_context(VBoard(scenario, tmp_path / f"board{count}", baud))

        yield start
