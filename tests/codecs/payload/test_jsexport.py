"""The generated JavaScript formatters against the Python codecs, in Node.js.

Each formatter runs as a network server runs it: the file alone in a fresh context without require,
process or Buffer (jsrunner.js). Many cases go to one Node process as JSON over stdin. The Python codec is
the reference: the same answer (data, units, warnings, errors, with numbers compared exactly and booleans
kept apart from numbers), the same bytes, or an error in both.
"""

from __future__ import annotations

import copy
import json
import random
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import construct as cs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from havel.cli import main
from havel.codecs.payload import CODEC_NAMES, NodeCodec, Port, get_codec
from havel.codecs.payload.fields import Bool, Choice, Reading, header
from havel.codecs.payload.js import export, formatter, formatter_notes
from havel.codecs.payload.port import Field, flags_of
from havel.errors import CodecError, HavelError

ROOT = Path(__file__).resolve().parents[3]
VECTORS = ROOT / "codecs" / "vectors"
RUNNER = Path(__file__).with_name("jsrunner.js")
NODE = shutil.which("node")
# every codec the registry has: a new kind of node is tested here without naming it
CODECS = CODEC_NAMES
NODES = tuple(name for name in CODEC_NAMES if isinstance(get_codec(name), NodeCodec))


SETTINGS = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example, HealthCheck.data_too_large],
)


