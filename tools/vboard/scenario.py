"""Stage a kit on the virtual board: the wiring of a healthy kit, then the faults asked for.

``build(kit, board, faults)`` returns the scenario dict that vboard.py loads (the format is in
tools/vboard/README.md). Fault names:

- ``missing:<sensor id>``: that sensor is not connected (``missing:bme280``, ``missing:sds011``, ...)
- ``bmp280``: a BMP280 (chip id 0x58) where the kit has a BME280
- ``sds011_swapped``: the SDS011's TX and RX wires crossed over
- ``sds011_rx_off``: the SDS011's RXD wire not connected (it talks in active mode, never hears)
- ``sds011_txd_on_tx``: the SDS011's TXD wire on the board's TX pin and its RXD loose (half-wired)
- ``sds011_query`` / ``sds011_active``: the SDS011 left in that reporting mode
- ``sds011_asleep``: the SDS011 left asleep (fan off; it hears only the wake-up command)
- ``sds011_period``: the SDS011 left with a working period of 5 minutes (the firmware wants continuous)
- ``scd41_periodic``: the SCD41 left running its periodic measurement (it then ignores most commands)
- ``ds18b20_85``: the DS18B20 never converts and reads its power-on 85.0 C
- ``no_radio``: nothing on the radio's SPI bus; ``other_radio``: the other radio family (SX127x for
  SX126x and back)
- ``no_battery``: the battery ADC reads 0; ``ultrasonic_blind``: a target inside the JSN-SR04T's blind zone
- ``no_pmu``: the T-Beam's power chip does not answer; ``pmu_axp2101``: an AXP2101 instead of an AXP192

A fault that does not fit the kit (``sds011_swapped`` on a kit without an SDS011, ``missing:bme280`` on
one without a BME280) is refused with a ValueError, as is an unknown name: staging nothing would leave a
healthy board that a test takes for a faulty one.

Command line: ``python tools/vboard/scenario.py KIT [--fault NAME ...] [--board NAME]`` prints the
scenario JSON (for ``vboard.py``) on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from havel.provisioning.kits import Board, Kit, load_kit

FAULTS = {
    "bmp280",
    "sds011_swapped",
    "sds011_query",
    "sds011_active",
    "sds011_asleep",
    "sds011_period",
    "sds011_rx_off",
    "sds011_txd_on_tx",
    "scd41_periodic",
    "ds18b20_85",
    "no_radio",
    "other_radio",
    "no_battery",
    "ultrasonic_blind",
    "no_pmu",
    "pmu_axp2101",
}


# The part a fault is staged on: the fault fits a kit only when the kit (or its board) has that part.
_NEEDS_SENSOR = {
    "bmp280": "bme280",
    "sds011_swapped": "sds011",
    "sds011_query": "sds011",
    "sds011_active": "sds011",
    "sds011_asleep": "sds011",
    "sds011_period": "sds011",
    "sds011_rx_off": "sds011",
    "sds011_txd_on_tx": "sds011",
    "scd41_periodic": "scd41",
    "ds18b20_85": "ds18b20",
    "ultrasonic_blind": "jsn_sr04t",
}


def _misfit(fault: str, kit: Kit, board: Board, power: dict[str, Any]) -> str | None:
    """Why `fault` cannot be staged on this kit and board, or None when it can."""
    ids = [s["id"] for s in kit.sensors]
    if fault.startswith("missing:"):
        part = fault.split(":", 1)[1]
        return None if part in ids else f"the kit has no sensor {part!r}; its sensors: {', '.join(ids)}"
    if fault in _NEEDS_SENSOR:
        part = _NEEDS_SENSOR[fault]
        return None if part in ids else f"the kit has no {part}; its sensors: {', '.join(ids)}"
    if fault in ("no_radio", "other_radio") and board.radio is None:
        return "the board has no radio"
    if fault == "no_battery" and board.battery is None:
        return "the board has no battery sense pin"
    if fault in ("no_pmu", "pmu_axp2101") and not isinstance(power.get("pmu"), dict):
        return "the board has no power chip (PMU)"
    return None


def build(
    kit: Kit,
    board: Board,
    faults: set[str] | frozenset[str] = frozenset(),
    *,
    unique_id: str = "a4cf12fe0c01",
) -> dict[str, Any]:
    unknown = {f for f in faults if f not in FAULTS and not f.startswith("missing:")}
    if unknown:
        raise ValueError(
            f"unknown faults: {', '.join(sorted(unknown))} (known: {', '.join(sorted(FAULTS))}, "
            "missing:<sensor id>)"
        )
    power = board.raw.get("power") if isinstance(board.raw.get("power"), dict) else {}
    misfits = [f"{f} ({why})" for f in sorted(faults) if (why := _misfit(f, kit, board, power))]
    if misfits:
        # A fault the kit cannot have would silently leave a healthy board: refuse it instead.
        raise ValueError(f"faults that do not fit the {kit.name} kit on {board.name}: {'; '.join(misfits)}")
    missing = {f.split(":", 1)[1] for f in faults if f.startswith("missing:")}
    vext = power.get("vext") if isinstance(power.get("vext"), dict) else None
    # Sensors on a switched rail (Heltec Vext) stay dark until the board switches it on.
    rail = {"pin": int(vext["pin"]), "active": int(vext.get("active", 0))} if vext else None
    sc: dict[str, Any] = {
        "unique_id": unique_id,
        "i2c": [],
        "uart": [],
        "onewire": [],
        "spi": [],
        "adc": {},
        "ultrasonic": [],
    }
    for s in kit.resolved_sensors(board):
        if s["id"] in missing:
            continue
        if s["interface"] == "i2c":
            chip = s["id"]
            if chip == "bme280" and "bmp280" in faults:
                chip = "bmp280"
            addr = int(s["address"], 0) if isinstance(s["address"], str) else s["address"]
            bus = next((b for b in sc["i2c"] if b["sda"] == s["sda"] and b["scl"] == s["scl"]), None)
            if bus is None:
                bus = {"sda": s["sda"], "scl": s["scl"], "devices": []}
                sc["i2c"].append(bus)
            dev: dict[str, Any] = {"addr": addr, "chip": chip}
            if rail is not None:
                dev["rail"] = rail
            if chip == "scd41":
                dev.update(startup_ms=1000, co2_ppm=612, periodic="scd41_periodic" in faults)
            bus["devices"].append(dev)
        elif s["interface"] == "uart" and s["id"] == "sds011":
            mode = s.get("firmware_mode", "query")
            if "sds011_query" in faults:
                mode = "query"
            if "sds011_active" in faults:
                mode = "active"
            tx_to, rx_to = s["rx"], s["tx"]  # sensor TX goes to the board's RX pin
            if "sds011_swapped" in faults:
                tx_to, rx_to = rx_to, tx_to
            if "sds011_rx_off" in faults:
                rx_to = None  # the sensor's RXD wire is not connected: it talks but never hears
            if "sds011_txd_on_tx" in faults:
                tx_to, rx_to = s["tx"], None  # TXD on the board's TX pin, RXD loose: talks, never hears
            sc["uart"].append(
                {
                    "device": "sds011",
                    "baud": 9600,
                    "sensor_tx_to": tx_to,
                    "sensor_rx_to": rx_to,
                    "mode": mode,
                    "asleep": "sds011_asleep" in faults,
                    "working_period": 5 if "sds011_period" in faults else 0,
                    "pm25": 8.4,
                    "pm10": 13.9,
                    "period_ms": 1000,
                    "reply_delay_ms": 10,
                }
            )
        elif s["interface"] == "ultrasonic":
            sc["ultrasonic"].append(
                {
                    "trig": s["trig"],
                    "echo": s["echo"],
                    "distance_cm": 12.0 if "ultrasonic_blind" in faults else 182.5,
                }
            )
        elif s["interface"] == "onewire":
            devs = [
                {
                    "rom": f"28{i:02x}641e83160300",
                    "temp_c": 19.5 + i,
                    "converts": "ds18b20_85" not in faults,
                    "conversion_ms": 750,
                }
                for i in range(int(s.get("count", 1)))
            ]
            sc["onewire"].append({"pin": s["pin"], "devices": devs})
    pmu = power.get("pmu")
    pmu_rail = None
    if isinstance(pmu, dict):
        i2c = board.raw["i2c"]
        kind = "axp2101" if "pmu_axp2101" in faults else "axp192"
        # The LoRa rail: AXP192 LDO2 (REG12H bit 2), AXP2101 ALDO2 (REG90H bit 1)
        reg, mask = (0x90, 0x02) if kind == "axp2101" else (0x12, 0x04)
        pmu_rail = {
            "sda": i2c["sda"],
            "scl": i2c["scl"],
            "addr": int(pmu.get("i2c_addr", 0x34)),
            "reg": reg,
            "mask": mask,
        }
        if "no_pmu" not in faults:
            bus = next((b for b in sc["i2c"] if b["sda"] == i2c["sda"] and b["scl"] == i2c["scl"]), None)
            if bus is None:
                bus = {"sda": i2c["sda"], "scl": i2c["scl"], "devices": []}
                sc["i2c"].append(bus)
            bus["devices"].append({"addr": pmu_rail["addr"], "chip": kind})
    if board.radio is not None and "no_radio" not in faults:
        chip = board.radio.chip
        if "other_radio" in faults:
            chip = "sx1276" if board.radio.family == "sx126x" else "sx1262"
        sc["spi"].append(
            {
                "chip": chip,
                "sck": board.radio.sck,
                "nss": board.radio.nss,
                "busy": board.radio.busy if chip.startswith("sx126") else None,
                "rst": board.radio.rst,
                "power": pmu_rail,
            }
        )
    if board.battery is not None and "no_battery" not in faults:
        # 3.95 V at the cell, seen through the board's divider
        sc["adc"][str(board.battery.adc)] = int(3950 * 1000 / board.battery.divider)
    return sc


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Print the virtual board's scenario JSON for a kit.")
    ap.add_argument("kit", help="kit name from hw/kits (air, air-co2, water, temperature, cooling)")
    ap.add_argument("--fault", action="append", default=[], help="a fault to stage (repeatable)")
    ap.add_argument("--board", help="another board from hw/boards than the kit's own")
    args = ap.parse_args(argv)
    kit = load_kit(args.kit)
    if args.board:
        from dataclasses import replace

        kit = replace(kit, board_name=args.board)
    try:
        sc = build(kit, kit.board(), set(args.fault))
    except ValueError as e:
        sys.exit(f"scenario: {e}")
    json.dump(sc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
