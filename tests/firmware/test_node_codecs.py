"""What the real node code sends decodes with the host codecs (havel.codecs.payload) to the values
the simulated sensors were set to: firmware encoders and host decoders agree end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from havel.codecs.payload import KIND_NAMES

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def uplinks() -> dict[str, list[dict[str, Any]]]:
    cmd = [sys.executable, str(HERE / "cpyrunner.py"), "--script", str(HERE / "node_uplinks.py")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("UPLINKS "))
    return json.loads(line[len("UPLINKS ") :])


def _decoded(uplinks: dict[str, list[dict[str, Any]]], app: str, fport: int) -> list[dict[str, Any]]:
    from havel.codecs.payload import get_codec  # (here: the import order rules see havel either way)

    codec = get_codec(app)
    out = []
    for u in uplinks[app]:
        if u["fport"] == fport:
            d = codec.decode(bytes.fromhex(u["payload"]), fport)
            assert d["errors"] == [], d
            out.append(d)
    assert out, f"{app}: no uplink on FPort {fport}"
    return out


@pytest.mark.timeout(150)
@pytest.mark.parametrize("app", KIND_NAMES)
def test_status_uplink_decodes(uplinks: dict[str, list[dict[str, Any]]], app: str) -> None:
    d = _decoded(uplinks, app, 2)[0]["data"]
    assert d["reset_cause"] == "power_on" and d["interval"] == 600 and d["firmware"] == "0.1.0"
    assert d["battery"] == pytest.approx(3700, abs=20)


@pytest.mark.timeout(150)
def test_air(uplinks: dict[str, list[dict[str, Any]]]) -> None:
    ds = _decoded(uplinks, "air", 1)
    assert len(ds) == 6  # one per 600 s interval in the hour
    d = ds[-1]["data"]
    assert d["temperature"] == 23.4 and d["humidity"] == 61.5 and d["pressure"] == 1001.7
    assert d["pm2_5"] == 12.3 and d["pm10"] == 20.5 and d["co2"] == 812
    assert d["faults"] == {"thp": False, "pm": False, "co2": False}


@pytest.mark.timeout(150)
def test_water_alarm(uplinks: dict[str, list[dict[str, Any]]]) -> None:
    ds = _decoded(uplinks, "water", 1)
    first = ds[0]["data"]
    assert first["alarm"] and first["alarm_level"] == 1 and first["level"] == 210
    assert first["distance"] == pytest.approx(900, abs=2) and first["water_temperature"] == 12.0
    ups = [u for u in uplinks["water"] if u["fport"] == 1]
    assert ups[0]["confirmed"] and not any(u["confirmed"] for u in ups[1:])
    assert len(ds) >= 25  # in alarm: every 120 s instead of every 600 s


@pytest.mark.timeout(150)
def test_temperature(uplinks: dict[str, list[dict[str, Any]]]) -> None:
    d = _decoded(uplinks, "temperature", 1)[-1]
    assert d["data"]["probes"] == [24.1, 31.7, None] and d["data"]["humidity"] == 38.0
    assert any("probes[2]" in w for w in d["warnings"])


@pytest.mark.timeout(150)
def test_cooling(uplinks: dict[str, list[dict[str, Any]]]) -> None:
    ds = [d["data"] for d in _decoded(uplinks, "cooling", 1)]
    assert sum(d["actuations"] for d in ds) >= 1
    assert any(d["valve_open"] for d in ds)
    assert all(d["ambient_temperature"] == 33.0 and d["on_threshold"] == 30.0 for d in ds)
    assert sum(d["open_time"] for d in ds) > 0
    total_l = sum(d["water_used"] for d in ds)
    assert total_l == pytest.approx(ds[-1]["water_today"], abs=0.2 * len(ds))


@pytest.mark.timeout(150)
def test_soil(uplinks: dict[str, list[dict[str, Any]]]) -> None:
    ds = _decoded(uplinks, "soil", 1)
    assert len(ds) == 6  # one per 600 s interval in the hour
    d = ds[-1]["data"]
    assert d == {
        "moisture_10cm": 12.5,
        "moisture_30cm": 33.0,
        "moisture_60cm": 47.5,
        "soil_temperature": 16.5,
        "battery": pytest.approx(3700, abs=20),
    }
    assert ds[-1]["warnings"] == []
