"""The shared vectors (codecs/vectors/<codec>.json): decode(bytes) == data and encode(data) == bytes.

The firmware's encoders are tested against the same files, so these tests also pin the files' shape.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from havel.codecs.payload import CODEC_NAMES, KIND_NAMES, NodeCodec, get_codec, list_codecs

VECTORS = Path(__file__).resolve().parents[3] / "codecs" / "vectors"
CODECS = CODEC_NAMES


def load(name: str) -> list[dict[str, Any]]:
    return json.loads((VECTORS / f"{name}.json").read_text())


ALL = [(name, i, v) for name in CODECS for i, v in enumerate(load(name))]
IDS = [f"{name}-{i}-{v['direction']}{v['fport']}" for name, i, v in ALL]


def test_every_codec_has_a_vector_file_and_no_other_file_exists() -> None:
    assert sorted(p.stem for p in VECTORS.glob("*.json")) == sorted(CODECS)
    assert [c.name for c in list_codecs()] == list(CODECS)


@pytest.mark.parametrize("name", CODECS)
def test_vector_file_shape(name: str) -> None:
    vectors = load(name)
    for direction in ("up", "down"):
        count = sum(v["direction"] == direction for v in vectors)
        assert count >= 5, f"{name}: fewer than 5 {direction}link vectors"
    for v in vectors:
        assert set(v) == {"description", "fport", "direction", "bytes", "data"}
        assert re.fullmatch(r"([0-9a-f]{2})*", v["bytes"]), v["bytes"]
        assert isinstance(v["fport"], int) and 1 <= v["fport"] <= 223
        if name != "cayenne-lpp":  # LPP examples come from elsewhere; Havel's own payloads fit DR0
            assert len(v["bytes"]) // 2 <= 51, "every node payload must fit DR0"


@pytest.mark.parametrize("name", KIND_NAMES)
def test_every_node_port_is_covered(name: str) -> None:
    codec = get_codec(name)
    covered = {(v["fport"], v["direction"]) for v in load(name)}
    assert {(p.fport, p.direction) for p in codec.ports} <= covered


@pytest.mark.parametrize("name", KIND_NAMES)
def test_absent_readings_are_among_the_vectors(name: str) -> None:
    nulls = [v for v in load(name) if "null" in json.dumps(v["data"])]
    assert nulls, f"{name}: no vector with an absent reading"
    for v in nulls:
        result = get_codec(name).decode(bytes.fromhex(v["bytes"]), v["fport"], v["direction"])
        assert any("absent or faulty" in w for w in result["warnings"])


@pytest.mark.parametrize(("name", "i", "vector"), ALL, ids=IDS)
def test_decode_gives_the_vector_data(name: str, i: int, vector: dict[str, Any]) -> None:
    result = get_codec(name).decode(bytes.fromhex(vector["bytes"]), vector["fport"], vector["direction"])
    assert result["data"] == vector["data"]
    # the same, as JSON would carry it (no float artefacts, no non-JSON types)
    assert json.loads(json.dumps(result["data"])) == vector["data"]
    assert result["codec"] == name and result["fport"] == vector["fport"]
    assert result["version"] == (None if name == "cayenne-lpp" else 1)
    assert set(result) == {"codec", "fport", "version", "data", "units", "warnings", "errors"}


@pytest.mark.parametrize(("name", "i", "vector"), ALL, ids=IDS)
def test_encode_gives_the_vector_bytes(name: str, i: int, vector: dict[str, Any]) -> None:
    encoded = get_codec(name).encode(vector["data"], vector["fport"], vector["direction"])
    assert encoded.hex() == vector["bytes"]


@pytest.mark.parametrize("name", KIND_NAMES)
def test_compiled_structs_decode_the_same(name: str) -> None:
    plain = get_codec(name)
    assert isinstance(plain, NodeCodec)
    compiled = NodeCodec(name, plain.summary, plain.ports, compiled=True)
    for v in load(name):
        data = bytes.fromhex(v["bytes"])
        args = (data, v["fport"], v["direction"])
        assert compiled.decode(*args) == plain.decode(*args)


def test_units_are_ucum_codes_of_the_platform() -> None:
    allowed = {"Cel", "%", "hPa", "ug/m3", "[ppm]", "cm", "mm", "mV", "L", "s"}
    for name in KIND_NAMES:
        for port in get_codec(name).ports:
            assert set(port.units.values()) <= allowed, (name, port.name, port.units)
            assert set(port.units) <= set(port.keys), (name, port.name)


def test_units_reported_on_decode() -> None:
    v = load("air")[0]
    result = get_codec("air").decode(bytes.fromhex(v["bytes"]), 1)
    assert result["units"]["pm2_5"] == "ug/m3" and result["units"]["co2"] == "[ppm]"
    lpp = get_codec("cayenne-lpp").decode(bytes.fromhex("0367011005680a"), 1)
    assert lpp["units"] == {"temperature_3": "Cel", "relative_humidity_5": "%"}


def test_examples_in_the_layout_document_are_vectors() -> None:
    """docs/payloads.md's worked examples are shared vectors, so the document cannot drift from them."""
    doc = (VECTORS.parents[1] / "docs" / "payloads.md").read_text()
    examples = re.findall(r"[Ee]xample:? `([0-9a-f ]+)`", doc)
    assert len(examples) >= 9
    known = {v["bytes"] for name in CODECS for v in load(name)}
    for example in examples:
        assert example.replace(" ", "") in known, example
