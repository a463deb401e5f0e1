"""Find the board: list serial ports, recognise USB bridges and native USB, pick one or say why none.

Everything here works on lists of pyserial ``ListPortInfo`` objects, so it is tested with faked lists;
:func:`list_ports` is the only call that touches the system.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from serial.tools import list_ports as _pyserial_ports
from serial.tools.list_ports_common import ListPortInfo

from havel.errors import TransportError

# (VID, PID) -> what it is. The bridges are the USB-serial chips on dev boards; 303A:1001 is the ESP32-S3/C3
# native USB (Serial/JTAG), 2E8A:0005 MicroPython's own USB on an RP2040.
KNOWN_USB: dict[tuple[int, int], tuple[str, str]] = {
    (0x1A86, 0x7523): ("CH340", "bridge"),
    (0x1A86, 0x55D4): ("CH9102", "bridge"),
    (0x10C4, 0xEA60): ("CP210x", "bridge"),
    (0x303A, 0x1001): ("ESP32 native USB", "native"),
    (0x2E8A, 0x0005): ("RP2040 MicroPython", "micropython"),
}
DRIVERS = {
    "CH340": "https://www.wch-ic.com/downloads/CH341SER_EXE.html (Windows, macOS before 10.14)",
    "CH9102": "https://www.wch-ic.com/downloads/CH343SER_EXE.html (Windows)",
    "CP210x": "https://www.silabs.com/developers/usb-to-uart-bridge-vcp-drivers (Windows, macOS)",
}


@dataclass(frozen=True)
class Candidate:
    device: str
    chip: str
    kind: str
    description: str
    vid: int | None
    pid: int | None

    @property
    def usb_id(self) -> str:
        return f"{self.vid:04X}:{self.pid:04X}" if self.vid is not None and self.pid is not None else "-"


def classify(port: ListPortInfo) -> Candidate | None:
    """A candidate board if the port's USB ID is one we know; None for anything else."""
    if port.vid is None or port.pid is None:
        return None
    known = KNOWN_USB.get((port.vid, port.pid))
    if known is None:
        return None
    return Candidate(
        device=port.device,
        chip=known[0],
        kind=known[1],
        description=port.description or "",
        vid=port.vid,
        pid=port.pid,
    )


def candidates(ports: Iterable[ListPortInfo]) -> list[Candidate]:
    return [c for c in (classify(p) for p in ports) if c is not None]


def list_ports() -> list[ListPortInfo]:
    """The serial ports the operating system sees now."""
    return list(_pyserial_ports.comports())


def nothing_found_advice(
    platform: str | None = None, ports: Iterable[ListPortInfo] = (), in_dialout: bool | None = None
) -> list[str]:
    """Why no board shows up, most likely first, for the user's platform."""
    platform = platform or sys.platform
    others = [p for p in ports if p.vid is not None]
    tips = [
        "Use a USB data cable: many cables only charge. If the board's LED lights but nothing appears, "
        "try another cable."
    ]
    if platform.startswith("win"):
        tips.append(
            "Install the USB-serial driver for your board's chip (CH340: "
            + DRIVERS["CH340"]
            + "; CP210x: "
            + DRIVERS["CP210x"]
            + "), then look in Device Manager under 'Ports (COM & LPT)'."
        )
    elif platform == "darwin":
        tips.append(
            "On macOS, install the CP210x or CH34x driver if the board uses one and allow it under "
            "System Settings > Privacy & Security; the port then appears as /dev/cu.usbserial-*."
        )
    else:
        tips.append(
            "On Linux, run 'dmesg | tail' after plugging in: a line with ch341 or cp210x shows the "
            "driver found it. If 'brltty' grabs the port, remove it (sudo apt remove brltty)."
        )
        if in_dialout is False:
            tips.append(
                "You are not in the 'dialout' group, so you could not open the port anyway: "
                "sudo usermod -aG dialout $USER, then log out and in again."
            )
    tips.append(
        "Some boards only appear after holding BOOT while pressing RESET (ESP32-S3 native USB) or "
        "holding BOOTSEL while plugging in (Raspberry Pi Pico)."
    )
    if others:
        shown = ", ".join(
            f"{p.device} ({p.vid:04X}:{p.pid:04X} {p.description})" for p in others if p.pid is not None
        )
        tips.append(
            f"Other USB serial ports are present but not known boards: {shown}. Use --port to pick one."
        )
    return tips


def user_in_dialout() -> bool | None:
    """True/False on Linux (is the user in the group that owns serial ports); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import grp  # POSIX only

    try:
        gid = grp.getgrnam("dialout").gr_gid
    except KeyError:
        return None
    return os.getuid() == 0 or gid in os.getgroups()


def choose_port(
    port: str,
    ports: list[ListPortInfo],
    *,
    ask: Callable[[list[Candidate]], Candidate] | None = None,
    platform: str | None = None,
    in_dialout: bool | None = None,
) -> Candidate:
    """Resolve ``--port``: a device path is taken as given; ``auto`` picks the only candidate or asks.

    Raises TransportError listing the likely causes when no board is found, or when several are and
    there is no way to ask.
    """
    if port != "auto":
        for p in ports:
            if p.device == port:
                return classify(p) or Candidate(
                    p.device, "unknown", "unknown", p.description or "", p.vid, p.pid
                )
        return Candidate(port, "unknown", "given", "", None, None)
    found = candidates(ports)
    if not found:
        tips = nothing_found_advice(platform, ports, in_dialout)
        raise TransportError(
            "no board found on USB", hint=" ".join(f"({i}) {t}" for i, t in enumerate(tips, 1))
        )
    if len(found) == 1:
        return found[0]
    if ask is None:
        listing = ", ".join(f"{c.device} ({c.chip})" for c in found)
        raise TransportError(
            f"{len(found)} boards are connected: {listing}",
            hint="unplug the others, or pass --port with one of them",
        )
    return ask(found)