def vectors(name: str) -> list[dict[str, Any]]:
    return json.loads((VECTORS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("formatters")
    out = {}
    for name in CODECS:
        out[name] = folder / f"{name}.js"
        out[name].write_text(formatter(name))
    return out


def run_js(script: Path, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``cases`` ({"call", "args"}) through the formatter in one Node process."""
    assert NODE is not None, "Node.js is needed (tools/bootstrap.sh)"
    proc = subprocess.run(
        [NODE, str(RUNNER), str(script)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    assert len(results) == len(cases)
    return results


def same(a: Any, b: Any) -> bool:
    """``a`` (Python) equals ``b`` (JSON from JavaScript) exactly: numbers by value with no tolerance,
    booleans never equal to numbers, dict keys in the same order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, int | float) or isinstance(b, int | float):
        return isinstance(a, int | float) and isinstance(b, int | float) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def py_decode(name: str, data: bytes, fport: Any, direction: str) -> dict[str, Any] | None:
    try:
        return get_codec(name).decode(data, fport, direction)
    except CodecError:
        return None


def py_encode(name: str, data: Any, fport: Any, direction: str) -> list[int] | None:
    try:
        return list(get_codec(name).encode(data, fport, direction))
    except CodecError:
        return None


def check_decodes(name: str, script: Path, cases: list[tuple[bytes, Any, str]]) -> int:
    """JS and Python decode each (bytes, fport, direction) alike; returns how many were errors."""
    results = run_js(script, [{"call": "havelDecode", "args": [list(b), fp, d]} for b, fp, d in cases])
    errors = 0
    for (data, fport, direction), got in zip(cases, results, strict=True):
        want = py_decode(name, data, fport, direction)
        label = f"{name} {direction} {fport} {data.hex()}"
        if want is None:
            errors += 1
            assert "thrown" in got, f"{label}: Python refuses, JavaScript gives {got}"
            assert got["thrown"], label
        else:
            assert "ok" in got, f"{label}: Python gives {want}, JavaScript throws {got}"
            assert same(want, got["ok"]), f"{label}:\n python {want}\n js     {got['ok']}"
    return errors


def check_encodes(name: str, script: Path, cases: list[tuple[Any, Any, str]]) -> int:
    """JS and Python encode each (data, fport, direction) to the same bytes, or both refuse."""
    results = run_js(script, [{"call": "havelEncode", "args": [d, fp, dr]} for d, fp, dr in cases])
    errors = 0
    for (data, fport, direction), got in zip(cases, results, strict=True):
        want = py_encode(name, data, fport, direction)
        label = f"{name} {direction} {fport} {data!r}"
        if want is None:
            errors += 1
            assert "thrown" in got, f"{label}: Python refuses, JavaScript gives {got}"
        else:
            assert got.get("ok") == want, f"{label}: Python {bytes(want).hex()}, JavaScript {got}"
    return errors


# --- the shared vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", CODECS)
def test_every_vector_decodes_like_python(name: str, scripts: dict[str, Path]) -> None:
    cases = [(bytes.fromhex(v["bytes"]), v["fport"], v["direction"]) for v in vectors(name)]
    assert check_decodes(name, scripts[name], cases) == 0
    results = run_js(scripts[name], [{"call": "havelDecode", "args": [list(b), fp, d]} for b, fp, d in cases])
    for v, got in zip(vectors(name), results, strict=True):
        assert same(v["data"], got["ok"]["data"]), v["description"]


@pytest.mark.parametrize("name", CODECS)
def test_every_vector_encodes_to_its_bytes(name: str, scripts: dict[str, Path]) -> None:
    results = run_js(
        scripts[name],
        [{"call": "havelEncode", "args": [v["data"], v["fport"], v["direction"]]} for v in vectors(name)],
    )
    for v, got in zip(vectors(name), results, strict=True):
        assert bytes(got["ok"]).hex() == v["bytes"], v["description"]


def _broken_payloads(name: str) -> list[tuple[bytes, Any, str]]:
    """Every vector cut short, one byte too long, with another version nibble, on a wrong port or empty."""
    out: list[tuple[bytes, Any, str]] = []
    for v in vectors(name):
        data, fport, direction = bytes.fromhex(v["bytes"]), v["fport"], v["direction"]
        out += [(data[:cut], fport, direction) for cut in range(len(data))]
        out.append((data + b"\x00", fport, direction))
        if data and name in NODES:
            out += [
                (bytes([(ver << 4) | (data[0] & 0x0F)]) + data[1:], fport, direction) for ver in (0, 2, 15)
            ]
        other = "down" if direction == "up" else "up"
        out += [
            (data, 3, direction),
            (data, 224, direction),
            (data, fport, other),
            (data, 0, direction),
            (data, fport, "sideways"),
        ]
    return out


@pytest.mark.parametrize("name", CODECS)
def test_broken_payloads_fail_in_both(name: str, scripts: dict[str, Path]) -> None:
    cases = _broken_payloads(name)
    errors = check_decodes(name, scripts[name], cases)
    assert errors > len(cases) // 2  # most of them are errors (LPP cut at an entry boundary is still valid)


_BAD_VALUES: list[Any] = [None, "x", True, False, 1e9, -1e9, 0.5, -1, 256, 65536, [], {}, [1.0, 2.0, 3.0]]


def _bad_data(name: str) -> list[tuple[Any, Any, str]]:
    """Every vector's data with one value replaced, one key dropped or one key added."""
    out: list[tuple[Any, Any, str]] = []
    for v in vectors(name):
        data, fport, direction = v["data"], v["fport"], v["direction"]
        for key in data:
            for bad in _BAD_VALUES:
                changed = copy.deepcopy(data)
                changed[key] = bad
                out.append((changed, fport, direction))
            dropped = {k: x for k, x in data.items() if k != key}
            out.append((dropped, fport, direction))
            if isinstance(data[key], dict):
                for flag in data[key]:
                    changed = copy.deepcopy(data)
                    changed[key][flag] = "yes"
                    out.append((changed, fport, direction))
                    changed = copy.deepcopy(data)
                    del changed[key][flag]
                    out.append((changed, fport, direction))
                changed = copy.deepcopy(data)
                changed[key]["extra"] = False
                out.append((changed, fport, direction))
        out += [
            ({**data, "levle": 3}, fport, direction),
            (data, None, direction),
            (data, 99, direction),
            ([data], fport, direction),
            ("text", fport, direction),
        ]
    return out


@pytest.mark.parametrize("name", CODECS)
def test_bad_data_fails_in_both(name: str, scripts: dict[str, Path]) -> None:
    cases = _bad_data(name)
    assert check_encodes(name, scripts[name], cases) > len(cases) // 3


def test_the_error_cases_of_the_python_tests_fail_in_javascript(scripts: dict[str, Path]) -> None:
    """A few of test_payload_bad_input's cases, by name: the formatter refuses them too, naming the field."""
    cases = [
        ("cooling", {"interval": 59}, 10, "interval"),
        ("cooling", {"state": "half", "ttl": 900}, 23, "state"),
        ("cooling", {"state": "open", "ttl": 30}, 23, "ttl"),
        ("cooling", {"state": "auto", "ttl": 5}, 23, "ttl"),
        ("cooling", {"on_threshold": 20, "off_threshold": 25}, 20, "off_threshold"),
        ("cooling", {"enabled": "yes"}, 24, "enabled"),
        ("cooling", {"delay": 256}, 12, "delay"),
    ]
    results = run_js(
        scripts["cooling"], [{"call": "havelEncode", "args": [d, fp, "down"]} for _, d, fp, _ in cases]
    )
    for (_, data, fport, field), got in zip(cases, results, strict=True):
        assert py_encode("cooling", data, fport, "down") is None
        assert got["thrown"].startswith(field), got


# --- random bytes and random data -----------------------------------------------------------------


_EDGE_BYTES = st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF])


