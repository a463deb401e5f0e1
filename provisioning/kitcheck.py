"""The kit check: probe every part of a kit on the board, then say in one sentence what to do.

The probes run on the board (``device/kitcheck.py``) and return facts; :func:`judge_*` functions here
turn facts into checklist items. They are pure, so each fault's wording is tested directly, and the whole
chain is tested against the virtual board with the faults staged in its wiring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from havel.errors import ConfigError
from havel.provisioning.kits import Board, Kit
from havel.provisioning.transport import Board as BoardLink

OK, FIXED, FAIL, MANUAL = "ok", "fixed", "fail", "manual"
MARKS = {
    OK: "[green]✔[/green]",
    FIXED: "[green]✔[/green]",
    FAIL: "[red]✘[/red]",
    MANUAL: "[yellow]•[/yellow]",
}


@dataclass(frozen=True)
class Item:
    name: str
    status: str
    advice: str
    facts: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status != FAIL


def _hex(v: int) -> str:
    return f"0x{v:02X}"


def _addr(v: Any) -> int:
    return int(v, 0) if isinstance(v, str) else int(v)


# ---------------------------------------------------------------- judges (pure)
def judge_i2c(sensor: dict[str, Any], found: list[int], chip_id: int | None) -> Item:
    part = sensor.get("part", sensor["id"])
    addr = _addr(sensor["address"])
    pins = f"SDA to GPIO{sensor['sda']}, SCL to GPIO{sensor['scl']}"
    name = f"{part} at I2C {_hex(addr)}"
    if addr not in found:
        if found:
            others = ", ".join(_hex(a) for a in found)
            return Item(
                name,
                FAIL,
                f"Nothing answers at {_hex(addr)} but something does at {others}: "
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
        return Item(name, OK, f"{part} answers at {_hex(addr)}.", {"found": found})
    want_id = _addr(want)
    if chip_id == want_id:
        return Item(
            name, OK, f"{part} answers at {_hex(addr)} with chip id {_hex(want_id)}.", {"chip_id": chip_id}
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
            f"The part at {_hex(addr)} answers the bus scan but not when asked for its chip id: push "
            f"its four wires (3V3, GND, {pins}) firmly onto the pins and run the check again.",
            {"chip_id": chip_id},
        )
    return Item(
        name,
        FAIL,
        f"The part at {_hex(addr)} reports chip id {_hex(chip_id)}, not {_hex(want_id)}: "
        f"it is not a {part}; replace it with a {part}.",
        {"chip_id": chip_id},
    )


def _address_pin_advice(part: str, addr: int) -> str:
    """What to do when the part answers at another address than the kit's."""
    if part.upper().startswith(("BME", "BMP")) and addr in (0x76, 0x77):
        # Bosch BME280/BMP280: SDO to GND selects 0x76, SDO to VDDIO 0x77 (datasheet 6.2)
        level = "GND" if addr == 0x76 else "3V3"
        return (
            f"connect the {part}'s SDO pin to {level} (that selects {_hex(addr)}), "
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
    addr = _addr(sensor.get("address", 0x62))
    name = f"SCD41 at I2C {_hex(addr)}"
    if not r.get("found"):
        return Item(
            name,
            FAIL,
            f"Nothing answers at {_hex(addr)}: check the four SCD41 wires (3V3, GND, SDA to "
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
        return Item(name, OK, f"{chip} answers (sync word register {_hex(r['sx126x_sync'])}).", r)
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


# ---------------------------------------------------------------- running on the board
class _ReportingList(list[Item]):
    """The checklist, telling a listener of each item as it is added."""

    def __init__(self, listener: Callable[[Item], None] | None) -> None:
        super().__init__()
        self._listener = listener

    def append(self, item: Item) -> None:
        super().append(item)
        if self._listener is not None:
            self._listener(item)


def run_check(
    link: BoardLink, kit: Kit, board: Board, on_item: Callable[[Item], None] | None = None
) -> list[Item]:
    """Probe every part of the kit through the board; returns the checklist in kit order.
    ``on_item`` is told each item as soon as its part has been probed (a page shows them line by line)."""
    items = _ReportingList(on_item)
    if board.radio is None:
        raise ConfigError(f"hw/boards/{board.name}.json has no radio section")
    rad = board.radio
    vext = board.raw.get("power", {}).get("vext")
    if isinstance(vext, dict) and "pin" in vext:
        # Sensors on a switched 3.3 V rail (Heltec Vext) stay dark until it is switched on.
        link.call("kitcheck", "kc_power", int(vext["pin"]), int(vext.get("active", 0)))
    pmu = board.raw.get("power", {}).get("pmu") if isinstance(board.raw.get("power"), dict) else None
    if isinstance(pmu, dict):
        # T-Beam: the radio has no power until the PMU switches its rail on.
        i2c = board.raw.get("i2c", {})
        res = link.call(
            "kitcheck",
            "kc_pmu_lora_rail",
            int(i2c["sda"]),
            int(i2c["scl"]),
            int(i2c.get("freq", 100000)),
            int(pmu.get("i2c_addr", 0x34)),
        )
        items.append(judge_pmu(board, res))
    r = link.call("kitcheck", "kc_radio", rad.spi, rad.sck, rad.mosi, rad.miso, rad.nss, rad.rst, rad.busy)
    items.append(judge_radio(board, r))
    for s in kit.resolved_sensors(board):
        iface = s["interface"]
        if iface == "i2c" and s["id"] == "scd41":
            res = link.call(
                "kitcheck",
                "kc_scd41",
                s["sda"],
                s["scl"],
                s.get("freq", 100000),
                _addr(s.get("address", 0x62)),
                timeout=20,
            )
            items.append(judge_scd41(s, res))
        elif iface == "i2c":
            found = link.call("kitcheck", "kc_i2c_scan", s["sda"], s["scl"], s.get("freq", 100000))["found"]
            chip_id = None
            if s.get("chip_id") is not None and _addr(s["address"]) in found:
                chip_id = link.call(
                    "kitcheck",
                    "kc_i2c_reg",
                    s["sda"],
                    s["scl"],
                    s.get("freq", 100000),
                    _addr(s["address"]),
                    _addr(s.get("chip_id_reg", "0xD0")),
                )
            items.append(judge_i2c(s, found, chip_id))
        elif iface == "uart" and s["id"] == "sds011":
            res = link.call(
                "kitcheck",
                "kc_sds011",
                s.get("uart", 1),
                s["tx"],
                s["rx"],
                s.get("firmware_mode", "query"),
                timeout=60,  # a slow sensor: up to 3 s for each of about six replies
            )
            items.append(judge_sds011(s, res))
        elif iface == "onewire":
            items.append(judge_ds18b20(s, link.call("kitcheck", "kc_ds18b20", s["pin"], timeout=20)))
        elif iface == "ultrasonic":
            pulses = link.call("kitcheck", "kc_ultrasonic", s["trig"], s["echo"], 3, timeout=10)
            items.append(judge_ultrasonic(s, pulses))
        else:
            items.append(
                Item(
                    s.get("part", s["id"]),
                    MANUAL,
                    f"Not tested automatically: check the {s.get('part', s['id'])} by hand "
                    "(see the assembly guide).",
                    None,
                )
            )
    if kit.battery_powered:
        if board.battery is None:
            items.append(
                Item(
                    "Battery",
                    MANUAL,
                    "This board has no battery sense pin: measure the battery with a multimeter; it "
                    f"should show at least {int(kit.power.get('battery_min_mv', 3400)) / 1000:.2f} V.",
                    None,
                )
            )
        else:
            b = board.battery
            mv = link.call("kitcheck", "kc_battery", b.adc, b.ctrl, b.ctrl_on, b.divider)
            items.append(judge_battery(kit, int(mv)))
    return list(items)


def print_checklist(items: list[Item], console: Console | None = None) -> None:
    console = console or Console()
    for it in items:
        console.print(f" {MARKS[it.status]} [bold]{it.name}[/bold]: {it.advice}", highlight=False)
    failed = sum(1 for it in items if it.status == FAIL)
    if failed:
        console.print(f"[red]{failed} problem(s) to fix before closing the enclosure.[/red]")
    else:
        console.print("[green]Everything checked out.[/green]")
