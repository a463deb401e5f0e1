"""The field types of Havel's node payload schemas: the vocabulary every codec's construct Structs use.

- :class:`Reading`: a fixed-point integer at the sensor's real precision (``value = raw * step``), range
  checked and rounded half away from zero on encode; an optional sentinel raw value means "reading absent
  or faulty" and decodes to ``None`` (the codec then adds a warning), never to a plausible number.
- :class:`Bool` and :class:`Choice`: validated flags and small enumerations (names, not numbers).
- :func:`header`: the first byte of every node payload, the format version in the high nibble.
- :func:`temperature_c`, :func:`humidity_half_percent`, :func:`battery_mv`: fields several codecs share.

Construct trap (measured on 2.10.70) that shapes this code: a naive ``ExprAdapter`` scaling cannot build
from a float, so :class:`Reading` rounds itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import construct as cs

from havel.errors import CodecError

#: The format version every payload documented in docs/payloads.md carries in its high nibble.
VERSION = 1


def field_name(path: str) -> str:
    """The field a construct ``path`` ("(building) -> faults -> pm") points at, as "faults.pm"."""
    parts = [p.strip() for p in path.split("->")[1:]]
    return ".".join(p for p in parts if p and not p.startswith("_")) or "value"


def round_half_away(x: float) -> int:
    """Round half away from zero (what firmware written as ``int(x + 0.5)`` for positives does)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Reading(cs.Adapter):
    """A reading stored as a fixed-point integer: ``value = raw * step``.

    ``step`` is a decimal string ("0.1", "0.5", "20") so that decoding divides by an integer and gives
    the shortest decimal (215 -> 21.5, never 21.500000000000004). ``lo``/``hi`` are the valid range in
    engineering units; ``sentinel`` (a raw value outside that range) says "reading absent or faulty"
    and maps to and from ``None``.
    """

    def __init__(
        self,
        subcon: cs.Construct,
        step: str = "1",
        *,
        lo: float,
        hi: float,
        sentinel: int | None = None,
        unit: str | None = None,
        saturate_high: bool = False,
    ) -> None:
        super().__init__(subcon)
        # a reading above the range is a real reading (a full battery on a charger): sent as the top
        # value, not as the sentinel ("absent") and not refused
        self.saturate_high = saturate_high
        frac = Fraction(step)
        self.num, self.den = frac.numerator, frac.denominator
        self.lo, self.hi = lo, hi
        self.sentinel = sentinel
        self.unit = unit
        self.step = step

    @property
    def nullable(self) -> bool:
        return self.sentinel is not None

    def _decode(self, obj: int, context: Any, path: str) -> int | float | None:
        if self.sentinel is not None and obj == self.sentinel:
            return None
        if self.den == 1:
            return obj * self.num
        return obj * self.num / self.den

    def _encode(self, obj: Any, context: Any, path: str) -> int:
        name = field_name(path)
        if obj is None:
            if self.sentinel is None:
                raise CodecError(f"{name}: a value is required here (this field cannot be null)")
            return self.sentinel
        if not _is_number(obj):
            raise CodecError(f"{name}: expected a number, got {type(obj).__name__} {obj!r}")
        if isinstance(obj, float) and not math.isfinite(obj):
            raise CodecError(f"{name}: {obj!r} is not a finite number")
        unit = f" {self.unit}" if self.unit else ""
        if self.saturate_high and obj > self.hi:
            obj = self.hi
        if not self.lo <= obj <= self.hi:
            raise CodecError(
                f"{name}: {obj}{unit} is out of range {self.lo}..{self.hi}{unit}",
                hint="null means 'reading absent or faulty'" if self.nullable else None,
            )
        return round_half_away(obj * self.den / self.num)


class Bool(cs.Adapter):
    """A flag that only takes true/false on encode (``Flag`` would take any truthy value)."""

    def _decode(self, obj: bool, context: Any, path: str) -> bool:
        return bool(obj)

    def _encode(self, obj: Any, context: Any, path: str) -> bool:
        if not isinstance(obj, bool):
            raise CodecError(f"{field_name(path)}: expected true or false, got {obj!r}")
        return obj


class Choice(cs.Adapter):
    """A small enumeration given by name; raw values without a name decode as ``unknown_<n>``."""

    def __init__(self, subcon: cs.Construct, names: Mapping[str, int]) -> None:
        super().__init__(subcon)
        self.names = dict(names)
        self.by_value = {v: k for k, v in self.names.items()}

    def _decode(self, obj: int, context: Any, path: str) -> str:
        return self.by_value.get(obj, f"unknown_{obj}")

    def _encode(self, obj: Any, context: Any, path: str) -> int:
        if isinstance(obj, str) and obj.startswith("unknown_") and obj[8:].isdigit():
            raw = int(obj[8:])  # what decode gave for an unnamed value: re-encode it unchanged
            if raw not in self.by_value:
                return raw
        if obj not in self.names:
            allowed = ", ".join(repr(n) for n in self.names)
            raise CodecError(f"{field_name(path)}: {obj!r} is not one of {allowed}")
        return self.names[obj]


def header(*flags: cs.Construct) -> cs.Construct:
    """First byte of every node payload: version (high nibble, = 1) then four bits given by ``flags``.

    ``flags`` are bit-level subcons (``"name" / Bool(cs.Flag)``, ``cs.BitsInteger(n)``, ``cs.Padding(n)``),
    most significant first, and must add up to 4 bits; with none, the low nibble is reserved (zero).
    """
    rest = flags or (cs.Padding(4),)
    return "_header" / cs.BitStruct("version" / cs.Const(VERSION, cs.BitsInteger(4)), *rest)


def described(name: str, subcon: cs.Construct, docs: str) -> cs.Construct:
    """``name / subcon`` with a meaning for the layout tables of docs/payloads.md (codecs/payload/layout.py).

    One ``Renamed`` (construct's ``"name" / subcon * "docs"`` would nest two), so every walker of the
    schemas sees the same shape as a plain ``"name" / subcon``."""
    return cs.Renamed(subcon, newname=name, newdocs=docs)


# --- shared field types (one place, so every codec writes a battery the same way) ------------------------


def temperature_c(lo: float = -40.0, hi: float = 85.0) -> Reading:
    """Temperature, 0.1 Cel, int16 big-endian, 0x8000 = absent or faulty."""
    return Reading(cs.Int16sb, "0.1", lo=lo, hi=hi, sentinel=-0x8000, unit="Cel")


def humidity_half_percent() -> Reading:
    """Relative humidity, 0.5 %, uint8, 0xFF = absent or faulty."""
    return Reading(cs.Int8ub, "0.5", lo=0, hi=100, sentinel=0xFF, unit="%")


def battery_mv() -> Reading:
    """Battery voltage, 20 mV steps, uint8 (0..5080 mV), 0xFF = absent (mains powered) or faulty;
    above 5080 mV is sent as 254 (5080 mV), as the firmware does."""
    return Reading(cs.Int8ub, "20", lo=0, hi=5080, sentinel=0xFF, unit="mV", saturate_high=True)