def _payloads(name: str) -> st.SearchStrategy[tuple[bytes, Any, str]]:
    """Random bytes on the codec's ports: anything, and (mostly) a vector's length and header with random
    bytes after it, rich in sentinels and edges, so that many of them decode."""
    codec = get_codec(name)
    ports = [(p.fport if p.fport is not None else 1, p.direction) for p in codec.ports]
    anything = st.tuples(st.binary(max_size=40), st.sampled_from(ports))
    if name not in NODES:  # Cayenne LPP
        types = [0, 1, 2, 3, 100, 101, 102, 103, 104, 113, 115, 116, 130, 134, 135, 136, 142, 7, 240]
        entry = st.tuples(st.integers(0, 255), st.sampled_from(types), st.binary(max_size=9))
        entries = st.lists(entry, max_size=5).map(lambda es: b"".join(bytes(e[:2]) + e[2] for e in es))
        shaped = st.tuples(entries, st.sampled_from(ports))
    else:

        def like(v: dict[str, Any]) -> st.SearchStrategy[tuple[bytes, tuple[int, str]]]:
            size = len(v["bytes"]) // 2
            first = st.one_of(st.just(int(v["bytes"][:2], 16)), st.integers(0x10, 0x1F))
            rest = st.lists(st.one_of(_EDGE_BYTES, st.integers(0, 255)), min_size=size - 1, max_size=size - 1)
            return st.tuples(
                st.tuples(first, rest).map(lambda t: bytes([t[0], *t[1]])),
                st.just((v["fport"], v["direction"])),
            )

        shaped = st.sampled_from(vectors(name)).flatmap(like)
    return st.one_of(anything, shaped, shaped).map(lambda t: (t[0], t[1][0], t[1][1]))


@pytest.mark.parametrize("name", CODECS)
def test_random_bytes_decode_alike(name: str, scripts: dict[str, Path]) -> None:
    @SETTINGS
    @given(st.lists(_payloads(name), min_size=150, max_size=150))
    def run(batch: list[tuple[bytes, Any, str]]) -> None:
        check_decodes(name, scripts[name], batch)

    run()


_STRINGS = [
    "auto",
    "open",
    "closed",
    "flush",
    "override_open",
    "watchdog",
    "boot_loop",
    "unknown_7",
    "unknown_15",
    "unknown_16",
    "unknown_1",
    "1.2.3",
    "0.255.256",
    "1.2",
    "a.b.c",
    "x",
    "",
]
_ODD = [None, True, False, "x", [], {}, 1e9, -1e9, 0.5, -1, 65536]


def _value(rnd: random.Random, example: Any) -> Any:
    """A value around ``example`` (a vector's value): itself, near it, out of range, of another type."""
    roll = rnd.random()
    if roll < 0.4:
        return copy.deepcopy(example)
    if roll < 0.55:
        return rnd.choice(_ODD)
    if isinstance(example, bool):
        return rnd.random() < 0.5
    if isinstance(example, dict):
        return {k: _value(rnd, v) for k, v in example.items()}
    if isinstance(example, list):
        return [
            rnd.choice([None, 85.0, -55.0, 125.0, 20.05, round(rnd.uniform(-60, 130), 1)])
            for _ in range(rnd.randint(0, 16))
        ]
    if isinstance(example, str):
        return rnd.choice(_STRINGS)
    if example is None or rnd.random() < 0.3:
        return rnd.choice(
            [rnd.randint(-70000, 70000), rnd.uniform(-70000, 70000), round(rnd.uniform(-50, 6000), 1)]
        )
    # near the example: steps, half steps (rounding half away from zero), just past a range's edge
    return example + rnd.choice([-3, -1, 1, 3, -0.05, 0.05, -0.25, 0.15, 0.45, 0.55, 20.0, 1000.0])


