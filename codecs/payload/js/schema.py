"""A codec's declaration as the plain tables the JavaScript runtime reads.

Walks each port's construct ``Struct`` (byte-aligned integers, bit-packed words with constants and padding,
fixed or counted arrays, ``If`` on an earlier flag, and the :class:`~havel.codecs.payload.fields.Reading` /
``Bool`` / ``Choice`` adapters) and its view, and writes them down as JSON-able dicts: which bytes hold a
field, how its raw integer becomes a value (step, sentinel, range, names), where each key of ``data``
comes from. Anything else raises :class:`Unsupported` naming the part, so that a new kind of schema is
refused at export instead of decoded wrongly. Cayenne LPP is described from its type table.
"""

from __future__ import annotations

import re
from typing import Any

import construct as cs

from havel.codecs.payload import cayenne_lpp
from havel.codecs.payload.base import Codec, NodeCodec
from havel.codecs.payload.bitstruct import NotPlain, bit_fields
from havel.codecs.payload.fields import VERSION, Bool, Choice, Reading
from havel.codecs.payload.js.glue import TWINS
from havel.codecs.payload.port import Field, Port, ViewToData, plain, view_fields

__all__ = ["Unsupported", "describe", "qualname"]

_MAX_BYTES = 6  # integers up to 48 bits are exact in a JavaScript number


class Unsupported(Exception):
    """A part of a declaration the JavaScript runtime cannot carry."""


def qualname(fn: Any) -> str:
    """``module.qualname`` of a glue function: the key of its JavaScript twin."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _number(x: Any) -> int | float:
    return int(x) if isinstance(x, int) else float(x)


def _conv(sc: Any) -> tuple[Any, dict[str, Any]]:
    """The bare leaf under ``sc`` and how its raw integer becomes a value."""
    if isinstance(sc, Reading):
        return sc.subcon, {
            "t": "reading",
            "num": sc.num,
            "den": sc.den,
            "sentinel": sc.sentinel,
            "lo": _number(sc.lo),
            "hi": _number(sc.hi),
            "unit": sc.unit,
            "sat": bool(sc.saturate_high),
        }
    if isinstance(sc, Bool):
        return sc.subcon, {"t": "bool"}
    if isinstance(sc, Choice):
        return sc.subcon, {
            "t": "choice",
            "names": dict(sc.names),
            "byValue": {str(v): k for v, k in sc.by_value.items()},
        }
    if isinstance(sc, cs.Adapter | cs.Renamed):
        raise Unsupported(f"adapter {type(sc).__name__}")
    return sc, {"t": "bool"} if sc is cs.Flag else {"t": "int"}


def _leaf(sc: Any) -> dict[str, Any]:
    """A byte-aligned integer: size, signedness, byte order and conversion."""
    leaf, conv = _conv(sc)
    if isinstance(leaf, cs.Adapter | cs.Renamed):
        raise Unsupported("an adapter over an adapter")
    if leaf is cs.Flag:
        return {"size": 1, "signed": False, "le": False, "conv": conv}
    if isinstance(leaf, cs.FormatField):
        fmt = leaf.fmtstr
        if len(fmt) != 2 or fmt[0] not in "<>=" or fmt[1] not in "bBhHiIlLqQ":
            raise Unsupported(f"format {fmt}")
        size = int(leaf.length)
        signed = fmt[1].islower()
        le = fmt[0] == "<" and size > 1
    elif isinstance(leaf, cs.BytesInteger) and isinstance(leaf.length, int):
        size, signed, le = leaf.length, bool(leaf.signed), bool(leaf.swapped)
    else:
        raise Unsupported(f"leaf {type(leaf).__name__}")
    if size > _MAX_BYTES:
        raise Unsupported(f"a {size}-byte integer (JavaScript numbers are exact to 53 bits)")
    return {"size": size, "signed": signed, "le": le, "conv": conv}


def _path(expr: Any) -> list[str]:
    """``this.a.b`` as ["a", "b"], read from construct's public ``repr`` of the path ("this['a']['b']")."""
    text = repr(expr)
    parts = re.findall(r"\['([^'\]]+)'\]", text)
    if not isinstance(expr, cs.expr.Path) or not parts or text != "this" + "".join(f"['{p}']" for p in parts):
        raise Unsupported(f"a count or condition that is not a plain this.field path: {text}")
    return parts


