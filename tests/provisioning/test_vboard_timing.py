"""The virtual board's parts keep the timing of the real ones: UART bytes paced at the baud rate, the
SDS011's replies one after the other, DS18B20 conversions of 750 ms, radios busy after a reset, sensors
on the switched Vext rail dark until it is on.

Each test runs a short MicroPython program on the board and checks bounds that hold however slowly the
machine runs: the program measures time itself, and a byte can never be seen before the line could
have carried it (lower bounds only; no test needs the board to be fast).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from havel.provisioning.transport import Board

pytestmark = pytest.mark.timeout(60)

# A 19-byte SDS011 command frame (protocol V1.3), device id FFFF: any sensor.
SDS_CMD = """
def cmd(c, d1=0, d2=0):
    b = bytearray(19)
    b[0] = 0xAA; b[1] = 0xB4; b[2] = c; b[3] = d1; b[4] = d2; b[15] = 0xFF; b[16] = 0xFF
    b[17] = sum(b[2:17]) & 0xFF; b[18] = 0xAB
    return b
"""

# Writes the commands, then records (ms since just before the write, bytes so far) after every read
# that brought something, until `want` bytes have come or 3 s have passed.
LISTEN = """
import time, json
from machine import UART
u = UART(1, 9600, tx=47, rx=48, timeout=0)
u.read()
t0 = time.ticks_ms()
for c in CMDS:
    u.write(c)
got = b""
log = []
while len(got) < WANT and time.ticks_diff(time.ticks_ms(), t0) < 3000:
    d = u.read()
    t = time.ticks_diff(time.ticks_ms(), t0)
    if d:
        got += d
        log.append((t, len(got)))
