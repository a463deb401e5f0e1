"""The result records of downlink commands on a shared network, in the form docs/mqtt.md gives (kind
``down_result``, published by the sinks on ``.../down/result``): ``queued`` or ``rejected`` by the roof that
took the command, ``sent`` by the roof that transmitted it, ``acked``, ``failed`` or ``expired`` by the roof
that learnt it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from havel.gateway.network.reception import format_time

# what a command's fate is said with, by the event of the shared queue that told it
DETAILS = {"acked": "", "expired": "ttl_s ran out", "expired_aw": "ttl_s ran out"}


def result_record(
    dev_eui: str,
    name: str | None,
    cmd_id: str,
    seq: int,
    state: str,
    detail: str,
    request: dict[str, Any],
    fcnt_down: int | None = None,
    *,
    at: float | None = None,
) -> dict[str, Any]:
    """One result record; its id ``<DevEUI>-down-<command id>-<seq>-<state>`` names one event (the network's
    submission number ``seq`` tells apart commands that use an id again); ``at`` its time (unix; now)."""
    now = format_time(datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC))
    rid = f"{dev_eui}-down-{cmd_id}-{seq}-{state}"
    payload = {
        "id": rid,
        "command_id": cmd_id,
        "device": name,
        "dev_eui": dev_eui,
        "state": state,
        "detail": detail,
        "fcnt_down": fcnt_down,
        "request": request,
        "at": now,
    }
    return {
        "id": rid,
        "kind": "down_result",
        "dev_eui": dev_eui,
        "fcnt32": None,
        "priority": "state",
        "received_at": now,
        "payload": payload,
    }


def command_result(raw: str, state: str, detail: str, fcnt_down: int | None = None) -> dict[str, Any] | None:
    """The record of a queued command (its JSON as the queue keeps it) reaching ``state``; None for a
    command queued without the fields a result needs (put into Redis by hand, without an id)."""
    try:
        c = json.loads(raw)
        return result_record(
            str(c["eui"]),
            c.get("name"),
            str(c["id"]),
            int(c["seq"]),
            state,
            detail,
            dict(c.get("req") or {}),
            fcnt_down,
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def event_result(event: str, text: str) -> dict[str, Any] | None:
    """The record of an event of the shared queue (``acked``, ``failed``, ``expired``, ``expired_aw``) with
    its JSON: a command, or for a command that waited for its ACK, that wait ``{"raw", "attempts",
    "fcnt_down"}``."""
    if event == "expired":
        return command_result(text, "expired", DETAILS[event])
    try:
        wait = json.loads(text)
        raw, attempts, fcnt_down = str(wait["raw"]), int(wait["attempts"]), int(wait["fcnt_down"])
    except (ValueError, TypeError, KeyError):
        return None
    if event == "acked":
        return command_result(raw, "acked", "", fcnt_down)
    if event == "failed":
        return command_result(raw, "failed", f"no ACK after {attempts} attempts", fcnt_down)
    if event == "expired_aw":
        return command_result(raw, "expired", DETAILS[event], fcnt_down)
    return None
