"""The generated fast decoders (codecs/payload/fastpath.py) against the construct schemas they come from.

For every vector and for random bytes (same length as a vector with its bytes changed, payloads whose
length fits their header, and arbitrary lengths), decoding with the fast path on gives exactly what
construct gives: the same output dict (same key order, same repr), or the same CodecError text and hint;
and what construct's compiled parsers give wherever plain construct reads the bytes. The fast path must
also really be used for well-formed payloads, and its generator is checked on schema parts the node codecs
do not use yet (little-endian fields, a choice over 16 bits, an If at the end, an unnamed bit field
group, counted arrays) so that a future schema cannot silently diverge.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import construct as cs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.private_names import private_names_in

from havel.codecs.payload import KIND_NAMES, NodeCodec, get_codec
from havel.codecs.payload.fastpath import derive, derive_decoder, source
from havel.codecs.payload.fields import Bool, Choice, Reading, header
from havel.codecs.payload.port import Field, Port
from havel.errors import CodecError

VECTORS = Path(__file__).resolve().parents[3] / "codecs" / "vectors"
NODE_CODECS = KIND_NAMES
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def trio(name: str) -> tuple[NodeCodec, NodeCodec, NodeCodec]:
    """The codec with the fast path, with plain construct only, with compiled construct only."""
    codec = get_codec(name)
    assert isinstance(codec, NodeCodec)
    return (
        NodeCodec(name, codec.summary, codec.ports, fast=True),
        NodeCodec(name, codec.summary, codec.ports, fast=False),
        NodeCodec(name, codec.summary, codec.ports, compiled=True),
    )


def outcome(codec: NodeCodec, data: bytes | bytearray, fport: int, direction: str) -> Any:
    try:
        return ("ok", codec.decode(data, fport, direction))
    except CodecError as exc:
        return ("error", str(exc), exc.hint)


def same_codecs(codecs: tuple[NodeCodec, ...], data: bytes, fport: int, direction: str) -> Any:
    fast, plain, compiled = codecs
    got = outcome(fast, data, fport, direction)
    want = outcome(plain, data, fport, direction)
    # repr too: 21.5 == 21.5 but an int where construct gives a float (or True for 1), or another key
    # order, would differ
    assert got == want and repr(got) == repr(want)
    if want[0] == "ok":
        # construct's compiled parsers agree on what plain construct reads; on short input they do not
        # (a Flag past the end reads as true), which is why the fallback for bad bytes is the plain Struct
        again = outcome(compiled, data, fport, direction)
        assert got == again and repr(got) == repr(again)
    # bytearray input goes the general way (parse, glue, walk): the same answer
    again = outcome(fast, bytearray(data), fport, direction)
    assert again == got and repr(again) == repr(got)
    return got


def same(name: str, data: bytes, fport: int, direction: str) -> Any:
    return same_codecs(trio(name), data, fport, direction)


def vectors(name: str) -> list[dict[str, Any]]:
    return list(json.loads((VECTORS / f"{name}.json").read_text()))


ALL = [(name, v) for name in NODE_CODECS for v in vectors(name)]


@pytest.mark.parametrize("name", NODE_CODECS)
def test_every_port_of_every_node_codec_has_a_fast_decoder(name: str) -> None:
    for port in get_codec(name).ports:
        assert derive(port.struct) is not None, f"{name} {port.name}"
        assert derive_decoder(name, port) is not None, f"{name} {port.name}"


@pytest.mark.parametrize("name", NODE_CODECS)
def test_readings_ports_build_data_in_the_generated_code(name: str) -> None:
    """The hot ports do not call back into generic glue: data and warnings are built inline."""
    src = source(get_codec(name).port(1, "up"), name)
    assert src is not None
    assert "TO_DATA" not in src and "NULLS" not in src, src
    assert "reading absent or faulty" in src


@pytest.mark.parametrize(("name", "vector"), ALL, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ALL)])
def test_fast_path_takes_every_vector_and_decodes_it_as_construct(name: str, vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["bytes"])
    fast, _, _ = trio(name)
    port = fast.port(vector["fport"], vector["direction"])
    if data:
        decoder = derive(port.struct)
        assert decoder is not None
        assert decoder(data) is not None, "a vector the fast parser does not take"
        whole = derive_decoder(name, port)
        assert whole is not None
        assert whole(data, vector["fport"]) is not None, "a vector the whole decoder does not take"
    got = same(name, data, vector["fport"], vector["direction"])
    if "data" in vector:
        assert got[0] == "ok" and got[1]["data"] == vector["data"]


def test_parsed_struct_has_constructs_keys_and_values() -> None:
    """derive()'s parser gives what construct's Container holds (less ``_io``), as plain dicts."""
    for name, v in ALL:
        data = bytes.fromhex(v["bytes"])
        if not data:
            continue
        port = get_codec(name).port(v["fport"], v["direction"])
        parse = derive(port.struct)
        assert parse is not None
        want = _container_dict(port.struct.parse(data))
        got = parse(data)
        assert got == want and repr(got) == repr(want), f"{name} {v['description']}"


def _container_dict(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _container_dict(x) for k, x in obj.items() if k != "_io"}
    if isinstance(obj, list):
        return [_container_dict(x) for x in obj]
    return obj


def _ports(name: str) -> list[tuple[int, str]]:
    return [(p.fport, p.direction) for p in get_codec(name).ports if p.fport is not None]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes, int, str]:
    """A vector's bytes with random bytes in its place (same length: mostly well-formed, version kept)."""
    name, v = draw(st.sampled_from(ALL))
    size = len(bytes.fromhex(v["bytes"]))
    body = draw(st.binary(min_size=size, max_size=size))
    if body and draw(st.booleans()):
        body = bytes([0x10 | (body[0] & 0x0F)]) + body[1:]
    return name, body, v["fport"], v["direction"]


