"""The byte-layout tables of docs/payloads.md, printed from the codecs' construct declarations.

A port's table is made from its Struct: the header's bits, then every field with its byte offset, integer
type, step and unit, range and absent value, and the text given with ``base.described``.
In docs/payloads.md each generated table sits between ``<!-- layout CODEC FPORT DIRECTION -->`` and
``<!-- end layout -->`` (CODEC ``every``: a port all node kinds share);
``python -m havel.codecs.payload.layout --write docs/payloads.md`` rewrites them, and a test fails when the
document differs from what this module prints. Ports this printer cannot lay out (an array whose length is
in the header, an optional field, a second byte of bit fields) keep a hand-written table
(:class:`Unsupported`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import construct as cs

from havel.codecs.payload.base import NodeCodec
from havel.codecs.payload.fields import Bool, Choice, Reading
from havel.codecs.payload.port import Field, Port, view_fields
from havel.codecs.payload.registry import KIND_NAMES, get_codec

HEAD = (
    "| byte | bits | field | type | step / unit | range | absent |\n"
    "| ---- | ---- | ----- | ---- | ----------- | ----- | ------ |"
)
_MARK = re.compile(r"<!-- layout (\S+) (\d+) (up|down) -->\n(.*?)<!-- end layout -->", re.S)
_INT_TYPES = {"B": "u8", "b": "i8", "H": "u16", "h": "i16", "I": "u32", "i": "i32", "L": "u32", "l": "i32"}


class Unsupported(ValueError):
    """The port's layout is not fixed (or uses a construct this printer does not know)."""


@dataclass
class _Row:
    byte: str
    bits: str
    field: str
    type: str
    step: str = ""
    range: str = ""
    absent: str = ""

    def line(self) -> str:
        cells = (self.byte, self.bits, self.field, self.type, self.step, self.range, self.absent)
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _unwrap(sc: Any) -> tuple[str | None, str, Any]:
    if isinstance(sc, cs.Renamed):
        return sc.name, sc.docs or "", sc.subcon
    return None, "", sc


def _bits_of(sc: Any) -> int:
    if isinstance(sc, cs.BitsInteger):
        return int(sc.length)
    if isinstance(sc, cs.Padded):
        return int(sc.length)
    if sc is cs.Flag or isinstance(sc, type(cs.Flag)):
        return 1
    raise Unsupported(f"header member {sc!r}")


def _reading_text(r: Reading, docs: str) -> tuple[str, str, str]:
    step = f"{r.step} {r.unit}" if r.unit else ("" if r.step == "1" else r.step)
    step = ", ".join(t for t in (step, docs) if t)
    return step, f"{_num(r.lo)}..{_num(r.hi)}", ""


def _shown(name: str, keys: tuple[str, ...]) -> str:
    """A key of ``data`` in backticks; a field that only shapes the bytes (a count, a presence bit) plain."""
    return f"`{name}`" if name.split(".")[0].split("[")[0] in keys else name


def _bit_rows(inner: Any, byte: int, prefix: str, names: dict[str, str], keys: tuple[str, ...]) -> list[_Row]:
    """The rows of one byte of bit fields (the header, or a named BitStruct of flags)."""
    struct = inner
    while not isinstance(struct, cs.Struct):
        struct = struct.subcon
    at = str(byte)
    rows = []
    bit = 8
    for sc in struct.subcons:
        name, docs, sub = _unwrap(sc)
        shown = _shown(names.get(f"{prefix}.{name}", name or ""), keys)
        if isinstance(sub, cs.Const):
            width = _bits_of(sub.subcon)
            rows.append(_Row(at, _bit_span(bit, width), name or "", f"u{width}", "", str(sub.value)))
        elif isinstance(sub, Bool):
            width = 1
            rows.append(_Row(at, _bit_span(bit, 1), shown, "bit", docs))
        elif isinstance(sub, Choice):
            width = _bits_of(sub.subcon)
            values = ", ".join(f"{v} {k}" for k, v in sub.names.items())
            rows.append(
                _Row(at, _bit_span(bit, width), shown, f"u{width}", "; ".join(t for t in (values, docs) if t))
            )
        elif isinstance(sub, Reading):
            width = _bits_of(sub.subcon)
            step, rng, _ = _reading_text(sub, docs)
            rows.append(_Row(at, _bit_span(bit, width), shown, f"u{width}", step, rng))
        elif isinstance(sub, cs.Padded):
            width = _bits_of(sub)
            rows.append(_Row(at, _bit_span(bit, width), "(reserved, 0)", f"u{width}"))
        elif isinstance(sub, cs.BitsInteger):  # a count of the array that follows
            width = int(sub.length)
            rows.append(_Row(at, _bit_span(bit, width), shown, f"u{width}", docs, f"0..{(1 << width) - 1}"))
        else:
            raise Unsupported(f"bit field {name}: {sub!r}")
        bit -= width
    if bit != 0:
        raise Unsupported(f"{prefix} has {8 - bit} bits, not 8")
    return rows


