"""The first half of a generated fast decoder: statements that read a :class:`.fastpath_schema.Schema`'s
members from the bytes into locals ``v<n>``, with the adapters' conversions inlined as expressions.

One :func:`struct.Struct.unpack_from` per run of fixed-size fields of one byte order, then the sentinel
test, an integer product or a single division, or a name table per value; no per-field function calls.
The code returns ``None`` on any mismatch (truncated, too long, a wrong constant), so construct parses
those bytes and raises its precise error. :mod:`.fastpath` adds the second half (the answer).
"""

from __future__ import annotations

import struct
from typing import Any

from havel.codecs.payload.fastpath_schema import WORD_CODES, Bits, Conv, Leaf, Member, Schema

_TABLE_BITS = 8  # a Choice over at most this many unsigned bits decodes through a tuple, not a dict


class Writer:
    """The generated function's lines and the constants (names -> objects) its code refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {}
        self.tables: dict[tuple[int, bool], str] = {}  # a Choice's name table, made once per function

    def add(self, line: str, depth: int = 1) -> None:
        self.lines.append("    " * depth + line)

    def const(self, prefix: str, value: Any) -> str:
        key = f"{prefix}{len(self.env)}"
        self.env[key] = value
        return key


def _expr(conv: Conv, raw: str, w: Writer, width: int | None = None) -> str:
    """The Python expression converting the raw integer expression ``raw`` (an atom) like construct."""
    if conv.kind == "int":
        return raw
    if conv.kind == "bool":
        return f"{raw} != 0"
    if conv.kind == "choice":
        table = width is not None and width <= _TABLE_BITS
        key = w.tables.get((id(conv), table))
        if key is None:
            names = (
                tuple(conv.names.get(i, f"unknown_{i}") for i in range(1 << width))
                if table and width is not None
                else dict(conv.names)
            )
            key = w.tables[(id(conv), table)] = w.const("C", names)
        if table:
            return f"{key}[{raw}]"
        return f"({key}[{raw}] if {raw} in {key} else f'unknown_{{{raw}}}')"
    # a Reading: the sentinel first, then an integer product or one division (as Reading._decode)
    if conv.num == 1 and conv.den == 1:
        scaled = raw
    elif conv.den == 1:
        scaled = f"{raw} * {conv.num}"
    elif conv.num == 1:
        scaled = f"{raw} / {conv.den}"
    else:
        scaled = f"{raw} * {conv.num} / {conv.den}"
    if conv.sentinel is None:
        return scaled
    return f"None if {raw} == {conv.sentinel!r} else {scaled}"


class _Cache(dict[int, struct.Struct]):
    """struct.Struct objects of one element format by element count, made on first use."""

    def __init__(self, order: str, code: str) -> None:
        super().__init__()
        self.fmt = order + "%d" + code

    def __missing__(self, n: int) -> struct.Struct:
        s = self[n] = struct.Struct(self.fmt % n)
        return s


def read_members(s: Schema, w: Writer) -> None:
    """Statements reading every member into locals ``v<n>`` (``return None`` on any mismatch)."""
    w.add("n = len(buf)")
    members = s.members
    offset: int | None = 0  # known statically until the first counted or conditional member
    i = 0
    while i < len(members):
        m = members[i]
        if isinstance(m, Leaf) and not m.fixed:
            _variable(m, w, offset, last=s.terminated and i == len(members) - 1)
            offset = None
            i += 1
            continue
        # a run of fixed-size members of one byte order: one unpack_from
        run: list[Member] = []
        order = ""
        while i < len(members):
            m = members[i]
            if isinstance(m, Leaf) and not m.fixed:
                break
            mo = ">" if isinstance(m, Bits) and m.nbytes > 1 else (m.order if isinstance(m, Leaf) else "")
            if mo and order and mo != order:
                break
            order = order or mo
            run.append(m)
            i += 1
        fmt, names, size = "", [], 0
        for m in run:
            if isinstance(m, Bits):
                fmt += WORD_CODES[m.nbytes]
                names.append(f"w{m.word}")
                size += m.nbytes
            else:
                count = 1 if m.count is None else m.count
                fmt += m.code if m.count is None else f"{m.count}{m.code}"
                names += [f"r{m.var}"] if m.count is None else [f"r{m.var}_{k}" for k in range(count)]
                size += m.size * count
        st = w.const("S", struct.Struct((order or ">") + fmt))
        at = str(offset) if offset is not None else "pos"
        end = str(offset + size) if offset is not None else f"pos + {size}"
        exact = s.terminated and i == len(members)
        w.add(f"if n {'!=' if exact else '<'} {end}: return None")
        if names:
            w.add(f"{', '.join(names)}, = {st}.unpack_from(buf, {at})")
        for m in run:
            if isinstance(m, Bits):
                _bits_locals(m, w)
            elif m.count is None:
                w.add(f"v{m.var} = {_expr(m.conv, f'r{m.var}', w, _width(m))}")
            else:
                items = ", ".join(_expr(m.conv, f"r{m.var}_{k}", w, _width(m)) for k in range(m.count))
                w.add(f"v{m.var} = [{items}]")
        if offset is not None:
            offset += size
        elif i < len(members):
            w.add(f"pos += {size}")
    if not members and s.terminated:
        w.add("if n: return None")
    # otherwise the last member checked the end itself (exactly when the Struct is Terminated)


def _width(m: Leaf) -> int | None:
    """The bit width of an unsigned byte leaf (a Choice table over it), None for a signed one."""
    return 8 * m.size if m.code.isupper() else None


def _bits_locals(m: Bits, w: Writer) -> None:
    word = f"w{m.word}"
    top = 8 * m.nbytes
    for _name, shift, width, conv, const, var in m.fields:
        mask = (1 << width) - 1
        if shift + width == top:
            raw = f"({word} >> {shift})" if shift else word
        else:
            raw = f"(({word} >> {shift}) & {mask})" if shift else f"({word} & {mask})"
        if const is not None:
            w.add(f"if {raw} != {const!r}: return None")
            w.add(f"v{var} = {const!r}")
            continue
        if conv.kind == "bool":
            w.add(f"v{var} = ({word} & {mask << shift}) != 0")
        else:
            w.add(f"v{var} = {_expr(conv, raw, w, width)}")


def _variable(m: Leaf, w: Writer, offset: int | None, last: bool) -> None:
    """A counted array or an If member, at ``offset`` (or ``pos``); leaves ``pos`` after it."""
    at = str(offset) if offset is not None else "pos"
    check = "!=" if last else "<"
    if m.cond is not None:
        st = w.const("S", struct.Struct((m.order or ">") + m.code))
        w.add(f"if v{m.cond}:")
        w.add(f"if n {check} {at} + {m.size}: return None", 2)
        w.add(f"r{m.var} = {st}.unpack_from(buf, {at})[0]", 2)
        w.add(f"v{m.var} = {_expr(m.conv, f'r{m.var}', w, _width(m))}", 2)
        w.add(f"pos = {at} + {m.size}", 2)
        w.add("else:")
        if last:
            w.add(f"if n != {at}: return None", 2)
        w.add(f"v{m.var} = None", 2)
        if offset is not None:
            w.add(f"pos = {offset}", 2)
        return
    cache = w.const("A", _Cache(m.order or ">", m.code))
    count = f"v{m.count_var}"
    w.add(f"c = {count}")
    w.add(f"end = {at} + c * {m.size}")
    w.add(f"if c < 0 or n {check} end: return None")
    w.add(f"t = {cache}[c].unpack_from(buf, {at})")
    conv = _expr(m.conv, "x", w, _width(m))
    w.add(f"v{m.var} = list(t)" if conv == "x" else f"v{m.var} = [{conv} for x in t]")
    w.add("pos = end")