def _random_data(name: str, rnd: random.Random, n: int) -> list[tuple[Any, Any, str]]:
    out = []
    for _ in range(n):
        v = rnd.choice(vectors(name))
        data = {k: _value(rnd, x) for k, x in v["data"].items()}
        if data and rnd.random() < 0.05:
            del data[rnd.choice(list(data))]
        # what JSON carries: the formatter sees 5.0 as 5 (see docs/network-servers.md, known differences)
        data = json.loads(json.dumps(data))
        out.append((data, v["fport"], v["direction"]))
    return out


@pytest.mark.parametrize("name", CODECS)
def test_random_data_encodes_alike(name: str, scripts: dict[str, Path]) -> None:
    @SETTINGS
    @given(st.integers(0, 2**32 - 1))
    def run(seed: int) -> None:
        # hypothesis picks the seed (and reports it); the batch is made from it without a draw per value
        batch = _random_data(name, random.Random(seed), 300)
        check_encodes(name, scripts[name], batch)
        # and what encodes decodes back alike
        ok = [(bytes(b), fp, dr) for (d, fp, dr) in batch if (b := py_encode(name, d, fp, dr)) is not None]
        assert len(ok) > 30
        check_decodes(name, scripts[name], ok)

    run()


# --- the network servers' contract ----------------------------------------------------------------


def test_decode_uplink_gives_data_warnings_and_errors(scripts: dict[str, Path]) -> None:
    v = vectors("water")[1]
    unsafe = get_codec("cooling").encode(
        {
            **vectors("cooling")[1]["data"],
            "interlock": {"reservoir_low": True, "budget": False, "max_on_time": False},
        },
        1,
    )
    cases = [
        {"call": "decodeUplink", "args": [{"bytes": list(bytes.fromhex(v["bytes"])), "fPort": 1}]},
        {"call": "decodeUplink", "args": [{"bytes": [0x1A, 0x01], "fPort": 1}]},
        {"call": "decodeUplink", "args": [{"bytes": list(bytes.fromhex(v["bytes"])), "fPort": 7}]},
        {"call": "decodeUplink", "args": [{"bytes": [0x1A, 256, 0], "fPort": 1}]},
        {"call": "decodeUplink", "args": [{"bytes": "1a019c", "fPort": 1}]},
        {"call": "decodeUplink", "args": [{"fPort": 1}]},
        {"call": "decodeDownlink", "args": [{"bytes": [0x10, 0x03, 0x84], "fPort": 10}]},
    ]
    good, short, port, notbyte, text, nobytes, down = (r["ok"] for r in run_js(scripts["water"], cases))
    assert good == {"data": v["data"], "warnings": [], "errors": []}
    for bad in (short, port, notbyte, text, nobytes):
        assert bad["errors"] and "data" not in bad, bad
    assert "truncated" in short["errors"][0] and "FPort 7" in port["errors"][0]
    assert down == {"data": {"interval": 900}, "warnings": [], "errors": []}

    want = get_codec("cooling").decode(unsafe, 1)
    assert want["errors"]  # a valve open against an interlock: decoded, but unsafe
    got = run_js(
        scripts["cooling"], [{"call": "decodeUplink", "args": [{"bytes": list(unsafe), "fPort": 1}]}]
    )
    assert got[0]["ok"] == {"data": want["data"], "warnings": want["warnings"] + want["errors"], "errors": []}


