"""encode_json gives json.dumps's value (the outbox's options) and its errors, by way of orjson."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.private_names import private_names_in

from havel.gateway.jsontext import encode_json, encode_json_bytes

finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=12)  # any unicode: quotes, backslashes, control characters, astral planes
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | finite | text
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4)
)


def reference(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@settings(max_examples=500, deadline=None)
@given(values)
def test_same_value_as_json_dumps(value: Any) -> None:
    got = encode_json(value)
    # the same value, members in the same order at every level
    assert json.loads(got, object_pairs_hook=list) == json.loads(reference(value), object_pairs_hook=list)
    assert encode_json_bytes(value) == got.encode()


def test_the_usual_message_is_json_dumps_text_byte_for_byte() -> None:
    """What an uplink's message holds (strings, ints, short floats, lists, nested dicts) is spelled as
    json.dumps spells it: orjson differs only in the spelling of floats with small exponents."""
    msg = {
        "id": "70B3D57ED0100001-0-5",
        "rx": [{"gateway": "AA555A0000BEBC01", "rssi": -90.0, "snr": 5.5, "freq": 868.1, "chan": 0}],
        "data": {"probes_c": [24.1, -3.9], "humidity_percent": 61.3, "valve": {"open": True}},
        "units": {"probes_c": "°C", "note": 'a "quoted" \\ line\nbreak \u2028 \x7f'},
        "warnings": [],
        "fcnt": 4294967295,
    }
    assert encode_json(msg) == reference(msg)


def test_errors_are_json_dumps_errors() -> None:
    with pytest.raises(ValueError):  # orjson would write null: the standard library refuses
        encode_json({"t": float("nan")})
    with pytest.raises(ValueError):
        encode_json([None, float("inf")])
    with pytest.raises(ValueError):
        encode_json_bytes({"t": float("-inf")})
    with pytest.raises(TypeError):
        encode_json({"raw": b"\x00"})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError):  # circular: detected, not a RecursionError
        encode_json(loop)
    assert encode_json({"t": 1.5}) == '{"t":1.5}'  # and the next call is not disturbed


def test_what_orjson_does_not_take_the_standard_library_converts() -> None:
    assert encode_json({1: "a", "big": 2**70}) == '{"1":"a","big":1180591620717411303424}'
    assert encode_json({"data": None, "t": 1.0}) == '{"data":null,"t":1.0}'
    deep: Any = 1
    for _ in range(300):  # deeper than orjson's 254 levels
        deep = [deep]
    assert encode_json(deep) == "[" * 300 + "1" + "]" * 300


def test_a_message_with_a_null_is_json_dumps_text_byte_for_byte() -> None:
    """A reading a sensor did not give: the standard library writes the message, exactly as json.dumps."""
    msg = {
        "id": "70B3D57ED0100001-0-6",
        "data": {"probes_c": [24.1, None], "note": "ü\u2028"},
        "warnings": ["probes_c[1]: reading absent or faulty"],
        "snr": 1e-05,
    }
    assert encode_json(msg) == reference(msg)
    assert encode_json_bytes(msg) == reference(msg).encode()


def test_only_public_apis_of_json_and_orjson() -> None:
    """It once called json.encoder.c_make_encoder directly (tools/check_private_names.py finds that)."""
    assert private_names_in("gateway/jsontext.py") == []
