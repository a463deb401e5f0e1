"""Fast decoders generated from a port's declarative construct schema.

The construct Struct stays the source of truth: this module walks it and, when every part is one it knows
(byte-aligned integers, bit-packed words, fixed or counted arrays, ``If`` on an earlier field, and the
:class:`~havel.codecs.payload.fields.Reading` / ``Bool`` / ``Choice`` adapters), writes the Python source of
a decoder for exactly that layout and compiles it once: one :func:`struct.Struct.unpack_from` per run of
fixed-size fields, the adapters' conversions inlined as expressions (sentinel test, integer product or a
single division, a name table), no per-field function calls. Anything else gives no fast decoder and the
port keeps parsing through construct.

Two decoders come out of one schema:

- :func:`derive`: bytes -> the parsed struct as nested plain dicts, the keys construct's ``Container``
  would hold (without ``_io``), for a port's own ``to_data`` glue.
- :func:`derive_decoder`: bytes -> the whole ``codec.decode`` answer (``codec``, ``fport``, ``version``,
  ``data``, ``units``, ``warnings``, ``errors``). For a port whose ``data`` is the struct with its
  ``_``-keys dropped (the default glue) or is described by a view (``Port.view``: where each key comes
  from, which fault flag nulls it, which flag says it is there) the generated code builds ``data``
  directly and writes the "reading absent or faulty" warnings where it knows a value can be ``None`` (a
  sentinel, an unmet ``If``, a fault flag), in the order the generic walk would; other ports run their
  ``to_data`` glue on the parsed dicts and the generic walk. The port's ``check`` runs as it is.

Both only take well-formed input: on any mismatch (truncated, too long, a wrong constant) they return
``None`` and the caller parses with construct, which raises its precise error. So results and errors are
those of construct; tests/codecs/payload/test_payload_fastpath.py checks this on every vector and on
random bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import construct as cs

from havel.codecs.payload.fields import VERSION, Bool, Choice, Reading
from havel.codecs.payload.port import Field, Port, null_warnings, plain, view_fields

__all__ = ["derive", "derive_decoder", "source"]

Parse = Callable[[bytes], "dict[str, Any] | None"]
Decoder = Callable[[bytes, int], "dict[str, Any] | None"]

_INT_CODES = "bBhHiIlLqQ"
_WORD_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}  # a bit-packed word of n bytes, read big-endian
_MAX_INLINE = 64  # fixed arrays up to this many elements get one local per element
_TABLE_BITS = 8  # a Choice over at most this many unsigned bits decodes through a tuple, not a dict


class Unsupported(Exception):
    """A schema part the fast path does not know: the port keeps construct."""


# --- the schema as a list of members -----------------------------------------------------------------------


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


class _Schema:
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
            and sc.decodeamount in _WORD_CODES
        ):
            raise Unsupported("not a BitStruct of 1, 2, 4 or 8 bytes")
        nbytes = sc.decodeamount
        total = 8 * nbytes
        fields: list[tuple[str, int, int, Conv, Any, int]] = []
        pos = 0
        for sub in sc.subcon.subcons:
            fname = sub.name if isinstance(sub, cs.Renamed) else None
            inner = sub.subcon if isinstance(sub, cs.Renamed) else sub
            const: Any = None
            if isinstance(inner, cs.Const):
                const = inner.value
                inner = inner.subcon
            if (
                isinstance(inner, cs.Padded)
                and inner.subcon is cs.Pass
                and isinstance(inner.length, int)
                and fname is None
            ):
                pos += inner.length  # Padding: read and ignored, like construct
                continue
            leaf, conv = _conv(inner)
            if (
                isinstance(leaf, cs.BitsInteger)
                and isinstance(leaf.length, int)
                and not leaf.signed
                and not leaf.swapped
            ):
                width = leaf.length
            elif leaf is cs.Flag:
                width = 1  # in a BitStruct a Flag is one bit: 1 is true
            else:
                raise Unsupported(f"bit field {type(leaf).__name__}")
            if fname is None:
                raise Unsupported("an unnamed bit field")
            if const is not None and (conv.kind != "int" or not isinstance(const, int)):
                raise Unsupported("a constant over an adapter")
            pos += width
            path = (name, fname) if name is not None else ("", fname)
            fields.append((fname, total - pos, width, conv, const, self._new(path, conv)))
        if pos != total:
            raise Unsupported("bit fields do not fill the bytes")
        word = self.nvars
        self.nvars += 1
        return Bits(name, nbytes, fields, word)


# --- code generation -------------------------------------------------------------------------------------


class _Writer:
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


def _expr(conv: Conv, raw: str, w: _Writer, width: int | None = None) -> str:
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


def _body(s: _Schema, w: _Writer) -> None:
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
                fmt += _WORD_CODES[m.nbytes]
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


def _bits_locals(m: Bits, w: _Writer) -> None:
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


def _variable(m: Leaf, w: _Writer, offset: int | None, last: bool) -> None:
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


def _parsed_literal(s: _Schema) -> str:
    """The nested dict literal of the parsed struct (construct's Container keys, without ``_io``)."""
    parts = []
    for m in s.members:
        if isinstance(m, Bits):
            if m.name is not None:
                inner = ", ".join(f"{f[0]!r}: v{f[5]}" for f in m.fields)
                parts.append(f"{m.name!r}: {{{inner}}}")
        else:
            parts.append(f"{m.name!r}: v{m.var}")
    return "{" + ", ".join(parts) + "}"


def _plain_data(s: _Schema, w: _Writer) -> None:
    """``data`` and ``warnings`` exactly as ``plain`` then ``null_warnings`` would give them."""
    parts = []
    w.add("warnings = []")
    for m in s.members:
        if m.name is None or m.name.startswith("_"):
            continue
        if isinstance(m, Bits):
            inner = ", ".join(f"{f[0]!r}: v{f[5]}" for f in m.fields if not f[0].startswith("_"))
            parts.append(f"{m.name!r}: {{{inner}}}")
            for f in m.fields:
                if not f[0].startswith("_") and f[3].nullable:
                    w.add(f"if v{f[5]} is None: warnings.append({_absent(m.name + '.' + f[0])})")
            continue
        parts.append(f"{m.name!r}: v{m.var}")
        if m.count is not None or m.count_var is not None:
            if m.conv.nullable:
                w.add(f"if None in v{m.var}:")
                w.add(
                    f"warnings += [f'{m.name}[{{i}}]: reading absent or faulty' "
                    f"for i, x in enumerate(v{m.var}) if x is None]",
                    2,
                )
        elif m.conv.nullable or m.cond is not None:
            w.add(f"if v{m.var} is None: warnings.append({_absent(m.name)})")
    w.add("data = {" + ", ".join(parts) + "}")


def _absent(key: str) -> str:
    """The literal of the warning for an absent value at ``key`` (what port.null_warnings writes)."""
    return repr(f"{key}: reading absent or faulty")


# a view's leaf resolved: key, var of the value, may it be None, var of null_if, var of only_if
_Resolved = tuple[str, int, bool, int | None, int | None]
_Plan = list["tuple[str, _Resolved | _Plan]"]


def _view_plan(s: _Schema, view: Any, nested: bool = False) -> _Plan:
    """``view`` with every path resolved to a local (Unsupported when one is not a scalar field)."""

    def ref(path: str) -> tuple[int, Conv]:
        key = tuple(path.split("."))
        if key not in s.vars or s.vars[key][1].kind == "list":
            raise Unsupported(f"view path {path} is not a scalar field")
        return s.vars[key]

    plan: _Plan = []
    for key, spec in view_fields(view):
        if not isinstance(spec, Field):
            plan.append((key, _view_plan(s, spec, True)))
            continue
        var, conv = ref(spec.path)
        null_var = None if spec.null_if is None else ref(spec.null_if)[0]
        only_var = None if spec.only_if is None else ref(spec.only_if)[0]
        if nested and only_var is not None:
            raise Unsupported("only_if in a nested view")
        nullable = conv.nullable or var in s.optional or null_var is not None
        plan.append((key, (key, var, nullable, null_var, only_var)))
    return plan


def _view_data(plan: _Plan, w: _Writer) -> None:
    """``data`` and ``warnings`` exactly as the view's to_data then ``null_warnings`` would give them."""

    def value(leaf: _Resolved) -> str:
        _key, var, _nullable, null_var, _only = leaf
        if null_var is None:
            return f"v{var}"
        w.add(f"x{var} = None if v{null_var} else v{var}")
        return f"x{var}"

    def literal(entries: _Plan, prefix: str, checks: list[str]) -> str:
        parts = []
        for key, item in entries:
            if isinstance(item, list):
                parts.append(f"{key!r}: {literal(item, prefix + key + '.', checks)}")
                continue
            x = value(item)
            parts.append(f"{key!r}: {x}")
            if item[2]:
                checks.append(f"if {x} is None: warnings.append({_absent(prefix + key)})")
        return "{" + ", ".join(parts) + "}"

    # keys up to the first conditional one in one literal, the rest assigned in order
    first = len(plan)
    for i, (_key, item) in enumerate(plan):
        if not isinstance(item, list) and item[4] is not None:
            first = i
            break
    checks: list[str] = []
    w.add(f"data = {literal(plan[:first], '', checks)}")
    w.add("warnings = []")
    for line in checks:
        w.add(line)
    for key, item in plan[first:]:
        checks = []
        if isinstance(item, list):
            w.add(f"data[{key!r}] = {literal(item, key + '.', checks)}")
            for line in checks:
                w.add(line)
            continue
        depth = 1
        if item[4] is not None:
            w.add(f"if v{item[4]}:")
            depth = 2
        _key, var, nullable, null_var, _only = item
        x = f"v{var}"
        if null_var is not None:
            x = f"x{var}"
            w.add(f"{x} = None if v{null_var} else v{var}", depth)
        w.add(f"data[{key!r}] = {x}", depth)
        if nullable:
            w.add(f"if {x} is None: warnings.append({_absent(key)})", depth)


def _generate(s: _Schema, port: Port | None, codec: str) -> tuple[str, dict[str, Any]]:
    w = _Writer()
    w.lines.append("def decode(buf, fport):" if port is not None else "def parse(buf):")
    _body(s, w)
    if port is None:
        w.add(f"return {_parsed_literal(s)}")
    else:
        plan = None
        if port.view is not None:
            try:
                plan = _view_plan(s, port.view)
            except Unsupported:
                plan = None
        if plan is not None:
            _view_data(plan, w)
        elif port.to_data is plain and all(m.name is None or m.name.isidentifier() for m in s.members):
            _plain_data(s, w)
        else:
            to_data = w.const("TO_DATA", port.to_data)
            nulls = w.const("NULLS", null_warnings)
            w.add(f"data = {to_data}({_parsed_literal(s)})")
            w.add(f"warnings = {nulls}(data)")
        errors = "[]"
        if port.check is not None:
            check = w.const("CHECK", port.check)
            w.add(f"more_w, more_e = {check}(data)")
            w.add("warnings += more_w")
            errors = "list(more_e)"
        units = w.const("UNITS", dict(port.units))
        w.add(
            f"return {{'codec': {codec!r}, 'fport': fport, 'version': {VERSION!r}, 'data': data, "
            f"'units': {units}.copy(), 'warnings': warnings, 'errors': {errors}}}"
        )
    return "\n".join(w.lines) + "\n", w.env


def _compile(src: str, env: dict[str, Any], fn: str, label: str) -> Any:
    namespace = dict(env)
    # the source is made by this module from the schema: names are synthetic, values repr() of ints/strs
    exec(compile(src, f"<havel fastpath {label}>", "exec"), namespace)  # noqa: S102
    return namespace[fn]


def derive(schema: cs.Construct) -> Parse | None:
    """A fast parser for ``schema`` (a top-level Struct), or None when a part of it is not supported.

    The parser returns the parsed struct as nested plain dicts (the keys construct's Container holds), or
    None when the bytes do not parse cleanly (parse those with construct to get its error).
    """
    try:
        src, env = _generate(_Schema(schema), None, "")
    except Unsupported:
        return None
    parse: Parse = _compile(src, env, "parse", "parse")
    return parse


def derive_decoder(codec: str, port: Port) -> Decoder | None:
    """The whole ``decode`` of ``port`` for codec ``codec``: ``decoder(data, fport)`` gives the same dict
    as ``NodeCodec.decode`` or None for bytes it does not take; None when the schema is not supported."""
    try:
        src, env = _generate(_Schema(port.struct), port, codec)
    except Unsupported:
        return None
    decoder: Decoder = _compile(src, env, "decode", f"{codec} {port.direction} {port.fport}")
    return decoder


def source(schema_or_port: cs.Construct | Port, codec: str = "") -> str | None:
    """The generated source for a schema (parser) or a port (whole decoder), for reading and debugging."""
    try:
        if isinstance(schema_or_port, Port):
            return _generate(_Schema(schema_or_port.struct), schema_or_port, codec)[0]
        return _generate(_Schema(schema_or_port), None, "")[0]
    except Unsupported:
        return None
