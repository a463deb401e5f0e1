"""Property tests: random bytes never crash a decoder; encode -> decode round-trips for every codec.

Valid payloads are generated from the construct declarations themselves (every Reading's raw range,
every flag and choice), so a field added to a schema is covered without touching this file.
"""

from __future__ import annotations

import math
from typing import Any

import construct as cs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from havel.codecs.payload import KIND_NAMES, get_codec
from havel.codecs.payload.base import NodeCodec
from havel.codecs.payload.cayenne_lpp import TYPES, LppType
from havel.codecs.payload.fields import Bool, Choice, Reading
from havel.codecs.payload.port import Port
from havel.errors import CodecError

NODE_CODECS = KIND_NAMES
ALL_CODECS = (*NODE_CODECS, "cayenne-lpp")
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PER_PORT = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reading_values(r: Reading) -> st.SearchStrategy[Any]:
    raw_lo = math.ceil(r.lo * r.den / r.num)
    raw_hi = math.floor(r.hi * r.den / r.num)
    values = st.integers(raw_lo, raw_hi).map(lambda raw: raw * r.num if r.den == 1 else raw * r.num / r.den)
    return st.one_of(values, st.none()) if r.nullable else values


def objects(con: cs.Construct) -> st.SearchStrategy[Any]:
    """Objects that ``con.build`` accepts, drawn from the declaration."""
    if isinstance(con, Reading):
        return reading_values(con)
    if isinstance(con, Bool):
        return st.booleans()
    if isinstance(con, Choice):
        return st.sampled_from(sorted(con.names))
    if isinstance(con, cs.Struct):
        fields = {
            sc.name: objects(sc.subcon)
            for sc in con.subcons
            if sc.name and not isinstance(sc.subcon, cs.Const)
        }
        return st.fixed_dictionaries(fields)
    if isinstance(con, cs.Transformed | cs.Restreamed):  # BitStruct
        return objects(con.subcon)
    if isinstance(con, cs.IfThenElse):
        return st.one_of(objects(con.thensubcon), st.none())
    if isinstance(con, cs.Array):
        if isinstance(con.count, int):
            return st.lists(objects(con.subcon), min_size=con.count, max_size=con.count)
        return st.lists(objects(con.subcon), max_size=15)
    if isinstance(con, cs.BitsInteger):  # a bare count nibble, fixed up below
        return st.just(0)
    raise AssertionError(f"no strategy for {con!r}")


def port_objects(port: Port) -> st.SearchStrategy[Any]:
    """Objects for a port's Struct that also keep the port's rules across fields."""

    def fix(obj: dict[str, Any]) -> dict[str, Any]:
        if "probes" in obj:  # the temperature node's count nibble says how many probes follow
            obj["_header"]["count"] = len(obj["probes"])
        if port.name == "override":  # an override expires; 'auto' has no time-to-live
            obj["ttl"] = 0 if obj["state"] == "auto" else max(60, obj["ttl"])
        return obj

    def rules(obj: dict[str, Any]) -> bool:
        return port.name != "set_thresholds" or obj["off_threshold"] < obj["on_threshold"]

    return objects(port.struct).map(fix).filter(rules)


def _distinct_ports() -> list[tuple[str, Port]]:
    """Every (codec, port), the common ports (same schema on every node codec) only once."""
    seen: set[int] = set()
    out = []
    for name in NODE_CODECS:
        for p in get_codec(name).ports:
            if id(p.struct) not in seen:
                seen.add(id(p.struct))
                out.append((name, p))
    return out


NODE_PORTS = _distinct_ports()
PORT_IDS = [f"{name}-{p.direction}{p.fport}-{p.name}" for name, p in NODE_PORTS]


