"""One TCP connection to a KISS TNC (direwolf or a TNC bridge), used from one thread: connect, read the
data frames that arrived, send a frame, close."""

from __future__ import annotations

import contextlib
import select
import socket

from havel.gateway.relay import kiss


class TncConnection:
    """The connection is opened by :meth:`connect` and gone after :meth:`close` (or a failed read)."""

    def __init__(self, host: str, port: int, *, kiss_port: int = 0) -> None:
        self.host = host
        self.port = port
        self.kiss_port = kiss_port
        self._sock: socket.socket | None = None
        self._decoder = kiss.Decoder()
        self.malformed = 0  # KISS frames that could not be read (broken escapes, oversize)

    @property
    def connected(self) -> bool:
        """Whether a connection is open."""
        return self._sock is not None

    def connect(self) -> None:
        """Open the connection (OSError when the TNC cannot be reached)."""
        sock = socket.create_connection((self.host, self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(5)
        self._sock = sock
        self._decoder = kiss.Decoder()

    def close(self) -> None:
        """Close the connection, if one is open."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def read(self, timeout: float) -> list[bytes]:
        """The payloads of the data frames that arrive within ``timeout`` seconds (OSError when the
        connection is lost; counts unreadable frames in :attr:`malformed`)."""
        assert self._sock is not None
        r, _, _ = select.select([self._sock], [], [], timeout)
        if not r:
            return []
        data = self._sock.recv(4096)
        if not data:
            raise ConnectionResetError("TNC closed the connection")
        before = self._decoder.errors
        frames = [fr.payload for fr in self._decoder.feed(data) if fr.command == kiss.CMD_DATA]
        self.malformed += self._decoder.errors - before
        return frames

    def send(self, raw: bytes) -> None:
        """Send one AX.25 frame (OSError when the connection is lost)."""
        assert self._sock is not None
        self._sock.sendall(kiss.encode(raw, port=self.kiss_port))
