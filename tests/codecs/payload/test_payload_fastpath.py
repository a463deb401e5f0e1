"""The struct-based fast decoders (codecs/payload/fastpath.py) against the construct schemas they come from.

For every vector and for random bytes (same length as a vector with its bytes changed, and arbitrary
lengths), decoding with the fast path on gives exactly what construct gives: the same output dict, or the
same CodecError text. The fast path must also really be used for well-formed payloads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from havel.codecs.payload import NodeCodec, get_codec
from havel.codecs.payload.fastpath import derive
from havel.errors import CodecError

VECTORS = Path(__file__).resolve().parents[3] / "codecs" / "vectors"
NODE_CODECS = ("air", "water", "temperature", "cooling")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pair(name: str) -> tuple[NodeCodec, NodeCodec]:
    codec = get_codec(name)
    assert isinstance(codec, NodeCodec)
    fast = NodeCodec(name, codec.summary, codec.ports, fast=True)
    plain = NodeCodec(name, codec.summary, codec.ports, fast=False)
    return fast, plain


def outcome(codec: NodeCodec, data: bytes, fport: int, direction: str) -> Any:
    try:
        return ("ok", codec.decode(data, fport, direction))
    except CodecError as exc:
        return ("error", str(exc), exc.hint)


def same(name: str, data: bytes, fport: int, direction: str) -> None:
    fast, plain = pair(name)
    got, want = outcome(fast, data, fport, direction), outcome(plain, data, fport, direction)
    # repr too: 21.5 == 21.5 but an int where construct gives a float (or True for 1) would differ
    assert got == want and repr(got) == repr(want)


def vectors(name: str) -> list[dict[str, Any]]:
    return list(json.loads((VECTORS / f"{name}.json").read_text()))


ALL = [(name, v) for name in NODE_CODECS for v in vectors(name)]


@pytest.mark.parametrize("name", NODE_CODECS)
def test_every_port_of_every_node_codec_has_a_fast_decoder(name: str) -> None:
    for port in get_codec(name).ports:
        assert derive(port.struct) is not None, f"{name} {port.name}"


@pytest.mark.parametrize(("name", "vector"), ALL, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ALL)])
def test_fast_path_takes_every_vector_and_decodes_it_as_construct(name: str, vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["bytes"])
    fast, _ = pair(name)
    port = fast.port(vector["fport"], vector["direction"])
    if data:
        decoder = derive(port.struct)
        assert decoder is not None
        parsed = decoder(data)
        assert parsed is not None, "a vector the fast path does not take"
    same(name, data, vector["fport"], vector["direction"])
    if "data" in vector:
        assert fast.decode(data, vector["fport"], vector["direction"])["data"] == vector["data"]


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


@st.composite
def anything(draw: st.DrawFn) -> tuple[str, bytes, int, str]:
    """Any length on any port, the version nibble mostly right (truncated, too long, counts that lie)."""
    name = draw(st.sampled_from(NODE_CODECS))
    fport, direction = draw(st.sampled_from(_ports(name)))
    body = draw(st.binary(max_size=24))
    if body and draw(st.integers(0, 9)) > 0:
        body = bytes([0x10 | (body[0] & 0x0F)]) + body[1:]
    return name, body, fport, direction


@SETTINGS
@given(mutated())
def test_fast_path_equals_construct_on_random_well_sized_payloads(case: tuple[str, bytes, int, str]) -> None:
    same(*case)


@SETTINGS
@given(anything())
def test_fast_path_equals_construct_on_random_bytes_of_any_length(case: tuple[str, bytes, int, str]) -> None:
    same(*case)


def test_fast_path_gives_back_what_it_cannot_parse() -> None:
    fast, _ = pair("temperature")
    port = fast.port(1, "up")
    decoder = derive(port.struct)
    assert decoder is not None
    ok = bytes.fromhex("1200f1013d4cba")
    assert decoder(ok) is not None
    assert decoder(ok[:-1]) is None  # truncated: construct raises the error
    assert decoder(ok + b"\x00") is None  # too long
    assert decoder(bytes([0x20]) + ok[1:]) is None  # wrong version constant
    with pytest.raises(CodecError, match="truncated"):
        fast.decode(ok[:-1], 1)
    with pytest.raises(CodecError, match="too long"):
        fast.decode(ok + b"\x00", 1)
