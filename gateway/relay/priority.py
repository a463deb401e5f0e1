"""Priority classes from configured rules over decoded data: alarm, state, background.

A rule (from ``[[relay.rules]]`` in the gateway config)::

    {name = "flood", class = "alarm", codec = "water", field = "level", op = ">=", value = 150}
    {name = "valve", class = "alarm", codec = "cooling", field = "faults.valve", op = "true"}
    {name = "heat", class = "alarm", codec = "temperature", field = "probes", op = ">", value = 35}
    {name = "levels", class = "state", codec = "water"}            # every water reading is state

``codec``/``device``/``dev_eui`` narrow a rule to some records; ``field``+``op``(+``value``) test one
data field (ops ``> >= < <= == != true false present``; ``faults.valve`` reaches into nested objects; a
list value, e.g. several temperature probes, matches when any element does; null never matches).
A record gets the highest class of all rules that match; ``background`` when none does. ``fields`` names
the data fields to relay (default: the rule's field, or all fields for a rule without one).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from havel.errors import ConfigError

CLASSES = ("alarm", "state", "background")
RANK = {c: i for i, c in enumerate(CLASSES)}  # lower rank = more important

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_UNARY = {"true", "false", "present"}


@dataclass(frozen=True)
class Rule:
    name: str
    cls: str
    codec: str | None = None
    device: str | None = None
    dev_eui: str | None = None
    field: str | None = None
    op: str | None = None
    value: Any = None
    fields: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, d: dict[str, Any], index: int = 0) -> Rule:
        where = f"relay.rules[{index}]"
        known = {"name", "class", "codec", "device", "dev_eui", "field", "op", "value", "fields"}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
                hint=f"allowed: {', '.join(sorted(known))}",
            )
        klass = d.get("class")
        if klass not in CLASSES:
            raise ConfigError(f"{where}.class must be one of {', '.join(CLASSES)}, got {klass!r}")
        op = d.get("op")
        fld = d.get("field")
        if fld is not None and op is None:
            raise ConfigError(f"{where}: 'field' needs 'op' ({', '.join([*_OPS, *_UNARY])})")
        if op is not None:
            if fld is None:
                raise ConfigError(f"{where}: 'op' needs 'field'")
            if op not in _OPS and op not in _UNARY:
                raise ConfigError(f"{where}.op {op!r} is not one of {', '.join([*_OPS, *_UNARY])}")
            if op in _OPS and "value" not in d:
                raise ConfigError(f"{where}: op {op!r} needs 'value'")
        fields = d.get("fields")
        if fields is not None and (
            not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)
        ):
            raise ConfigError(f"{where}.fields must be a list of field names")
        return cls(
            name=str(d.get("name") or f"rule{index}"),
            cls=klass,
            codec=d.get("codec"),
            device=d.get("device"),
            dev_eui=(d.get("dev_eui") or "").upper() or None,
            field=fld,
            op=op,
            value=d.get("value"),
            fields=tuple(fields or ([fld] if fld else [])),
        )

    def matches(self, payload: dict[str, Any]) -> bool:
        if self.codec is not None and payload.get("codec") != self.codec:
            return False
        if self.device is not None and payload.get("device") != self.device:
            return False
        if self.dev_eui is not None and str(payload.get("dev_eui", "")).upper() != self.dev_eui:
            return False
        if self.field is None:
            return True
        found, v = lookup(payload.get("data") or {}, self.field)
        if not found:
            return False
        if self.op == "present":
            return True
        values = v if isinstance(v, list) else [v]  # a list (several probes) matches if any element does
        return any(self._test(x) for x in values)

    def _test(self, v: Any) -> bool:
        if self.op == "true":
            return v is True or v == 1
        if self.op == "false":
            return v is False or v == 0
        if v is None or isinstance(v, bool):
            return False
        try:
            return bool(_OPS[str(self.op)](v, self.value))
        except TypeError:
            return False  # a string where a number was expected: not this rule


def lookup(data: Any, path: str) -> tuple[bool, Any]:
    """``data["faults"]["valve"]`` for the path ``faults.valve``; (False, None) when absent."""
    cur = data
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


@dataclass(frozen=True)
class Classification:
    cls: str
    rule: str | None = None
    fields: tuple[str, ...] = field(default_factory=tuple)


class Classifier:
    """Applies the rules to a json-scheme payload."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    @classmethod
    def from_config(cls, rules: list[dict[str, Any]]) -> Classifier:
        for i, r in enumerate(rules):
            if not isinstance(r, dict):
                raise ConfigError(
                    f"relay.rules[{i}] must be a table, not {r!r:.40}", hint="{name = ..., ...}"
                )
        return cls([Rule.from_config(r, i) for i, r in enumerate(rules)])

    def classify(self, payload: dict[str, Any]) -> Classification:
        best: Rule | None = None
        for rule in self.rules:
            if rule.matches(payload) and (best is None or RANK[rule.cls] < RANK[best.cls]):
                best = rule
        if best is None:
            return Classification("background")
        return Classification(best.cls, best.name, best.fields)
