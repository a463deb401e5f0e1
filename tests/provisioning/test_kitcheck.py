"""The kit check on the virtual board, with each wiring fault staged in the simulated parts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from havel.provisioning import checklist, kitcheck, kitcheck_board, kitcheck_sensors
from havel.provisioning.kits import load_kit
from havel.provisioning.transport import Board

pytestmark = pytest.mark.timeout(60)


def check(vb: Any, kit_name: str) -> dict[str, checklist.Item]:
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
    """On the realistic-timing board (replies 10 ms after each command, bytes at 9600 baud)."""
    vb = kit_board("air")
    items = check(vb, "air")
    assert {k: v.status for k, v in items.items()} == {"radio": "ok", "BME280": "ok", "SDS011": "ok"}
    assert "PM2.5 8.4" in items["SDS011"].advice
    # The firmware reads it in query mode and wakes it for each reading: the check lets the fan rest.
    assert sensor_state(vb)["sds011"] == {"mode": "query", "working": False, "period": 0}
    again = check(vb, "air")["SDS011"]
    assert again.status == "ok" and "it was asleep, as the firmware leaves it" in again.advice


def test_slow_sds011_replies_are_waited_for(start_board: Callable[..., Any]) -> None:
    """The protocol gives no reply time: a sensor answering 400 ms after each command still passes."""
    from .conftest import scenario

    kit = load_kit("air")
    sc = scenario.build(kit, kit.board(), {"sds011_active"})
    sc["uart"][0]["reply_delay_ms"] = 400
    it = check(start_board(sc), "air")["SDS011"]
    assert it.status == "fixed" and "was left in active mode" in it.advice


def test_sds011_left_asleep_in_query_mode_is_woken_and_passes(kit_board: Callable[..., Any]) -> None:
    vb = kit_board("air", {"sds011_asleep"})
    it = check(vb, "air")["SDS011"]
    assert it.status == "ok" and "PM2.5 8.4" in it.advice and "it was asleep" in it.advice
    assert it.facts is not None and it.facts["was_asleep"] is True


def test_sds011_left_asleep_in_active_mode_is_fixed(kit_board: Callable[..., Any]) -> None:
    vb = kit_board("air", {"sds011_asleep", "sds011_active"})
    it = check(vb, "air")["SDS011"]
    assert it.status == "fixed" and "was left in active mode" in it.advice
    assert sensor_state(vb)["sds011"] == {"mode": "query", "working": False, "period": 0}


def test_sds011_rxd_not_connected(kit_board: Callable[..., Any]) -> None:
    it = check(kit_board("air", {"sds011_rx_off", "sds011_active"}), "air")["SDS011"]
    assert it.status == "fail" and "does not hear the board: connect its RXD (pin 6) to GPIO47" in it.advice


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
        r = link.call("sds011", "kc_sds011", sds["uart"], sds["tx"], sds["rx"], "active", timeout=20)
    assert (
        r["mode_found"] == "query" and r["mode_now"] == "active" and r["frame"] == {"pm25": 8.4, "pm10": 13.9}
    )
    item = kitcheck_sensors.judge_sds011({**sds, "firmware_mode": "active"}, r)
    assert item.status == "fixed" and "was left in query mode" in item.advice
    assert sensor_state(vb)["sds011"] == {"mode": "active", "working": True, "period": 0}


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
    """The kit fixes the board, so the advice is to use that board, not to pick another variant."""
    it = check(kit_board("temperature", {"other_radio"}), "temperature")["radio"]
    assert it.status == "fail" and "This board carries an SX127x radio" in it.advice
    assert "use a Heltec WiFi LoRa 32 V3 with the SX1262" in it.advice and "variant" not in it.advice


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
        checklist.print_checklist(kitcheck.run_check(link, kit, kit.board()), con)
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
    it = kitcheck_sensors.judge_sds011(s, r)
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


ACTIONS = (
    "check",
    "move",
    "remove",
    "connect",
    "swap",
    "replace",
    "use",
    "unplug",
    "plug",
    "push",
    "press",
    "charge",
    "mount",
    "measure",
    "wire",
    "shorten",
)


def every_failure() -> list[checklist.Item]:
    """Every failing sentence the judges can print, one input per branch."""
    from dataclasses import replace

    kit = load_kit("air")
    board = kit.board()
    tbeam = replace(kit, board_name="tbeam_sx1262").board()
    bme = next(s for s in kit.resolved_sensors(board) if s["id"] == "bme280")
    sds = next(s for s in kit.resolved_sensors(board) if s["id"] == "sds011")
    other = {**bme, "id": "sht31", "part": "SHT31", "address": "0x44", "chip_id": None}
    ds = {"pin": 7, "count": 2}
    us = {"trig": 5, "echo": 6}
    temp = load_kit("temperature")
    return [
        kitcheck_sensors.judge_i2c(bme, [], None),
        kitcheck_sensors.judge_i2c(bme, [0x77], None),
        kitcheck_sensors.judge_i2c(other, [0x45], None),
        kitcheck_sensors.judge_i2c(bme, [0x76], 0x58),
        kitcheck_sensors.judge_i2c(bme, [0x76], 0x61),
        kitcheck_sensors.judge_i2c(bme, [0x76], None),
        *(
            kitcheck_sensors.judge_sds011(sds, r)
            for r in (
                {"wiring": "swapped"},
                {"wiring": "tx_on_tx"},
                {"wiring": "silent"},
                {"wiring": "silent_noswap"},
                {"wiring": "garbled"},
                {"wiring": "deaf"},
                {"wiring": "no_mode_reply"},
                {"wiring": "ok", "mode_found": "active", "mode_now": "active"},
                {"wiring": "ok", "mode_found": "query", "mode_now": "query", "frame": None},
                {"wiring": "ok", "mode_found": "query", "mode_now": "query", "period_now": 5},
            )
        ),
        kitcheck_sensors.judge_scd41({**bme, "address": "0x62"}, {"found": False}),
        kitcheck_sensors.judge_scd41(bme, {"found": True, "crc_errors": 2}),
        kitcheck_sensors.judge_scd41(bme, {"found": True, "crc_errors": 0, "ready": False}),
        kitcheck_sensors.judge_scd41(bme, {"found": True, "crc_errors": 0, "ready": True, "co2_ppm": 0}),
        kitcheck_sensors.judge_ds18b20(ds, {"roms": []}),
        kitcheck_sensors.judge_ds18b20(ds, {"roms": ["28"]}),
        kitcheck_sensors.judge_ds18b20(ds, {"roms": ["28", "29", "2a"]}),
        kitcheck_sensors.judge_ds18b20(
            ds, {"roms": ["28", "29"], "temps": [85.0, 85.0], "still_converting": True}
        ),
        kitcheck_sensors.judge_ds18b20(ds, {"roms": ["28", "29"], "crc_errors": 1}),
        kitcheck_sensors.judge_ds18b20(ds, {"roms": ["28", "29"], "temps": [85.0, 20.0]}),
        kitcheck_sensors.judge_ds18b20(ds, {"roms": ["28", "29"], "temps": [None, 20.0]}),
        kitcheck_sensors.judge_ultrasonic(us, [-2, -2]),
        kitcheck_sensors.judge_ultrasonic(us, [600, 600]),
        kitcheck_board.judge_pmu(tbeam, {"chip": "axp192", "rail_on": False}),
        kitcheck_board.judge_pmu(tbeam, {"chip": None, "ic_type": 0x11}),
        kitcheck_board.judge_pmu(tbeam, {"chip": None, "ic_type": None}),
        kitcheck_board.judge_radio(board, {"sx127x_version": 0x12}),
        kitcheck_board.judge_radio(board, {"busy_stuck": True}),
        kitcheck_board.judge_radio(board, {"sx126x_sync": 0, "sx127x_version": 0}),
        kitcheck_board.judge_battery(temp, 0),
        kitcheck_board.judge_battery(temp, 3300),
    ]


@pytest.mark.parametrize("item", every_failure(), ids=lambda it: it.advice[:40])
def test_every_failure_says_what_to_do(item: checklist.Item) -> None:
    """'<what was found>: <what to do>.' with something a volunteer can do at the bench; no choice the
    kit makes for them (the board variant, the firmware)."""
    assert item.status == "fail" and item.advice.endswith(".")
    _, _, todo = item.advice.partition(": ")
    assert todo, item.advice
    assert any(w in todo.lower().split() or todo.lower().startswith(w) for w in ACTIONS), item.advice
    assert "variant" not in item.advice and "is the right board" not in item.advice


def test_kit_check_command_green_then_red(kit_board: Callable[..., Any]) -> None:
    """`havel kit check` as a volunteer runs it: exit 0 and all ticks on a healthy kit; exit 1 with the
    sentence on a kit with its SDS011 wires crossed."""
    from click.testing import CliRunner

    from havel.provisioning.cli_kit import kit as kit_cli

    r = CliRunner().invoke(kit_cli, ["check", "--kit", "air", "--port", kit_board("air").path])
    assert r.exit_code == 0, r.output
    assert "Everything checked out." in r.output and "✘" not in r.output
    r = CliRunner().invoke(
        kit_cli, ["check", "--kit", "air", "--port", kit_board("air", {"sds011_swapped"}).path]
    )
    assert r.exit_code == 1, r.output
    assert "swap the TX and RX wires at pins 47/48" in r.output and "1 problem(s) to fix" in r.output


def air_kit_with_scd41() -> Any:
    """The air kit with the SCD41 CO2 sensor the firmware supports (settings.sensors.co2)."""
    kit = load_kit("air-co2")
    assert kit.settings["sensors"]["co2"] == "scd41"
    return kit


def test_scd41_left_measuring_is_stopped_and_measures_once(start_board: Callable[..., Any]) -> None:
    """The one 5 s test: the SCD41 was left in periodic measurement (it ignores most commands then),
    sits on Vext (answers 1 s after power-up); the probe stops it, waits 500 ms, measures a single shot
    (5 s) and reads it with its CRCs."""
    from .conftest import scenario

    kit = air_kit_with_scd41()
    vb = start_board(scenario.build(kit, kit.board(), {"scd41_periodic"}))
    with Board(vb.path) as link:
        items = {it.name.split()[0]: it for it in kitcheck.run_check(link, kit, kit.board())}
    it = items["SCD41"]
    assert it.status == "ok" and "612 ppm CO2" in it.advice, it.advice
    assert it.facts is not None and it.facts["serial"] == "8a1f3b7c2d19"
    assert sensor_state(vb)["scd41"] == {"periodic": False}
    assert items["BME280"].status == "ok" and items["SDS011"].status == "ok"


def test_scd41_missing(start_board: Callable[..., Any]) -> None:
    from .conftest import scenario

    kit = air_kit_with_scd41()
    vb = start_board(scenario.build(kit, kit.board(), {"missing:scd41"}))
    with Board(vb.path) as link:
        items = {it.name.split()[0]: it for it in kitcheck.run_check(link, kit, kit.board())}
    assert items["SCD41"].status == "fail" and "Nothing answers at 0x62" in items["SCD41"].advice


def test_air_co2_kit_checks_its_scd41_from_the_command_line(kit_board: Callable[..., Any]) -> None:
    """The SCD41 is reachable from `havel kit check --kit air-co2`: left measuring, it is stopped and
    measured once (green); unplugged, the check names its four wires (red)."""
    from click.testing import CliRunner

    from havel.provisioning.cli_kit import kit as kit_cli

    r = CliRunner().invoke(
        kit_cli, ["check", "--kit", "air-co2", "--port", kit_board("air-co2", {"scd41_periodic"}).path]
    )
    assert r.exit_code == 0, r.output
    assert "✔ SCD41 at I2C 0x62: SCD41 answers: 612 ppm CO2" in r.output
    assert "✔ SDS011" in r.output and "✔ BME280" in r.output and "Everything checked out." in r.output
    r = CliRunner().invoke(
        kit_cli, ["check", "--kit", "air-co2", "--port", kit_board("air-co2", {"missing:scd41"}).path]
    )
    assert r.exit_code == 1, r.output
    assert "✘ SCD41 at I2C 0x62: Nothing answers at 0x62: check the four SCD41 wires" in r.output
    assert "1 problem(s) to fix" in r.output


def test_sds011_talking_on_the_boards_tx_pin_is_not_called_crossed(kit_board: Callable[..., Any]) -> None:
    """Half-wired: its TXD on the board's TX pin, its RXD loose. With the pins swapped in software the
    board hears its data frames but no reply to a command: it only talks, so "swap TX and RX" (which
    would leave RXD loose) is the wrong advice."""
    it = check(kit_board("air", {"sds011_txd_on_tx", "sds011_active"}), "air")["SDS011"]
    assert it.status == "fail", it.advice
    assert "crossed" not in it.advice and "swap" not in it.advice, it.advice
    assert it.advice == (
        "SDS011 talks on the board's TX pin GPIO47 and does not hear the board: move its TXD wire (pin 7) "
        "to GPIO48 and connect its RXD (pin 6) to GPIO47."
    )


def test_sds011_answering_after_1_2_s_passes(start_board: Callable[..., Any]) -> None:
    """Real sensors often take about a second to answer: 1.2 s per reply is within the check's patience,
    asleep or awake."""
    from .conftest import scenario

    kit = load_kit("air")
    for faults in (set(), {"sds011_asleep"}):
        sc = scenario.build(kit, kit.board(), faults)
        sc["uart"][0]["reply_delay_ms"] = 1200
        it = check(start_board(sc), "air")["SDS011"]
        assert it.status == "ok" and "PM2.5 8.4" in it.advice, (faults, it.advice)
        assert it.facts is not None and it.facts["was_asleep"] is bool(faults), it.facts


def _temperature_board(start_board: Callable[..., Any], **changes: Any) -> Any:
    from .conftest import scenario

    kit = load_kit("temperature")
    sc = scenario.build(kit, kit.board())
    devs = sc["onewire"][0]["devices"]
    if "extra" in changes:
        devs.append({"rom": "2801641e83160300", "temp_c": 22.0, "converts": True, "conversion_ms": 750})
    if "conversion_ms" in changes:
        devs[0]["conversion_ms"] = changes["conversion_ms"]
    return start_board(sc)


def test_ds18b20_slow_clone_is_waited_for(start_board: Callable[..., Any]) -> None:
    """The check polls read slots (0 while converting): a clone taking 800 ms passes with its reading."""
    it = check(_temperature_board(start_board, conversion_ms=800), "temperature")["DS18B20"]
    assert it.status == "ok" and "19.5 °C" in it.advice, it.advice
    assert it.facts is not None and 750 <= it.facts["conversion_ms"] < 1500, it.facts


def test_ds18b20_that_never_finishes_converting(start_board: Callable[..., Any]) -> None:
    """Still busy after 1.5 s (twice the datasheet's maximum): a sentence, not a wait without end."""
    it = check(_temperature_board(start_board, conversion_ms=4000), "temperature")["DS18B20"]
    assert it.status == "fail" and "still converting after 1.5 s" in it.advice, it.advice


def test_an_extra_ds18b20_is_to_be_removed(start_board: Callable[..., Any]) -> None:
    it = check(_temperature_board(start_board, extra=True), "temperature")["DS18B20"]
    assert it.status == "fail"
    assert it.advice == "2 DS18B20 answer on GPIO7, the kit has 1: remove the extra probe.", it.advice
    few = kitcheck_sensors.judge_ds18b20({"pin": 7, "count": 2}, {"roms": ["28"]})
    assert "check every probe's three wires" in few.advice


def test_scenario_refuses_a_fault_the_kit_cannot_have() -> None:
    from .conftest import scenario

    air, temp = load_kit("air"), load_kit("temperature")
    for kit, fault in ((air, "scd41_periodic"), (temp, "sds011_swapped"), (air, "missing:ds18b20")):
        with pytest.raises(ValueError, match="do not fit"):
            scenario.build(kit, kit.board(), {fault})
    with pytest.raises(ValueError, match="unknown faults: bogus"):
        scenario.build(air, air.board(), {"bogus"})


def test_sds011_left_with_a_working_period_is_set_back_to_continuous(kit_board: Callable[..., Any]) -> None:
    """Other software may have set a working period (it survives power-off); the firmware wants the
    sensor to work continuously while awake, so the check sets it back to 0 and says so."""
    vb = kit_board("air", {"sds011_period"})
    assert sensor_state(vb)["sds011"]["period"] == 5
    it = check(vb, "air")["SDS011"]
    assert it.status == "fixed" and "was left with a working period of 5 min" in it.advice, it.advice
    assert sensor_state(vb)["sds011"] == {"mode": "query", "working": False, "period": 0}
    assert check(vb, "air")["SDS011"].status == "ok"


def test_rewired_board_keeps_what_a_command_changed(kit_board: Callable[..., Any]) -> None:
    """state.json is there from power-up; after a new scenario and a soft reset, a part nobody changed
    takes the new scenario's state and one the check changed keeps its own, as a real sensor does."""
    from .conftest import scenario

    vb = kit_board("air")
    assert sensor_state(vb)["sds011"] == {"mode": "query", "working": True, "period": 0}

    def rewire(faults: set[str]) -> None:
        kit = load_kit("air")
        sc = json.dumps(scenario.build(kit, kit.board(), faults))
        with Board(vb.path) as link:
            link.exec(f"f = open('/_vboard/scenario.json', 'w')\nf.write({sc!r})\nf.close()")
            link.soft_reset()

    rewire({"sds011_active"})  # nothing changed the sensor yet: it is the new one, in active mode
    assert sensor_state(vb)["sds011"] == {"mode": "active", "working": True, "period": 0}
    assert check(vb, "air")["SDS011"].status == "fixed"  # put into query mode and to sleep
    rewire({"sds011_period"})
    assert sensor_state(vb)["sds011"] == {"mode": "query", "working": False, "period": 0}
