"""The examples in provisioning/README.md and tools/vboard/README.md, run as written: the shell
commands, the scenario JSON, and the sentence the fault table promises for each fault."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from havel.provisioning import kitcheck
from havel.provisioning.kits import load_kit
from havel.provisioning.transport import Board

from .conftest import REPO, scenario

pytestmark = pytest.mark.timeout(90)

VBOARD_README = REPO / "tools" / "vboard" / "README.md"
PROV_README = REPO / "provisioning" / "README.md"


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), re.S)


def shell_lines(block: str) -> list[str]:
    return [line.split("  #")[0].strip() for line in block.strip().splitlines()]


def test_both_readmes_show_the_same_commands() -> None:
    assert shell_lines(blocks(VBOARD_README, "sh")[0]) == shell_lines(blocks(PROV_README, "sh")[0])


@pytest.mark.parametrize("fault", ["sds011_swapped", None])
def test_the_documented_commands(tmp_path: Path, fault: str | None) -> None:
    """scenario.py > file; vboard.py file & (PTY, READY); havel kit check --port PTY: red with the swap
    sentence as documented, and green on the same commands without the fault."""
    make, serve, check = shell_lines(blocks(VBOARD_README, "sh")[0])
    sc_file = tmp_path / "air.json"
    make = make.replace("/tmp/air.json", str(sc_file))
    if fault is None:
        make = make.replace(" --fault sds011_swapped", "")
    subprocess.run(make, shell=True, cwd=REPO, check=True, timeout=30)
    argv = shlex.split(serve.rstrip("&").replace("/tmp/air.json", str(sc_file)))
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []

        def banner() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.strip())
                if line.strip() == "READY":
                    return

        t = threading.Thread(target=banner, daemon=True)
        t.start()
        t.join(30)
        assert lines[-1:] == ["READY"], lines
        pty = lines[0].split()[1]
        res = subprocess.run(
            shlex.split(check.replace("/dev/pts/N", pty)),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        proc.terminate()
        proc.wait(10)
    if fault:
        assert res.returncode == 1, res.stdout + res.stderr
        assert "swap the TX and RX wires at pins 47/48" in res.stdout
    else:
        assert res.returncode == 0, res.stdout + res.stderr
        assert "Everything checked out." in res.stdout


def test_the_documented_scenario_is_a_healthy_air_kit(start_board: Callable[..., Any]) -> None:
    sc = json.loads(blocks(VBOARD_README, "json")[0])
    kit = load_kit("air")
    with Board(start_board(sc).path) as link:
        items = kitcheck.run_check(link, kit, kit.board())
    assert [it.status for it in items] == ["ok", "ok", "ok"], [it.advice for it in items]


def fault_table() -> dict[str, str]:
    """fault name -> its row of the README's fault table."""
    rows: dict[str, str] = {}
    text = VBOARD_README.read_text()
    table = text.split("## Faults", 1)[1].split("\n## ", 1)[0]
    for line in table.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            for name in re.findall(r"`([^`]+)`", first) + re.findall(r"`(missing:\w+)`", line):
                rows[name] = line
    return rows


# fault -> (kit, board or None for the kit's own, the item's first word, a sentence the table quotes)
DOCUMENTED = {
    "missing:bme280": ("air", None, "BME280", "Nothing answers on the I2C bus"),
    "missing:sds011": ("air", None, "SDS011", "SDS011 sends nothing on RX, either way round"),
    "missing:ds18b20": ("temperature", None, "DS18B20", "No DS18B20 answers"),
    "missing:jsn_sr04t": ("water", None, "JSN-SR04T", "No echo from the JSN-SR04T"),
    "bmp280": ("air", None, "BME280", "This sensor is a BMP280"),
    "sds011_swapped": ("air", None, "SDS011", "swap the TX and RX wires at pins 47/48."),
    "sds011_rx_off": (
        "air",
        None,
        "SDS011",
        "SDS011 talks but does not hear the board: connect its RXD (pin 6) to GPIO47.",
    ),
    "sds011_txd_on_tx": (
        "air",
        None,
        "SDS011",
        "SDS011 talks on the board's TX pin GPIO47 and does not hear the board: move its TXD wire (pin 7) "
        "to GPIO48 and connect its RXD (pin 6) to GPIO47.",
    ),
    "sds011_active": ("air", None, "SDS011", "was left in active mode; it is now in query mode"),
    "scd41_periodic": ("air-co2", None, "SCD41", "SCD41 answers: 612 ppm CO2"),
    "sds011_period": (
        "air",
        None,
        "SDS011",
        "was left with a working period of 5 min; it now works continuously while awake",
    ),
    "sds011_asleep": ("air", None, "SDS011", "it was asleep, as the firmware leaves it between readings."),
    "ds18b20_85": ("temperature", None, "DS18B20", "connect its red VDD wire to 3V3"),
    "no_radio": ("air", None, "radio", "No LoRa radio answers on SPI"),
    "other_radio": (
        "air",
        None,
        "radio",
        "This board carries an SX127x radio, but the kit is made for a Heltec WiFi LoRa 32 V3 with an SX1262",
    ),
    "no_battery": ("temperature", None, "Battery", "plug the LiPo"),
    "ultrasonic_blind": ("water", None, "JSN-SR04T", "inside its blind zone: mount it at least 30 cm above"),
    "no_pmu": ("temperature", "tbeam_sx1262", "Power", "The power chip does not answer on I2C"),
}


def test_every_fault_is_in_the_table() -> None:
    rows = fault_table()
    assert set(scenario.FAULTS) <= set(rows), set(scenario.FAULTS) - set(rows)
    for fault, (*_, words) in DOCUMENTED.items():
        assert words in rows[fault], (fault, rows[fault])


@pytest.mark.parametrize("fault", sorted(DOCUMENTED))
def test_the_table_sentence_is_what_the_check_says(start_board: Callable[..., Any], fault: str) -> None:
    kit_name, board_name, first, words = DOCUMENTED[fault]
    kit = load_kit(kit_name)
    if board_name:
        kit = replace(kit, board_name=board_name)
    # both faults leave a sensor that only talks: it must be in active mode to say anything
    faults = {fault, "sds011_active"} if fault in ("sds011_rx_off", "sds011_txd_on_tx") else {fault}
    board = kit.board()
    with Board(start_board(scenario.build(kit, board, faults)).path) as link:
        items = kitcheck.run_check(link, kit, board)
    found = [it for it in items if it.name.split()[0] == first or (first == "radio" and "radio" in it.name)]
    assert found and words in found[0].advice, [it.advice for it in items]
