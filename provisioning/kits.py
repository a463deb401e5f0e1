"""Read the hardware data: ``hw/boards/<board>.json`` (shared with the firmware) and ``hw/kits/<kit>.json``.

The board files are written by the firmware engineers and read at boot by the firmware; this module reads
them too, so pins are defined once. Board fields are looked up under the names the firmware uses, with a
few aliases (``nss``/``cs``, ``rst``/``reset``) so a renamed key does not silently drop a check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from havel import resources
from havel.errors import ConfigError

# firmware/config.py's names for the SDS011 reporting modes -> the datasheet's (Nova protocol V1.3)
SDS011_MODES = {"query": "query", "continuous": "active"}


def hw_dir() -> Path:
    """``hw/``, installed with the package or a checkout's (see :mod:`havel.resources`)."""
    return resources.hw_dir()


def firmware_dir() -> Path:
    """``firmware/``, installed with the package or a checkout's (see :mod:`havel.resources`)."""
    return resources.firmware_dir()


def _load(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} file {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def _pick(d: dict[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        if n in d and d[n] is not None:
            return d[n]
    return default


def _int(v: Any, what: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise ConfigError(f"{what} must be a number, not {v!r}")
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(v, 0)
        except ValueError:
            pass
    if isinstance(v, dict):
        return _int(_pick(v, "pin", "gpio"), what)
    raise ConfigError(f"{what} must be a number, not {v!r}")


@dataclass(frozen=True)
class Radio:
    chip: str
    spi: int
    sck: int
    mosi: int
    miso: int
    nss: int
    rst: int | None
    busy: int | None
    dio: int | None

    @property
    def family(self) -> str:
        return "sx126x" if self.chip.lower().startswith("sx126") else "sx127x"


@dataclass(frozen=True)
class Battery:
    adc: int
    ctrl: int | None
    ctrl_on: int
    divider: float


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    mcu: str
    usb_ids: list[tuple[int, int]]
    micropython: dict[str, Any]
    radio: Radio | None
    battery: Battery | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def family(self) -> str:
        return "rp2" if self.mcu.lower().startswith("rp2") else "esp32"


def _radio(d: dict[str, Any], name: str) -> Radio | None:
    r = _pick(d, "radio", "lora")
    if not isinstance(r, dict):
        return None
    pins = r.get("pins", r)
    spi = r["spi"] if isinstance(r.get("spi"), dict) else pins
    w = f"hw/boards/{name}.json radio"
    chip = str(_pick(r, "chip", "type", "model", default="")).lower()
    sck, mosi, miso = (_int(_pick(spi, k), f"{w}.spi.{k}") for k in ("sck", "mosi", "miso"))
    nss = _int(_pick(pins, "nss", "cs"), f"{w}.nss")
    if not chip or None in (sck, mosi, miso, nss):
        raise ConfigError(f"{w} needs chip, sck, mosi, miso and nss")
    assert sck is not None and mosi is not None and miso is not None and nss is not None
    spi_id = _pick(spi, "id") if spi is not pins else _pick(r, "spi_id", "bus", default=1)
    return Radio(
        chip=chip,
        spi=_int(spi_id, f"{w}.spi.id") or 1,
        sck=sck,
        mosi=mosi,
        miso=miso,
        nss=nss,
        rst=_int(_pick(pins, "rst", "reset"), f"{w}.rst"),
        busy=_int(_pick(pins, "busy"), f"{w}.busy"),
        dio=_int(_pick(pins, "dio1", "dio0", "irq"), f"{w}.dio"),
    )


def _battery(d: dict[str, Any], name: str) -> Battery | None:
    b = _pick(d, "battery", "vbat")
    if not isinstance(b, dict):
        return None
    w = f"hw/boards/{name}.json battery"
    adc = _int(_pick(b, "adc", "adc_pin", "pin"), f"{w}.adc")
    if adc is None:
        return None
    ctrl = _int(_pick(b, "ctrl", "adc_ctrl", "enable", "ctrl_pin"), f"{w}.ctrl")
    active = _pick(b, "enable_active", "ctrl_active")
    active_low = (active == 0) if active is not None else bool(_pick(b, "ctrl_active_low", default=True))
    divider = float(_pick(b, "divider", "ratio", "scale", default=2.0))
    return Battery(adc=adc, ctrl=ctrl, ctrl_on=0 if active_low else 1, divider=divider)


def _usb_ids(d: dict[str, Any]) -> list[tuple[int, int]]:
    ids: list[tuple[int, int]] = []
    raw = _pick(d, "usb", "usb_ids", default=[])
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, str) and ":" in item:
            vid, pid = item.split(":", 1)
            ids.append((int(vid, 16), int(pid, 16)))
        elif isinstance(item, dict) and "vid" in item and "pid" in item:
            ids.append((int(str(item["vid"]), 16), int(str(item["pid"]), 16)))
    return ids


def load_board(name: str) -> Board:
    path = hw_dir() / "boards" / f"{name}.json"
    d = _load(path, "board")
    mp = _pick(d, "micropython", "firmware", default={})
    return Board(
        name=name,
        title=str(_pick(d, "title", "name", default=name)),
        mcu=str(_pick(d, "mcu", "chip", default="esp32")),
        usb_ids=_usb_ids(d),
        micropython=mp if isinstance(mp, dict) else {"variant": str(mp)},
        radio=_radio(d, name),
        battery=_battery(d, name),
        raw=d,
    )


@dataclass(frozen=True)
class Kit:
    name: str
    title: str
    app: str
    codec: str
    board_name: str
    sensors: list[dict[str, Any]]
    wiring: list[dict[str, Any]]
    bom: list[dict[str, Any]]
    power: dict[str, Any]
    current_ma: dict[str, float]
    settings: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    def board(self) -> Board:
        return load_board(self.board_name)

    def resolved_sensors(self, board: Board) -> list[dict[str, Any]]:
        """The kit's sensors with their pins filled in from the board file (one source of pins) and the
        SDS011 reporting mode from the firmware settings (``sensors.sds011_mode``)."""
        out = [resolve_sensor(s, board) for s in self.sensors]
        fw_mode = self.settings.get("sensors", {}).get("sds011_mode", "query")
        for s in out:
            if s["id"] == "sds011":
                s["firmware_mode"] = SDS011_MODES.get(fw_mode, fw_mode)
        return out

    def resolved_wiring(self, board: Board) -> list[dict[str, Any]]:
        """The wiring table with ``{i2c.sda}``-style placeholders replaced by the board's pin numbers."""
        return [{k: fill(v, board) if isinstance(v, str) else v for k, v in w.items()} for w in self.wiring]

    @property
    def battery_powered(self) -> bool:
        return bool(self.power.get("battery"))


def list_kits() -> list[str]:
    return sorted(p.stem for p in (hw_dir() / "kits").glob("*.json"))


def load_kit(name: str) -> Kit:
    path = hw_dir() / "kits" / f"{name}.json"
    if not path.exists():
        raise ConfigError(
            f"there is no kit called {name!r}", hint=f"kits: {', '.join(list_kits()) or 'none'}"
        )
    d = _load(path, "kit")
    missing = [k for k in ("title", "app", "board", "sensors", "wiring", "bom", "power") if k not in d]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}")
    for s in d["sensors"]:
        if "id" not in s or "interface" not in s:
            raise ConfigError(f"{path}: every sensor needs 'id' and 'interface' ({s!r})")
        fw_addr = d.get("settings", {}).get("sensors", {}).get(f"{s['id']}_addr")
        if fw_addr is not None and int(str(s.get("address", fw_addr)), 0) != int(fw_addr):
            raise ConfigError(
                f"{path}: {s['id']} address {s.get('address')} differs from settings.sensors."
                f"{s['id']}_addr {fw_addr}: the check and the firmware would look at different parts"
            )
    return Kit(
        name=name,
        title=d["title"],
        app=d["app"],
        codec=d.get("codec", d["app"]),
        board_name=d["board"],
        sensors=d["sensors"],
        wiring=d["wiring"],
        bom=d["bom"],
        power=d["power"],
        current_ma={k: float(v) for k, v in d.get("current_ma", {}).items()},
        settings=d.get("settings", {}),
        raw=d,
    )


def board_value(board: Board, dotted: str) -> Any:
    """``"i2c.sda"`` -> the value in the board file; ConfigError naming the key when it is missing."""
    cur: Any = board.raw
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise ConfigError(f"hw/boards/{board.name}.json has no '{dotted}' (the kit needs it)")
        cur = cur[part]
    return cur


def fill(text: str, board: Board) -> str:
    return re.sub(r"\{([a-z0-9_.]+)\}", lambda m: str(board_value(board, m.group(1))), text)


def _pin(v: Any, what: str) -> int:
    n = _int(v, what)
    if n is None:
        raise ConfigError(f"{what} is missing")
    return n


def resolve_sensor(s: dict[str, Any], board: Board) -> dict[str, Any]:
    """One kit sensor with the pins of the board it sits on (bus pins come from hw/boards)."""
    out = dict(s)
    iface = s["interface"]
    w = f"hw/boards/{board.name}.json"
    if iface == "i2c":
        bus = board_value(board, "i2c")
        out.update(
            sda=_pin(bus.get("sda"), f"{w} i2c.sda"),
            scl=_pin(bus.get("scl"), f"{w} i2c.scl"),
            freq=int(bus.get("freq", 100000)),
            bus_id=int(bus.get("id", 0)),
        )
    elif iface == "uart":
        u = board_value(board, "uart")
        out.update(
            uart=int(u.get("id", 1)),
            tx=_pin(u.get("tx"), f"{w} uart.tx"),
            rx=_pin(u.get("rx"), f"{w} uart.rx"),
            baud=int(u.get("baudrate", 9600)),
        )
    elif iface == "onewire":
        out["pin"] = _pin(board_value(board, "onewire"), f"{w} onewire")
    elif iface == "ultrasonic":
        u = board_value(board, "ultrasonic")
        out.update(
            trig=_pin(u.get("trig"), f"{w} ultrasonic.trig"), echo=_pin(u.get("echo"), f"{w} ultrasonic.echo")
        )
    elif iface in ("valve", "reservoir"):
        out["pin"] = _pin(board_value(board, iface), f"{w} {iface}.pin")
    return out
