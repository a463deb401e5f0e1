"""The kit check's judges of the board itself: the power chip that feeds the radio, the LoRa radio and
the battery. Facts a probe returned -> one checklist item; pure, like the sensor judges."""

from __future__ import annotations

from typing import Any

from havel.provisioning.checklist import FAIL, OK, Item, hex_byte
from havel.provisioning.kits import Board, Kit


def judge_pmu(board: Board, r: dict[str, Any]) -> Item:
    name = "Power chip (PMU) for the LoRa rail"
    if r.get("chip") and r.get("rail_on"):
        return Item(name, OK, f"{str(r['chip']).upper()} answers; the LoRa rail is on.", r)
    if r.get("chip"):
        return Item(
            name,
            FAIL,
            f"The {str(r['chip']).upper()} did not switch the LoRa rail on: the board is faulty; "
            f"use another {board.title} and return this one.",
            r,
        )
    if r.get("ic_type") is not None:
        return Item(
            name,
            FAIL,
            f"An unknown chip (type 0x{r['ic_type']:02X}) answers where the power chip should: this is "
            f"not a {board.title}; use the board on the kit's parts list.",
            r,
        )
    i2c = board.raw.get("i2c", {}) if isinstance(board.raw.get("i2c"), dict) else {}
    pins = f"GPIO{i2c.get('sda')}/GPIO{i2c.get('scl')}"
    return Item(
        name,
        FAIL,
        f"The power chip does not answer on I2C: unplug every wire from {pins} (SDA/SCL) and run the "
        f"check again; if it still fails, use another {board.title}.",
        r,
    )


def judge_radio(board: Board, r: dict[str, Any]) -> Item:
    assert board.radio is not None
    chip = board.radio.chip.upper()
    name = f"LoRa radio {chip}"
    sx126 = r.get("sx126x_sync") in (0x1424, 0x3444)
    sx127 = r.get("sx127x_version") == 0x12
    if board.radio.family == "sx126x" and sx126:
        return Item(name, OK, f"{chip} answers (sync word register {hex_byte(r['sx126x_sync'])}).", r)
    if board.radio.family == "sx127x" and sx127:
        return Item(name, OK, f"{chip} answers (version register 0x12).", r)
    if sx126 or sx127:
        other = "an SX126x" if sx126 else "an SX127x"
        return Item(
            name,
            FAIL,
            f"This board carries {other} radio, but the kit is made for a {board.title} with an {chip}: "
            f"use a {board.title} with the {chip} (the radio's name is printed on its metal shield).",
            r,
        )
    if r.get("busy_stuck"):
        return Item(
            name,
            FAIL,
            f"The {chip} stays busy and never answers: the radio is faulty; use another {board.title} "
            "and return this one.",
            r,
        )
    return Item(
        name,
        FAIL,
        f"No LoRa radio answers on SPI: if the radio is a separate module, press it firmly onto its "
        f"pins and run the check again; otherwise the radio is missing or faulty: use another "
        f"{board.title}.",
        r,
    )


def judge_battery(kit: Kit, mv: int) -> Item:
    low = int(kit.power.get("battery_min_mv", 3400))
    if mv < 1000:
        return Item(
            "Battery",
            FAIL,
            "No battery voltage: plug the LiPo into the board's battery connector "
            "(check the polarity: red to +).",
            {"mv": mv},
        )
    if mv < low:
        return Item(
            "Battery",
            FAIL,
            f"Battery at {mv / 1000:.2f} V is too low: charge it over USB before closing the enclosure.",
            {"mv": mv},
        )
    return Item("Battery", OK, f"Battery at {mv / 1000:.2f} V.", {"mv": mv})
