"""Strict JSON (RFC 8259) for relayed messages: no NaN, Infinity or numbers beyond a double, no lone
surrogates, only the types JSON has. A relayed message is read before its signature is checked, so the
reader must refuse what another implementation would read differently."""

from __future__ import annotations

import json
import math
from typing import Any


def json_problem(value: Any) -> str | None:
    """What makes ``value`` unfit for strict JSON (RFC 8259) in UTF-8, or None: a NaN or infinity, text
    with a lone surrogate (``"\\ud800"`` parses, but is not Unicode text), a value JSON has no type for."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return "text that is not Unicode (a lone surrogate)"
        elif isinstance(v, float):
            if not math.isfinite(v):
                return "a number that is not finite"
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
        elif v is not None and not isinstance(v, bool | int):
            return f"a value of type {type(v).__name__}"
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:24]} is beyond a double")
    return value


def strict_json(text: str | bytes) -> Any:
    """``json.loads`` for what JSON (RFC 8259) allows only: no NaN, Infinity or numbers beyond a double,
    no lone surrogates. ValueError otherwise (UnicodeError, a ValueError, for text that is not Unicode)."""
    value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    problem = json_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def finite_number(x: Any) -> float | None:
    """``x`` as a float when it is a JSON number that is finite (and fits a float), else None."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    try:
        f = float(x)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return f if math.isfinite(f) else None