def _view_names(view: Any, prefix: str = "") -> dict[str, str]:
    """Struct path -> the key of ``data`` a port's view gives it ("_flags.valve" -> "faults.valve")."""
    out: dict[str, str] = {}
    for key, spec in view_fields(view):
        if isinstance(spec, Field):
            out[spec.path] = prefix + key
        else:
            out.update(_view_names(spec, f"{prefix}{key}."))
    return out


def _is_bits(sub: Any) -> bool:
    return isinstance(sub, cs.Transformed | cs.Restreamed) and isinstance(sub.subcon, cs.Struct)


def _bit_span(top: int, width: int) -> str:
    hi, lo = top - 1, top - width
    return f"b{hi}" if hi == lo else f"b{hi}-{lo}"


def _byte_span(offset: int, size: int) -> str:
    return str(offset) if size == 1 else f"{offset}-{offset + size - 1}"


def _field_rows(
    name: str, docs: str, sub: Any, offset: int, keys: tuple[str, ...] = ()
) -> tuple[list[_Row], int]:
    if isinstance(sub, cs.Array):
        if not isinstance(sub.count, int):
            raise Unsupported(f"{name}: an array whose length is in the payload")
        (row,), size = _field_rows(name, docs, sub.subcon, offset, keys)
        row.byte = _byte_span(offset, size * sub.count)
        row.type = f"{sub.count} x {row.type}"
        return [row], size * sub.count
    if isinstance(sub, Reading) and isinstance(sub.subcon, cs.FormatField):
        fmt = sub.subcon.fmtstr[-1]
        size = int(sub.subcon.sizeof())
        step, rng, _ = _reading_text(sub, docs)
        absent = ""
        if sub.sentinel is not None:
            absent = f"`0x{sub.sentinel & ((1 << (8 * size)) - 1):0{2 * size}X}`"
        return [
            _Row(_byte_span(offset, size), "", _shown(name, keys), _INT_TYPES[fmt], step, rng, absent)
        ], size
    if isinstance(sub, Bool) and isinstance(sub.subcon, type(cs.Flag)):  # a whole byte outside bit fields
        text = ", ".join(t for t in (docs, "0 false, 1 true (any other value reads as true)") if t)
        return [_Row(_byte_span(offset, 1), "", _shown(name, keys), "u8", text)], 1
    if isinstance(sub, Bool) and isinstance(sub.subcon, cs.FormatField):
        size = int(sub.subcon.sizeof())
        text = ", ".join(t for t in (docs, "0 false, 1 true") if t)
        int_type = _INT_TYPES[sub.subcon.fmtstr[-1]]
        return [_Row(_byte_span(offset, size), "", _shown(name, keys), int_type, text)], size
    if isinstance(sub, Choice) and isinstance(sub.subcon, cs.FormatField):
        size = int(sub.subcon.sizeof())
        values = ", ".join(f"{v} {k}" for k, v in sub.names.items())
        text = "; ".join(t for t in (values, docs) if t)
        int_type = _INT_TYPES[sub.subcon.fmtstr[-1]]
        return [_Row(_byte_span(offset, size), "", _shown(name, keys), int_type, text)], size
    raise Unsupported(f"{name}: {type(sub).__name__} is not a fixed-size field this printer knows")