def _bits(name: str | None, sc: Any) -> dict[str, Any]:
    if not (
        sc.decodefunc is cs.bytes2bits
        and isinstance(sc.subcon, cs.Struct)
        and isinstance(sc.decodeamount, int)
        and 1 <= sc.decodeamount <= 4
    ):
        raise Unsupported("not a BitStruct of 1 to 4 bytes")
    try:
        found = bit_fields(sc, _conv, lambda conv: conv["t"] == "int")
    except NotPlain as exc:
        raise Unsupported(str(exc)) from None
    fields = [
        {"name": fname, "shift": shift, "width": width, "conv": conv, "cst": const}
        for fname, shift, width, conv, const in found
    ]
    return {"t": "bits", "name": name, "n": sc.decodeamount, "fields": fields}


def _member(name: str | None, sc: Any, members: list[dict[str, Any]]) -> dict[str, Any]:
    if isinstance(sc, cs.Transformed):
        return _bits(name, sc)
    if name is None:
        raise Unsupported("an unnamed member")
    if isinstance(sc, cs.Array):
        if sc.discard:
            raise Unsupported("a discarding array")
        out = {
            "t": "array",
            "name": name,
            **_leaf(sc.subcon),
            "count": None,
            "countPath": None,
            "countMax": None,
        }
        if isinstance(sc.count, int):
            out["count"] = sc.count
        else:
            out["countPath"] = path = _path(sc.count)
            out["countMax"] = _count_max(members, path)
        return out
    if isinstance(sc, cs.IfThenElse):
        if sc.elsesubcon is not cs.Pass:
            raise Unsupported("IfThenElse other than If")
        return {"t": "if", "name": name, **_leaf(sc.thensubcon), "cond": _path(sc.condfunc)}
    return {"t": "leaf", "name": name, **_leaf(sc)}


def _count_max(members: list[dict[str, Any]], path: list[str]) -> int:
    """The largest count the field at ``path`` (an earlier bit field) can carry."""
    for m in members:
        if m["t"] == "bits" and len(path) == 2 and m["name"] == path[0]:
            for f in m["fields"]:
                if f["name"] == path[1] and f["conv"]["t"] == "int" and f["cst"] is None:
                    return int(2 ** f["width"] - 1)
    raise Unsupported(f"an array count at {'.'.join(path)} that is not an earlier plain bit field")


def _static_size(struct: cs.Construct) -> int | None:
    try:
        return int(struct.sizeof())
    except cs.SizeofError:
        return None


