"""KISS framing (the host <-> TNC protocol): FEND, a type byte, the escaped payload, FEND.

The type byte is ``port << 4 | command``; command 0 carries an AX.25 frame (without flags, bit stuffing
or FCS). Inside a frame 0xC0 (FEND) is sent as DB DC and 0xDB (FESC) as DB DD.
"""

from __future__ import annotations

from dataclasses import dataclass

from havel.errors import FrameError

FEND = 0xC0
FESC = 0xDB
TFEND = 0xDC
TFESC = 0xDD
CMD_DATA = 0x0


@dataclass(frozen=True)
class KissFrame:
    """One KISS frame: TNC port (0-15), command (0 = data) and the unescaped payload."""

    port: int
    command: int
    payload: bytes


def escape(data: bytes) -> bytes:
    """Escape FESC first (so its own escape is not escaped again), then FEND."""
    return data.replace(bytes([FESC]), bytes([FESC, TFESC])).replace(bytes([FEND]), bytes([FESC, TFEND]))


def unescape(data: bytes) -> bytes:
    """Undo :func:`escape`; a FESC followed by anything but TFEND/TFESC is a FrameError."""
    out = bytearray()
    it = iter(data)
    for b in it:
        if b != FESC:
            out.append(b)
            continue
        nxt = next(it, None)
        if nxt == TFEND:
            out.append(FEND)
        elif nxt == TFESC:
            out.append(FESC)
        else:
            raise FrameError(
                f"KISS: invalid escape sequence DB {nxt!r}",
                hint="the TNC link is corrupt; check the KISS port settings",
            )
    return bytes(out)


def encode(payload: bytes, *, port: int = 0, command: int = CMD_DATA) -> bytes:
    """One KISS frame on the wire, with a leading FEND (flushes line noise) and a trailing FEND."""
    if not 0 <= port <= 15 or not 0 <= command <= 15:
        raise FrameError(f"KISS: port {port} and command {command} must be 0..15")
    # The type byte is escaped too: port 12 with command 0 is 0xC0.
    return bytes([FEND]) + escape(bytes([port << 4 | command]) + payload) + bytes([FEND])


class Decoder:
    """Splits a byte stream from a TNC into KISS frames; tolerant of noise between frames.

    Empty frames (back-to-back FENDs) are skipped; frames with bad escapes are dropped and counted in
    ``errors`` rather than stopping the stream.
    """

    def __init__(self, max_frame: int = 4096) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self.max_frame = max_frame
        self.errors = 0

    def feed(self, data: bytes) -> list[KissFrame]:
        """Add bytes from the TNC; return every complete frame they finish."""
        frames: list[KissFrame] = []
        for b in data:
            if b == FEND:
                if self._in_frame and self._buf:
                    frame = self._finish(bytes(self._buf))
                    if frame is not None:
                        frames.append(frame)
                self._buf.clear()
                self._in_frame = True
            elif self._in_frame:
                if len(self._buf) >= self.max_frame:
                    # Oversize: drop it and wait for the next FEND.
                    self.errors += 1
                    self._buf.clear()
                    self._in_frame = False
                else:
                    self._buf.append(b)
        return frames

    def _finish(self, raw: bytes) -> KissFrame | None:
        try:
            data = unescape(raw)
        except FrameError:
            self.errors += 1
            return None
        return KissFrame(port=data[0] >> 4, command=data[0] & 0x0F, payload=data[1:])
