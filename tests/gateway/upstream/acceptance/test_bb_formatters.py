"""Black-box: the JavaScript payload formatters as the network servers run them.

Exported with the documented command (docs/network-servers.md: ``havel payload export-js``), each file is
run alone in a fresh context of Node's ``vm`` module (no Node.js APIs), as The Things Stack and ChirpStack
v4 run it. The payloads are built here by hand from the layouts of docs/payloads.md (not the project's
vectors), and the expected values are read off the same tables.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
HAVEL = REPO / ".venv" / "bin" / "havel"
ABSENT = "reading absent or faulty"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("formatters") / "network-server"
    r = subprocess.run(
        [str(HAVEL), "payload", "export-js", "--all", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def run(js: Path, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
    request = {"file": str(js), "calls": [{"fn": fn, "input": inp} for fn, inp in calls]}
    r = subprocess.run(
        ["node", str(HERE / "run_formatter.mjs")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    answers = json.loads(r.stdout)
    for a in answers:
        assert a["ok"], a["error"]
    return [a["result"] for a in answers]


def up(data: bytes | list[int], fport: int = 1) -> tuple[str, dict[str, Any]]:
    return ("decodeUplink", {"bytes": list(data), "fPort": fport})


def down(data: dict[str, Any], fport: int | None = None) -> tuple[str, dict[str, Any]]:
    inp: dict[str, Any] = {"data": data}
    if fport is not None:
        inp["fPort"] = fport
    return ("encodeDownlink", inp)


def ok(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["errors"] == [], answer
    return answer


def failed(answer: dict[str, Any]) -> None:
    """docs: errors non-empty, then there is no data (and for a downlink nothing is sent)."""
    assert answer["errors"], answer
    assert answer.get("data") is None and not answer.get("bytes"), answer


def test_every_formatter_is_exported_self_contained_and_small(exported: Path) -> None:
    for codec in ("air", "water", "temperature", "cooling", "soil", "cayenne-lpp"):
        js = exported / f"{codec}.js"
        assert js.is_file(), codec
        assert js.stat().st_size < 40_000, (codec, js.stat().st_size)  # The Things Stack's limit
    for codec in ("air", "water", "temperature", "cooling", "soil"):
        # ChirpStack v4: the body of POST /api/device-profiles, with the formatter inside
        profile = json.loads((exported / "chirpstack" / f"havel-{codec}.json").read_text())["deviceProfile"]
        assert profile["payloadCodecRuntime"] == "JS", codec
        assert profile["payloadCodecScript"] == (exported / f"{codec}.js").read_text(), codec
        assert profile["region"] == "EU868" and profile["supportsOtaa"] is True, codec
        assert (exported / "ttn" / "vendor" / "havel" / f"havel-{codec}.js").is_file(), codec
    # one formatter to standard output, as the first example shows
    r = subprocess.run(
        [str(HAVEL), "payload", "export-js", "--codec", "water"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout == (exported / "water.js").read_text()


def test_water(exported: Path) -> None:
    js = exported / "water.js"
    a = run(
        js,
        # alarm, level threshold 3, -12 cm, distance absent, -3.5 Cel, 3000 mV
        up([0x1B, 0xFF, 0xF4, 0xFF, 0xFF, 0xFF, 0xDD, 0x96]),
        # status: software reset, firmware 1.2.3, up 3600 s, 3500 mV, every 600 s
        up([0x13, 1, 2, 3, 0x00, 0x00, 0x0E, 0x10, 0xAF, 0x02, 0x58], fport=2),
        up([0x2B, 0x00, 0x10, 0x00, 0x10, 0x00, 0x10, 0x96]),  # version 2
        up([0x10, 0x00, 0x10]),  # truncated
        up([0x10, 0x00, 0x10, 0x00, 0x10, 0x00, 0x10, 0x96, 0x00]),  # too long
        up([0x10, 0x00, 0x10, 0x00, 0x10, 0x00, 0x10, 0x96], fport=99),  # unknown port
        down({"interval": 900}),
        down({}),
        down({"delay": 5}),
        down({"interval": 30}),
        down({"interval": 3600}, fport=10),
        ("decodeDownlink", {"bytes": [0x10, 0x0E, 0x10], "fPort": 10}),
    )
    assert ok(a[0])["data"] == {
        "alarm": True,
        "alarm_level": 3,
        "rising_fast": False,
        "level": -12,
        "distance": None,
        "water_temperature": -3.5,
        "battery": 3000,
    }
    assert any(w.startswith("distance") and ABSENT in w for w in a[0]["warnings"]), a[0]
    assert ok(a[1])["data"] == {
        "firmware": "1.2.3",
        "reset_cause": "software",
        "uptime": 3600,
        "battery": 3500,
        "interval": 600,
    }
    for bad in a[2:6]:
        failed(bad)
    assert "version" in " ".join(a[2]["errors"])
    assert (ok(a[6])["bytes"], a[6]["fPort"]) == ([0x10, 0x03, 0x84], 10)
    assert (ok(a[7])["bytes"], a[7]["fPort"]) == ([0x10], 11)
    assert (ok(a[8])["bytes"], a[8]["fPort"]) == ([0x10, 0x05], 12)
    failed(a[9])
    assert "interval" in " ".join(a[9]["errors"])
    assert (ok(a[10])["bytes"], a[10]["fPort"]) == ([0x10, 0x0E, 0x10], 10)
    assert ok(a[11])["data"] == {"interval": 3600}


def test_cooling(exported: Path) -> None:
    js = exported / "cooling.js"
    a = run(
        js,
        # valve open, enabled, auto, reservoir low (an unsafe state), 1 opening, 60 s, 0.5 L, today absent,
        # 27.5 Cel, on at 30.0, off at 28.0
        up([0x1C, 0x01, 0x01, 0x00, 0x3C, 0x00, 0x05, 0xFF, 0xFF, 0x01, 0x13, 0x01, 0x2C, 0x01, 0x18]),
        down({"state": "open", "ttl": 900}),
        down({"state": "auto", "ttl": 0}),
        down({"state": "open"}),  # an override without a time-to-live is refused
        down({"on_threshold": 31.5, "off_threshold": 29.0}),
        down({"max_on_time": 600}),
        down({"daily_budget": 500}),
        down({"enabled": False}),
        down({"interval": 900}),
    )
    d = a[0]
    # docs: the codec's errors (valve open while reservoir_low) become warnings, so the alarm is not dropped
    assert d["errors"] == [] and len(d["warnings"]) >= 2, d
    assert any(w.startswith("water_today") and ABSENT in w for w in d["warnings"]), d
    assert d["data"] == {
        "valve_open": True,
        "enabled": True,
        "mode": "auto",
        "faults": {"flow_meter": False, "valve": False, "temperature": False},
        "interlock": {"max_on_time": False, "budget": False, "reservoir_low": True},
        "actuations": 1,
        "open_time": 60,
        "water_used": 0.5,
        "water_today": None,
        "ambient_temperature": 27.5,
        "on_threshold": 30.0,
        "off_threshold": 28.0,
    }
    assert (ok(a[1])["bytes"], a[1]["fPort"]) == ([0x10, 0x01, 0x03, 0x84], 23)
    assert (ok(a[2])["bytes"], a[2]["fPort"]) == ([0x10, 0x02, 0x00, 0x00], 23)
    failed(a[3])
    assert "ttl" in " ".join(a[3]["errors"])
    assert (ok(a[4])["bytes"], a[4]["fPort"]) == ([0x10, 0x01, 0x3B, 0x01, 0x22], 20)
    assert (ok(a[5])["bytes"], a[5]["fPort"]) == ([0x10, 0x02, 0x58], 21)
    assert (ok(a[6])["bytes"], a[6]["fPort"]) == ([0x10, 0x01, 0xF4], 22)
    assert (ok(a[7])["bytes"], a[7]["fPort"]) == ([0x10, 0x00], 24)
    assert (ok(a[8])["bytes"], a[8]["fPort"]) == ([0x10, 0x03, 0x84], 10)


def test_air_temperature_soil(exported: Path) -> None:
    (air,) = run(
        exported / "air.js",
        # no CO2 sensor: -9.5 Cel, 50.0 %, 1000.0 hPa, PM2.5 0.0, PM10 100.0, 3900 mV
        up([0x10, 0xFF, 0xA1, 0x64, 0x27, 0x10, 0x00, 0x00, 0x03, 0xE8, 0xC3]),
    )
    assert ok(air)["data"] == {
        "faults": {"thp": False, "pm": False, "co2": False},
        "temperature": -9.5,
        "humidity": 50.0,
        "pressure": 1000.0,
        "pm2_5": 0.0,
        "pm10": 100.0,
        "battery": 3900,
    }
    (temp,) = run(exported / "temperature.js", up([0x13, 0x00, 0xF1, 0x80, 0x00, 0xFF, 0xC9, 0x91, 0xB4]))
    assert ok(temp)["data"] == {"probes": [24.1, None, -5.5], "humidity": 72.5, "battery": 3600}
    (soil,) = run(exported / "soil.js", up([0x10, 0xC8, 0x01, 0xFF, 0x00, 0xD7, 0xFF]))
    assert ok(soil)["data"] == {
        "moisture_10cm": 100.0,
        "moisture_30cm": 0.5,
        "moisture_60cm": None,
        "soil_temperature": 21.5,
        "battery": None,
    }


def test_cayenne_lpp(exported: Path) -> None:
    a = run(
        exported / "cayenne-lpp.js",
        # channel 1 temperature 25.5, channel 2 humidity 48.5 %, channel 3 GPS 52.3906, 13.0645, 35.00 m
        up(
            [
                0x01,
                0x67,
                0x00,
                0xFF,
                0x02,
                0x68,
                0x61,
                0x03,
                0x88,
                0x07,
                0xFE,
                0x82,
                0x01,
                0xFE,
                0x55,
                0x00,
                0x0D,
                0xAC,
            ],
            fport=7,
        ),
        up([0x01, 0x67, 0x00, 0xFF, 0x05, 0x99, 0x00], fport=7),  # an unknown type is refused
        down({"value_4": -1.5}),
    )
    assert ok(a[0])["data"] == {
        "temperature_1": 25.5,
        "relative_humidity_2": 48.5,
        "gps_3": {"latitude": 52.3906, "longitude": 13.0645, "altitude": 35.0},
    }
    failed(a[1])
    assert (ok(a[2])["bytes"], a[2]["fPort"]) == ([0x04, 0xFF, 0x6A], 1)
