"""Downlink commands as they come from the platform: the ``.../devices/<DevEUI>/down`` topic, the size, JSON
and text checks of a message, and the reasons a command is refused. Everything here reads outside input: a
message that is not a valid command becomes a :class:`BadCommand` or :class:`Refused` with a reason (the
scheduler answers it with a ``down/result`` and counts it), never an exception that ends a thread."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from havel.codecs.lorawan.ids import parse_id_hex
from havel.errors import HavelError, InputError
from havel.gateway.jsontext import encode_json

MAX_COMMAND_BYTES = 4096  # a command is a small JSON object (the payload is at most 51 bytes)
MAX_COMMAND_DEPTH = 16  # nesting of a command's JSON (a codec's data is two levels deep)
MAX_TTL_S = 30 * 86_400  # longest ttl_s: a command older than a month is not what anyone still wants
COMMAND_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")  # part of result ids and topics' payloads
FIELDS = ("fport", "data", "raw", "confirmed", "ttl_s", "id")
# reasons a command is rejected (the keys of DownlinkScheduler.rejected_by_reason)
REJECT_REASONS = (
    "too_large",
    "not_json",
    "too_deep",
    "bad_number",
    "bad_text",
    "not_object",
    "bad_field",
    "bad_id",
    "bad_ttl",
    "unknown_device",
    "codec",
    "too_long",
    "queue_full",
    "internal",
    "storage",  # the database failed while the command was queued (it is not)
)


@dataclass(frozen=True)
class BadCommand:
    """A command message that could not be read as JSON; what :func:`read_command` gives instead of it."""

    reason: str  # one of REJECT_REASONS
    detail: str


class Refused(HavelError):
    """A command refused for ``reason`` (one of REJECT_REASONS)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _no_constant(name: str) -> Any:
    raise Refused("bad_number", f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refused("bad_number", f"the number {text[:40]} is too large")
    return value


def read_command(payload: bytes | bytearray) -> Any:
    """The JSON value of a command message, or a :class:`BadCommand` saying why there is none: larger than
    MAX_COMMAND_BYTES, not UTF-8 JSON, NaN or infinity, a number beyond a double, nesting deeper than
    MAX_COMMAND_DEPTH, text with lone surrogates (which no JSON encoder may write back)."""
    if len(payload) > MAX_COMMAND_BYTES:
        return BadCommand("too_large", f"{len(payload)} bytes; a command has at most {MAX_COMMAND_BYTES}")
    try:
        value = json.loads(payload.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except Refused as exc:
        return BadCommand(exc.reason, str(exc))
    except RecursionError:
        return BadCommand("too_deep", f"nested deeper than {MAX_COMMAND_DEPTH} levels")
    except (UnicodeDecodeError, ValueError) as exc:  # (also an integer of more than 4300 digits)
        return BadCommand("not_json", f"not JSON text: {str(exc)[:120]}")
    problem = _check_value(value, 0)
    return problem if problem is not None else value


def _check_value(value: Any, depth: int) -> BadCommand | None:
    """Depth and text of a parsed JSON value (iterative enough: depth is bounded first)."""
    if depth > MAX_COMMAND_DEPTH:
        return BadCommand("too_deep", f"nested deeper than {MAX_COMMAND_DEPTH} levels")
    if isinstance(value, str):
        return None if _utf8_ok(value) else BadCommand("bad_text", "text with a lone surrogate (\\ud800..)")
    items: list[Any]
    if isinstance(value, dict):
        if not all(_utf8_ok(k) for k in value):
            return BadCommand("bad_text", "a key with a lone surrogate (\\ud800..)")
        items = list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        problem = _check_value(item, depth + 1)
        if problem is not None:
            return problem
    return None


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def echo(body: Any) -> dict[str, Any]:
    """The request as a result repeats it: the known fields, and only when they can be written as JSON
    (a rejected command may hold anything)."""
    if not isinstance(body, dict):
        return {}
    request = {k: body[k] for k in FIELDS[:-1] if k in body}
    try:
        text = encode_json(request)
        text.encode("utf-8")
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
        return {}
    return request if len(text) <= MAX_COMMAND_BYTES else {}


def parse_down_topic(topic: str, prefix: str, gateway_id: str) -> int | None:
    """DevEUI of a ``<prefix>/<gateway_id>/devices/<DevEUI>/down`` topic, else None."""
    parts = topic.split("/")
    pre = prefix.split("/")
    if len(parts) != len(pre) + 4 or parts[: len(pre)] != pre:
        return None
    gw, devices, dev, down = parts[len(pre) :]
    if gw != gateway_id or devices != "devices" or down != "down":
        return None
    try:
        return parse_id_hex(dev, what="DevEUI", size=8)
    except InputError:
        return None
