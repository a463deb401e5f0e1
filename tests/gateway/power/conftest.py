"""A real upsd with the dummy-ups driver for the power tests (see nut_server.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from nut_server import UpsServer, available


@pytest.fixture
def ups(tmp_path: Path) -> Iterator[UpsServer]:
    if not available():
        pytest.skip("NUT (upsd, dummy-ups) is not installed: tools/bootstrap.d/roof.sh installs it")
    with UpsServer(tmp_path) as server:
        yield server
