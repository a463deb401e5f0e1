"""The kit check on the virtual board, with each wiring fault staged in the simulated parts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from havel.provisioning import kitcheck
from havel.provisioning.kits import load_kit
from havel.provisioning.transport import Board

pytestmark = pytest.mark.timeout(60)


def check(vb: Any, kit_name: str) -> dict[str, kitcheck.Item]:
    kit = load_kit(kit_name)
    with Board(vb.path) as link:
        items = kitcheck.run_check(link, kit, kit.board())
    return {it.name.split()[0] if not it.name.startswith("LoRa") else "radio": it for it in items}


def sensor_state(vb: Any) -> dict[str, Any]:
    """What the simulated parts remember (the SDS011's reporting mode lives in the sensor)."""
    with Board(vb.path) as link:
        text = link.exec("print(open('/_vboard/state.json').read())").decode()
    state: dict[str, Any] = json.loads(text)
    return state


def test_healthy_air_kit_passes(kit_board: Callable[..., Any]) -> None:
    items = check(kit_board("air"), "air")
    assert {k: v.status for k, v in items.items()} == {"radio": "ok", "BME280": "ok", "SDS011": "ok"}
    assert "PM2.5 8.4" in items["SDS011"].advice


def test_missing_bme280(kit_board: Callable[..., Any]) -> None:
    it = check(kit_board("air", {"missing:bme280"}), "air")["BME280"]
    assert it.status == "fail"
    assert "Nothing answers on the I2C bus" in it.advice and "GPIO41" in it.advice


def test_bmp280_sold_as_bme280(kit_board: Callable[..., Any]) -> None:
    it = check(kit_board("air", {"bmp280"}), "air")["BME280"]
    assert it.status == "fail" and "BMP280" in it.advice and it.facts == {"chip_id": 0x58}


def test_swapped_rx_tx(kit_board: Callable[..., Any]) -> None:
    it = check(kit_board("air", {"sds011_swapped"}), "air")["SDS011"]
    assert it.status == "fail"
    assert (
        it.advice.startswith("SDS011 sends nothing on RX")
        and "swap the TX and RX wires at pins 47/48" in it.advice
    )


def test_sds011_not_connected(kit_board: Callable[..., Any]) -> None:
    it = check(kit_board("air", {"missing:sds011"}), "air")["SDS011"]
    assert it.status == "fail" and "either way round" in it.advice


def test_sds011_left_in_active_mode_is_put_back_in_query_mode(kit_board: Callable[..., Any]) -> None:
    vb = kit_board("air", {"sds011_active"})
    it = check(vb, "air")["SDS011"]
    assert it.status == "fixed" and "was left in active mode" in it.advice and it.passed
    assert sensor_state(vb)["sds011"]["mode"] == "query"  # the sensor itself was switched
    # A second check finds it as the firmware wants it.
    assert check(vb, "air")["SDS011"].status == "ok"


def test_sds011_in_query_mode_is_recognised_and_switched_when_firmware_wants_active(
    kit_board: Callable[..., Any],
) -> None:
    kit = load_kit("air")
    board = kit.board()
    sds = next(s for s in kit.resolved_sensors(board) if s["id"] == "sds011")
    vb = kit_board("air", {"sds011_query", "sds011_asleep"})
    with Board(vb.path) as link:
        r = link.call("kitcheck", "kc_sds011", sds["uart"], sds["tx"], sds["rx"], "active", timeout=20)
    assert (
        r["mode_found"] == "query" and r["mode_now"] == "active" and r["frame"] == {"pm25": 8.4, "pm10": 13.9}
    )
    item = kitcheck.judge_sds011({**sds, "firmware_mode": "active"}, r)
    assert item.status == "fixed" and "was left in query mode" in item.advice
    assert sensor_state(vb)["sds011"] == {"mode": "active", "working": True}


def test_ds18b20_at_85_c(kit_board: Callable[..., Any]) -> None:
    items = check(kit_board("temperature", {"ds18b20_85"}), "temperature")
    it = items["DS18B20"]
    assert it.status == "fail" and "85.0 °C" in it.advice and it.facts is not None
    assert it.facts["temps"] == [85.0]


def test_healthy_temperature_kit_with_battery(kit_board: Callable[..., Any]) -> None:
    items = check(kit_board("temperature"), "temperature")
    assert items["DS18B20"].status == "ok" and "19.5 °C" in items["DS18B20"].advice
    assert items["Battery"].status == "ok" and "3.9" in items["Battery"].advice


def test_no_battery_and_missing_probe(kit_board: Callable[..., Any]) -> None:
    items = check(kit_board("temperature", {"no_battery", "missing:ds18b20"}), "temperature")
    assert items["Battery"].status == "fail" and "plug the LiPo" in items["Battery"].advice
    assert items["DS18B20"].status == "fail" and "No DS18B20 answers on GPIO7" in items["DS18B20"].advice


def test_no_radio(kit_board: Callable[..., Any]) -> None:
    it = check(kit_board("temperature", {"no_radio"}), "temperature")["radio"]
    assert it.status == "fail" and "No LoRa radio answers" in it.advice


def test_wrong_radio_variant(kit_board: Callable[..., Any]) -> None:
    it = check(kit_board("temperature", {"other_radio"}), "temperature")["radio"]
    assert it.status == "fail" and "an SX127x radio answers" in it.advice


def test_cooling_kit_lists_what_it_cannot_test(kit_board: Callable[..., Any]) -> None:
    items = check(kit_board("cooling"), "cooling")
    statuses = {k: v.status for k, v in items.items()}
    assert statuses["DS18B20"] == "ok" and statuses["radio"] == "ok"
    assert statuses["12"] == "manual" and statuses["Float"] == "manual"


def test_checklist_output(kit_board: Callable[..., Any]) -> None:
    from rich.console import Console

    con = Console(record=True, width=200)
    kit = load_kit("air")
    with Board(kit_board("air", {"sds011_swapped"}).path) as link:
        kitcheck.print_checklist(kitcheck.run_check(link, kit, kit.board()), con)
    text = con.export_text()
    assert "✔ LoRa radio SX1262" in text and "✘ SDS011" in text and "1 problem(s) to fix" in text


@pytest.mark.parametrize(
    ("r", "words"),
    [
        ({"wiring": "garbled", "junk": 12}, "garbled"),
        ({"wiring": "silent_noswap"}, "swap the TX and RX wires at pins 47/48"),
        ({"wiring": "deaf", "mode_found": "active", "mode_now": "active"}, "does not hear"),
        ({"wiring": "ok", "mode_found": "query", "mode_now": "query", "frame": None}, "no measurement"),
    ],
)
def test_sds011_other_faults_have_a_sentence(r: dict[str, Any], words: str) -> None:
    s = {"id": "sds011", "tx": 47, "rx": 48, "firmware_mode": "query"}
    it = kitcheck.judge_sds011(s, r)
    assert it.status == "fail" and words in it.advice and it.advice.endswith(".")


def test_water_kit_ultrasonic_healthy_blind_and_missing(kit_board: Callable[..., Any]) -> None:
    items = check(kit_board("water"), "water")
    assert items["JSN-SR04T"].status == "ok" and "182 cm" in items["JSN-SR04T"].advice
    assert items["DS18B20"].status == "ok" and items["Battery"].status == "ok"
    blind = check(kit_board("water", {"ultrasonic_blind"}), "water")["JSN-SR04T"]
    assert blind.status == "fail" and "blind zone" in blind.advice
    gone = check(kit_board("water", {"missing:jsn_sr04t"}), "water")["JSN-SR04T"]
    assert gone.status == "fail" and "No echo" in gone.advice and "GPIO5" in gone.advice


@pytest.mark.parametrize(
    ("faults", "pmu_status", "radio_status"),
    [
        (set(), "ok", "ok"),
        ({"pmu_axp2101"}, "ok", "ok"),
        ({"no_pmu"}, "fail", "fail"),
    ],
)
def test_tbeam_pmu_switches_the_lora_rail(
    start_board: Callable[..., Any], faults: set[str], pmu_status: str, radio_status: str
) -> None:
    """A T-Beam's radio is dark until the PMU (AXP192 or AXP2101) switches its rail on."""
    from dataclasses import replace

    from .conftest import scenario

    kit = replace(load_kit("temperature"), board_name="tbeam_sx1262")
    board = kit.board()
    vb = start_board(scenario.build(kit, board, faults))
    rad = board.radio
    assert rad is not None
    with Board(vb.path) as link:
        dark = link.call(
            "kitcheck", "kc_radio", rad.spi, rad.sck, rad.mosi, rad.miso, rad.nss, rad.rst, rad.busy
        )
        assert dark["sx126x_sync"] == 0  # before the PMU switches the rail on, the radio is silent
        items = {it.name.split()[0]: it for it in kitcheck.run_check(link, kit, board)}
    assert items["Power"].status == pmu_status
    assert items["LoRa"].status == radio_status
    if "no_pmu" in faults:
        assert "power chip does not answer" in items["Power"].advice