def _view(view: Any, nested: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key, spec in view_fields(view):
        if not isinstance(spec, Field):
            if nested:
                raise Unsupported("a view nested more than one level")
            out.append({"key": key, "nested": _view(spec, True)})
            continue
        if nested and spec.only_if is not None:
            raise Unsupported("only_if in a nested view")
        out.append(
            {
                "key": key,
                "nested": None,
                "path": spec.path.split("."),
                "nullIf": spec.null_if.split(".") if spec.null_if else None,
                "onlyIf": spec.only_if.split(".") if spec.only_if else None,
            }
        )
    return out


def _port(port: Port, notes: list[str]) -> dict[str, Any]:
    struct = port.struct
    if not isinstance(struct, cs.Struct):
        raise Unsupported(f"port {port.name}: not a Struct")
    subcons = list(struct.subcons)
    terminated = bool(subcons) and subcons[-1] is cs.Terminated
    if terminated:
        subcons = subcons[:-1]
    members: list[dict[str, Any]] = []
    for sc in subcons:
        name = sc.name if isinstance(sc, cs.Renamed) else None
        members.append(_member(name, sc.subcon if isinstance(sc, cs.Renamed) else sc, members))

    to_data = port.to_data
    data: dict[str, Any]
    if isinstance(to_data, ViewToData):
        data = {"kind": "view", "view": _view(to_data.view)}
    elif to_data is plain:
        data = {"kind": "plain"}
        if any(m["t"] == "if" for m in members):
            raise Unsupported(f"port {port.name}: an If member without a view saying when its key is there")
    elif qualname(to_data) in TWINS:
        data = {"kind": "glue", "fn": qualname(to_data)}
    else:
        raise Unsupported(
            f"port {port.name}: to_data {qualname(to_data)} has no JavaScript twin "
            "(describe data with Port(view=...) or add a twin in codecs/payload/js/glue.py)"
        )
    if data["kind"] != "glue":
        _check_encodable(port, members, data)

    # a from_data without a twin is the view (or plain layout) read backwards, as every codec's is: the
    # runtime's generic inverse; the tests hold it to the Python encoder on every codec's vectors
    name = qualname(port.from_data)
    from_data = name if name in TWINS else None

    check: str | None = None
    if port.check is not None:
        if qualname(port.check) in TWINS:
            check = qualname(port.check)
        else:
            notes.append(
                f"port {port.name}: check {qualname(port.check)} has no JavaScript twin: its "
                "warnings and errors are not given"
            )
    return {
        "fport": port.fport,
        "dir": port.direction,
        "name": port.name,
        "summary": port.summary,
        "keys": list(port.keys),
        "units": dict(port.units),
        "members": members,
        "terminated": terminated,
        "size": _static_size(struct),
        "data": data,
        "fromData": from_data,
        "check": check,
    }


def _check_encodable(port: Port, members: list[dict[str, Any]], data: dict[str, Any]) -> None:
    """Every part of the struct must come back from data: a view path, an only_if flag, an array's count,
    a constant, or (plain data) a member of the same name."""
    derived = {tuple(m["countPath"]) for m in members if m["t"] == "array" and m["countPath"]}
    view = data["kind"] == "view"
    if view:
        for e in data["view"]:
            for leaf in e["nested"] or [e]:
                derived.add(tuple(leaf["path"]))
                if leaf.get("onlyIf"):
                    derived.add(tuple(leaf["onlyIf"]))
    for m in members:
        if m["t"] == "bits":
            if m["name"] is None:
                continue
            for f in m["fields"]:
                path = (m["name"], f["name"])
                if f["cst"] is None and (view or m["name"].startswith("_")) and path not in derived:
                    raise Unsupported(f"port {port.name}: bit field {'.'.join(path)} is not in data")
        elif (view or m["name"].startswith("_")) and (m["name"],) not in derived:
            raise Unsupported(f"port {port.name}: {m['name']} is not in data")


def _lpp_value(value: cs.Construct) -> dict[str, Any]:
    if isinstance(value, cs.Struct):
        return {"fields": [{"name": sc.name, "leaf": _leaf(sc.subcon)} for sc in value.subcons]}
    return {"leaf": _leaf(value)}


def describe(codec: Codec) -> tuple[dict[str, Any], list[str]]:
    """The tables of ``codec`` for the JavaScript runtime, and notes on what they leave out.

    Raises :class:`Unsupported` when a part of a port cannot be carried.
    """
    notes: list[str] = []
    if isinstance(codec, cayenne_lpp.CayenneLPP):
        types = [
            {"id": t.type_id, "name": t.name, "size": t.size, "unit": t.unit, **_lpp_value(t.value)}
            for t in cayenne_lpp.TYPES
        ]
        return {
            "name": codec.name,
            "summary": codec.summary,
            "version": None,
            "lpp": {"types": types, "down": _leaf(cayenne_lpp.DOWNLINK_VALUE)},
        }, notes
    if not isinstance(codec, NodeCodec):
        raise Unsupported(f"codec {codec.name}: neither a node codec nor Cayenne LPP")
    ports = [_port(p, notes) for p in codec.ports]
    tables = {"name": codec.name, "summary": codec.summary, "version": VERSION, "lpp": None, "ports": ports}
    return tables, notes
