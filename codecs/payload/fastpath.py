"""A ``struct``-based fast decoder derived from a port's declarative construct schema.

The construct Struct stays the source of truth: :func:`derive` walks it and, when every part is one it
knows (byte-aligned integers, a bit-packed header, fixed or header-counted arrays, ``If`` on a header flag,
and the :class:`~havel.codecs.payload.base.Reading` / ``Bool`` / ``Choice`` adapters), returns a function
that parses the same bytes with :func:`struct.unpack_from` and plain integer arithmetic into the same
values construct would give (a dict with attribute access, like construct's ``Container``). Anything else
gives no fast decoder and the port keeps parsing through construct.

The fast decoder only handles well-formed input: on any mismatch (truncated, too long, a wrong constant) it
returns ``None`` and the caller parses with construct, which raises its precise error. So results and
errors are those of construct; tests/codecs/payload/test_payload_fastpath.py checks this on every vector
and on random bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import construct as cs

from havel.codecs.payload.base import Bool, Choice, Reading

__all__ = ["Parsed", "derive"]

Conv = Callable[[Any], Any]
# a step reads from (buffer, offset, the parsed object so far) and returns the new offset, or -1: no match
Step = Callable[[bytes, int, "Parsed"], int]


class Parsed(dict[str, Any]):
    """A parsed struct: a dict whose keys are also attributes (what the ports' glue reads)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Unsupported(Exception):
    """A schema part the fast path does not know: the port keeps construct."""


def _reading(a: Reading, inner: Conv | None) -> Conv:
    # exactly Reading._decode: the sentinel first, then an integer product or a single division
    sentinel, num, den = a.sentinel, a.num, a.den
    if den == 1:
        if sentinel is None:
            return lambda raw: raw * num
        return lambda raw: None if raw == sentinel else raw * num
    if sentinel is None:
        return lambda raw: raw * num / den
    return lambda raw: None if raw == sentinel else raw * num / den


def _adapters(sc: Any) -> tuple[Any, Conv | None]:
    """Peel the project's adapters off ``sc``: the bare leaf and the conversion of its raw value."""
    if isinstance(sc, Reading):
        leaf, inner = _adapters(sc.subcon)
        if inner is not None:
            raise Unsupported("a Reading over an adapter")
        return leaf, _reading(sc, None)
    if isinstance(sc, Bool):
        leaf, inner = _adapters(sc.subcon)
        if inner is not None:
            raise Unsupported("a Bool over an adapter")
        return leaf, bool
    if isinstance(sc, Choice):
        leaf, inner = _adapters(sc.subcon)
        if inner is not None:
            raise Unsupported("a Choice over an adapter")
        by_value = dict(sc.by_value)
        return leaf, lambda raw: by_value.get(raw, f"unknown_{raw}")
    if isinstance(sc, cs.Adapter | cs.Renamed):
        raise Unsupported(f"adapter {type(sc).__name__}")
    return sc, None


def _apply(conv: Conv | None, value: Any) -> Any:
    return value if conv is None else conv(value)


def _byte_leaf(sc: Any) -> tuple[struct.Struct, Conv | None]:
    """A byte-aligned leaf: its struct format and the conversion of its raw value."""
    leaf, conv = _adapters(sc)
    if isinstance(leaf, cs.FormatField):
        fmt = struct.Struct(leaf.fmtstr)
        if fmt.size != leaf.length or leaf.fmtstr[-1] not in "bBhHiIlLqQ":
            raise Unsupported(f"format {leaf.fmtstr}")
        return fmt, conv
    if leaf is cs.Flag:
        # Flag reads one byte: anything but 0x00 is true
        flag = struct.Struct("B")
        return flag, (lambda raw: raw != 0) if conv is None else (lambda raw: conv(raw != 0))
    raise Unsupported(f"leaf {type(leaf).__name__}")


def _bitstruct(sc: Any) -> tuple[int, list[tuple[str, int, int, Conv | None, Any]]]:
    """A BitStruct (``Transformed(Struct)`` over bytes2bits): its byte count and bit fields, most
    significant first, as (name, shift, mask, conversion, constant or None)."""
    if not (isinstance(sc, cs.Transformed) and sc.decodefunc is cs.bytes2bits
            and isinstance(sc.subcon, cs.Struct) and isinstance(sc.decodeamount, int)):
        raise Unsupported("not a BitStruct")
    nbytes = sc.decodeamount
    fields: list[tuple[str, int, int, Conv | None, Any]] = []
    pos = 0
    for sub in sc.subcon.subcons:
        name = sub.name if isinstance(sub, cs.Renamed) else None
        inner = sub.subcon if isinstance(sub, cs.Renamed) else sub
        const: Any = None
        if isinstance(inner, cs.Const):
            const = inner.value
            inner = inner.subcon
        if isinstance(inner, cs.Padded) and isinstance(inner.length, int) and name is None:
            pos += inner.length
            continue
        leaf, conv = _adapters(inner)
        if isinstance(leaf, cs.BitsInteger) and isinstance(leaf.length, int) and not leaf.signed \
                and not leaf.swapped:
            width = leaf.length
        elif leaf is cs.Flag and conv is bool:
            width = 1  # Bool(Flag): a one-bit flag is 0 or 1, bool() of it is what construct gives
        elif leaf is cs.Flag and conv is None:
            width, conv = 1, bool
        else:
            raise Unsupported(f"bit field {type(leaf).__name__}")
        if name is None:
            raise Unsupported("an unnamed bit field")
        pos += width
        fields.append((name, width, pos, conv, const))
    if pos != 8 * nbytes:
        raise Unsupported("bit fields do not fill the bytes")
    total = 8 * nbytes
    # (name, shift, mask, conv, const): shift from the least significant end
    return nbytes, [(n, total - end, (1 << w) - 1, c, k) for n, w, end, c, k in fields]


def _step(name: str | None, sc: Any) -> Step:
    """The step that parses one member ``name`` / ``sc`` of a Struct."""
    if isinstance(sc, cs.Transformed):
        nbytes, fields = _bitstruct(sc)

        def bits(buf: bytes, pos: int, obj: Parsed) -> int:
            end = pos + nbytes
            if end > len(buf):
                return -1
            word = int.from_bytes(buf[pos:end], "big")
            out = Parsed()
            for fname, shift, mask, conv, const in fields:
                raw = (word >> shift) & mask
                if const is not None and raw != const:
                    return -1
                out[fname] = raw if conv is None else conv(raw)
            if name is not None:
                obj[name] = out
            return end

        return bits
    if name is None:
        raise Unsupported("an unnamed member")
    if isinstance(sc, cs.Array):
        fmt, conv = _byte_leaf(sc.subcon)
        count = sc.count
        if sc.discard or not (isinstance(count, int) or callable(count)):
            raise Unsupported("array")
        code, size = fmt.format[1:], fmt.size
        order = fmt.format[0]
        formats: dict[int, struct.Struct] = {}

        def array(buf: bytes, pos: int, obj: Parsed) -> int:
            n = count(obj) if callable(count) else count
            if not isinstance(n, int) or n < 0:
                return -1
            f = formats.get(n)
            if f is None:
                f = formats[n] = struct.Struct(f"{order}{n}{code}")
            end = pos + n * size
            if end > len(buf):
                return -1
            raw = f.unpack_from(buf, pos)
            obj[name] = list(raw) if conv is None else [conv(v) for v in raw]
            return end

        return array
    if isinstance(sc, cs.IfThenElse):
        if sc.elsesubcon is not cs.Pass or not callable(sc.condfunc):
            raise Unsupported("IfThenElse other than If")
        cond = sc.condfunc
        fmt, conv = _byte_leaf(sc.thensubcon)

        def if_(buf: bytes, pos: int, obj: Parsed) -> int:
            if not cond(obj):
                obj[name] = None
                return pos
            end = pos + fmt.size
            if end > len(buf):
                return -1
            obj[name] = _apply(conv, fmt.unpack_from(buf, pos)[0])
            return end

        return if_
    fmt, conv = _byte_leaf(sc)
    assert fmt is not None
    size = fmt.size
    unpack = fmt.unpack_from

    def leaf(buf: bytes, pos: int, obj: Parsed) -> int:
        end = pos + size
        if end > len(buf):
            return -1
        raw = unpack(buf, pos)[0]
        obj[name] = raw if conv is None else conv(raw)
        return end

    return leaf


def derive(schema: cs.Construct) -> Callable[[bytes], Parsed | None] | None:
    """A fast decoder for ``schema`` (a top-level Struct), or None when a part of it is not supported.

    The decoder returns the parsed struct, or None when the bytes do not parse cleanly (parse those with
    construct to get its error).
    """
    if not isinstance(schema, cs.Struct):
        return None
    subcons = list(schema.subcons)
    terminated = bool(subcons) and subcons[-1] is cs.Terminated
    if terminated:
        subcons = subcons[:-1]
    try:
        steps = [
            _step(sc.name if isinstance(sc, cs.Renamed) else None,
                  sc.subcon if isinstance(sc, cs.Renamed) else sc)
            for sc in subcons
        ]
    except Unsupported:
        return None

    def decode(buf: bytes) -> Parsed | None:
        obj = Parsed()
        pos = 0
        for step in steps:
            pos = step(buf, pos, obj)
            if pos < 0:
                return None
        if terminated and pos != len(buf):
            return None
        return obj

    return decode
