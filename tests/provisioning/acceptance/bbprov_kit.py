"""Plumbing of the black-box kit-check tests, written from the documents only.

- `VBoard`: the virtual board of tools/vboard/README.md started as an operator does
  (`vboard.py SCENARIO.json`, wait for "PTY /dev/pts/N" and "READY").
- `air_scenario()` / `temperature_scenario()`: the wiring, written by hand from the README's scenario
  table and the board file hw/boards/heltec_wifi_lora_32_v3.json (not from scenario.py).
- `kit_check()`: the real `havel kit check`, its checklist parsed into items.
- `on_board()`: our own MicroPython run on the board with `mpremote run`, to talk to its parts.
- `Sds011`: an SDS011 written from the Nova Fitness "Laser Dust Sensor Control Protocol V1.3"
  (19-byte commands AA B4 .. AB, 10-byte replies AA C5/C0 .. AB, checksum = low byte of the sum of the
  data bytes), used to judge every frame the virtual board's SDS011 sends.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
BIN = REPO / ".venv" / "bin"
HAVEL = BIN / "havel"
MPREMOTE = BIN / "mpremote"
VBOARD = REPO / "tools" / "vboard" / "vboard.py"

# Generous: a loaded 2-core CI machine. A hang shows up as this timeout, never as a stuck test run.
CHECK_TIMEOUT_S = 120.0
START_TIMEOUT_S = 60.0

# The Heltec WiFi LoRa 32 V3 (hw/boards/heltec_wifi_lora_32_v3.json): UART tx 47 / rx 48, I2C 41/42,
# Vext GPIO36 active low, 1-Wire GPIO7, battery ADC GPIO1 behind a 4.9 divider.
BOARD_TX, BOARD_RX = 47, 48


def air_scenario(**sds011: Any) -> dict[str, Any]:
    """A healthy air kit: BME280 at 0x76 behind Vext, an SDS011 wired right in query mode, awake."""
    uart = {
        "device": "sds011",
        "baud": 9600,
        "sensor_tx_to": BOARD_RX,
        "sensor_rx_to": BOARD_TX,
        "mode": "query",
        "asleep": False,
        "pm25": 12.3,
        "pm10": 45.6,
        "period_ms": 1000,
        "reply_delay_ms": 10,
    }
    uart.update(sds011)
    return {
        "unique_id": "a4cf12fe0c16",
        "i2c": [
            {
                "sda": 41,
                "scl": 42,
                "devices": [
                    {"addr": 0x76, "chip": "bme280", "rail": {"pin": 36, "active": 0}, "startup_ms": 2}
                ],
            }
        ],
        "uart": [uart],
        "onewire": [],
        "spi": [{"chip": "sx1262", "sck": 9, "nss": 8, "busy": 13, "rst": 12, "power": None}],
        "ultrasonic": [],
        "adc": {"1": 806122},
    }


def temperature_scenario(*probes: dict[str, Any]) -> dict[str, Any]:
    """A temperature kit: DS18B20 probes on GPIO7 (one healthy probe if none given), a 3.95 V LiPo."""
    devices = list(probes) or [ds18b20()]
    return {
        "unique_id": "a4cf12fe0c17",
        "i2c": [],
        "uart": [],
        "onewire": [{"pin": 7, "devices": devices}],
        "spi": [{"chip": "sx1262", "sck": 9, "nss": 8, "busy": 13, "rst": 12, "power": None}],
        "ultrasonic": [],
        "adc": {"1": 806122},
    }


def ds18b20(rom: str = "28aa0b1c2d3e4f00", temp_c: float = 21.25, converts: bool = True) -> dict[str, Any]:
    return {"rom": rom, "temp_c": temp_c, "converts": converts, "conversion_ms": 750}


class VBoard:
    """`vboard.py SCENARIO.json [--baud N]` as a process; `.path` is its pty."""

    def __init__(self, scenario: dict[str, Any], workdir: Path, baud: int | None = None) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.baud = baud
        self.path = ""
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._ready = threading.Event()

    def __enter__(self) -> VBoard:
        self.workdir.mkdir(parents=True, exist_ok=True)
        spec = self.workdir / "scenario.json"
        spec.write_text(json.dumps(self.scenario))
        argv = [sys.executable, str(VBOARD), str(spec)]
        if self.baud:
            argv += ["--baud", str(self.baud)]
        self.proc = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(START_TIMEOUT_S):
            self.__exit__(None, None, None)
            raise AssertionError(f"virtual board did not print READY: {self.lines}")
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("PTY "):
                self.path = line.split()[1]
            if line.strip() == "READY" and self.path:
                self._ready.set()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["COLUMNS"] = "400"  # one checklist item per line
    env.pop("HAVEL_PROVISIONING_CONFIG", None)
    if extra:
        env.update(extra)
    return env


def run_havel(args: list[str], env: dict[str, str] | None = None, timeout: float = CHECK_TIMEOUT_S) -> Run:
    p = subprocess.run(
        [str(HAVEL), *args],
        cwd=REPO,
        env=_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(p.returncode, p.stdout, p.stderr)


@dataclass
class Item:
    mark: str  # ✔ passed or fixed, ✘ failed, • not testable here
    name: str
    advice: str


@dataclass
class Run:
    rc: int
    out: str
    err: str
    items: list[Item] = field(default_factory=list)

    def __post_init__(self) -> None:
        # COLUMNS is wide, so each checklist line is one item: " ✔ name: what was found: what to do"
        for line in self.out.splitlines():
            m = re.match(r"\s*([✔✘•]) (.+?): (.+)$", line)
            if m:
                self.items.append(Item(m.group(1), m.group(2).strip(), m.group(3).strip()))

    def item(self, prefix: str) -> Item:
        found = [i for i in self.items if i.name.startswith(prefix)]
        assert len(found) == 1, f"expected one item {prefix!r} in:\n{self.out}\n{self.err}"
        return found[0]

    def __str__(self) -> str:
        return f"rc={self.rc}\n{self.out}\n{self.err}"


def kit_check(kit: str, port: str, env: dict[str, str] | None = None) -> Run:
    return run_havel(["kit", "check", "--kit", kit, "--port", port], env)


def on_board(port: str, script: str, workdir: Path, timeout: float = CHECK_TIMEOUT_S) -> Any:
    """Run our MicroPython `script` on the board; its last printed line is JSON and is returned."""
    path = workdir / f"probe_{time.monotonic_ns()}.py"
    path.write_text(script)
    p = subprocess.run(
        [str(MPREMOTE), "connect", port, "run", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"board script failed: {p.stdout}\n{p.stderr}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def soft_reset(port: str) -> None:
    """Ctrl-D on the board, as `mpremote soft-reset` sends it: the interpreter starts afresh."""
    p = subprocess.run(
        [str(MPREMOTE), "connect", port, "soft-reset"],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"soft reset failed: {p.stdout}\n{p.stderr}"


# --- Judging a checklist -----------------------------------------------------------------------


def assert_clean(run: Run) -> None:
    assert "Traceback" not in run.out + run.err, str(run)
    assert run.items, str(run)


def assert_green(run: Run) -> None:
    assert_clean(run)
    assert run.rc == 0, str(run)
    assert all(i.mark == "✔" for i in run.items), str(run)


def assert_only_red(run: Run, prefix: str) -> str:
    """Exit 1, the part `prefix` failed and nothing else did; returns its advice."""
    assert_clean(run)
    assert run.rc == 1, str(run)
    assert [i.name for i in run.items if i.mark == "✘"] == [run.item(prefix).name], str(run)
    return run.item(prefix).advice


def air_wired(**changes: Any) -> dict[str, Any]:
    """The healthy air kit with changes: `bme={...}`, `no_bme`, `no_sds`, or SDS011 scenario keys."""
    s = air_scenario()
    uart = s["uart"][0]
    bme = s["i2c"][0]["devices"][0]
    for key, value in changes.items():
        if key == "bme":
            bme.update(value)
        elif key == "no_bme":
            s["i2c"][0]["devices"] = []
        elif key == "no_sds":
            s["uart"] = []
        else:
            uart[key] = value
    return s


# --- The SDS011, from the Laser Dust Sensor Control Protocol V1.3 -------------------------------

HEAD, TAIL, CMD_ID = 0xAA, 0xAB, 0xB4
REPLY_CFG, REPLY_DATA = 0xC5, 0xC0
MODE, QUERY, SLEEP = 0x02, 0x04, 0x06
BYTE_S = 10 / 9600  # 8N1: a start bit, eight data bits, a stop bit


def command(cmd: int, data1: int = 0, data2: int = 0, device: int = 0xFFFF) -> bytes:
    """A 19-byte command: head, B4, data 1..13, device id (data 14..15; FFFF: every sensor), checksum of
    data 1..15, tail."""
    body = bytearray(13)
    body[0], body[1], body[2] = cmd, data1, data2
    payload = bytes(body) + device.to_bytes(2, "big")
    return bytes([HEAD, CMD_ID]) + payload + bytes([sum(payload) & 0xFF, TAIL])


def reply(kind: int, data: bytes, device: bytes) -> bytes:
    """A 10-byte reply: head, C5 or C0, data 1..4, device id (2 bytes), checksum of data 1..6, tail."""
    assert len(data) == 4 and len(device) == 2
    six = data + device
    return bytes([HEAD, kind]) + six + bytes([sum(six) & 0xFF, TAIL])


def split_frames(stream: bytes) -> list[bytes]:
    """Cut a byte stream into 10-byte frames at AA .. AB; every frame's checksum must hold."""
    frames = []
    i = 0
    while i < len(stream):
        assert stream[i] == HEAD, f"stray byte {stream[i]:02x} at {i} in {stream.hex()}"
        frame = stream[i : i + 10]
        assert len(frame) == 10 and frame[9] == TAIL, f"cut frame {frame.hex()}"
        assert sum(frame[2:8]) & 0xFF == frame[8], f"bad checksum in {frame.hex()}"
        frames.append(frame)
        i += 10
    return frames


