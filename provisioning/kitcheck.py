"""The kit check: probe every part of a kit on the board, then say in one sentence what to do.

The probes run on the board (``device/kitcheck.py``, ``device/sds011.py``) and return facts; the
``judge_*`` functions (:mod:`.kitcheck_sensors`, :mod:`.kitcheck_board`) turn facts into checklist items
(:mod:`.checklist`). They are pure, so each fault's wording is tested directly; :func:`run_check` here
calls the probes in kit order and the judges, and the whole chain is tested against the virtual board
with the faults staged in its wiring.
"""

from __future__ import annotations

from collections.abc import Callable

from havel.errors import ConfigError
from havel.provisioning.checklist import MANUAL, Item, address
from havel.provisioning.kitcheck_board import judge_battery, judge_pmu, judge_radio
from havel.provisioning.kitcheck_sensors import (
    judge_ds18b20,
    judge_i2c,
    judge_scd41,
    judge_sds011,
    judge_ultrasonic,
)
from havel.provisioning.kits import Board, Kit
from havel.provisioning.transport import Board as BoardLink


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
                address(s.get("address", 0x62)),
                timeout=20,
            )
            items.append(judge_scd41(s, res))
        elif iface == "i2c":
            found = link.call("kitcheck", "kc_i2c_scan", s["sda"], s["scl"], s.get("freq", 100000))["found"]
            chip_id = None
            if s.get("chip_id") is not None and address(s["address"]) in found:
                chip_id = link.call(
                    "kitcheck",
                    "kc_i2c_reg",
                    s["sda"],
                    s["scl"],
                    s.get("freq", 100000),
                    address(s["address"]),
                    address(s.get("chip_id_reg", "0xD0")),
                )
            items.append(judge_i2c(s, found, chip_id))
        elif iface == "uart" and s["id"] == "sds011":
            res = link.call(
                "sds011",  # device/sds011.py: loaded only for a kit with this sensor
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
