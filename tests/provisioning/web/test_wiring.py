"""The bench's wiring diagram is drawn from the same rows as the printed guide, and a failed check line
points at the wire it talks about."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from havel.provisioning import checklist, guide, kitcheck_sensors
from havel.provisioning.kits import list_kits, load_kit
from havel.provisioning.web import wiring

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("name", list_kits())
def test_diagram_and_guide_show_the_same_wires(name: str) -> None:
    kit = load_kit(name)
    rows = re.findall(r"^\| (\d+) \| (.+?) \| (.+?) \| (.*?) \|$", guide.render(kit), re.M)
    assert rows, "the guide has a wiring table"
    root = ET.fromstring(wiring.svg(kit))
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("class") == "wire"}
    assert len(groups) == len(rows)
    for number, src, dst, colour in rows:
        g = groups[f"wire-{number}"]
        title = g.findtext(f"{SVG}title") or ""
        # the guide escapes "|" in cells; the diagram's title carries the same words
        for cell in (src, dst, colour):
            assert cell.replace("\\|", "|") in title.replace("  ", " "), (number, cell, title)
    assert [r["number"] for r in wiring.table(kit)] == [int(r[0]) for r in rows]


def _item(kit_name: str, judge: str, sensor_id: str, facts: object) -> checklist.Item:
    kit = load_kit(kit_name)
    s = next(x for x in kit.resolved_sensors(kit.board()) if x["id"] == sensor_id)
    item: checklist.Item = getattr(kitcheck_sensors, judge)(s, facts)
    assert item.status == checklist.FAIL
    return item


def test_the_failing_wire_is_the_one_the_sentence_names() -> None:
    air, temp = load_kit("air"), load_kit("temperature")
    swapped = _item("air", "judge_sds011", "sds011", {"wiring": "swapped"})
    assert wiring.failing_wires(air, swapped.name, swapped.advice) == [3, 4]  # TXD and RXD
    deaf = _item("air", "judge_sds011", "sds011", {"wiring": "deaf"})
    assert wiring.failing_wires(air, deaf.name, deaf.advice) == [4]  # RXD only
    never = _item("temperature", "judge_ds18b20", "ds18b20", {"roms": ["28"], "temps": [85.0]})
    # "connect its red VDD wire to 3V3 (not GND ...)": the VDD wire, not the GND one it warns against
    assert wiring.failing_wires(temp, never.name, never.advice) == [1]
    kit = load_kit("air")
    s = next(x for x in kit.resolved_sensors(kit.board()) if x["id"] == "bme280")
    nothing = kitcheck_sensors.judge_i2c(s, [], None)
    # all four of its bus wires and the SDO strap to GND: "check the four BME280 wires (3V3, GND, ...)"
    assert wiring.failing_wires(air, nothing.name, nothing.advice) == [5, 6, 7, 8, 9]
    radio = checklist.Item("LoRa radio SX1262", checklist.FAIL, "No LoRa radio answers on SPI.")
    assert wiring.failing_wires(air, radio.name, radio.advice) == []  # on the board: no wire to show