@functools.cache
def _length_for(struct: cs.Construct, first: int) -> int | None:
    """The payload length construct reads for a payload starting with ``first`` (None: none parses)."""
    for n in range(64):
        try:
            struct.parse(bytes([first]) + bytes(n))
        except cs.ConstructError:
            continue
        return n + 1
    return None


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[str, bytes, int, str]:
    """Any header nibble with exactly the length it calls for (probe counts, the CO2 flag), the rest of
    the bytes random but often a sentinel (0xFF, 0x80 0x00), so faults and absent readings come up."""
    name = draw(st.sampled_from(NODE_CODECS))
    fport, direction = draw(st.sampled_from(_ports(name)))
    first = 0x10 | draw(st.integers(0, 15))
    size = _length_for(get_codec(name).port(fport, direction).struct, first)
    if size is None:  # a header this port never takes (a reserved nibble that must be zero)
        first, size = 0x10, _length_for(get_codec(name).port(fport, direction).struct, 0x10)
    assert size is not None
    chunk = st.sampled_from([b"\xff", b"\x80\x00", b"\x00", b"\xff\xff", b"\x02\x9a"]) | st.binary(max_size=3)
    body = b"".join(draw(st.lists(chunk, max_size=size)))[: size - 1]
    body += draw(st.binary(min_size=size - 1 - len(body), max_size=size - 1 - len(body)))
    return name, bytes([first]) + body, fport, direction


@st.composite
def anything(draw: st.DrawFn) -> tuple[str, bytes, int, str]:
    """Any length on any port, the version nibble mostly right (truncated, too long, counts that lie)."""
    name = draw(st.sampled_from(NODE_CODECS))
    fport, direction = draw(st.sampled_from([*_ports(name), (3, "up"), (1, "down")]))
    body = draw(st.binary(max_size=40))
    if body and draw(st.integers(0, 9)) > 0:
        body = bytes([0x10 | (body[0] & 0x0F)]) + body[1:]
    return name, body, fport, direction


@SETTINGS
@given(mutated())
def test_fast_path_equals_construct_on_random_well_sized_payloads(case: tuple[str, bytes, int, str]) -> None:
    same(*case)


@SETTINGS
@given(well_formed())
def test_fast_path_equals_construct_on_random_well_formed_payloads(case: tuple[str, bytes, int, str]) -> None:
    name, data, fport, direction = case
    got = same(*case)
    assert got[0] == "ok", got  # well-formed: the fast path itself answered (checked as not None below)
    port = get_codec(name).port(fport, direction)
    whole = derive_decoder(name, port)
    assert whole is not None and whole(data, fport) is not None


@SETTINGS
@given(anything())
def test_fast_path_equals_construct_on_random_bytes_of_any_length(case: tuple[str, bytes, int, str]) -> None:
    same(*case)


