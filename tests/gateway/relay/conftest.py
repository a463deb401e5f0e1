"""Fixtures for the relay tests: two real direwolf TNCs over a paced audio channel, shared keys."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from havel.gateway.relay.signing import SigningKey

REPO = Path(__file__).resolve().parents[3]


def load_harness() -> ModuleType:
    """tools/direwolf/harness.py (a tool of the repository, not part of the package)."""
    name = "havel_direwolf_harness"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / "direwolf" / "harness.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


needs_direwolf = pytest.mark.skipif(
    shutil.which("direwolf") is None, reason="direwolf is not installed (make test installs it)"
)

GW_CALL = "N0CALL-10"
CC_CALL = "N0CALL-1"


@pytest.fixture
def radio() -> Iterator[object]:
    """Direwolf A (the gateway's TNC, GW_CALL) and B (the crisis centre's, CC_CALL), joined by audio."""
    h = load_harness()
    work = Path(tempfile.mkdtemp(prefix="dw"))
    link = h.RadioLink(work, GW_CALL, CC_CALL)
    link.start()
    try:
        yield link
    finally:
        link.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "gw.key"
    SigningKey.generate().save(path)
    return path
