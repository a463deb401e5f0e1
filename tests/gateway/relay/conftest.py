"""Fixtures for the relay tests: two real direwolf TNCs over a paced audio channel, shared keys."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from havel.gateway.relay import ax25, kiss
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


class FakeTNC:
    """A KISS-over-TCP peer on loopback that the test scripts byte by byte (broken escapes and the like
    cannot be made to come out of direwolf)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None
        self.decoder = kiss.Decoder()
        self.frames: list[ax25.UIFrame] = []

    def accept(self, timeout: float = 10.0) -> None:
        self.server.settimeout(timeout)
        self.conn, _ = self.server.accept()
        self.conn.settimeout(0.2)

    def send(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def read(self, timeout: float) -> list[ax25.UIFrame]:
        """Frames the peer sent us, waiting up to ``timeout`` for at least one new one."""
        assert self.conn is not None
        start = len(self.frames)
        deadline = time.monotonic() + timeout
        while len(self.frames) == start and time.monotonic() < deadline:
            try:
                data = self.conn.recv(4096)
            except TimeoutError:
                continue
            for fr in self.decoder.feed(data):
                self.frames.append(ax25.UIFrame.decode(fr.payload))
        return self.frames[start:]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()
