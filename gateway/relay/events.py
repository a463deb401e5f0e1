"""A stored gateway event as the relay carries it: its body (for the JSON paths) and its ``HE`` line
(APRS)."""

from __future__ import annotations

import math
import re
from typing import Any

from havel.gateway.relay.aprs import OversizeError
from havel.gateway.relay.lines import KEY_RE, format_value, parse_value, to_base36
from havel.gateway.relay.record import MAX_TIME, EnvelopeError, parse_time

_EVENT_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_EVENT_ID_RE = re.compile(r"^(.+)-event-([0-9a-f]{12})$")  # the gateway's own id of a stored event
_EVENT_LINE_RE = re.compile(r"^HE ([0-9A-Z]{1,10}) ([0-9A-Z]{1,8}) ([a-z0-9_]{1,32})(?: (\S+))?$")


def event_body(payload: dict[str, Any]) -> dict[str, Any]:
    """The relayed form of a stored gateway event (its outbox payload ``{"id", "event", "gateway_id",
    "at", ...details}``): ``{"kind": "event", "id", "event", "at": <Unix seconds>, "details"}``, details
    only the plain values (text, numbers, true/false) a radio line can carry."""
    try:
        rid, name = str(payload["id"]), str(payload["event"])
        at = parse_time(str(payload["at"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise EnvelopeError(f"event cannot be relayed: {exc}") from exc
    m = _EVENT_ID_RE.match(rid)
    if not m or not _EVENT_RE.match(name):
        raise EnvelopeError(f"event {rid!r} ({name!r}) cannot be relayed: not a gateway event id and name")
    details = {
        k: v
        for k, v in payload.items()
        if k not in ("id", "event", "gateway_id", "at")
        and isinstance(k, str)
        and isinstance(v, str | int | float | bool)
        and not (isinstance(v, float) and not math.isfinite(v))
    }
    return {"kind": "event", "id": rid, "event": name, "at": at, "details": details}


def check_event(body: dict[str, Any], gateway_id: str) -> dict[str, Any]:
    """A received event body, checked (EnvelopeError: malformed); its ``id`` must be ``gateway_id``'s."""
    name, at, details, rid = body.get("event"), body.get("at"), body.get("details", {}), body.get("id")
    if not isinstance(name, str) or not _EVENT_RE.match(name):
        raise EnvelopeError(f"event name {str(name)[:40]!r}")
    if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= MAX_TIME:
        raise EnvelopeError(f"event time {str(at)[:24]} is not Unix seconds 0..{MAX_TIME}")
    if not isinstance(details, dict) or not all(
        isinstance(v, str | int | float | bool) for v in details.values()
    ):
        raise EnvelopeError("event details must be plain values")
    m = _EVENT_ID_RE.match(rid) if isinstance(rid, str) else None
    if m is None or m.group(1) != gateway_id:
        raise EnvelopeError(f"event id {str(rid)[:40]!r} is not an event id of {gateway_id}")
    return {"kind": "event", "id": rid, "event": name, "at": at, "details": details}


def encode_event_line(body: dict[str, Any], max_len: int | None = None) -> str:
    """``HE <ID36> <TIME36> <event>[ k=v,...]``: the event's random id part (12 hex digits) in base 36,
    its time, its name, then as many details as fit in ``max_len``."""
    m = _EVENT_ID_RE.match(str(body["id"]))
    if m is None:
        raise EnvelopeError(f"not a gateway event id: {body['id']!r}")
    head = f"HE {to_base36(int(m.group(2), 16))} {to_base36(int(body['at']))} {body['event']}"
    pairs = []
    for k, v in (body.get("details") or {}).items():
        if not KEY_RE.match(k):
            continue
        try:
            pairs.append(f"{k}={format_value(v)}")
        except EnvelopeError:
            continue  # free text: the mesh paths carry it
    while pairs and max_len is not None and len(head) + 1 + len(",".join(pairs)) > max_len:
        pairs.pop()
    line = f"{head} {','.join(pairs)}" if pairs else head
    if max_len is not None and len(line) > max_len:
        raise OversizeError(f"event line {line!r} is longer than {max_len} characters")
    return line


def parse_event_line(line: str, gateway_id: str) -> dict[str, Any]:
    """An ``HE`` line (without signature) -> the event body of :func:`check_event`."""
    m = _EVENT_LINE_RE.match(line)
    if not m:
        raise EnvelopeError(f"not a Havel event line: {line[:40]!r}")
    rid = int(m.group(1), 36)
    if rid >= 16**12:
        raise EnvelopeError(f"event id {m.group(1)} is beyond 12 hex digits")
    details: dict[str, Any] = {}
    for pair in (m.group(4) or "").split(",") if m.group(4) else []:
        k, eq, v = pair.partition("=")
        if not eq or not KEY_RE.match(k) or not v or "/" in v:
            raise EnvelopeError(f"malformed field {pair!r} in event line")
        details[k] = parse_value(v)
    body = {"id": f"{gateway_id}-event-{rid:012x}", "event": m.group(3), "at": int(m.group(2), 36)}
    return check_event({**body, "details": details}, gateway_id)
