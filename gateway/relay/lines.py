"""The compact line of a relayed record, for APRS and other narrow links: one line of printable ASCII,
``H<c> <DEVEUI>-<EPOCH>-<FCNT> <TIME36> <k>=<v>[,<k>=<v>...]`` with ``c`` = ``A`` (alarm) or ``S``
(state), then the gateway's message id (DevEUI as 16 upper-case hex digits, session epoch and FCnt32
decimal), receive time as Unix seconds in base 36 (upper case), values as decimal numbers,
``true``/``false``, short words, or lists of numbers joined by ``/`` (``probes=24.1/36.2``); nested
fields by their dotted path (``faults.valve=true``). The signature follows after one space (see
:mod:`signing`). ``HP UP|DOWN <TIME36>`` reports the primary path's state; gateway events have lines of
their own (:mod:`events`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from havel.errors import SecurityError
from havel.gateway.relay.aprs import OversizeError
from havel.gateway.relay.record import CLASS_LETTERS, LETTER_CLASSES, EnvelopeError, RelayRecord
from havel.gateway.relay.signing import Signature, Signer

_LINE_RE = re.compile(r"^H([AS]) ([0-9A-F]{16})-(\d{1,10})-(\d{1,10}) ([0-9A-Z]{1,8}) (\S+)$")
KEY_RE = re.compile(r"^[A-Za-z0-9_.]{1,32}$")
_WORD_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,16}$")  # no "/": it separates list elements
_INT_RE = re.compile(r"^[+-]?\d{1,20}$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def to_base36(n: int) -> str:
    """``n`` (>= 0) in base 36, upper case: times and ids in few characters."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def format_value(v: Any) -> str:
    """A data value as a compact line writes it (EnvelopeError when it cannot be written)."""
    if isinstance(v, list) and v and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
        return "/".join(format_value(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    s = str(v)
    if not _WORD_RE.match(s):
        raise EnvelopeError(f"value {s!r} cannot be sent in a compact line")
    return s


def parse_value(s: str) -> Any:
    """The value of a compact line's ``k=v`` (the inverse of :func:`format_value`)."""
    if "/" in s:
        return [parse_value(x) for x in s.split("/")]
    if s in ("true", "false"):
        return s == "true"
    if _INT_RE.match(s):
        return int(s)
    if _FLOAT_RE.match(s):
        f = float(s)
        if math.isfinite(f):
            return f
        raise EnvelopeError(f"the number {s[:24]} is beyond a double")
    try:
        float(s)  # NaN, Infinity, inf, 1_0: words Python would read as numbers, JSON has no such number
    except ValueError:
        return s
    raise EnvelopeError(f"value {s[:24]!r} is not a finite decimal number")


def encode_line(rec: RelayRecord, max_len: int | None = None) -> str:
    """The compact line (without signature); drops trailing fields to fit ``max_len``, at least one stays."""
    head = f"H{CLASS_LETTERS[rec.cls]} {rec.id} {to_base36(rec.received_at)} "
    pairs = []
    for k, v in rec.data.items():
        if not KEY_RE.match(k):
            continue  # a name the line cannot carry: the JSON paths still have it
        try:
            pairs.append(f"{k}={format_value(v)}")
        except EnvelopeError:
            continue  # e.g. free text with spaces
    if not pairs:
        raise EnvelopeError(f"record {rec.id} has no field a compact line can carry")
    while pairs:
        line = head + ",".join(pairs)
        if max_len is None or len(line) <= max_len:
            return line
        pairs.pop()
    raise OversizeError(
        f"record {rec.id}: even one field does not fit in {max_len} characters",
        hint="give the field a shorter name in the codec or the relay's field list",
    )


def parse_line(line: str) -> RelayRecord:
    """Parse a compact line (without signature)."""
    m = _LINE_RE.match(line)
    if not m:
        raise EnvelopeError(f"not a Havel relay line: {line[:40]!r}")
    data: dict[str, Any] = {}
    for pair in m.group(6).split(","):
        k, eq, v = pair.partition("=")
        if not eq or not KEY_RE.match(k) or not v:
            raise EnvelopeError(f"malformed field {pair!r} in relay line")
        data[k] = parse_value(v)
    return RelayRecord(
        m.group(2),
        int(m.group(4)),
        LETTER_CLASSES[m.group(1)],
        int(m.group(5), 36),
        data,
        epoch=int(m.group(3)),
    ).check()


def encode_status_line(state: str, ts: int) -> str:
    """``HP DOWN <TIME36>`` / ``HP UP <TIME36>``: the gateway's primary path changed state at ``ts``."""
    if state not in ("up", "down"):
        raise EnvelopeError(f"primary state must be up or down, not {state!r}")
    return f"HP {state.upper()} {to_base36(ts)}"


def parse_status_line(line: str) -> dict[str, Any]:
    """An ``HP`` line -> ``{"kind": "status", "primary": "up" | "down", "at": <Unix seconds>}``."""
    m = re.fullmatch(r"HP (UP|DOWN) ([0-9A-Z]{1,8})", line)
    if not m:
        raise EnvelopeError(f"not a Havel status line: {line[:40]!r}")
    return {"kind": "status", "primary": m.group(1).lower(), "at": int(m.group(2), 36)}


def sign_line(signer: Signer, channel: str, line: str, context: str = "") -> str:
    """``line`` + space + signature; ``context`` (e.g. the APRS addressee) is signed but not repeated."""
    sig = signer.sign(channel, (context + line).encode())
    return f"{line} {sig}"


def split_signed_line(text: str) -> tuple[str, Signature]:
    """A received line -> (the line as signed, its signature)."""
    line, sep, sig = text.rpartition(" ")
    if not sep:
        raise EnvelopeError("relay line carries no signature")
    try:
        return line, Signature.parse(sig)
    except SecurityError as exc:
        raise EnvelopeError(str(exc)) from exc
