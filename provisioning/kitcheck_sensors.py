"""The kit check's judges of the sensors: facts a probe on the board returned (``device/kitcheck.py``,
``device/sds011.py``) -> one checklist item. They are pure, so each fault's wording is tested directly."""

from __future__ import annotations

from typing import Any

from havel.provisioning.checklist import FAIL, FIXED, OK, Item, address, hex_byte


def judge_i2c(sensor: dict[str, Any], found: list[int], chip_id: int | None) -> Item:
    part = sensor.get("part", sensor["id"])
    addr = address(sensor["address"])
    pins = f"SDA to GPIO{sensor['sda']}, SCL to GPIO{sensor['scl']}"
    name = f"{part} at I2C {hex_byte(addr)}"
    if addr not in found:
        if found:
            others = ", ".join(hex_byte(a) for a in found)
            return Item(
                name,
                FAIL,
                f"Nothing answers at {hex_byte(addr)} but something does at {others}: "
                f"{_address_pin_advice(part, addr)}",
                {"found": found},
            )
        return Item(
            name,
            FAIL,
            f"Nothing answers on the I2C bus: check the four {part} wires "
            f"(3V3, GND, {pins}) and that they sit firmly.",
            {"found": found},
        )
    want = sensor.get("chip_id")
    if want is None:
        return Item(name, OK, f"{part} answers at {hex_byte(addr)}.", {"found": found})
    want_id = address(want)
    if chip_id == want_id:
        return Item(
            name,
            OK,
            f"{part} answers at {hex_byte(addr)} with chip id {hex_byte(want_id)}.",
            {"chip_id": chip_id},
        )
    if chip_id == 0x58 and want_id == 0x60:
        return Item(
            name,
            FAIL,
            "This sensor is a BMP280 (chip id 0x58, no humidity) sold as a BME280: "
            "replace it with a real BME280 (chip id 0x60).",
            {"chip_id": chip_id},
        )
    if chip_id is None:
        return Item(
            name,
            FAIL,
            f"The part at {hex_byte(addr)} answers the bus scan but not when asked for its chip id: push "
            f"its four wires (3V3, GND, {pins}) firmly onto the pins and run the check again.",
            {"chip_id": chip_id},
        )
    return Item(
        name,
        FAIL,
        f"The part at {hex_byte(addr)} reports chip id {hex_byte(chip_id)}, not {hex_byte(want_id)}: "
        f"it is not a {part}; replace it with a {part}.",
        {"chip_id": chip_id},
    )


def _address_pin_advice(part: str, addr: int) -> str:
    """What to do when the part answers at another address than the kit's."""
    if part.upper().startswith(("BME", "BMP")) and addr in (0x76, 0x77):
        # Bosch BME280/BMP280: SDO to GND selects 0x76, SDO to VDDIO 0x77 (datasheet 6.2)
        level = "GND" if addr == 0x76 else "3V3"
        return (
            f"connect the {part}'s SDO pin to {level} (that selects {hex_byte(addr)}), "
            f"or replace it if it is not a {part}."
        )
    return (
        f"wire the {part}'s address pin (ADDR/SDO) as the wiring table says, "
        f"or replace it if it is not a {part}."
    )