class Sds011:
    """The sensor's state machine as the protocol describes it (mode and work state, query data).

    `wake_on_any` picks the sleeping behaviour: the protocol text says any command wakes a sleeping
    sensor; field reports (sds011-esp-raw) say it ignores everything but "set work".
    """

    def __init__(
        self, mode: str, asleep: bool, pm25: float, pm10: float, device: bytes, wake_on_any: bool = False
    ) -> None:
        self.query_mode = mode == "query"
        self.working = not asleep
        self.pm25, self.pm10 = pm25, pm10
        self.device = device
        self.wake_on_any = wake_on_any

    def data_frame(self) -> bytes:
        a, b = round(self.pm25 * 10), round(self.pm10 * 10)
        return reply(REPLY_DATA, a.to_bytes(2, "little") + b.to_bytes(2, "little"), self.device)

    def handle(self, cmd: bytes) -> bytes | None:
        assert len(cmd) == 19 and cmd[0] == HEAD and cmd[1] == CMD_ID and cmd[18] == TAIL
        if sum(cmd[2:17]) & 0xFF != cmd[17]:
            return None
        kind, write, value = cmd[2], cmd[3], cmd[4]
        if not self.working:
            if kind == SLEEP and write == 1 and value == 1:
                self.working = True
                return reply(REPLY_CFG, bytes([SLEEP, 1, 1, 0]), self.device)
            if self.wake_on_any:
                self.working = True
            return None
        if kind == MODE:
            if write:
                self.query_mode = value == 1
            return reply(REPLY_CFG, bytes([MODE, write, int(self.query_mode), 0]), self.device)
        if kind == SLEEP:
            if write:
                self.working = value == 1
            return reply(REPLY_CFG, bytes([SLEEP, write, int(self.working), 0]), self.device)
        if kind == QUERY:
            return self.data_frame()
        return None


# MicroPython run on the board: sends commands on the kit's UART and logs every piece it reads with
# the board's clock. Times are in microseconds from just before each write().
UART_PROBE = """
import time, json, machine
u = machine.UART(1, baudrate=9600, tx=47, rx=48, timeout=0)
log = []
for cmd, ms in STEPS:
    u.read(256)
    t0 = time.ticks_us()
    u.write(bytes.fromhex(cmd))
    got = []
    while time.ticks_diff(time.ticks_us(), t0) < ms * 1000:
        r = u.read(64)
        if r:
            got.append([time.ticks_diff(time.ticks_us(), t0), r.hex()])
    log.append(got)
print(json.dumps(log))
"""


def uart_probe(steps: list[tuple[bytes, int]]) -> str:
    """The board script for `steps`: (command, ms to listen after writing it)."""
    return "STEPS = " + repr([(c.hex(), ms) for c, ms in steps]) + "\n" + UART_PROBE