def table(port: Port) -> str:
    """The markdown layout table of ``port`` (Unsupported when its layout is not fixed)."""
    struct = port.struct
    if not isinstance(struct, cs.Struct):
        raise Unsupported(f"{port.name}: not a Struct")
    names = _view_names(port.view) if port.view is not None else {}
    keys = tuple(port.keys)
    rows: list[_Row] = []
    # the offset of the next field: ``offset`` bytes, plus ``per_n`` bytes per element of an array whose
    # length is in the header (n), plus ``opt`` bytes of optional fields that may be left out
    offset = per_n = opt = 0
    left_out = ""
    for sc in struct.subcons:
        name, docs, sub = _unwrap(sc)
        if sub is cs.Terminated or isinstance(sub, type(cs.Terminated)):
            continue
        if name is None:
            raise Unsupported(f"{port.name}: an unnamed member {sub!r}")
        if per_n and opt:
            raise Unsupported(f"{port.name}: an optional field and a counted array")
        if _is_bits(sub):  # the header, or a byte of flags
            if per_n or opt:
                raise Unsupported(f"{port.name}: bit fields after a variable part")
            rows += _bit_rows(sub, offset, name, names, keys)
            offset += 1
            continue
        shown = names.get(name, name)
        if isinstance(sub, cs.Array) and not isinstance(sub.count, int):  # length n from the header
            if per_n or opt:
                raise Unsupported(f"{port.name}: a second variable part")
            (row,), size = _field_rows(f"{shown}[i]", docs, sub.subcon, offset, keys)
            row.byte = f"{offset} + {size}i" if size > 1 else f"{offset} + i"
            rows.append(row)
            per_n = size
            continue
        if isinstance(sub, cs.IfThenElse) and isinstance(sub.elsesubcon, type(cs.Pass)):  # present or not
            if per_n:
                raise Unsupported(f"{port.name}: an optional field after a counted array")
            more, size = _field_rows(shown, docs, sub.thensubcon, offset, keys)
            rows += more
            offset += size
            opt += size
            left_out = shown
            continue
        more, size = _field_rows(shown, docs, sub, offset, keys)
        if per_n:
            more[0].byte = f"{offset} + {per_n}n" if per_n > 1 else f"{offset} + n"
        elif opt:
            more[0].byte = f"{_byte_span(offset, size)} ({_byte_span(offset - opt, size)} without {left_out})"
        rows += more
        offset += size
    return "\n".join([HEAD, *(r.line() for r in rows)])


def port_table(codec_name: str, fport: int, direction: str) -> str:
    """The table of one codec's port; ``every`` as the codec: the port every node kind has, the same in all
    (Unsupported when they differ)."""
    names = KIND_NAMES if codec_name == "every" else (codec_name,)
    tables = set()
    for name in names:
        codec = get_codec(name)
        if not isinstance(codec, NodeCodec):
            raise Unsupported(f"{name} is no node codec")
        tables.add(table(codec.port(fport, direction)))
    if len(tables) != 1:
        raise Unsupported(f"FPort {fport} {direction} differs between the node kinds")
    return tables.pop()


def render(doc: str) -> str:
    """``doc`` with every marked layout table replaced by the generated one."""

    def one(m: re.Match[str]) -> str:
        return (
            f"<!-- layout {m.group(1)} {m.group(2)} {m.group(3)} -->\n"
            f"{port_table(m.group(1), int(m.group(2)), m.group(3))}\n<!-- end layout -->"
        )

    return _MARK.sub(one, doc)


def marked(doc: str) -> list[tuple[str, int, str]]:
    """The (codec, fport, direction) of every marked table in ``doc``."""
    return [(m.group(1), int(m.group(2)), m.group(3)) for m in _MARK.finditer(doc)]


def main(argv: list[str]) -> int:
    """``--write PATH`` rewrites the tables in PATH; ``PATH`` alone prints the rendered document."""
    write = "--write" in argv
    paths = [a for a in argv if a != "--write"] or ["docs/payloads.md"]
    for p in map(Path, paths):
        text = p.read_text(encoding="utf-8")
        out = render(text)
        if write:
            p.write_text(out, encoding="utf-8")
        else:
            sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