def test_fast_path_gives_back_what_it_cannot_parse() -> None:
    fast, _, _ = trio("temperature")
    port = fast.port(1, "up")
    decoder = derive(port.struct)
    whole = derive_decoder("temperature", port)
    assert decoder is not None and whole is not None
    ok = bytes.fromhex("1200f1013d4cba")
    assert decoder(ok) is not None and whole(ok, 1) is not None
    for bad in (ok[:-1], ok + b"\x00", bytes([0x20]) + ok[1:], b""):  # truncated, too long, version, empty
        assert decoder(bad) is None
        assert whole(bad, 1) is None
    with pytest.raises(CodecError, match="truncated"):
        fast.decode(ok[:-1], 1)
    with pytest.raises(CodecError, match="too long"):
        fast.decode(ok + b"\x00", 1)


def test_unusual_arguments_get_the_general_paths_answer() -> None:
    fast, plain, _ = trio("water")
    with pytest.raises(CodecError, match="neither 'up' nor 'down'"):
        fast.decode(bytes(8), 1, ["up"])  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="expected bytes, got str"):
        fast.decode("10009f096a007cb4", 1)  # type: ignore[arg-type]
    vector = bytes.fromhex("10009f096a007cb4")
    assert fast.decode(memoryview(vector).tobytes(), 1) == plain.decode(vector, 1)


# --- the generator on schema parts the node codecs do not use (yet) ---------------------------------------

ODD = cs.Struct(
    header("big" / Bool(cs.Flag), "mode" / Choice(cs.BitsInteger(2), {"a": 0, "b": 1}), cs.Padding(1)),
    cs.BitStruct("_spare" / cs.BitsInteger(3), "alert" / cs.Flag, "level" / cs.BitsInteger(4)),
    "le" / Reading(cs.Int16sl, "0.5", lo=-100, hi=100, sentinel=-0x8000),
    "raw_le" / cs.Int32ul,
    "code" / Choice(cs.Int16ub, {"ok": 0, "warn": 513}),
    "on" / cs.Flag,
    "trio" / cs.Array(3, Choice(cs.Int8ub, {"x": 1})),
    "scaled" / Reading(cs.Int8sb, "2.5", lo=-300, hi=300, sentinel=-128),
    "tail" / cs.If(cs.this._header.big, Reading(cs.Int16ub, "0.1", lo=0, hi=100, sentinel=0xFFFF)),
    cs.Terminated,
)
COUNTED = cs.Struct(
    header("count" / cs.BitsInteger(4)),
    "n" / cs.Int8ub,
    "xs" / cs.Array(cs.this.n, Reading(cs.Int16sl, "0.01", lo=-300, hi=300, sentinel=-0x8000)),
    "ys" / cs.Array(cs.this._header.count, cs.Int8ub),
    "end" / Reading(cs.Int8ub, "3", lo=0, hi=600),
)


def _odd_codec(**kw: Any) -> tuple[NodeCodec, ...]:
    ports = [
        Port(1, "up", "odd", "odd", ODD, {"le": "Cel"}, ("le",)),
        Port(2, "up", "counted", "counted", COUNTED, {}, ("xs",)),
        Port(
            3,
            "up",
            "viewed",
            "viewed",
            ODD,
            {"le": "Cel"},
            ("le",),
            view={
                "alarm": "_header.big",
                "le": Field("le", null_if="on"),
                "codes": {"c": "code"},
                "tail": Field("tail", only_if="_header.big"),
                "after": "scaled",
                "trio": "trio",
            },
        ),
    ]  # a list in a view: the generated code calls the view's glue
    return tuple(
        NodeCodec("odd", "odd", ports, **k) for k in ({"fast": True}, {"fast": False}, {"compiled": True})
    )


ODD_CODECS = _odd_codec()


def _taken(fport: int, data: bytes) -> bool:
    """The whole generated decoder answered for ``data`` itself (no fallback to construct)."""
    decoder = derive_decoder("odd", ODD_CODECS[0].port(fport, "up"))
    return decoder is not None and decoder(data, fport) is not None


def test_odd_schemas_have_fast_decoders() -> None:
    for port in ODD_CODECS[0].ports:
        assert derive(port.struct) is not None, port.name
        assert derive_decoder("odd", port) is not None, port.name