@pytest.mark.parametrize(("name", "port"), NODE_PORTS, ids=PORT_IDS)
@PER_PORT
@given(data=st.data())
def test_node_encode_decode_round_trip(name: str, port: Port, data: st.DataObject) -> None:
    codec = get_codec(name)
    payload = port.struct.build(data.draw(port_objects(port)))
    decoded = codec.decode(payload, port.fport, port.direction)  # type: ignore[arg-type]
    encoded = codec.encode(decoded["data"], port.fport, port.direction)
    again = codec.decode(encoded, port.fport, port.direction)  # type: ignore[arg-type]
    assert again["data"] == decoded["data"]
    if port.direction == "down":  # generated downlinks keep the rules; uplinks may report unsafe states
        assert decoded["errors"] == []
    # air: a fault bit nulls the sensor's readings whatever the bytes, and encode then writes sentinels
    if not (name == "air" and port.fport == 1):
        assert encoded == payload
    assert len(payload) <= 51


def lpp_entries() -> st.SearchStrategy[dict[str, Any]]:
    def entry(t: LppType) -> st.SearchStrategy[tuple[str, Any]]:
        return st.tuples(st.integers(0, 255), objects(t.value)).map(lambda cv: (f"{t.name}_{cv[0]}", cv[1]))

    return st.lists(st.sampled_from(TYPES).flatmap(entry), max_size=12, unique_by=lambda kv: kv[0]).map(dict)


@SETTINGS
@given(data=lpp_entries())
def test_lpp_encode_decode_round_trip(data: dict[str, Any]) -> None:
    lpp = get_codec("cayenne-lpp")
    encoded = lpp.encode(data, 1)
    assert lpp.decode(encoded, 1)["data"] == data
    assert lpp.encode(lpp.decode(encoded, 1)["data"], 1) == encoded


@SETTINGS
@given(
    data=st.dictionaries(
        st.integers(0, 255).map(lambda c: f"value_{c}"),
        st.integers(-32768, 32767).map(lambda r: r / 100),
        max_size=10,
    )
)
def test_lpp_downlink_round_trip(data: dict[str, Any]) -> None:
    lpp = get_codec("cayenne-lpp")
    assert lpp.decode(lpp.encode(data, 1, "down"), 1, "down")["data"] == data


def decode_or_codec_error(name: str, payload: bytes, fport: int, direction: str) -> None:
    try:
        result = get_codec(name).decode(payload, fport, direction)
    except CodecError:
        return
    assert set(result) == {"codec", "fport", "version", "data", "units", "warnings", "errors"}


@pytest.mark.parametrize("name", ALL_CODECS)
@SETTINGS
@given(
    payload=st.binary(max_size=64),
    fport=st.sampled_from([1, 2, 3, 10, 11, 12, 20, 21, 22, 23, 24]),
    direction=st.sampled_from(["up", "down"]),
)
def test_random_bytes_never_crash(name: str, payload: bytes, fport: int, direction: str) -> None:
    decode_or_codec_error(name, payload, fport, direction)


@pytest.mark.parametrize(("name", "port"), NODE_PORTS, ids=PORT_IDS)
@PER_PORT
@given(payload=st.binary(min_size=1, max_size=40))
def test_random_bytes_with_a_valid_version_never_crash(name: str, port: Port, payload: bytes) -> None:
    """Past the version check, into every field of every schema."""
    payload = bytes([0x10 | (payload[0] & 0x0F)]) + payload[1:]
    decode_or_codec_error(name, payload, port.fport, port.direction)  # type: ignore[arg-type]


@SETTINGS
@given(payload=st.binary(max_size=64))
def test_random_lpp_streams_of_known_types_never_crash(payload: bytes) -> None:
    # Force every second byte to a known type id, so decoding goes deep into the stream.
    ids = [t.type_id for t in TYPES]
    forced = bytes(b if i % 2 == 0 else ids[b % len(ids)] for i, b in enumerate(payload))
    decode_or_codec_error("cayenne-lpp", forced, 1, "up")


def test_node_codecs_are_node_codecs() -> None:
    assert all(isinstance(get_codec(n), NodeCodec) for n in NODE_CODECS)