def test_encode_downlink_finds_the_port_from_the_fields(scripts: dict[str, Path]) -> None:
    cases = [
        ({"data": {"interval": 900}}, [0x10, 0x03, 0x84], 10),
        ({"data": {}}, [0x10], 11),
        ({"data": {"delay": 5}, "fPort": 12}, [0x10, 0x05], 12),
        ({"data": {"delay": 5}, "fPort": 1}, [0x10, 0x05], 12),  # not a downlink port: from the fields
        ({"data": {"state": "open", "ttl": 900}}, [0x10, 0x01, 0x03, 0x84], 23),
    ]
    results = run_js(scripts["cooling"], [{"call": "encodeDownlink", "args": [i]} for i, _, _ in cases])
    for (given_, raw, fport), got in zip(cases, results, strict=True):
        assert got["ok"] == {"bytes": raw, "fPort": fport, "warnings": [], "errors": []}, given_
    bad = [
        {"data": {"interval": 30}},
        {"data": {"interval": 900}, "fPort": 12},
        {"data": {"speed": 3}},
        {"data": {"state": "open"}},
        {"data": None},
        {},
    ]
    for got in run_js(scripts["cooling"], [{"call": "encodeDownlink", "args": [i]} for i in bad]):
        assert got["ok"]["errors"] and "bytes" not in got["ok"], got
    lpp = run_js(
        scripts["cayenne-lpp"], [{"call": "encodeDownlink", "args": [{"data": {"value_2": -50.51}}]}]
    )
    assert lpp[0]["ok"] == {"bytes": [2, 0xEC, 0x45], "fPort": 1, "warnings": [], "errors": []}


@pytest.mark.parametrize("name", CODECS)
def test_formatter_is_plain_es5_and_fits_the_things_stack(name: str) -> None:
    source = formatter(name)
    assert len(source.encode()) < 40960  # The Things Stack's limit for a formatter
    code = re.sub(r"//[^\n]*", "", source)
    code = re.sub(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"", "''", code)  # string literals out
    code = re.sub(r"/\^[^/\n]*\$/", "//", code)  # the regular expressions
    for token in (
        "=>",
        "`",
        "...",
        "require(",
        "import ",
        "export ",
        "module.",
        "process.",
        "Buffer",
        "Object.assign",
        ".includes(",
        "Number.is",
        "new Map",
        "new Set",
        "Symbol",
    ):
        assert token not in code, f"{name}: {token!r} in the formatter"
    assert not re.search(r"\b(let|const|class|async|await|yield)\b", code), name
    for fn in ("decodeUplink", "encodeDownlink", "decodeDownlink"):
        assert f"function {fn}(input)" in source


# --- declarations: every codec exports, a new one for free, the rest refused ----------------------


def test_every_glue_function_of_the_codecs_has_a_twin() -> None:
    for name in CODECS:
        assert formatter_notes(name) == [], name


def _garden_from_data(d: dict[str, Any]) -> Any:
    fault = flags_of(d, "fault", ("probe",))
    fitted = "pump" in d
    obj = {k: d[k] for k in ("moisture", "temperature", "depth")}
    if fault["probe"] is True:
        obj["moisture"] = obj["temperature"] = None
    obj["pump"] = d["pump"] if fitted else None
    obj["_header"] = {"pump_fitted": fitted, "probe_fault": fault["probe"], "mode": d["mode"]}
    return obj


def _garden_with_header(d: dict[str, Any]) -> Any:
    return {"_header": {}, **d}


GARDEN = NodeCodec(
    "garden",
    "soil moisture and temperature, a test codec",
    [
        Port(
            1,
            "up",
            "readings",
            "moisture, temperature, pump",
            cs.Struct(
                header(
                    "pump_fitted" / Bool(cs.Flag),
                    "probe_fault" / Bool(cs.Flag),
                    "mode" / Choice(cs.BitsInteger(2), {"dry": 0, "wet": 1, "flood": 2}),
                ),
                "moisture" / Reading(cs.Int16ub, "0.25", lo=0, hi=100, sentinel=0xFFFF, unit="%"),
                "temperature" / Reading(cs.Int16sb, "0.01", lo=-40, hi=85, sentinel=-0x8000, unit="Cel"),
                "pump" / cs.If(cs.this._header.pump_fitted, Reading(cs.Int8ub, "2", lo=0, hi=500, unit="s")),
                "depth" / cs.Array(2, Reading(cs.Int8ub, "5", lo=0, hi=1200, unit="mm")),
                cs.Terminated,
            ),
            {"moisture": "%", "temperature": "Cel"},
            ("moisture", "temperature", "pump", "depth", "mode", "fault"),
            view={
                "moisture": Field("moisture", null_if="_header.probe_fault"),
                "temperature": Field("temperature", null_if="_header.probe_fault"),
                "pump": Field("pump", only_if="_header.pump_fitted"),
                "depth": "depth",
                "mode": "_header.mode",
                "fault": {"probe": "_header.probe_fault"},
            },
            from_data=_garden_from_data,
        ),
        Port(
            10,
            "down",
            "set_pump",
            "pump time",
            cs.Struct(header(), "seconds" / Reading(cs.Int16ub, lo=1, hi=900), cs.Terminated),
            {},
            ("seconds",),
            from_data=_garden_with_header,
        ),
    ],
)


