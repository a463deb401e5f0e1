"""``havel payload decode|encode|list`` through the real entry point (errors become one line, exit 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from havel.cli import main
from havel.codecs.payload import CODEC_NAMES

VECTORS = Path(__file__).resolve().parents[3] / "codecs" / "vectors"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def vectors(name: str) -> list[dict[str, Any]]:
    return json.loads((VECTORS / f"{name}.json").read_text())


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_decode_and_encode_every_vector(capsys: pytest.CaptureFixture[str], name: str) -> None:
    for v in vectors(name):
        if not v["bytes"]:
            continue  # an empty argument is not a payload a person types; covered by the codec tests
        args = ["--codec", name, "--fport", str(v["fport"]), "--direction", v["direction"]]
        code, out, err = run(capsys, "payload", "decode", *args, v["bytes"])
        assert code == 0, err
        result = json.loads(out)
        assert result["data"] == v["data"] and result["codec"] == name
        code, out, err = run(capsys, "payload", "encode", *args, json.dumps(v["data"]))
        assert (code, out.strip()) == (0, v["bytes"]), err


def test_decode_accepts_spaced_and_prefixed_hex(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "payload", "decode", "--codec", "water", "0x1a 01 9c 06:22 00 8c b3")
    assert code == 0
    assert json.loads(out)["data"]["level"] == 412


def test_decode_base64(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "payload", "decode", "--codec", "water", "--base64", "GgGcBiIAjLM=")
    assert code == 0
    assert json.loads(out)["data"]["distance"] == 1570
    code, out, _ = run(capsys, "payload", "decode", "--codec", "water", "--base64", "GgGcBiIAjLM")
    assert code == 0 and json.loads(out)["data"]["level"] == 412  # padding optional


def test_encode_readings_without_fport(capsys: pytest.CaptureFixture[str]) -> None:
    v = vectors("cooling")[1]
    code, out, _ = run(capsys, "payload", "encode", "--codec", "cooling", json.dumps(v["data"]))
    assert (code, out.strip()) == (0, v["bytes"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["decode", "--codec", "air", "1800d"], "odd number of digits"),
        (["decode", "--codec", "air", "zz00"], "is not hex"),
        (["decode", "--codec", "air", "--base64", "GgGc*BiIAjLM="], "is not valid base64"),
        (["decode", "--codec", "air", "2800d75b2794007b00c9019fb9"], "unknown payload version 2"),
        (["decode", "--codec", "air", "1800d75b"], "truncated"),
        (["decode", "--codec", "water", "--fport", "7", "1000"], "no uplink payload on FPort 7"),
        (["decode", "--codec", "cayenne-lpp", "0305ff"], "unknown type 5"),
        (["encode", "--codec", "water", "{level: 3}"], "invalid JSON"),
        (["encode", "--codec", "water", "[1, 2]"], "expected a JSON object"),
        (["encode", "--codec", "water", "[" * 100_000], "nested too deeply"),
        (
            ["encode", "--codec", "cooling", "--fport", "10", "--direction", "down", '{"interval": 30}'],
            "interval: 30 s is out of range 60..43200 s",
        ),
        (["encode", "--codec", "cooling", "--direction", "down", '{"interval": 900}'], "which FPort?"),
    ],
)
def test_bad_input_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "payload", *argv)
    assert code == 1
    assert out == ""
    assert err.startswith("havel: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["decode", "--codec", "gas", "10"], "unknown codec 'gas'; codecs are air, water"),
        (["encode", "--codec", "gas", "{}"], "unknown codec 'gas'"),
        (["decode", "--codec", "air", "--fport", "0", "10"], "no uplink payload on FPort 0"),
        (["decode", "--codec", "cooling", "--fport", "224", "10"], "no uplink payload on FPort 224"),
        (["decode", "--codec", "cayenne-lpp", "--fport", "0", "0167"], "FPort 0 is not an application port"),
        (
            ["encode", "--codec", "cooling", "--fport", "25", "--direction", "down", "{}"],
            "no downlink payload on FPort 25; downlink ports are [10, 11, 12, 20, 21, 22, 23, 24]",
        ),
    ],
)
def test_unknown_codec_or_port_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Not a click usage error (three lines, status 2): one line naming the codec or port, status 1."""
    code, out, err = run(capsys, "payload", *argv)
    assert (code, out) == (1, "")
    assert err.startswith("havel: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_list_shows_codecs_and_ports(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "payload", "list")
    assert code == 0
    for word in (*CODEC_NAMES, "set_thresholds", "override", "request_status", "reboot", "1-223"):
        assert word in out


@pytest.mark.timeout(60)
def test_console_script_end_to_end() -> None:
    """The installed `havel` script, as a person runs it."""
    havel = Path(sys.executable).with_name("havel")
    done = subprocess.run(
        [str(havel), "payload", "decode", "--codec", "temperature", "1200f1013d4cba"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["data"] == {"probes": [24.1, 31.7], "humidity": 38.0, "battery": 3720}
    bad = subprocess.run(
        [str(havel), "payload", "decode", "--codec", "temperature", "3200f1"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("havel: error: ")
