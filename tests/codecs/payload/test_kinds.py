"""Node kinds declared once (codecs/payload/kind.py, ``KIND`` in each codec module): the registry, the
declarations' consistency, and the gateway's outbox priority asking them instead of naming codecs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from havel.codecs.payload import CODEC_NAMES, KIND_NAMES, NodeKind, find_kind, get_codec, get_kind, list_kinds
from havel.errors import CodecError
from havel.gateway.network.priority import classify

REPO = Path(__file__).resolve().parents[3]


def test_every_kind_is_a_codec_and_the_generic_codecs_are_no_kind() -> None:
    assert tuple(k.name for k in list_kinds()) == KIND_NAMES
    assert CODEC_NAMES[: len(KIND_NAMES)] == KIND_NAMES and "cayenne-lpp" in CODEC_NAMES
    for kind in list_kinds():
        assert get_codec(kind.name) is kind.codec and get_kind(kind.name) is kind
    assert find_kind("cayenne-lpp") is None and find_kind(None) is None  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="unknown node kind 'gas'; kinds are air, water"):
        get_kind("gas")


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_declaration_is_consistent(kind: str) -> None:
    k = get_kind(kind)
    readings = k.codec.port(1, "up")
    assert set(k.alarm_keys) <= set(readings.keys), "alarm keys are keys of the readings uplink"
    assert (REPO / "hw" / "kits" / f"{k.kit}.json").is_file()
    assert (k.sim_config is None) == (k.sim_world is None)
    # the live table's line for every readings vector, absent readings included
    for v in json.loads((REPO / "codecs" / "vectors" / f"{kind}.json").read_text()):
        if (v["fport"], v["direction"]) == (1, "up"):
            line = k.summary(v["data"])
            assert isinstance(line, str) and line


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_outbox_priority_follows_the_declaration(kind: str) -> None:
    k = get_kind(kind)
    routine = "state" if k.state else "background"
    for v in json.loads((REPO / "codecs" / "vectors" / f"{kind}.json").read_text()):
        if v["direction"] != "up":
            continue
        data = v["data"]
        expected = "alarm" if k.in_alarm(data) else routine
        assert classify(kind, data, v["fport"]) == expected, v["description"]
    for key in k.alarm_keys:
        assert classify(kind, {key: True}, 1) == "alarm"
        assert classify(kind, {key: 2}, 1) == "alarm"
        assert classify(kind, {key: False}, 1) == routine
        assert classify(kind, {key: 0}, 1) == routine


def test_an_alarm_word_counts_only_where_the_kind_declares_it() -> None:
    """Before, any payload with a true ``alarm`` was an alarm whatever its codec; now the kind says which
    keys mean alarm (the air node has none: its readings stay routine)."""
    assert get_kind("air").alarm_keys == ()
    assert classify("air", {"alarm": True, "temperature": 21.0}, 1) == "background"
    assert classify("water", {"alarm": True}, 1) == "alarm"
    # a codec that is no node kind keeps the generic reading of the alarm fields
    assert classify("cayenne-lpp", {"alarm": True}, 1) == "alarm"
    assert classify("cayenne-lpp", {"temperature_1": 20.0}, 1) == "background"
    # MAC-only frames and frames without data are state, whatever the kind
    assert classify("water", None, 0) == "state" and classify("air", {}, None) == "state"


def test_a_kind_declares_its_own_alarm_and_state() -> None:
    codec = get_codec("water")
    gauge = NodeKind(codec, kit="water", alarm_keys=("alarm_level",))  # type: ignore[arg-type]
    assert gauge.priority({"alarm": True, "alarm_level": 0}) is None
    assert gauge.priority({"alarm_level": 1}) == "alarm"
    valve = NodeKind(codec, kit="cooling", state=True)  # type: ignore[arg-type]
    assert valve.priority({"alarm": True}) == "state"
