"""Outbox priority classes of an uplink: which readings survive the quota and go first over the relay.

``classify`` holds the rules that depend on the kind of node; it is kept as one unit so those rules can be
replaced in one place."""

from __future__ import annotations

from typing import Any

_RANK = {"alarm": 0, "state": 1, "background": 2}


def higher(a: str, b: str) -> str:
    """The more important of two priority classes (an unknown class counts as background)."""
    return a if _RANK.get(a, 2) <= _RANK.get(b, 2) else b


def classify(codec: str, data: Any, fport: int | None) -> str:
    """Outbox priority: ``alarm`` when the payload says so (never dropped), ``state`` for actuator state
    and MAC-only frames, else ``background`` (routine readings, dropped first at the quota)."""
    if isinstance(data, dict):
        if data.get("alarm") or (data.get("alarm_level") or 0) > 0 or data.get("rising_fast"):
            return "alarm"
        if codec == "cooling":
            return "state"
    if fport is None or fport == 0:
        return "state"
    return "background"