print(json.dumps({"log": log, "hex": got.hex()}))
"""


def run(vb: Any, code: str) -> Any:
    with Board(vb.path) as link:
        out = link.exec(code, timeout=20).decode()
    return json.loads(out.strip().splitlines()[-1])


def listen(vb: Any, cmds: str, want: int) -> Any:
    return run(vb, SDS_CMD + f"CMDS = {cmds}\nWANT = {want}\n" + LISTEN)


def test_a_reply_arrives_byte_by_byte_after_the_command_has_gone_out(kit_board: Callable[..., Any]) -> None:
    r = listen(kit_board("air"), "[cmd(2)]", 10)  # which reporting mode?
    frame = bytes.fromhex(r["hex"])
    assert frame[:3] == b"\xaa\xc5\x02" and len(frame) == 10
    # 19 command bytes out, 10 ms in the sensor, then the reply's bytes at 1.04 ms each (9600 8N1):
    # by the time t (measured after the read) no more than (t - 29.8) / 1.04 + 1 bytes can be in.
    for t, n in r["log"]:
        assert t >= 29 and n <= (t - 29.8) / 1.0417 + 1.01, r["log"]


def test_back_to_back_commands_are_answered_one_after_the_other(kit_board: Callable[..., Any]) -> None:
    """Wake-up and mode query sent together: the wake-up's reply comes first, the mode's about 20 ms
    later (its 19 bytes were still on the wire). A probe that stops at the first reply misses it."""
    r = listen(kit_board("air", {"sds011_asleep"}), "[cmd(6, 1, 1), cmd(2)]", 20)
    data = bytes.fromhex(r["hex"])
    assert data[1:3] == b"\xc5\x06" and data[11:13] == b"\xc5\x02"
    t_first_complete = next(t for t, n in r["log"] if n >= 10)
    t_second_complete = next(t for t, n in r["log"] if n >= 20)
    assert t_first_complete >= 29.8 + 10.4 - 1
    assert t_second_complete >= 2 * 19.8 + 10 + 10.4 - 1
    for t, n in r["log"]:
        if n > 10:  # no byte of the second reply before its command had fully arrived + delay
            assert t >= 2 * 19.8 + 10, r["log"]


def test_a_sleeping_sds011_ignores_everything_but_the_wake_up(kit_board: Callable[..., Any]) -> None:
    vb = kit_board("air", {"sds011_asleep"})
    r = listen(vb, "[cmd(2), cmd(4)]", 1)
    assert r["hex"] == ""  # no reply within 3 s: the read timed out
    r = listen(vb, "[cmd(6, 1, 1)]", 10)
    assert bytes.fromhex(r["hex"])[1:5] == b"\xc5\x06\x01\x01"  # awake ("work")


def test_uart_read_waits_its_timeout_then_returns_none(kit_board: Callable[..., Any]) -> None:
    r = run(
        kit_board("air", {"sds011_asleep"}),
        "import time, json\nfrom machine import UART\n"
        "u = UART(1, 9600, tx=47, rx=48, timeout=300)\n"
        "t0 = time.ticks_ms()\nd = u.read(10)\n"
        "print(json.dumps([d is None, time.ticks_diff(time.ticks_ms(), t0)]))",
    )
    assert r[0] is True and r[1] >= 300


def test_active_mode_reports_once_a_second(kit_board: Callable[..., Any]) -> None:
    r = listen(kit_board("air", {"sds011_active"}), "[]", 30)  # up to 3 s
    data = bytes.fromhex(r["hex"])
    frames = [data[i : i + 10] for i in range(0, len(data) - 9, 10)]
    assert 2 <= len(frames) <= 3 and all(f[:2] == b"\xaa\xc0" for f in frames)
    assert r["log"][0][0] >= 1000 - 5  # the first frame one period after we started listening


def test_ds18b20_conversion_takes_750_ms(kit_board: Callable[..., Any]) -> None:
    r = run(
        kit_board("temperature"),
        "import time, json, onewire, ds18x20\nfrom machine import Pin\n"
        "ds = ds18x20.DS18X20(onewire.OneWire(Pin(7)))\nrom = ds.scan()[0]\n"
        "ds.convert_temp()\nt0 = time.ticks_ms()\nearly = ds.read_temp(rom)\n"
        "busy = ds.ow.readbit()\nt_early = time.ticks_diff(time.ticks_ms(), t0)\n"
        "time.sleep_ms(750)\nprint(json.dumps([early, busy, t_early, ds.read_temp(rom), ds.ow.readbit()]))",
    )
    early, busy, t_early, late, idle = r
    if t_early < 700:  # (always, unless the machine stalled for most of a second)
        assert early == 85.0 and busy == 0  # power-on value: the conversion is still running
    assert late == 19.5 and idle == 1


RADIO = """
import time, json
from machine import Pin, SPI
spi = SPI(1, sck=Pin({sck}), mosi=Pin({mosi}), miso=Pin({miso}))
cs = Pin({nss}, Pin.OUT, value=1)
def version():
    b = bytearray(2); cs(0); spi.write_readinto(b"\\x42\\x00", b); cs(1); return b[1]
def sync():
    b = bytearray(6); cs(0); spi.write_readinto(b"\\x1d\\x07\\x40\\x00\\x00\\x00", b); cs(1)
    return b[4] << 8 | b[5]