def judge_sds011(sensor: dict[str, Any], r: dict[str, Any]) -> Item:
    tx, rx = sensor["tx"], sensor["rx"]
    name = f"SDS011 on UART pins {tx}/{rx}"
    want = sensor.get("firmware_mode", "query")
    wiring = r.get("wiring")
    if wiring == "swapped":
        return Item(
            name,
            FAIL,
            f"SDS011 sends nothing on RX, but answers with the wires crossed over: swap the "
            f"TX and RX wires at pins {tx}/{rx}.",
            r,
        )
    if wiring == "tx_on_tx":
        return Item(
            name,
            FAIL,
            f"SDS011 talks on the board's TX pin GPIO{tx} and does not hear the board: move its TXD "
            f"wire (pin 7) to GPIO{rx} and connect its RXD (pin 6) to GPIO{tx}.",
            r,
        )
    if wiring == "silent":
        return Item(
            name,
            FAIL,
            f"SDS011 sends nothing on RX, either way round: check its 5 V and GND wires "
            f"(the fan must spin), then the TX/RX wires at pins {tx}/{rx}.",
            r,
        )
    if wiring == "silent_noswap":
        return Item(
            name,
            FAIL,
            f"SDS011 sends nothing on RX: check its 5 V and GND wires (the fan must spin), then swap the "
            f"TX and RX wires at pins {tx}/{rx} and run the check again.",
            r,
        )
    if wiring == "garbled":
        return Item(
            name,
            FAIL,
            f"Only garbled bytes arrive from the SDS011: check the GND wire and that pin {rx} "
            "goes to the sensor's TXD (not to 5 V).",
            r,
        )
    if wiring == "deaf":
        return Item(
            name, FAIL, f"SDS011 talks but does not hear the board: connect its RXD (pin 6) to GPIO{tx}.", r
        )
    if wiring == "no_mode_reply":
        return Item(
            name,
            FAIL,
            "SDS011 answers the board but not when asked for its reporting mode: unplug its 5 V wire "
            "for ten seconds, plug it back in and run the check again; if that does not help, replace "
            "the sensor.",
            r,
        )
    if r.get("mode_now") != want:
        return Item(
            name,
            FAIL,
            f"SDS011 stays in {r.get('mode_now')} mode and would not switch to {want} mode: "
            "unplug its 5 V wire for ten seconds, plug it back in and run the check again.",
            r,
        )
    if r.get("period_now"):
        return Item(
            name,
            FAIL,
            f"SDS011 keeps a working period of {r['period_now']} min and would not switch to continuous "
            "work: unplug its 5 V wire for ten seconds, plug it back in and run the check again.",
            r,
        )
    frame = r.get("frame")
    if not frame:
        return Item(
            name,
            FAIL,
            "SDS011 answers commands but sends no measurement: its laser or fan may be "
            "faulty; replace the sensor.",
            r,
        )
    values = f"PM2.5 {frame['pm25']:.1f}, PM10 {frame['pm10']:.1f} µg/m³"
    if r.get("mode_found") != want:
        return Item(
            name,
            FIXED,
            f"SDS011 was left in {r.get('mode_found')} mode; it is now in {want} mode as "
            f"the firmware expects ({values}).",
            r,
        )
    if r.get("period_found"):
        return Item(
            name,
            FIXED,
            f"SDS011 was left with a working period of {r['period_found']} min; it now works continuously "
            f"while awake, in {want} mode, as the firmware expects ({values}).",
            r,
        )
    if r.get("was_asleep") and want == "active":
        return Item(
            name,
            FIXED,
            f"SDS011 was asleep (fan off); the check woke it, as the firmware in active mode expects "
            f"({values}).",
            r,
        )
    if r.get("was_asleep"):
        return Item(
            name,
            OK,
            f"SDS011 wired right, in {want} mode ({values}); it was asleep, as the firmware leaves it "
            "between readings.",
            r,
        )
    return Item(name, OK, f"SDS011 wired right, in {want} mode ({values}).", r)


def judge_scd41(sensor: dict[str, Any], r: dict[str, Any]) -> Item:
    addr = address(sensor.get("address", 0x62))
    name = f"SCD41 at I2C {hex_byte(addr)}"
    if not r.get("found"):
        return Item(
            name,
            FAIL,
            f"Nothing answers at {hex_byte(addr)}: check the four SCD41 wires (3V3, GND, SDA to "
            f"GPIO{sensor['sda']}, SCL to GPIO{sensor['scl']}) and that they sit firmly.",
            r,
        )
    if r.get("crc_errors"):
        return Item(
            name,
            FAIL,
            "SCD41 data arrives corrupted (CRC errors): shorten its I2C wires (under 30 cm) and push "
            "them firmly onto the pins.",
            r,
        )
    if not r.get("ready") or not r.get("co2_ppm"):
        return Item(
            name,
            FAIL,
            "SCD41 answers but gave no valid measurement in 6 s: unplug its 3V3 wire for ten seconds, "
            "plug it back in and run the check again; if that does not help, replace the sensor.",
            r,
        )
    return Item(
        name,
        OK,
        f"SCD41 answers: {r['co2_ppm']} ppm CO2, {r.get('temp_c')} °C, {r.get('humidity')} %RH.",
        r,
    )


