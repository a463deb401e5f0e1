"""Outbox priority classes of an uplink: which readings survive the quota and go first over the relay.

``classify`` asks the node kind's declaration (``KIND`` in codecs/payload/<kind>.py: ``alarm_keys``,
``state``) which readings are alarms or actuator state; no kind is named here."""

from __future__ import annotations

from typing import Any

from havel.codecs.payload.registry import find_kind

_RANK = {"alarm": 0, "state": 1, "background": 2}
# a codec that is no node kind (cayenne-lpp): the node kinds' alarm keys, read the same way
_GENERIC_ALARM_KEYS = ("alarm", "alarm_level", "rising_fast")


def higher(a: str, b: str) -> str:
    """The more important of two priority classes (an unknown class counts as background)."""
    return a if _RANK.get(a, 2) <= _RANK.get(b, 2) else b


def classify(codec: str, data: Any, fport: int | None) -> str:
    """Outbox priority: ``alarm`` when the payload says so (never dropped), ``state`` for actuator state
    and MAC-only frames, else ``background`` (routine readings, dropped first at the quota)."""
    if isinstance(data, dict):
        kind = find_kind(codec)
        if kind is not None:
            cls = kind.priority(data)
            if cls is not None:
                return cls
        elif any(data.get(k) is True or _positive(data.get(k)) for k in _GENERIC_ALARM_KEYS):
            return "alarm"
    if fport is None or fport == 0:
        return "state"
    return "background"


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
