"""APRS information fields Havel sends and reads: messages, acks, telemetry and its definitions.

Pure text codecs, no I/O. References: APRS Protocol Reference 1.0.1, chapter 13 (telemetry) and 14
(messages). Messages: ``:ADDRESSEE:text{id`` with the addressee space-padded to 9 characters, at most 67
characters of text without ``|``, ``~`` or ``{``, a message id of 1-5 letters or digits; acks
``:ADDRESSEE:ackID``. Telemetry: ``T#sss,a1,a2,a3,a4,a5,bbbbbbbb`` (sequence 000-999, five analog values
0-255, eight bits) optionally followed by a comment; the channel names, units, equations (value =
a*x^2 + b*x + c) and bit names are messages the station addresses to itself (PARM., UNIT., EQNS., BITS.).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from havel.errors import InputError

MAX_TEXT = 67
ADDRESSEE_LEN = 9
FORBIDDEN = set("|~{")
_MSGNO_RE = re.compile(r"^[A-Za-z0-9]{1,5}$")


class APRSError(InputError):
    """An APRS information field that is malformed, or text that cannot be sent as APRS."""


class OversizeError(APRSError):
    """Message text longer than APRS allows (67 characters)."""


@dataclass(frozen=True)
class Message:
    """An APRS message (or ack/rej when ``kind`` says so)."""

    addressee: str
    text: str
    msgno: str | None = None
    kind: str = "message"  # "message" | "ack" | "rej"

    def encode(self) -> str:
        """The information field."""
        if self.kind == "message":
            check_text(self.text)
            tail = f"{{{self.msgno}" if self.msgno else ""
            if self.msgno is not None:
                check_msgno(self.msgno)
            return f":{pad_addressee(self.addressee)}:{self.text}{tail}"
        if self.msgno is None:
            raise APRSError(f"an APRS {self.kind} needs the message id it answers")
        check_msgno(self.msgno)
        return f":{pad_addressee(self.addressee)}:{self.kind}{self.msgno}"


def pad_addressee(call: str) -> str:
    """Addressee as sent: upper case, space-padded to 9 characters."""
    call = call.strip().upper()
    if not call or len(call) > ADDRESSEE_LEN or not re.fullmatch(r"[A-Z0-9-]+", call):
        raise APRSError(f"APRS addressee {call!r} must be 1-9 characters A-Z, 0-9, '-'")
    return call.ljust(ADDRESSEE_LEN)


def check_text(text: str) -> None:
    """Raise if ``text`` cannot be the text of an APRS message."""
    if len(text) > MAX_TEXT:
        raise OversizeError(
            f"APRS message text is {len(text)} characters, at most {MAX_TEXT} allowed",
            hint="send fewer fields or shorter names",
        )
    bad = FORBIDDEN.intersection(text)
    if bad:
        raise APRSError(f"APRS message text contains {''.join(sorted(bad))!r}, which APRS forbids")
    if any(not 0x20 <= ord(c) < 0x7F for c in text):
        raise APRSError("APRS message text must be printable ASCII")


def check_msgno(msgno: str) -> None:
    """Raise unless ``msgno`` is 1-5 letters or digits."""
    if not _MSGNO_RE.match(msgno):
        raise APRSError(f"APRS message id {msgno!r} must be 1-5 letters or digits")


def parse_message(info: str) -> Message:
    """Parse ``:ADDRESSEE:text{id`` (or an ack/rej); APRSError when it is not a well-formed message."""
    if len(info) < ADDRESSEE_LEN + 2 or info[0] != ":" or info[ADDRESSEE_LEN + 1] != ":":
        raise APRSError("not an APRS message (':' + 9-character addressee + ':' expected)")
    addressee = info[1 : ADDRESSEE_LEN + 1].rstrip(" ")
    if not addressee or not re.fullmatch(r"[A-Za-z0-9-]+", addressee):
        raise APRSError(f"APRS message addressee {addressee!r} is malformed")
    body = info[ADDRESSEE_LEN + 2 :].rstrip("\r\n")
    m = re.fullmatch(r"(ack|rej)([A-Za-z0-9]{1,5})(?:}.*)?", body)
    if m:
        return Message(addressee.upper(), "", m.group(2), kind=m.group(1))
    msgno: str | None = None
    if "{" in body:
        body, _, tail = body.partition("{")
        msgno = tail.split("}", 1)[0]  # APRS 1.1 reply-acks: "{MM}AA"
        check_msgno(msgno)
    check_text(body)
    return Message(addressee.upper(), body, msgno)


# --- Telemetry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    """One analog telemetry channel: name, unit and the equation coefficients (value = a x^2 + b x + c)."""

    name: str
    unit: str = ""
    a: float = 0.0
    b: float = 1.0
    c: float = 0.0

    def raw(self, value: float) -> int:
        """The 0-255 count sent for ``value`` (linear inverse; clamped, because APRS has no room for more)."""
        if self.a != 0.0:
            raise APRSError(f"telemetry channel {self.name}: only linear equations (a = 0) can be encoded")
        if self.b == 0.0:
            raise APRSError(f"telemetry channel {self.name}: coefficient b must not be 0")
        return max(0, min(255, round((value - self.c) / self.b)))

    def value(self, raw: float) -> float:
        """The engineering value of a received count."""
        return self.a * raw * raw + self.b * raw + self.c


@dataclass(frozen=True)
class Telemetry:
    """One ``T#`` report: sequence 0-999, five analog counts 0-255, eight bits, optional comment."""

    seq: int
    analog: tuple[int, int, int, int, int]
    bits: tuple[bool, ...] = (False,) * 8
    comment: str = ""

    def encode(self) -> str:
        if not 0 <= self.seq <= 999:
            raise APRSError(f"telemetry sequence {self.seq} must be 0..999")
        if len(self.analog) != 5 or any(not 0 <= v <= 255 for v in self.analog):
            raise APRSError("telemetry needs five analog counts 0..255")
        if len(self.bits) != 8:
            raise APRSError("telemetry needs eight bits")
        bits = "".join("1" if b else "0" for b in self.bits)
        vals = ",".join(f"{v:03d}" for v in self.analog)
        comment = self.comment
        if comment and (FORBIDDEN.intersection(comment) or any(not 0x20 <= ord(c) < 0x7F for c in comment)):
            raise APRSError("telemetry comment must be printable ASCII without | ~ {")
        return f"T#{self.seq:03d},{vals},{bits}{comment}"


_T_RE = re.compile(r"^T#(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),([01]{8})(.*)$")


def parse_telemetry(info: str) -> Telemetry:
    """Parse a ``T#`` report (the strict 1.0.1 form Havel sends: integer counts 0-255)."""
    m = _T_RE.match(info.rstrip("\r\n"))
    if not m:
        raise APRSError("not an APRS telemetry report T#sss,a1,a2,a3,a4,a5,bbbbbbbb")
    a = [int(m.group(i)) for i in range(2, 7)]
    analog = (a[0], a[1], a[2], a[3], a[4])
    if any(v > 255 for v in analog):
        raise APRSError("telemetry analog counts must be 0..255")
    return Telemetry(
        int(m.group(1)),
        analog,
        tuple(c == "1" for c in m.group(7)),
        m.group(8),
    )


def definition_messages(
    station: str, channels: list[Channel], bit_names: list[str] | None = None, title: str = "HV"
) -> list[Message]:
    """PARM., UNIT., EQNS. and BITS. messages the station sends to itself to define its telemetry.

    The title (free text in BITS., at most 23 characters) is short, so that a signature fits after it.
    """
    if len(channels) > 5:
        raise APRSError("APRS telemetry has five analog channels")
    chans = channels + [Channel("")] * (5 - len(channels))
    bit_names = (bit_names or [])[:8]

    def num(x: float) -> str:
        return f"{x:g}"

    parm = "PARM." + ",".join([c.name for c in chans] + bit_names).rstrip(",")
    unit = "UNIT." + ",".join([c.unit for c in chans]).rstrip(",")
    eqns = "EQNS." + ",".join(f"{num(c.a)},{num(c.b)},{num(c.c)}" for c in chans)
    bits = "BITS." + "1" * 8 + "," + title
    return [Message(station, t) for t in (parm, unit, eqns, bits)]


DEFINITION_PREFIXES = ("PARM.", "UNIT.", "EQNS.", "BITS.")
BITS_TITLE_MAX = 23


def definitions_body(texts: list[str]) -> str:
    """What the signature of a definition set covers: the PARM., UNIT., EQNS. and BITS. texts (BITS.
    without the signature), in that order, joined by a line feed."""
    return "\n".join(texts)


def parse_definition(text: str) -> tuple[str, list[str]]:
    """Split ``PARM.a,b`` (or UNIT./EQNS./BITS.) into its keyword and fields."""
    m = re.match(r"^(PARM|UNIT|EQNS|BITS)\.(.*)$", text)
    if not m:
        raise APRSError("not a telemetry definition (PARM./UNIT./EQNS./BITS.)")
    return m.group(1), m.group(2).split(",")