def test_a_new_kind_of_node_gets_its_formatter_for_free(tmp_path: Path) -> None:
    script = tmp_path / "garden.js"
    script.write_text(formatter(GARDEN))
    assert formatter_notes(GARDEN) == []  # nothing left out: no twin needed
    samples = [
        {
            "moisture": 42.25,
            "temperature": -3.07,
            "pump": 120,
            "depth": [100, 1200],
            "mode": "wet",
            "fault": {"probe": False},
        },
        {
            "moisture": None,
            "temperature": 20.0,
            "depth": [0, 5],
            "mode": "unknown_3",
            "fault": {"probe": True},
        },
    ]
    encoded = [GARDEN.encode(s, 1) for s in samples]
    got = run_js(
        script,
        [{"call": "havelEncode", "args": [s, 1, "up"]} for s in samples]
        + [{"call": "havelDecode", "args": [list(e), 1, "up"]} for e in encoded],
    )
    assert [bytes(g["ok"]) for g in got[:2]] == encoded
    down = run_js(script, [{"call": "encodeDownlink", "args": [{"data": {"seconds": 300}}]}])
    assert down[0]["ok"]["bytes"] == list(GARDEN.encode({"seconds": 300}, 10, "down"))
    for e, g in zip(encoded, got[2:], strict=True):
        assert same(GARDEN.decode(e, 1), g["ok"])

    @SETTINGS
    @given(
        st.lists(
            st.tuples(
                st.binary(max_size=12).map(lambda b: b"\x1f" + b if b else b), st.just(1), st.just("up")
            ),
            min_size=200,
            max_size=200,
        )
    )
    def run(batch: list[tuple[bytes, Any, str]]) -> None:
        results = run_js(script, [{"call": "havelDecode", "args": [list(b), 1, "up"]} for b, _, _ in batch])
        for (data, _, _), result in zip(batch, results, strict=True):
            try:
                want: dict[str, Any] | None = GARDEN.decode(data, 1)
            except CodecError:
                want = None
            assert ("thrown" in result) if want is None else same(want, result["ok"]), (data.hex(), result)

    run()


def test_what_the_runtime_cannot_carry_is_refused_by_name() -> None:
    custom = NodeCodec(
        "odd",
        "a test codec",
        [
            Port(
                1,
                "up",
                "readings",
                "x",
                cs.Struct(header(), "x" / Reading(cs.Int8ub, lo=0, hi=9)),
                {},
                ("x",),
                to_data=lambda c: {"x": c["x"]},
            )
        ],
    )
    with pytest.raises(CodecError, match=r"to_data .*<lambda> has no JavaScript twin"):
        formatter(custom)
    text = NodeCodec(
        "label",
        "a test codec",
        [
            Port(
                1,
                "up",
                "readings",
                "x",
                cs.Struct(header(), "name" / cs.PascalString(cs.Int8ub, "utf8")),
                {},
                ("name",),
            )
        ],
    )
    with pytest.raises(
        CodecError, match=r"cannot export a JavaScript formatter: .*(PascalString|StringEncoded)"
    ):
        formatter(text)
    checked = NodeCodec(
        "checked",
        "a test codec",
        [
            Port(
                1,
                "up",
                "readings",
                "x",
                cs.Struct(header(), "x" / Reading(cs.Int8ub, lo=0, hi=9)),
                {},
                ("x",),
                check=lambda d: ([], []),
            )
        ],
    )
    assert "has no JavaScript twin" in formatter_notes(checked)[0]
    assert "Not exported: port readings: check" in formatter(checked)


# --- export, profiles, command line and the document ----------------------------------------------


