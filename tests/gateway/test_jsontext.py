"""encode_json gives json.dumps's text (the outbox's options), byte for byte, and its errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from havel.gateway.jsontext import encode_json

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
def test_same_text_as_json_dumps(value: Any) -> None:
    assert encode_json(value) == reference(value)


def test_errors_are_json_dumps_errors() -> None:
    with pytest.raises(ValueError):
        encode_json({"t": float("nan")})
    with pytest.raises(ValueError):
        encode_json([float("inf")])
    with pytest.raises(TypeError):
        encode_json({"raw": b"\x00"})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError):  # circular: detected, not a RecursionError
        encode_json(loop)
    assert encode_json({"t": 1.5}) == '{"t":1.5}'  # and the next call is not disturbed
