"""Black-box: `havel kit check` on the temperature kit (DS18B20, battery),
judged by the documents only.

The boards are wired by our own scenarios (tools/vboard/README.md, "The scenario (the wiring)"), not by
scenario.py; the expected sentences are the ones provisioning/README.md and tools/vboard/README.md
("Faults") print. Every run is the real command against the virtual board's pty, with a timeout: a hang
or a traceback fails the test.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bbprov_kit import (
    VBoard,
    assert_green,
    assert_only_red,
    ds18b20,
    kit_check,
    temperature_scenario,
)

Start = Callable[..., VBoard]


def test_healthy_temperature_kit_is_green(vboard: Start) -> None:
    run = kit_check("temperature", vboard(temperature_scenario(ds18b20(temp_c=21.5))).path)
    assert_green(run)
    assert "21.5" in run.item("DS18B20").advice
    assert "3.95 V" in run.item("Battery").advice


TEMPERATURE_RED = {
    "DS18B20 never converts (85 °C)": (
        temperature_scenario(ds18b20(converts=False)),
        "DS18B20",
        ["DS18B20 reads 85.0 °C", "connect its red VDD wire to 3V3"],
    ),
    "no DS18B20": (
        {**temperature_scenario(), "onewire": [{"pin": 7, "devices": []}]},
        "DS18B20",
        ["No DS18B20 answers"],
    ),
    "no battery": (
        {**temperature_scenario(), "adc": {"1": 0}},
        "Battery",
        ["No battery voltage: plug the LiPo"],
    ),
}


@pytest.mark.parametrize("case", list(TEMPERATURE_RED), ids=list(TEMPERATURE_RED))
def test_temperature_kit_fault_is_red_with_the_documented_sentence(vboard: Start, case: str) -> None:
    scenario, part, fragments = TEMPERATURE_RED[case]
    run = kit_check("temperature", vboard(scenario).path)
    advice = assert_only_red(run, part)
    for fragment in fragments:
        assert fragment in advice, f"{fragment!r} not in {advice!r}"


def test_slow_ds18b20_is_read_not_told_its_vdd_wire_is_off(vboard: Start) -> None:
    """A DS18B20 that converts in 800 ms (a clone 50 ms over the 750 ms maximum; most probes sold online
    are clones, cpetrich/counterfeit_DS18B20) is wired right and does convert: it must not be told "reads
    85.0 °C ... never converted: connect its red VDD wire to 3V3". The datasheet lets the master poll:
    "the DS18B20 will respond by transmitting a 0 while the temperature conversion is in progress and a 1
    when the conversion is done" (Maxim datasheet), which the virtual board models."""
    probe = ds18b20(temp_c=21.5)
    probe["conversion_ms"] = 800
    run = kit_check("temperature", vboard(temperature_scenario(probe)).path)
    item = run.item("DS18B20")
    assert "never converted" not in item.advice, item
    assert item.mark == "✔" and "21.5" in item.advice, item
