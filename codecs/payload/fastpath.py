"""Fast decoders generated from a port's declarative construct schema.

The construct Struct stays the source of truth: this module walks it and, when every part is one it knows
(byte-aligned integers, bit-packed words, fixed or counted arrays, ``If`` on an earlier field, and the
:class:`~havel.codecs.payload.fields.Reading` / ``Bool`` / ``Choice`` adapters), writes the Python source of
a decoder for exactly that layout and compiles it once: one :func:`struct.Struct.unpack_from` per run of
fixed-size fields, the adapters' conversions inlined as expressions (sentinel test, integer product or a
single division, a name table), no per-field function calls. Anything else gives no fast decoder and the
port keeps parsing through construct. The schema walk is :mod:`.fastpath_schema`, the statements that read
the bytes into locals :mod:`.fastpath_read`; this module writes the answer built from those locals and
compiles the whole.

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

from collections.abc import Callable
from typing import Any

import construct as cs

from havel.codecs.payload.fastpath_read import Writer, read_members
from havel.codecs.payload.fastpath_schema import Bits, Conv, Schema, Unsupported
from havel.codecs.payload.fields import VERSION
from havel.codecs.payload.port import Field, Port, null_warnings, plain, view_fields

__all__ = ["derive", "derive_decoder", "source"]

Parse = Callable[[bytes], "dict[str, Any] | None"]
Decoder = Callable[[bytes, int], "dict[str, Any] | None"]


def _parsed_literal(s: Schema) -> str:
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


def _plain_data(s: Schema, w: Writer) -> None:
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


def _view_plan(s: Schema, view: Any, nested: bool = False) -> _Plan:
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


def _view_data(plan: _Plan, w: Writer) -> None:
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


def _generate(s: Schema, port: Port | None, codec: str) -> tuple[str, dict[str, Any]]:
    w = Writer()
    w.lines.append("def decode(buf, fport):" if port is not None else "def parse(buf):")
    read_members(s, w)
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
        src, env = _generate(Schema(schema), None, "")
    except Unsupported:
        return None
    parse: Parse = _compile(src, env, "parse", "parse")
    return parse


def derive_decoder(codec: str, port: Port) -> Decoder | None:
    """The whole ``decode`` of ``port`` for codec ``codec``: ``decoder(data, fport)`` gives the same dict
    as ``NodeCodec.decode`` or None for bytes it does not take; None when the schema is not supported."""
    try:
        src, env = _generate(Schema(port.struct), port, codec)
    except Unsupported:
        return None
    decoder: Decoder = _compile(src, env, "decode", f"{codec} {port.direction} {port.fport}")
    return decoder


def source(schema_or_port: cs.Construct | Port, codec: str = "") -> str | None:
    """The generated source for a schema (parser) or a port (whole decoder), for reading and debugging."""
    try:
        if isinstance(schema_or_port, Port):
            return _generate(Schema(schema_or_port.struct), schema_or_port, codec)[0]
        return _generate(Schema(schema_or_port), None, "")[0]
    except Unsupported:
        return None
