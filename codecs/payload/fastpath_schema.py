"""The fast path's view of a construct schema: a port's Struct as a flat list of members.

:class:`Schema` walks a top-level Struct and, when every part is one the fast path knows (byte-aligned
integers, bit-packed words, fixed or counted arrays, ``If`` on an earlier field, and the
:class:`~havel.codecs.payload.fields.Reading` / ``Bool`` / ``Choice`` adapters), gives each value a local
variable number and the conversion of its raw integer; anything else raises :class:`Unsupported` and the
port keeps parsing through construct. :mod:`.fastpath_read` and :mod:`.fastpath` write code from it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import construct as cs

from havel.codecs.payload.bitstruct import NotPlain, bit_fields
from havel.codecs.payload.fields import Bool, Choice, Reading

_INT_CODES = "bBhHiIlLqQ"
WORD_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}  # a bit-packed word of n bytes, read big-endian
_MAX_INLINE = 64  # fixed arrays up to this many elements get one local per element


class Unsupported(Exception):
    """A schema part the fast path does not know: the port keeps construct."""


@dataclass
class Conv:
    """The conversion of one raw integer, as construct's adapters do it."""

    kind: str  # "int" (none), "reading", "bool" (Flag, Bool: raw != 0), "choice"; "list": an array's value
    sentinel: int | None = None
    num: int = 1
    den: int = 1
    names: dict[int, str] = field(default_factory=dict)

    @property
    def nullable(self) -> bool:
        return self.kind == "reading" and self.sentinel is not None

    @property
    def integral(self) -> bool:
        """Always an int (what an Array count or an If needs to be evaluated here)."""
        return self.kind == "int" or (self.kind == "reading" and self.sentinel is None and self.den == 1)


@dataclass
class Bits:
    """A BitStruct: a big-endian word of ``nbytes`` and its fields, most significant first."""

    name: str | None
    nbytes: int
    fields: list[tuple[str, int, int, Conv, Any, int]]  # name, shift, width, conversion, constant, var
    word: int  # the var of the raw word


@dataclass
class Leaf:
    """A byte-aligned integer (``count`` None), a fixed array (int) or a counted one (the var of its count);
    ``cond`` is the var an ``If`` tests (the value is None when it is false)."""

    name: str
    order: str
    code: str
    size: int
    conv: Conv
    var: int
    count: int | None = None
    count_var: int | None = None
    cond: int | None = None

    @property
    def fixed(self) -> bool:
        return self.count_var is None and self.cond is None


Member = Bits | Leaf


def _conv(sc: Any) -> tuple[Any, Conv]:
    """Peel the project's adapters off ``sc``: the bare leaf and the conversion of its raw value."""
    if isinstance(sc, Reading | Bool | Choice):
        leaf = sc.subcon
        if isinstance(leaf, cs.Adapter | cs.Renamed):
            raise Unsupported("an adapter over an adapter")
        if leaf is cs.Flag and not isinstance(sc, Bool):
            raise Unsupported("a Reading or Choice over a Flag (they would see True/False, not 1/0)")
        if isinstance(sc, Reading):
            return leaf, Conv("reading", sc.sentinel, sc.num, sc.den)
        if isinstance(sc, Bool):
            return leaf, Conv("bool")
        return leaf, Conv("choice", names=dict(sc.by_value))
    if isinstance(sc, cs.Adapter | cs.Renamed):
        raise Unsupported(f"adapter {type(sc).__name__}")
    return sc, Conv("bool") if sc is cs.Flag else Conv("int")


def _byte_leaf(sc: Any) -> tuple[str, str, int, Conv]:
    """A byte-aligned integer leaf: its byte order, struct code, size and conversion."""
    leaf, conv = _conv(sc)
    if leaf is cs.Flag:
        return "", "B", 1, conv  # Flag reads one byte: anything but 0x00 is true
    if isinstance(leaf, cs.FormatField):
        fmt = leaf.fmtstr
        if (
            len(fmt) != 2
            or fmt[0] not in "<>="
            or fmt[1] not in _INT_CODES
            or struct.calcsize(fmt) != leaf.length
        ):
            raise Unsupported(f"format {fmt}")
        return ("" if leaf.length == 1 else fmt[0]), fmt[1], leaf.length, conv
    raise Unsupported(f"leaf {type(leaf).__name__}")


