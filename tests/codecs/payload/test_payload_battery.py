"""The battery field above its range: the host codec sends the top value (254 = 5080 mV), the same
bytes as the firmware (tests/firmware/mp/test_payload_vectors.py checks the firmware side against
the same vectors), never the 0xFF that means "absent"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from havel.codecs.payload import KIND_NAMES, get_codec
from havel.errors import CodecError

VECTORS = Path(__file__).resolve().parents[3] / "codecs" / "vectors"
NODE_CODECS = KIND_NAMES


def _tops(name: str) -> list[dict[str, Any]]:
    vectors = json.loads((VECTORS / f"{name}.json").read_text())
    return [v for v in vectors if v["direction"] == "up" and v["data"].get("battery") == 5080]


@pytest.mark.parametrize("name", NODE_CODECS)
@pytest.mark.parametrize("mv", [5081, 5090, 5400, 65535, 1e9])
def test_battery_above_range_encodes_as_the_top_value(name: str, mv: float) -> None:
    tops = _tops(name)
    assert tops, f"{name}: no vector with battery 5080"
    codec = get_codec(name)
    for v in tops:
        data = dict(v["data"], battery=mv)
        assert codec.encode(data, v["fport"], "up").hex() == v["bytes"]


@pytest.mark.parametrize("bad", [-20, float("nan"), float("inf")])
def test_battery_below_range_or_not_finite_is_still_refused(bad: float) -> None:
    v = _tops("air")[0]
    with pytest.raises(CodecError, match="battery"):
        get_codec("air").encode(dict(v["data"], battery=bad), v["fport"], "up")
