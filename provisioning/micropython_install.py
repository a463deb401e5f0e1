"""Install MicroPython on a board from a firmware file the user has locally (the tool downloads nothing).

ESP32 family: ``esptool`` erases the flash and writes the image at the chip's offset. RP2040: the ``.uf2``
file is copied to the RPI-RP2 drive the Pico shows while BOOTSEL is held. Either way the image's SHA-256
must match the expected value (from the provisioning settings, or a ``<image>.sha256`` file next to it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from havel.errors import ConfigError, InputError, SecurityError, TransportError
from havel.provisioning.kits import Board

MIN_VERSION = (1, 22, 0)  # older ports lack features the firmware relies on (e.g. deflate, asyncio fixes)
UF2_MAGIC0, UF2_MAGIC1 = 0x0A324655, 0x9E5D5157
CONNECT_ATTEMPTS = 4  # each ~1.5 s; enough for the auto-reset, short enough to then ask for BOOT
ESP_OFFSETS = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0, "esp32c6": 0x0}


@dataclass(frozen=True)
class Image:
    path: Path
    sha256: str


def expected_sha256(image: Path, given: str | None) -> str:
    """The hash the image must have: given explicitly, or read from ``<image>.sha256``."""
    if given:
        h = given.strip().lower()
    else:
        side = image.with_name(image.name + ".sha256")
        if not side.exists():
            raise SecurityError(
                f"no expected SHA-256 for {image.name}",
                hint=f"put the hash published with the image into {side.name}, or pass --image-sha256",
            )
        h = side.read_text().split()[0].lower()
    if not re.fullmatch(r"[0-9a-f]{64}", h):
        raise InputError(f"expected SHA-256 {h!r} is not 64 hex digits")
    return h


def check_image(image: Path, sha256: str | None = None) -> Image:
    """Refuse a missing image or one whose SHA-256 differs from the expected value."""
    if not image.is_file():
        raise InputError(
            f"MicroPython image {image} does not exist",
            hint="download it from micropython.org on a computer with internet, then pass its path",
        )
    want = expected_sha256(image, sha256)
    got = hashlib.sha256(image.read_bytes()).hexdigest()
    if got != want:
        raise SecurityError(
            f"{image.name} has SHA-256 {got[:16]}..., expected {want[:16]}...: the file is damaged "
            "or not the published image",
            hint="download it again",
        )
    return Image(image, got)


def version_tuple(text: str) -> tuple[int, int, int]:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return (0, 0, 0)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def needs_install(version: str | None) -> bool:
    """True when the board runs no MicroPython (version None) or one older than MIN_VERSION."""
    return version is None or version_tuple(version) < MIN_VERSION


def esptool_commands(board: Board, port: str, image: Path, *, baud: int | None = None) -> list[list[str]]:
    """The esptool runs (erase, then write at the chip's offset) from the board file's micropython.flash."""
    fl = board.micropython.get("flash", {}) if isinstance(board.micropython.get("flash"), dict) else {}
    chip = str(fl.get("chip", board.mcu)).lower().replace("-", "")
    if chip not in ESP_OFFSETS:
        raise ConfigError(f"board {board.name}: MCU {chip!r} is not an ESP32 chip esptool knows here")
    offset = str(fl.get("offset", hex(ESP_OFFSETS[chip])))
    rate = baud or int(fl.get("baud", 460800))
    base = [
        sys.executable,
        "-m",
        "esptool",
        "--chip",
        chip,
        "--port",
        port,
        "--baud",
        str(rate),
        "--connect-attempts",
        str(CONNECT_ATTEMPTS),
    ]
    return [[*base, "erase-flash"], [*base, "write-flash", "-z", str(offset), str(image)]]


def install_esp32(
    board: Board, port: str, image: Image, *, timeout: float = 180.0, baud: int | None = None
) -> None:
    for cmd in esptool_commands(board, port, image.path, baud=baud):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise TransportError(
                "esptool did not finish in time",
                hint="hold BOOT, press and release RESET, release BOOT, then retry",
            ) from exc
        if proc.returncode != 0:
            lines = (proc.stdout + "\n" + proc.stderr).strip().splitlines()
            why = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "no output")
            raise TransportError(
                f"esptool failed: {why.removeprefix('ERROR: ').strip()}",
                hint="hold BOOT while pressing RESET to enter the bootloader; use a shorter "
                "USB cable or a lower --baud",
            )


def is_uf2(data: bytes) -> bool:
    if len(data) < 512 or len(data) % 512:
        return False
    m0, m1 = struct.unpack_from("<II", data, 0)
    return m0 == UF2_MAGIC0 and m1 == UF2_MAGIC1


def find_uf2_drive(roots: list[Path] | None = None) -> Path | None:
    """The mounted RPI-RP2 drive (it holds INFO_UF2.TXT), looked for where each OS mounts drives."""
    if roots is None:
        user = os.environ.get("USER", "")
        roots = [Path("/media") / user, Path("/run/media") / user, Path("/media"), Path("/Volumes")]
        roots += [Path(f"{c}:/") for c in "DEFGHIJ"] if sys.platform.startswith("win") else []
    for root in roots:
        if not root.is_dir():
            continue
        for cand in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
            if (cand / "INFO_UF2.TXT").is_file():
                return cand
    return None


def install_uf2(image: Image, drive: Path | None = None) -> Path:
    data = image.path.read_bytes()
    if not is_uf2(data):
        raise InputError(
            f"{image.path.name} is not a UF2 file", hint="use the .uf2 image for the Raspberry Pi Pico"
        )
    drive = drive or find_uf2_drive()
    if drive is None:
        raise TransportError(
            "no RPI-RP2 drive found",
            hint="hold the BOOTSEL button while plugging the Pico in; a drive named RPI-RP2 appears",
        )
    dest = drive / image.path.name
    shutil.copyfile(image.path, dest)
    return dest