@SETTINGS
@given(fport=st.sampled_from([1, 2, 3]), body=st.binary(max_size=40), first=st.integers(0x10, 0x1F))
def test_generator_equals_construct_on_odd_schemas(fport: int, body: bytes, first: int) -> None:
    same_codecs(ODD_CODECS, bytes([first]) + body, fport, "up")


@SETTINGS
@given(first=st.integers(0x10, 0x1F), body=st.binary(min_size=20, max_size=20))
def test_generator_equals_construct_on_well_sized_odd_payloads(first: int, body: bytes) -> None:
    size = 17 if first & 8 else 15  # ODD: 1 + 1 + 2 + 4 + 2 + 1 + 3 + 1 (+ 2 when "big")
    for fport in (1, 3):
        data = bytes([first]) + body[: size - 1]
        got = same_codecs(ODD_CODECS, data, fport, "up")
        assert got[0] == "ok", got  # a set padding bit is read and ignored, as construct does
        assert _taken(fport, data)


@SETTINGS
@given(count=st.integers(0, 15), n=st.integers(0, 8), body=st.binary(min_size=40, max_size=40))
def test_generator_equals_construct_on_counted_arrays(count: int, n: int, body: bytes) -> None:
    data = bytes([0x10 | count, n]) + body[: 2 * n + count + 1]
    got = same_codecs(ODD_CODECS, data, 2, "up")
    assert got[0] == "ok" and _taken(2, data)
    assert same_codecs(ODD_CODECS, data + b"\x07", 2, "up")[0] == "ok"  # not Terminated: trailing bytes ok
    assert _taken(2, data + b"\x07")


def test_a_port_takes_to_data_or_a_view_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        Port(1, "up", "x", "x", ODD, {}, (), to_data=dict, view={"le": "le"})


def test_a_view_port_survives_dataclasses_replace() -> None:
    port = get_codec("air").port(1, "up")
    again = dataclasses.replace(port, summary="copy")
    data = bytes.fromhex(next(v["bytes"] for v in vectors("air") if v["fport"] == 1))
    parsed = port.struct.parse(data)  # construct's Container: the glue reads it like the fast dicts
    assert again.to_data(parsed) == port.to_data(parsed) == get_codec("air").decode(data, 1)["data"]


# --- counts and conditions: construct's this-paths read through their public behaviour --------------------


def _one_port(schema: cs.Construct) -> Port:
    return Port(1, "up", "p", "p", schema, {}, ())


def test_nested_this_paths_are_followed() -> None:
    schema = cs.Struct(
        header("n" / cs.BitsInteger(4)),
        "inner" / cs.BitStruct("k" / cs.BitsInteger(4), "big" / Bool(cs.Flag), cs.Padding(3)),
        "xs" / cs.Array(cs.this.inner.k, cs.Int8ub),
        "ys" / cs.Array(cs.this["_header"]["n"], cs.Int8ub),  # item access: the same path
        "z" / cs.If(cs.this.inner.big, cs.Int16ub),
        cs.Terminated,
    )
    parse = derive(schema)
    assert parse is not None
    data = bytes([0x12, 0x38, 7, 8, 9, 5, 6, 0x01, 0x02])
    want = _container_dict(schema.parse(data))
    assert parse(data) == want and want["xs"] == [7, 8, 9] and want["ys"] == [5, 6] and want["z"] == 258


@pytest.mark.parametrize(
    "count",
    [
        cs.this._.n,  # the parent context: not this Struct's field
        cs.this._,
        lambda ctx: ctx.n,  # a function: construct calls it, the fast path cannot read it
        cs.this.n * 2,  # an expression over a path
        cs.len_(cs.this.n),
        cs.Path("other").n,  # a path not on this
        cs.this.missing,  # no earlier field of that name
        cs.this[0],  # not a field name
    ],
)
def test_counts_the_fast_path_cannot_follow_leave_the_port_to_construct(count: Any) -> None:
    schema = cs.Struct(header(), "n" / cs.Int8ub, "xs" / cs.Array(count, cs.Int8ub))
    assert derive(schema) is None
    assert derive_decoder("x", _one_port(schema)) is None


def test_the_fast_path_and_the_payload_schemas_use_no_private_names_of_construct() -> None:
    """fastpath.py once read construct's name-mangled Path attributes and base.py called construct's
    internal compile hooks (which pinned construct below 2.11); tools/check_private_names.py finds both."""
    assert private_names_in("codecs/payload") == []
