"""The small shared base of Havel's node payload codecs.

Every node payload is one declarative ``construct`` Struct per port and direction (see docs/payloads.md).
This module gives those declarations their vocabulary:

- :class:`Reading`: a fixed-point integer at the sensor's real precision (``value = raw * step``), range
  checked and rounded half away from zero on encode; an optional sentinel raw value means "reading absent
  or faulty" and decodes to ``None`` (the codec then adds a warning), never to a plausible number.
- :class:`Bool` and :class:`Choice`: validated flags and small enumerations (names, not numbers).
- :func:`header`: the first byte of every node payload, the format version in the high nibble.
- :class:`Port` and :class:`NodeCodec`: the per-port schema with its units, and the decode/encode
  entry points with the TTN/ChirpStack-style output ``{"codec", "fport", "version", "data", "units",
  "warnings", "errors"}``.

Construct traps (measured on 2.10.70) that shape this code: a naive ``ExprAdapter`` scaling cannot build
from a float, so :class:`Reading` rounds itself; ``Switch`` with an unknown tag silently returns None, so
ports are looked up in a dict and unknown ones raise :class:`CodecError`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import construct as cs

from havel.errors import CodecError

#: The format version every payload documented in docs/payloads.md carries in its high nibble.
VERSION = 1

Data = dict[str, Any]


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


# --- ports and codecs ---------------------------------------------------------------------------------------

Direction = str  # "up" | "down"


_NESTED = (dict, list)  # a tuple, not ``dict | list``: that expression builds a new union on every call


def _plain(obj: Any) -> Any:
    """A parsed construct Container as plain dicts/lists, keys starting with '_' dropped."""
    # scalars are kept inline rather than passed through a call each
    if isinstance(obj, dict):
        return {
            k: _plain(v) if isinstance(v, _NESTED) else v for k, v in obj.items() if not k.startswith("_")
        }
    if isinstance(obj, list):
        return [_plain(v) if isinstance(v, _NESTED) else v for v in obj]
    return obj


@dataclass(frozen=True)
class Field:
    """One value of a port's ``data`` read from the parsed struct (see :class:`Port` ``view``).

    ``path`` names it with dots ("_header.alarm"); ``null_if`` names a flag that makes the value None
    whatever the bytes say (a sensor reporting a fault); ``only_if`` names a flag without which the key is
    left out of ``data`` (a sensor that is not fitted).
    """

    path: str
    null_if: str | None = None
    only_if: str | None = None


#: ``data`` described by where each key comes from: a dotted path (str), a :class:`Field`, or a nested view
#: (a nested object in ``data``), in the key order of ``data``.
View = Mapping[str, Any]


def view_fields(view: View) -> list[tuple[str, Field | View]]:
    """``view`` with every leaf as a :class:`Field` (nested views stay mappings), in key order."""
    return [(key, spec if isinstance(spec, Field | Mapping) else Field(spec)) for key, spec in view.items()]


def _at(c: Any, path: str) -> Any:
    for part in path.split("."):
        c = c[part]  # item access: construct's Container and the fast path's plain dicts alike
    return c


class ViewToData:
    """The ``to_data`` glue a view describes (the fast path inlines the same view, fastpath.py)."""

    def __init__(self, view: View) -> None:
        self.view = view
        self._fields = [
            (key, spec if isinstance(spec, Field) else ViewToData(spec)) for key, spec in view_fields(view)
        ]

    def __call__(self, c: Any) -> Data:
        out: Data = {}
        for key, spec in self._fields:
            if not isinstance(spec, Field):
                out[key] = spec(c)  # a nested view
                continue
            if spec.only_if is not None and not _at(c, spec.only_if):
                continue
            if spec.null_if is not None and _at(c, spec.null_if):
                out[key] = None
            else:
                value = _at(c, spec.path)
                out[key] = _plain(value) if isinstance(value, _NESTED) else value
        return out


@dataclass(frozen=True)
class Port:
    """One payload of a codec: its FPort, direction, schema, units and the glue between bytes and data.

    ``to_data`` turns the parsed Container into the ``data`` object (default: drop ``_``-prefixed keys);
    ``view`` says the same declaratively (where each key of ``data`` comes from, see :class:`Field`) and
    then gives ``to_data``; ``from_data`` turns ``data`` into what the Struct builds from (default:
    ``data`` itself). ``check`` looks at decoded data and returns (warnings, errors) beyond absent readings.
    """

    fport: int | None  # None: any application port (1..223)
    direction: Direction
    name: str
    summary: str
    struct: cs.Construct
    units: Mapping[str, Any]
    keys: tuple[str, ...]
    to_data: Callable[[Any], Data] = _plain
    from_data: Callable[[Data], Any] = dict
    check: Callable[[Data], tuple[list[str], list[str]]] | None = None
    view: View | None = None

    def __post_init__(self) -> None:
        if self.view is not None:
            derived = isinstance(self.to_data, ViewToData) and self.to_data.view is self.view  # replace()
            if self.to_data is not _plain and not derived:
                raise ValueError(f"{self.name}: give to_data or view, not both")
            object.__setattr__(self, "to_data", ViewToData(self.view))


def _null_warnings(data: Any, prefix: str = "") -> list[str]:
    """ "<field>: reading absent or faulty" for every None in ``data``, depth first in key order."""
    # a None or a container is looked at here, other scalars are skipped without a call each
    out: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if value is None:
                out.append(f"{prefix}{key}: reading absent or faulty")
            elif isinstance(value, _NESTED):
                out += _null_warnings(value, f"{prefix}{key}.")
    elif isinstance(data, list):
        base = prefix[:-1]
        for i, value in enumerate(data):
            if value is None:
                out.append(f"{base}[{i}]: reading absent or faulty")
            elif isinstance(value, _NESTED):
                out += _null_warnings(value, f"{base}[{i}].")
    elif data is None:
        out.append(f"{prefix[:-1]}: reading absent or faulty")
    return out


class Codec:
    """The interface every codec offers: ``decode``, ``encode``, ``ports``, ``name``."""

    name: str = ""
    summary: str = ""

    @property
    def ports(self) -> tuple[Port, ...]:
        raise NotImplementedError

    def decode(self, data: bytes, fport: int, direction: Direction = "up") -> dict[str, Any]:
        raise NotImplementedError

    def encode(self, data: Mapping[str, Any], fport: int | None = None, direction: Direction = "up") -> bytes:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<codec {self.name}>"


def check_direction(direction: str) -> None:
    """Raise CodecError unless ``direction`` is "up" or "down"."""
    if direction not in ("up", "down"):
        raise CodecError(f"direction {direction!r} is neither 'up' nor 'down'")


class NodeCodec(Codec):
    """A codec made of :class:`Port` schemas, one per (FPort, direction), all carrying the version nibble."""

    def __init__(
        self,
        name: str,
        summary: str,
        ports: Iterable[Port],
        *,
        compiled: bool = False,
        fast: bool | None = None,
    ) -> None:
        self.name = name
        self.summary = summary
        self._ports: dict[tuple[int, str], Port] = {}
        for p in ports:
            if p.fport is None:
                raise ValueError(f"{name}: node codec ports have a fixed FPort ({p.name})")
            self._ports[(p.fport, p.direction)] = p
        # construct's compile() turns the Struct into generated Python; kept per port and used on decode
        # when asked for (bench/payloads.py measures both).
        self._compiled: dict[tuple[int, str], Any] = {}
        if compiled:
            self.use_compiled()
        # the decoders generated from the same Structs (codecs/payload/fastpath.py): tried first, construct
        # parses whatever they do not take (and raises the errors). On unless turned off, or unless
        # construct's compiled parsers were asked for here (then those are what decodes; a later
        # use_compiled() keeps the fast path in front of them). ``_fast`` parses (for bytearray input and
        # the glue), ``_whole`` gives the whole answer for bytes input (the hot path).
        self._fast: dict[tuple[int, str], Callable[[bytes], Any]] = {}
        self._whole: dict[tuple[Any, str], Callable[[bytes, int], dict[str, Any] | None]] = {}
        if fast or (fast is None and not compiled):
            self.use_fast()

    def use_fast(self, on: bool = True) -> None:
        """Decode well-formed payloads with the generated fast path (on by default), or stop doing so."""
        from havel.codecs.payload.fastpath import derive, derive_decoder  # imports this module: late

        fast: dict[tuple[int, str], Callable[[bytes], Any]] = {}
        whole: dict[tuple[Any, str], Callable[[bytes, int], dict[str, Any] | None]] = {}
        if on:
            for key, p in self._ports.items():
                fn = derive(p.struct)
                if fn is not None:
                    fast[key] = fn
                dec = derive_decoder(self.name, p)
                if dec is not None:
                    whole[key] = dec
        self._fast, self._whole = fast, whole

    def use_compiled(self) -> None:
        """Decode through ``struct.compile()`` from now on (encoding keeps the plain Structs)."""
        self._compiled = {key: p.struct.compile() for key, p in self._ports.items()}

    @property
    def ports(self) -> tuple[Port, ...]:
        return tuple(sorted(self._ports.values(), key=lambda p: (p.direction != "up", p.fport)))

    def port(self, fport: int | None, direction: Direction) -> Port:
        """The schema of ``fport`` in ``direction`` (CodecError naming the known ones otherwise)."""
        if fport is not None and (direction == "up" or direction == "down"):
            port = self._ports.get((fport, direction))
            if port is not None:
                return port
        check_direction(direction)
        known = sorted(fp for fp, d in self._ports if d == direction)
        if fport is None:
            raise CodecError(
                f"{self.name}: which FPort? {direction}link ports are {known}", hint="pass --fport"
            )
        raise CodecError(
            f"{self.name}: no {direction}link payload on FPort {fport}; {direction}link ports are {known}"
        )

    def decode(self, data: bytes, fport: int, direction: Direction = "up") -> dict[str, Any]:
        """Decode ``data`` received on ``fport``; CodecError for unknown port/version or unreadable bytes."""
        # the hot path: a generated decoder for this port takes well-formed bytes whole (None otherwise)
        try:
            whole = self._whole.get((fport, direction))
        except TypeError:  # an unhashable argument: the general path says what is wrong with it
            whole = None
        if whole is not None and data.__class__ is bytes:
            out = whole(data, fport)
            if out is not None:
                return out
        return self._decode(data, fport, direction)

    def _decode(self, data: bytes, fport: int, direction: Direction) -> dict[str, Any]:
        """The general decode: checks in order, the fast parser or construct, then the port's glue."""
        port = self.port(fport, direction)
        if not isinstance(data, bytes | bytearray):
            raise CodecError(f"{self.name}: expected bytes, got {type(data).__name__}")
        if not data:
            raise CodecError(f"{self.name} FPort {fport}: empty payload")
        version = data[0] >> 4
        if version != VERSION:
            raise CodecError(
                f"{self.name} FPort {fport}: unknown payload version {version} "
                f"(this decoder reads version {VERSION})",
                hint="update Havel or check the node's firmware",
            )
        fast = self._fast.get((fport, direction))
        parsed = fast(bytes(data)) if fast is not None else None
        if parsed is None:
            # bytes the fast path turned down are malformed (it takes every well-formed payload): the plain
            # Struct then, whose errors are precise; construct's compiled parsers misread short input (a
            # Flag past the end reads as true, a short integer raises struct.error)
            parsed = self._parse(port, fport, direction, data, compiled=fast is None)
        out = port.to_data(parsed)
        warnings = _null_warnings(out)
        errors: list[str] = []
        if port.check is not None:
            more_w, more_e = port.check(out)
            warnings += more_w
            errors += more_e
        return {
            "codec": self.name,
            "fport": fport,
            "version": VERSION,
            "data": out,
            "units": dict(port.units),
            "warnings": warnings,
            "errors": errors,
        }

    def _parse(
        self, port: Port, fport: int, direction: Direction, data: bytes | bytearray, compiled: bool = True
    ) -> Any:
        """Parse with construct (compiled when asked for); CodecError for bytes it cannot read."""
        schema = self._compiled.get((fport, direction), port.struct) if compiled else port.struct
        try:
            parsed = schema.parse(bytes(data))
        except (cs.StreamError, struct.error):
            # compiled parsers read with io.read(n) and unpack: a short read is struct.error, not StreamError
            raise CodecError(
                f"{self.name} FPort {fport} ({port.name}): payload of {len(data)} bytes is truncated"
            ) from None
        except cs.TerminatedError:
            expected = _static_size(port.struct)
            more = f" (expected {expected})" if expected is not None else ""
            raise CodecError(
                f"{self.name} FPort {fport} ({port.name}): {len(data)} bytes is too long{more}"
            ) from None
        except cs.ConstructError as exc:
            raise CodecError(
                f"{self.name} FPort {fport} ({port.name}): unreadable payload: {str(exc).splitlines()[-1]}"
            ) from None
        return parsed

    def encode(self, data: Mapping[str, Any], fport: int | None = None, direction: Direction = "up") -> bytes:
        """Encode ``data`` (the ``data`` object of decode); CodecError naming the field and the problem."""
        check_direction(direction)
        if fport is None:
            # Without a port: the only one in that direction, or the readings uplink.
            candidates = [p for p in self._ports.values() if p.direction == direction]
            if len(candidates) != 1:
                candidates = [p for p in candidates if p.name == "readings"]
            if len(candidates) != 1:
                self.port(None, direction)  # raises, naming the ports
            port = candidates[0]
        else:
            port = self.port(fport, direction)
        if not isinstance(data, Mapping):
            raise CodecError(f"{self.name} {port.name}: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(port.keys))
        if unknown:
            raise CodecError(
                f"{self.name} {port.name}: unknown field(s) {', '.join(unknown)}; "
                f"fields are {', '.join(port.keys) or '(none)'}"
            )
        try:
            obj = port.from_data(dict(data))
            return bytes(port.struct.build(obj))
        except KeyError as exc:
            raise CodecError(f"{self.name} {port.name}: missing field {exc.args[0]}") from None
        except (TypeError, AttributeError) as exc:
            raise CodecError(f"{self.name} {port.name}: malformed data: {exc}") from None
        except cs.ConstructError as exc:
            raise CodecError(f"{self.name} {port.name}: cannot encode: {str(exc).splitlines()[-1]}") from None


def _static_size(struct: cs.Construct) -> int | None:
    try:
        return int(struct.sizeof())
    except cs.SizeofError:
        return None


def sub(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``data[key]`` as a dict (CodecError naming the key when it is missing or not an object)."""
    value = data[key]
    if not isinstance(value, dict):
        raise CodecError(f"{key}: expected an object, got {value!r}")
    return value


def flags_of(data: Mapping[str, Any], key: str, names: Iterable[str]) -> dict[str, Any]:
    """The flags object ``data[key]`` with exactly ``names`` (CodecError for unknown or missing ones)."""
    value = sub(data, key)
    names = tuple(names)
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise CodecError(f"{key}: unknown flag(s) {', '.join(unknown)}; flags are {', '.join(names)}")
    missing = [n for n in names if n not in value]
    if missing:
        raise CodecError(f"{key}: missing flag(s) {', '.join(missing)}")
    return value