class _PathRecorder:
    """A stand-in context: evaluating a construct ``this`` path against it records the keys it looks up."""

    __slots__ = ("keys",)

    def __init__(self, keys: tuple[Any, ...] = ()) -> None:
        self.keys = keys

    def __getitem__(self, key: Any) -> _PathRecorder:
        return _PathRecorder((*self.keys, key))


def _path(expr: Any) -> tuple[str, ...]:
    """``this.a.b`` as ("a", "b"); anything else (lambdas, expressions, ``this._``) is Unsupported.

    A ``Path`` is a function of the context (construct calls it with the parsed context and it looks each
    field up by item access), so calling it with a recorder gives its field names through that public
    behaviour, without reading the Path's own attributes.
    """
    if not isinstance(expr, cs.Path) or str(expr).partition("[")[0] != "this":
        raise Unsupported("a count or condition that is not a plain this.field path")
    found = expr(_PathRecorder())
    names = found.keys if isinstance(found, _PathRecorder) else ()
    if not names or "_" in names or not all(isinstance(n, str) for n in names):
        raise Unsupported("a path to the parent context")
    return tuple(names)


class Schema:
    """The members of a Struct, each value with a local variable number, and the paths that name them."""

    def __init__(self, schema: cs.Construct) -> None:
        if not isinstance(schema, cs.Struct):
            raise Unsupported("not a Struct")
        subcons = list(schema.subcons)
        self.terminated = bool(subcons) and subcons[-1] is cs.Terminated
        if self.terminated:
            subcons = subcons[:-1]
        self.members: list[Member] = []
        self.vars: dict[tuple[str, ...], tuple[int, Conv]] = {}
        self.optional: set[int] = set()  # the vars of If members (None when the condition is false)
        self.nvars = 0
        for sc in subcons:
            name = sc.name if isinstance(sc, cs.Renamed) else None
            self.members.append(self._member(name, sc.subcon if isinstance(sc, cs.Renamed) else sc))

    def _new(self, path: tuple[str, ...], conv: Conv) -> int:
        var = self.nvars
        self.nvars += 1
        self.vars[path] = (var, conv)
        return var

    def _ref(self, expr: Any, integral: bool) -> int:
        path = _path(expr)
        if path not in self.vars:
            raise Unsupported(f"path {'.'.join(path)} names no earlier field")
        var, conv = self.vars[path]
        if integral and not conv.integral:
            raise Unsupported("a count that is not an integer field")
        return var

    def _member(self, name: str | None, sc: Any) -> Member:
        if isinstance(sc, cs.Transformed):
            return self._bits(name, sc)
        if name is None:
            raise Unsupported("an unnamed member")
        if isinstance(sc, cs.Array):
            if sc.discard:
                raise Unsupported("a discarding array")
            order, code, size, conv = _byte_leaf(sc.subcon)
            if isinstance(sc.count, int):
                if not 0 <= sc.count <= _MAX_INLINE:
                    raise Unsupported("a long array")
                return Leaf(name, order, code, size, conv, self._new((name,), Conv("list")), count=sc.count)
            count_var = self._ref(sc.count, True)
            return Leaf(name, order, code, size, conv, self._new((name,), Conv("list")), count_var=count_var)
        if isinstance(sc, cs.IfThenElse):
            if sc.elsesubcon is not cs.Pass:
                raise Unsupported("IfThenElse other than If")
            cond = self._ref(sc.condfunc, False)
            order, code, size, conv = _byte_leaf(sc.thensubcon)
            var = self._new((name,), conv)
            self.optional.add(var)
            return Leaf(name, order, code, size, conv, var, cond=cond)
        order, code, size, conv = _byte_leaf(sc)
        return Leaf(name, order, code, size, conv, self._new((name,), conv))

    def _bits(self, name: str | None, sc: Any) -> Bits:
        if not (
            sc.decodefunc is cs.bytes2bits
            and isinstance(sc.subcon, cs.Struct)
            and isinstance(sc.decodeamount, int)
            and sc.decodeamount in WORD_CODES
        ):
            raise Unsupported("not a BitStruct of 1, 2, 4 or 8 bytes")
        nbytes = sc.decodeamount
        try:
            found = bit_fields(sc, _conv, lambda conv: conv.kind == "int")
        except NotPlain as exc:
            raise Unsupported(str(exc)) from None
        fields: list[tuple[str, int, int, Conv, Any, int]] = []
        for fname, shift, width, conv, const in found:
            path = (name, fname) if name is not None else ("", fname)
            fields.append((fname, shift, width, conv, const, self._new(path, conv)))
        word = self.nvars
        self.nvars += 1
        return Bits(name, nbytes, fields, word)
