"""The supported concentrator boards and roof kits, as data in ``hw/gateways/`` (see docs/roof.md).

``hw/gateways/boards/<name>.json`` describes one board: interface (SPI or USB), device path, the BCM GPIO
numbers of its reset and power-enable lines, the buses it needs, and its power draw with the source of
each figure. ``hw/gateways/sx1250.json`` holds the SX1250 radio calibration that all of them share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from havel.errors import ConfigError
from havel.resources import data_dir


def gateways_dir() -> Path:
    """``hw/gateways`` (in the checkout or the installed package)."""
    return data_dir("hw") / "gateways"


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return doc


@dataclass(frozen=True)
class Board:
    """One concentrator board (see the module docstring)."""

    name: str
    title: str
    chip: str
    radio: str
    interface: str  # "spi" or "usb"
    com_path: str
    sx1261_spi_path: str | None
    reset_gpio: int | None  # BCM numbers on the Raspberry Pi header
    power_enable_gpio: int | None
    sx1261_reset_gpio: int | None
    needs: tuple[str, ...]  # kernel interfaces: "spi", "i2c"
    rx_w: float  # at 5 V, receiving
    tx_w: float  # at 5 V, transmitting
    rx_source: str  # where each figure comes from, or "assumed: ..."
    tx_source: str

    @property
    def has_gpio(self) -> bool:
        """Whether the Pi drives any of the board's lines (USB boards reset through their own bridge)."""
        return any(g is not None for g in (self.reset_gpio, self.power_enable_gpio, self.sx1261_reset_gpio))


def board_names() -> list[str]:
    """Every board in ``hw/gateways/boards``."""
    return sorted(p.stem for p in (gateways_dir() / "boards").glob("*.json"))


def load_board(name: str) -> Board:
    """``hw/gateways/boards/<name>.json``; ConfigError naming the known boards when there is none."""
    path = gateways_dir() / "boards" / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"unknown concentrator board {name!r}", hint=f"one of: {', '.join(board_names())}")
    d = _read(path)
    try:
        gpio = d["gpio"]
        interface = d["interface"]
        if interface not in ("spi", "usb"):
            raise ValueError(f"interface must be spi or usb, not {interface!r}")
        return Board(
            name=name,
            title=str(d["title"]),
            chip=str(d["chip"]),
            radio=str(d["radio"]),
            interface=interface,
            com_path=str(d["com_path"]),
            sx1261_spi_path=d.get("sx1261_spi_path"),
            reset_gpio=gpio.get("reset"),
            power_enable_gpio=gpio.get("power_enable"),
            sx1261_reset_gpio=gpio.get("sx1261_reset"),
            needs=tuple(d.get("needs") or ()),
            rx_w=float(d["draw"]["rx_w"]),
            tx_w=float(d["draw"]["tx_w"]),
            rx_source=str(d["draw"]["rx_source"]),
            tx_source=str(d["draw"]["tx_source"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def radio_calibration(radio: str) -> dict[str, Any]:
    """``hw/gateways/<radio>.json``: RSSI offset, temperature compensation, TX gain table, IF limit."""
    path = gateways_dir() / f"{radio.lower()}.json"
    if not path.exists():
        raise ConfigError(f"no calibration data for radio {radio} ({path})")
    return _read(path)


def power_data() -> dict[str, Any]:
    """``hw/gateways/power.json``: Pi draws, UPS/HAT options, usable battery fractions, solar yield."""
    return _read(gateways_dir() / "power.json")


def kit_names() -> list[str]:
    """Every roof kit in ``hw/gateways/kits``."""
    return sorted(p.stem for p in (gateways_dir() / "kits").glob("*.json"))


def load_kit(name: str) -> dict[str, Any]:
    """``hw/gateways/kits/<name>.json`` (the BOM and the power configuration of one roof kit)."""
    path = gateways_dir() / "kits" / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"unknown roof kit {name!r}", hint=f"one of: {', '.join(kit_names())}")
    return _read(path)
