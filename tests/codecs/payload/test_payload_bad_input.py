"""Bad input to the payload codecs: each case a CodecError naming the problem, nothing else."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from havel.codecs.payload import CODEC_NAMES, KIND_NAMES, NodeCodec, get_codec
from havel.errors import CodecError, HavelError

VECTORS = Path(__file__).resolve().parents[3] / "codecs" / "vectors"


def first(name: str, fport: int, direction: str = "up") -> dict[str, Any]:
    vectors = json.loads((VECTORS / f"{name}.json").read_text())
    return next(v for v in vectors if v["fport"] == fport and v["direction"] == direction)


def test_unknown_codec() -> None:
    with pytest.raises(CodecError, match=r"unknown codec 'gas'; codecs are " + ", ".join(CODEC_NAMES)):
        get_codec("gas")
    assert issubclass(CodecError, HavelError)


@pytest.mark.parametrize(("fport", "direction"), [(3, "up"), (10, "up"), (1, "down"), (20, "down")])
def test_unknown_port(fport: int, direction: str) -> None:
    with pytest.raises(CodecError, match=f"no {direction}link payload on FPort {fport}"):
        get_codec("air").decode(b"\x10\x00", fport, direction)


def test_unknown_direction() -> None:
    with pytest.raises(CodecError, match="neither 'up' nor 'down'"):
        get_codec("water").decode(bytes(8), 1, "sideways")


@pytest.mark.parametrize("name", KIND_NAMES)
@pytest.mark.parametrize("version", [0, 2, 15])
def test_unknown_payload_version(name: str, version: int) -> None:
    data = bytearray.fromhex(first(name, 1)["bytes"])
    data[0] = (version << 4) | (data[0] & 0x0F)
    with pytest.raises(CodecError, match=f"unknown payload version {version}"):
        get_codec(name).decode(bytes(data), 1)


@pytest.mark.parametrize(
    ("name", "fport", "direction"),
    [
        ("air", 1, "up"),
        ("water", 1, "up"),
        ("temperature", 1, "up"),
        ("cooling", 1, "up"),
        ("cooling", 2, "up"),
        ("cooling", 20, "down"),
        ("cooling", 23, "down"),
        ("water", 10, "down"),
    ],
)
def test_truncated_payloads(name: str, fport: int, direction: str) -> None:
    data = bytes.fromhex(first(name, fport, direction)["bytes"])
    for cut in range(1, len(data)):
        with pytest.raises(CodecError, match="truncated"):
            get_codec(name).decode(data[:cut], fport, direction)


@pytest.mark.parametrize("compiled_only", [False, True], ids=["gateway", "compiled-only"])
@pytest.mark.parametrize("name", KIND_NAMES)
def test_truncated_payloads_with_compiled_parsers(name: str, compiled_only: bool) -> None:
    """The gateway decodes with the fast path in front of construct's compiled parsers (use_compiled());
    those read past the end with io.read(n) and raise struct.error: still one CodecError, and the same
    one plain construct gives."""
    base = get_codec(name)
    assert isinstance(base, NodeCodec)
    codec = NodeCodec(name, base.summary, base.ports, compiled=True, fast=not compiled_only)
    plain = NodeCodec(name, base.summary, base.ports, fast=False)
    for v in json.loads((VECTORS / f"{name}.json").read_text()):
        if v["direction"] != "up":
            continue
        data = bytes.fromhex(v["bytes"])
        for cut in range(1, len(data)):
            with pytest.raises(CodecError, match="truncated") as got:
                codec.decode(data[:cut], v["fport"])
            with pytest.raises(CodecError) as want:
                plain.decode(data[:cut], v["fport"])
            assert str(got.value) == str(want.value)


@pytest.mark.parametrize("name", KIND_NAMES)
def test_empty_and_too_long_payloads(name: str) -> None:
    codec = get_codec(name)
    with pytest.raises(CodecError, match="empty payload"):
        codec.decode(b"", 1)
    data = bytes.fromhex(first(name, 1)["bytes"])
    with pytest.raises(CodecError, match="too long"):
        codec.decode(data + b"\x00", 1)


@pytest.mark.parametrize(
    ("name", "fport", "direction", "path", "value", "message"),
    [
        ("air", 1, "up", "temperature", 85.1, r"temperature: 85.1 Cel is out of range -40..85 Cel"),
        ("air", 1, "up", "humidity", -0.5, r"humidity: -0.5 % is out of range 0..100 %"),
        ("air", 1, "up", "pm10", 1000.1, r"pm10: .* out of range 0..1000 ug/m3"),
        ("air", 1, "up", "co2", 40001, r"co2: 40001 \[ppm\] is out of range"),
        ("air", 1, "up", "battery", -20, r"battery: -20 mV is out of range 0..5080 mV"),
        ("water", 1, "up", "level", 30001, r"level: 30001 cm is out of range -5000..30000 cm"),
        ("water", 1, "up", "distance", -1, r"distance: -1 mm is out of range"),
        ("water", 1, "up", "alarm_level", 4, r"alarm_level: 4 is out of range 0..3"),
        ("temperature", 1, "up", "humidity", 100.5, r"humidity: 100.5 % is out of range"),
        ("cooling", 1, "up", "actuations", 256, r"actuations: 256 is out of range 0..255"),
        ("cooling", 1, "up", "water_used", 6553.5, r"water_used: 6553.5 L is out of range"),
        ("cooling", 1, "up", "on_threshold", 60.1, r"on_threshold: 60.1 Cel is out of range -20..60 Cel"),
        ("cooling", 2, "up", "uptime", -1, r"uptime: -1 s is out of range"),
        ("cooling", 10, "down", "interval", 59, r"interval: 59 s is out of range 60..43200 s"),
        ("cooling", 10, "down", "interval", 43201, r"interval: 43201 s is out of range 60..43200 s"),
        ("cooling", 12, "down", "delay", 256, r"delay: 256 s is out of range 0..255 s"),
        ("cooling", 21, "down", "max_on_time", 7201, r"max_on_time: 7201 s is out of range 10..7200 s"),
        ("cooling", 22, "down", "daily_budget", 0, r"daily_budget: 0 L is out of range 1..60000 L"),
        ("cooling", 20, "down", "off_threshold", -20.1, r"off_threshold: -20.1 Cel is out of range"),
    ],
)
def test_out_of_range_on_encode_names_the_field(
    name: str, fport: int, direction: str, path: str, value: Any, message: str
) -> None:
    data = copy.deepcopy(first(name, fport, direction)["data"])
    data[path] = value
    with pytest.raises(CodecError, match=message):
        get_codec(name).encode(data, fport, direction)


@pytest.mark.parametrize(
    ("name", "fport", "direction", "path", "value", "message"),
    [
        ("air", 1, "up", "temperature", "21.5", r"temperature: expected a number, got str"),
        ("air", 1, "up", "humidity", True, r"humidity: expected a number, got bool"),
        ("air", 1, "up", "pressure", float("nan"), r"pressure: nan is not a finite number"),
        ("water", 1, "up", "alarm", 1, r"alarm: expected true or false"),
        ("cooling", 1, "up", "mode", "manual", r"mode: 'manual' is not one of 'auto', 'override_open'"),
        ("cooling", 1, "up", "on_threshold", None, r"on_threshold: a value is required here"),
        ("cooling", 1, "up", "interlock", {"reservoir_low": False}, r"interlock: missing flag\(s\) budget"),
        (
            "cooling",
            1,
            "up",
            "faults",
            {"temperature": False, "valve": False, "flow_meter": False, "x": True},
            r"faults: unknown flag\(s\) x",
        ),
        ("cooling", 1, "up", "faults", [], r"faults: expected an object"),
        ("temperature", 1, "up", "probes", 21.5, r"probes: expected a list"),
        ("temperature", 1, "up", "probes", [20.0] * 16, r"probes: 16 probes, at most 15"),
        ("cooling", 2, "up", "firmware", "1.2", r"firmware: expected 'major.minor.patch'"),
        (
            "cooling",
            2,
            "up",
            "firmware",
            "\u00b2.1.1",
            r"firmware: expected 'major.minor.patch'",
        ),  # isdigit()
        ("cooling", 2, "up", "firmware", "\u0663.1.1", r"firmware: expected 'major.minor.patch'"),  # Arabic 3
        ("cooling", 2, "up", "reset_cause", "cosmic_ray", r"reset_cause: 'cosmic_ray' is not one of"),
        ("cooling", 24, "down", "enabled", "yes", r"enabled: expected true or false"),
        ("cooling", 23, "down", "state", "half", r"state: 'half' is not one of 'closed', 'open', 'auto'"),
    ],
)
def test_wrong_types_on_encode_name_the_field(
    name: str, fport: int, direction: str, path: str, value: Any, message: str
) -> None:
    data = copy.deepcopy(first(name, fport, direction)["data"])
    data[path] = value
    with pytest.raises(CodecError, match=message):
        get_codec(name).encode(data, fport, direction)


def test_unknown_and_missing_fields_on_encode() -> None:
    data = copy.deepcopy(first("water", 1)["data"])
    with pytest.raises(CodecError, match=r"unknown field\(s\) levle"):
        get_codec("water").encode({**data, "levle": 3}, 1)
    del data["distance"]
    with pytest.raises(CodecError, match="missing field distance"):
        get_codec("water").encode(data, 1)
    with pytest.raises(CodecError, match="expected a JSON object"):
        get_codec("water").encode([1, 2], 1)  # type: ignore[arg-type]


def test_encode_without_port_picks_readings_or_asks() -> None:
    data = first("water", 1)["data"]
    assert get_codec("water").encode(data) == get_codec("water").encode(data, 1)
    with pytest.raises(CodecError, match=r"which FPort\? downlink ports are \[10, 11, 12\]"):
        get_codec("water").encode({"interval": 900}, direction="down")


def test_cooling_downlink_rules() -> None:
    cooling = get_codec("cooling")
    with pytest.raises(CodecError, match=r"off_threshold: 30.0 Cel must be below on_threshold 30.0 Cel"):
        cooling.encode({"on_threshold": 30.0, "off_threshold": 30.0}, 20, "down")
    with pytest.raises(CodecError, match=r"ttl: must be 0 with state 'auto'"):
        cooling.encode({"state": "auto", "ttl": 60}, 23, "down")
    with pytest.raises(CodecError, match=r"ttl: 0 s is out of range 60..65535 s for an override"):
        cooling.encode({"state": "open", "ttl": 0}, 23, "down")


def test_unnamed_reset_cause_is_kept_and_warned() -> None:
    payload = bytes.fromhex("1701020300015180b90384")
    result = get_codec("air").decode(payload, 2)
    assert result["data"]["reset_cause"] == "unknown_7"
    assert result["warnings"] == ["reset_cause: code 7 has no name in format version 1"]
    assert get_codec("air").encode(result["data"], 2) == payload
    with pytest.raises(CodecError, match="cannot encode"):
        get_codec("air").encode({**result["data"], "reset_cause": "unknown_16"}, 2)


def test_fault_flag_wins_over_bytes() -> None:
    """A sensor that reports a fault gives null readings even if plausible bytes follow."""
    data = bytearray.fromhex(first("air", 1)["bytes"])
    data[0] |= 0x01  # thp fault, readings bytes untouched
    result = get_codec("air").decode(bytes(data), 1)
    assert result["data"]["temperature"] is None and result["data"]["pressure"] is None
    assert result["data"]["pm2_5"] == 12.3
    assert "faults.thp: sensor reports a fault" in result["warnings"]


def test_unsafe_cooling_state_is_an_error_in_the_result() -> None:
    data = copy.deepcopy(first("cooling", 1)["data"])
    data.update(valve_open=True, interlock={"reservoir_low": True, "budget": False, "max_on_time": False})
    result = get_codec("cooling").decode(get_codec("cooling").encode(data, 1), 1)
    assert result["errors"] == ["valve reported open while the reservoir_low interlock is active"]


# --- Cayenne LPP -------------------------------------------------------------------------------------------

LPP = get_codec("cayenne-lpp")


@pytest.mark.parametrize(
    ("hexdata", "message"),
    [
        ("0367", r"temperature on channel 3 at byte 0 is truncated \(needs 2 value bytes, 0 left\)"),
        ("036701", r"temperature on channel 3 at byte 0 is truncated"),
        ("03", r"entry at byte 0 is truncated \(channel without a type\)"),
        ("036701100505", r"unknown type 5 \(0x05\) at byte 5"),
        ("01f0000000", r"unknown type 240"),  # polyline: not supported
        ("018806765ff2960a00", r"gps on channel 1 at byte 0 is truncated"),
    ],
)
def test_lpp_bad_uplinks(hexdata: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        LPP.decode(bytes.fromhex(hexdata), 1)


def test_lpp_bad_downlink_and_ports() -> None:
    with pytest.raises(CodecError, match="downlink entry at byte 0 is truncated"):
        LPP.decode(b"\x01\x00", 1, "down")
    for fport in (0, 224):
        with pytest.raises(CodecError, match=f"FPort {fport} is not an application port"):
            LPP.decode(b"", fport)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"temperature": 1.0}, r"'temperature': expected <type>_<channel>"),
        ({"temperature_256": 1.0}, r"'temperature_256': expected <type>_<channel> with channel 0..255"),
        ({"humidity_1": 50}, r"humidity_1: unknown type 'humidity'"),
        ({"temperature_1": 3276.8}, r"temperature_1: 3276.8 Cel is out of range"),
        ({"relative_humidity_1": "wet"}, r"relative_humidity_1: expected a number"),
        ({"gps_1": {"latitude": 52.39, "longitude": 13.06}}, r"gps_1: missing field altitude"),
        (
            {"gps_1": {"latitude": 91, "longitude": 13.06, "altitude": 0}},
            r"gps_1: latitude: 91 deg is out of range",
        ),
        ({"gps_1": 52.39}, r"gps_1: expected an object with latitude, longitude, altitude"),
        ({"accelerometer_2": {"x": 0, "y": 0, "z": 0, "w": 1}}, r"accelerometer_2: unknown field\(s\) w"),
        ({"percentage_1": 101}, r"percentage_1: 101 % is out of range 0..100 %"),
        ({"switch_1": 2}, r"switch_1: 2 is out of range 0..1"),
    ],
)
def test_lpp_bad_encodes(data: dict[str, Any], message: str) -> None:
    with pytest.raises(CodecError, match=message):
        LPP.encode(data, 1)


def test_lpp_downlink_names() -> None:
    with pytest.raises(CodecError, match="downlink entries are named value_<channel>"):
        LPP.encode({"temperature_1": 20.0}, 1, "down")


def test_lpp_duplicate_key_warns() -> None:
    result = LPP.decode(bytes.fromhex("03670110036700ff"), 1)
    assert result["data"] == {"temperature_3": 25.5}
    assert result["warnings"] == ["temperature_3 appears more than once; the last value is kept"]