rst = Pin({rst}, Pin.OUT, value=1)
rst(0); time.sleep_ms(1); rst(1)
t0 = time.ticks_ms()
early = [{read}]
t_early = time.ticks_diff(time.ticks_ms(), t0)
time.sleep_ms(12)
print(json.dumps([early, t_early, [{read}]]))
"""


def test_sx1262_is_busy_for_3_5_ms_after_reset(kit_board: Callable[..., Any]) -> None:
    code = RADIO.format(sck=9, mosi=10, miso=11, nss=8, rst=12, read="Pin(13).value(), sync()")
    early, t_early, late = run(kit_board("air"), code)
    if t_early < 3:
        assert early == [1, 0]  # BUSY high, nothing on MISO while it calibrates
    assert late == [0, 0x1424]


def test_sx1276_needs_5_ms_after_reset(start_board: Callable[..., Any]) -> None:
    from dataclasses import replace

    from havel.provisioning.kits import load_kit

    from .conftest import scenario

    kit = replace(load_kit("temperature"), board_name="ttgo_lora32")  # a TTGO LoRa32: SX1276
    board = kit.board()
    r = board.radio
    assert r is not None and r.chip == "sx1276"
    code = RADIO.format(sck=r.sck, mosi=r.mosi, miso=r.miso, nss=r.nss, rst=r.rst, read="version()")
    early, t_early, late = run(start_board(scenario.build(kit, board)), code)
    if t_early < 5:
        assert early == [0]
    assert late == [0x12]


def test_vext_sensors_answer_2_ms_after_the_rail_is_switched_on(kit_board: Callable[..., Any]) -> None:
    r = run(
        kit_board("air"),
        "import time, json\nfrom machine import I2C, Pin\n"
        "bus = I2C(0, sda=Pin(41), scl=Pin(42))\ndark = bus.scan()\n"
        "Pin(36, Pin.OUT, value=0)\nt0 = time.ticks_ms()\nearly = bus.scan()\n"
        "t_early = time.ticks_diff(time.ticks_ms(), t0)\ntime.sleep_ms(5)\n"
        "print(json.dumps([dark, early, t_early, bus.scan()]))",
    )
    dark, early, t_early, lit = r
    assert dark == []  # Vext off: the BME280 has no power
    if t_early < 2:
        assert early == []  # BME280 start-up time, 2 ms
    assert lit == [0x76]


def test_scd41_timing_without_the_5_s(start_board: Callable[..., Any]) -> None:
    """Power-up 1000 ms on Vext; left measuring it ignores get_serial_number; stop_periodic_measurement
    keeps it busy (no ACK) for 500 ms; measure_single_shot for 5 s (only its start is checked here)."""
    from dataclasses import replace

    from havel.provisioning.kits import load_kit

    from .conftest import scenario

    kit = load_kit("air")
    kit = replace(kit, sensors=[*kit.sensors, {"id": "scd41", "interface": "i2c", "address": "0x62"}])
    vb = start_board(scenario.build(kit, kit.board(), {"scd41_periodic"}))
    code = """
import time, json
from machine import I2C, Pin
bus = I2C(0, sda=Pin(41), scl=Pin(42))
def acks(cmd):
    try:
        bus.writeto(0x62, cmd)
        return True
    except OSError:
        return False
def reads(n):
    time.sleep_ms(2)  # a command runs 1 ms before its answer can be read
    try:
        return bus.readfrom(0x62, n).hex()
    except OSError:
        return None
Pin(36, Pin.OUT, value=0)
t0 = time.ticks_ms()
early = acks(b"\\x36\\x82")
t_early = time.ticks_diff(time.ticks_ms(), t0)
time.sleep_ms(1100)
ignored = [acks(b"\\x36\\x82"), reads(9)]
stop = acks(b"\\x3f\\x86")
t1 = time.ticks_ms()
busy = acks(b"\\x36\\x82")
t_busy = time.ticks_diff(time.ticks_ms(), t1)
time.sleep_ms(550)
sn = [acks(b"\\x36\\x82"), reads(9)]
shot = acks(b"\\x21\\x9d")
t2 = time.ticks_ms()
measuring = acks(b"\\xe4\\xb8")
t_measuring = time.ticks_diff(time.ticks_ms(), t2)
print(json.dumps([early, t_early, ignored, stop, busy, t_busy, sn, shot, measuring, t_measuring]))
"""
    early, t_early, ignored, stop, busy, t_busy, sn, shot, measuring, t_measuring = run(vb, code)
    if t_early < 1000:
        assert early is False  # not up yet
    assert ignored == [True, None]  # heard, but no answer while measuring periodically
    assert stop is True
    if t_busy < 500:
        assert busy is False
    assert sn == [True, "8a1f213b7cac2d19d6"]  # words with their CRC-8 (0xBEEF -> 0x92 checked below)
    assert shot is True
    if t_measuring < 5000:
        assert measuring is False
    crc = run(vb, "import machine\nprint(machine._crc8_sensirion(b'\\xbe\\xef'))")
    assert crc == 0x92  # the datasheet's example
