"""AX.25 UI frames as APRS uses them: addresses with SSIDs and C/H bits, digipeater paths.

Address field: destination, source, then 0-8 digipeaters, 7 bytes each: six upper-case ASCII characters
space-padded and shifted left one bit, then the SSID byte ``CRR SSSS E`` (C = command bit on destination
and source, has-been-repeated bit H on digipeaters; RR = 11; E = 1 on the last address only). Then
control 0x03 (UI) and PID 0xF0 (no layer 3), then the information field. No flags, no FCS: the TNC adds
those. Reference: AX.25 2.2, sections 3.12 and 6.1.2; APRS 1.0.1 chapter 3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from havel.errors import FrameError, InputError

CONTROL_UI = 0x03
PID_NO_L3 = 0xF0
MAX_DIGIS = 8
_CALL_RE = re.compile(r"^([A-Z0-9]{1,6})(?:-(\d{1,2}))?(\*)?$")


@dataclass(frozen=True)
class Address:
    """One AX.25 address: callsign (1-6 of A-Z 0-9), SSID 0-15 and the C/H bit (bit 7 of the SSID byte)."""

    call: str
    ssid: int = 0
    flag: bool = False  # C bit on destination/source, has-been-repeated (H) on digipeaters

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z0-9]{1,6}", self.call):
            raise InputError(
                f"AX.25: callsign {self.call!r} must be 1-6 characters A-Z, 0-9",
                hint="use the licensed callsign in upper case, the SSID after a dash",
            )
        if not 0 <= self.ssid <= 15:
            raise InputError(f"AX.25: SSID {self.ssid} of {self.call} must be 0..15")

    @classmethod
    def parse(cls, text: str, *, flag: bool = False) -> Address:
        """Parse ``CALL``, ``CALL-SSID`` or ``CALL-SSID*`` (the star sets the H bit of a digipeater)."""
        m = _CALL_RE.match(text.strip().upper())
        if not m:
            raise InputError(f"AX.25: {text!r} is not a callsign like N0CALL or DB0ABC-10")
        return cls(m.group(1), int(m.group(2) or 0), flag or bool(m.group(3)))

    def __str__(self) -> str:
        return self.call if self.ssid == 0 else f"{self.call}-{self.ssid}"

    def same_station(self, other: Address) -> bool:
        """True when call and SSID match (the C/H bit is not part of the identity)."""
        return self.call == other.call and self.ssid == other.ssid

    def encode(self, *, last: bool) -> bytes:
        """Seven bytes on the wire."""
        shifted = bytes(ord(c) << 1 for c in self.call.ljust(6))
        return shifted + bytes([(0x80 if self.flag else 0) | 0x60 | self.ssid << 1 | (1 if last else 0)])

    @classmethod
    def decode(cls, raw: bytes) -> tuple[Address, bool]:
        """Seven bytes -> (address, is_last)."""
        if len(raw) != 7:
            raise FrameError("AX.25: an address is 7 bytes")
        if any(b & 1 for b in raw[:6]):
            raise FrameError("AX.25: address character with the extension bit set (truncated address?)")
        call = bytes(b >> 1 for b in raw[:6]).decode("ascii", "replace").rstrip(" ")
        try:
            addr = cls(call, (raw[6] >> 1) & 0x0F, bool(raw[6] & 0x80))
        except InputError as exc:
            raise FrameError(str(exc)) from exc
        return addr, bool(raw[6] & 1)


@dataclass(frozen=True)
class UIFrame:
    """An AX.25 UI frame carrying APRS: destination, source, digipeater path and information field."""

    dest: Address
    source: Address
    info: bytes
    path: tuple[Address, ...] = field(default_factory=tuple)

    @classmethod
    def aprs(
        cls, source: str, dest: str, info: bytes | str, path: list[str] | tuple[str, ...] = ()
    ) -> UIFrame:
        """An APRS frame as a command: C bit set on the destination, clear on the source (AX.25 2.x)."""
        if len(path) > MAX_DIGIS:
            raise InputError(f"AX.25: at most {MAX_DIGIS} digipeaters, got {len(path)}")
        raw = info.encode("ascii") if isinstance(info, str) else info
        return cls(
            dest=Address.parse(dest, flag=True),
            source=Address.parse(source),
            info=raw,
            path=tuple(Address.parse(p) for p in path),
        )

    def encode(self) -> bytes:
        """The frame as the TNC wants it inside KISS (no flags, no FCS)."""
        addrs = [self.dest, self.source, *self.path]
        out = b"".join(a.encode(last=i == len(addrs) - 1) for i, a in enumerate(addrs))
        return out + bytes([CONTROL_UI, PID_NO_L3]) + self.info

    @classmethod
    def decode(cls, data: bytes) -> UIFrame:
        """Parse a frame from the TNC; anything but a UI frame with PID F0 is a FrameError."""
        addrs: list[Address] = []
        pos = 0
        while True:
            if pos + 7 > len(data):
                raise FrameError("AX.25: address field truncated")
            addr, last = Address.decode(data[pos : pos + 7])
            addrs.append(addr)
            pos += 7
            if last:
                break
            if len(addrs) >= 2 + MAX_DIGIS:
                raise FrameError("AX.25: more than 8 digipeaters")
        if len(addrs) < 2:
            raise FrameError("AX.25: a frame needs destination and source addresses")
        if pos + 2 > len(data):
            raise FrameError("AX.25: control/PID missing")
        if data[pos] != CONTROL_UI or data[pos + 1] != PID_NO_L3:
            raise FrameError(
                f"AX.25: not a UI frame with PID F0 (control {data[pos]:#04x}, PID {data[pos + 1]:#04x})"
            )
        return cls(dest=addrs[0], source=addrs[1], path=tuple(addrs[2:]), info=data[pos + 2 :])

    def tnc2(self) -> str:
        """The monitor format direwolf and APRS-IS use: ``SRC>DEST,DIGI*:info``.

        As direwolf prints it: a star after the last digipeater that has repeated the frame; control
        characters of the information field as ``<0xNN>``, bytes from 0x80 up as they are (Latin-1 here, so
        one character per byte).
        """
        last_rep = max((i for i, a in enumerate(self.path) if a.flag), default=-1)
        digis = [str(a) + ("*" if i == last_rep else "") for i, a in enumerate(self.path)]
        head = ",".join([f"{self.source}>{self.dest}", *digis])
        info = "".join(f"<0x{b:02x}>" if b < 0x20 or b == 0x7F else chr(b) for b in self.info)
        return f"{head}:{info}"