def judge_ds18b20(sensor: dict[str, Any], r: dict[str, Any]) -> Item:
    pin = sensor["pin"]
    want = int(sensor.get("count", 1))
    roms = r.get("roms", [])
    temps = r.get("temps", [])
    name = f"DS18B20 x{want} on GPIO{pin}"
    if not roms:
        return Item(
            name,
            FAIL,
            f"No DS18B20 answers on GPIO{pin}: check the yellow DATA wire, GND, 3V3 and the "
            "4.7 kΩ resistor between DATA and 3V3.",
            r,
        )
    if len(roms) > want:
        extra = len(roms) - want
        return Item(
            name,
            FAIL,
            f"{len(roms)} DS18B20 answer on GPIO{pin}, the kit has {want}: remove the extra "
            f"{'probe' if extra == 1 else f'{extra} probes'}.",
            r,
        )
    if len(roms) < want:
        return Item(
            name,
            FAIL,
            f"{len(roms)} DS18B20 answer on GPIO{pin}, the kit has {want}: check every probe's three wires.",
            r,
        )
    if r.get("crc_errors"):
        return Item(
            name,
            FAIL,
            "DS18B20 readings fail their CRC: shorten the cable or fit the 4.7 kΩ pull-up "
            "close to the board.",
            r,
        )
    if r.get("still_converting"):
        return Item(
            name,
            FAIL,
            "DS18B20 is still converting after 1.5 s (the datasheet allows 0.75 s): replace the probe.",
            r,
        )
    if any(t == 85.0 for t in temps):
        return Item(
            name,
            FAIL,
            "DS18B20 reads 85.0 °C, its power-on value, so it never converted: connect its "
            "red VDD wire to 3V3 (not GND, no parasite power) and check the 4.7 kΩ pull-up.",
            r,
        )
    if any(t is None or not -55 <= t <= 125 for t in temps):
        return Item(name, FAIL, "DS18B20 gives impossible values: check the DATA wire and the pull-up.", r)
    shown = ", ".join(f"{t:.1f} °C" for t in temps)
    return Item(name, OK, f"DS18B20 found ({shown}).", r)


BLIND_ZONE_CM = 25.0  # JSN-SR04T v3: nothing closer is measured reliably
US_PER_CM = 58.0  # round trip of sound at about 20 C


def judge_ultrasonic(sensor: dict[str, Any], pulses: list[int]) -> Item:
    trig, echo = sensor["trig"], sensor["echo"]
    name = f"JSN-SR04T on GPIO{trig}/{echo}"
    got = sorted(p for p in pulses if p > 0)
    if not got:
        return Item(
            name,
            FAIL,
            f"No echo from the JSN-SR04T: check its 5 V and GND, Trig at GPIO{trig} and Echo through the "
            f"1k/2k divider at GPIO{echo}.",
            {"pulses_us": pulses},
        )
    cm = got[len(got) // 2] / US_PER_CM
    if cm < BLIND_ZONE_CM:
        return Item(
            name,
            FAIL,
            f"The JSN-SR04T sees something {cm:.0f} cm away, inside its blind zone: mount it at least 30 cm "
            "above the highest water level, pointing straight down.",
            {"pulses_us": pulses, "cm": round(cm, 1)},
        )
    return Item(
        name, OK, f"JSN-SR04T answers: echo from {cm:.0f} cm.", {"pulses_us": pulses, "cm": round(cm, 1)}
    )
