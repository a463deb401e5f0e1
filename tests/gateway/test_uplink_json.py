"""The uplink message writer gives the outbox encoder's text, byte for byte, for every message shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from havel.gateway.uplink_json import KEYS, UplinkJson, encode_json


def _encode_json(value: Any) -> str:
    """The reference: what the outbox stored before (json.dumps with the outbox's options)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=12)  # any unicode: quotes, backslashes, control characters, astral planes
hexes = st.text(alphabet="0123456789ABCDEF", min_size=1, max_size=16)
scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | finite | text
data = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3)
)


def rx_entry() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "gateway": hexes,
            "rssi": finite | st.integers(-150, 0),
            "snr": st.none() | finite,
            "freq": finite,
            "datr": text,
            "chan": st.integers(0, 15),
            "tmst": st.integers(0, 2**32 - 1),
        }
    )


messages = st.fixed_dictionaries(
    {
        "id": hexes,
        "device": text,
        "dev_eui": hexes,
        "dev_addr": hexes,
        "session_epoch": st.integers(0, 1000),
        "fcnt": st.integers(0, 2**32 - 1),
        "fport": st.none() | st.integers(0, 255),
        "confirmed": st.booleans(),
        "received_at": st.just("2026-11-26T09:00:00.123456Z") | text,
        "time_source": st.sampled_from(["local", "gps"]),
        "rx": st.lists(rx_entry(), min_size=1, max_size=3),
        "codec": text,
        "data": data,
        "units": st.dictionaries(text, text | st.dictionaries(text, text, max_size=2), max_size=3),
        "warnings": st.lists(text, max_size=2),
        "errors": st.lists(text, max_size=2),
        "raw": st.text(alphabet="0123456789abcdef", max_size=20),
    }
)


@settings(max_examples=400, deadline=None)
@given(messages)
def test_same_text_as_the_outbox_encoder(message: dict[str, Any]) -> None:
    writer = UplinkJson()
    expected = _encode_json(message)
    assert writer.uplink(message) == expected
    assert writer.uplink(message) == expected  # again, now from the caches (name, units)
    assert json.loads(expected) == message
    assert encode_json(message) == expected


def test_the_caches_notice_a_change() -> None:
    writer = UplinkJson()
    m = {k: None for k in KEYS} | {
        "id": "A-0-1", "device": "pegel-1", "dev_eui": "A", "dev_addr": "1", "session_epoch": 0,
        "fcnt": 1, "fport": 1, "confirmed": False, "received_at": "t", "time_source": "local", "rx": [],
        "codec": "water", "data": {"level_cm": 12}, "units": {"level_cm": "cm"}, "warnings": [],
        "errors": [], "raw": "00",
    }  # fmt: skip
    assert writer.uplink(m) == _encode_json(m)
    m2 = m | {"units": {"level_cm": "mm"}, "device": 'pegel "2"'}
    assert writer.uplink(m2) == _encode_json(m2)


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},  # a key more: written the general way, same text
        {"fcnt": True},
        {"warnings": ("a",)},
        {"rx": [{"gateway": "A", "rssi": -1.0}]},
    ],
)
def test_other_shapes_fall_back_to_the_general_encoder(change: dict[str, Any]) -> None:
    base = {k: 0 for k in KEYS} | {"rx": [], "warnings": [], "errors": [], "codec": "x", "units": {}}
    m = base | change
    assert UplinkJson().uplink(m) == _encode_json(m)


def test_what_json_cannot_hold_raises_like_the_encoder() -> None:
    m = {k: 0 for k in KEYS} | {"rx": [], "warnings": [], "errors": [], "codec": "x", "units": {}}
    with pytest.raises(ValueError):
        UplinkJson().uplink(m | {"data": {"t": float("nan")}})
    with pytest.raises(ValueError):
        UplinkJson().uplink(m | {"rx": [dict.fromkeys(("gateway", "rssi"), float("inf"))]})