def test_export_writes_formatters_and_profiles(tmp_path: Path) -> None:
    done = export(tmp_path)
    assert done.notes == []
    for name in CODECS:
        assert (tmp_path / f"{name}.js").read_text() == formatter(name)
    for name in NODES:
        profile = json.loads((tmp_path / f"chirpstack/havel-{name}.json").read_text())["deviceProfile"]
        assert profile["payloadCodecScript"] == formatter(name)
        assert (profile["region"], profile["macVersion"], profile["regParamsRevision"]) == (
            "EU868",
            "LORAWAN_1_0_4",
            "RP002_1_0_1",
        )
        assert profile["supportsOtaa"] and not profile["supportsClassB"] and not profile["supportsClassC"]
        assert profile["tags"]["codec"] == name and profile["tags"]["fport_1_up"] == "readings"
        assert profile["tags"]["fport_10_down"] == "set_interval"
    assert not (tmp_path / "chirpstack/havel-cayenne-lpp.json").exists()
    vendor = tmp_path / "ttn/vendor/havel"
    index = json.loads((vendor / "index.yaml").read_text())
    assert index["endDevices"] == [f"havel-{n}" for n in NODES]
    profile = json.loads((vendor / "havel-node-profile.yaml").read_text())
    assert profile["macVersion"] == "1.0.4" and profile["regionalParametersVersion"] == "RP002-1.0.1"
    assert profile["supportsJoin"] is True


@pytest.mark.parametrize("name", NODES)
def test_device_repository_examples_hold_for_the_formatter(tmp_path: Path, name: str) -> None:
    export(tmp_path, [name])
    vendor = tmp_path / "ttn/vendor/havel"
    model = json.loads((vendor / f"havel-{name}.yaml").read_text())
    codec = json.loads((vendor / f"havel-{name}-codec.yaml").read_text())
    assert model["firmwareVersions"][0]["profiles"]["EU863-870"]["codec"] == f"havel-{name}-codec"
    script = vendor / codec["uplinkDecoder"]["fileName"]
    calls = {
        "uplinkDecoder": "decodeUplink",
        "downlinkDecoder": "decodeDownlink",
        "downlinkEncoder": "encodeDownlink",
    }
    for section, call in calls.items():
        examples = codec[section]["examples"]
        assert examples, section
        for example, got in zip(
            examples, run_js(script, [{"call": call, "args": [e["input"]]} for e in examples]), strict=True
        ):
            for key, value in example["output"].items():
                assert same(value, got["ok"][key]), (section, example["description"], key)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_command_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "payload", "export-js", "--codec", "water")
    assert code == 0 and out == formatter("water") and err == ""
    code, out, err = run_cli(
        capsys, "payload", "export-js", "--codec", "air", "--out", str(tmp_path / "air.js")
    )
    assert code == 0 and (tmp_path / "air.js").read_text() == formatter("air")
    code, out, err = run_cli(capsys, "payload", "export-js", "--all", "--out", str(tmp_path / "all"))
    assert code == 0 and str(tmp_path / "all" / "cooling.js") in out.splitlines()
    for argv, message in (
        (("--codec", "gas"), "unknown codec 'gas'"),
        ((), "either --codec NAME or --all"),
        (("--all", "--codec", "air"), "either --codec NAME or --all"),
        (("--all",), "give the folder with --out"),
    ):
        code, out, err = run_cli(capsys, "payload", "export-js", *argv)
        assert code == 1 and message in err and "Traceback" not in err, (argv, err)


def test_the_documented_commands_run(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "network-servers.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", doc, re.S)
    commands = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    commands = [c for c in commands if c]
    assert commands and all(c.startswith("havel payload export-js") for c in commands)
    for command in commands:
        argv = [sys.executable, "-m", "havel", *shlex.split(command)[1:]]
        proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, (command, proc.stderr)
    assert (tmp_path / "water.js").read_text() == formatter("water")
    listed = {
        str(p.relative_to(tmp_path / "network-server"))
        for p in (tmp_path / "network-server").rglob("*")
        if p.is_file()
    }
    for rel in (
        "air.js",
        "cayenne-lpp.js",
        "chirpstack/havel-water.json",
        "ttn/vendor/havel/index.yaml",
        "ttn/vendor/havel/havel-node-profile.yaml",
        "ttn/vendor/havel/havel-cooling-codec.yaml",
    ):
        assert rel in listed
    # the document's table of what --all writes names every kind of file it wrote
    for pattern in ("<codec>.js", "chirpstack/havel-<codec>.json", "ttn/vendor/havel/"):
        assert pattern in doc


def test_errors_are_havel_errors() -> None:
    with pytest.raises(HavelError):
        formatter("gas")
