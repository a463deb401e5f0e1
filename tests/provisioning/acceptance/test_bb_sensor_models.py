"""Black-box: the virtual board's sensors against our own models written from their datasheets.

The kit check is only as good as the sensors it is tested against. tools/vboard/README.md documents no
way to plug in a sensor model of one's own (only the scenario's keys), so these tests talk to the
board's parts with our own MicroPython (`mpremote run`) and judge every byte and every delay with models
from the public documents:
- SDS011: Nova Fitness Laser Dust Sensor Control Protocol V1.3 (frames, checksum, 9600 8N1, modes);
- BME280 / BMP280: Bosch datasheets (chip id register 0xD0: 0x60 / 0x58);
- DS18B20: Maxim datasheet (85 °C power-on value, tCONV 750 ms, read slots 0 while converting,
  ROM and scratchpad CRC x^8+x^5+x^4+1);
- SCD41: Sensirion SCD4x datasheet (5 s single shot, CRC-8 0x31/0xFF per word, periodic mode).
Times are the board's own clock. Only bounds that load cannot break are checked: a byte can never be
read before the wire could have carried it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bbprov_kit import (
    BYTE_S,
    MODE,
    QUERY,
    REPLY_CFG,
    REPLY_DATA,
    REPO,
    SLEEP,
    Sds011,
    VBoard,
    air_scenario,
    air_wired,
    command,
    ds18b20,
    on_board,
    soft_reset,
    split_frames,
    temperature_scenario,
    uart_probe,
)

Start = Callable[..., VBoard]
US = 1e6
CLOCK_SLACK_US = 1500  # the interpreter's clock has 1 ms steps


def check_wire_timing(step: list[list[Any]], delay_ms: float) -> None:
    """No byte of a reply readable before the command (19 bytes), the reply delay and its own 10 bits."""
    seen = 0
    for t_us, hexbytes in step:
        seen += len(hexbytes) // 2
        earliest = (19 * BYTE_S + delay_ms / 1000 + seen * BYTE_S) * US
        assert t_us + CLOCK_SLACK_US >= earliest, f"byte {seen} read at {t_us} µs, wire needs {earliest:.0f}"


def test_sds011_speaks_the_protocol_in_every_state(vboard: Start, tmp_path: Path) -> None:
    scenario = air_scenario(pm25=12.3, pm10=45.6, mode="query", asleep=False, period_ms=1000)
    board = vboard(scenario)
    steps = [
        (command(MODE), 300),  # query the reporting mode
        (command(QUERY), 300),  # query data
        (command(SLEEP, 1, 0), 300),  # set sleep
        (command(MODE), 300),  # asleep: ignored
        (command(QUERY), 300),  # asleep: ignored
        (command(SLEEP, 1, 1), 300),  # set work
        (command(SLEEP), 300),  # query the work state
        (command(MODE, 1, 0), 2600),  # set active mode: a data frame every period_ms after it
        (command(MODE, 1, 1), 300),  # back to query mode
        (command(MODE), 1300),  # query mode: nothing unasked for
    ]
    log = on_board(board.path, uart_probe(steps), tmp_path)
    frames = [split_frames(bytes.fromhex("".join(h for _, h in step))) for step in log]
    assert frames[0], "no answer to the mode query"
    device = frames[0][0][6:8]
    model = Sds011("query", False, 12.3, 45.6, device)
    for i, ((cmd, _ms), got) in enumerate(zip(steps, frames, strict=True)):
        expected = model.handle(cmd)
        if cmd == command(MODE, 1, 0):
            assert got[0] == expected, (i, got)
            data = got[1:]
            # first frame one period after switching, then one a period: two or three in 2.6 s
            assert 1 <= len(data) <= 3, (i, data)
            assert all(f == model.data_frame() for f in data), (i, data)
            continue
        if cmd == command(MODE, 1, 1):
            # a data frame already on the wire may come first; the reply must be there, once
            assert [f for f in got if f[1] == REPLY_CFG] == [expected], (i, got)
            assert all(f == model.data_frame() for f in got if f[1] == REPLY_DATA), (i, got)
            continue
        assert got == ([expected] if expected else []), (i, cmd.hex(), got)
    # the query data reply decodes to our values (protocol: low byte first, tenths of µg/m³)
    pm = frames[1][0]
    assert (int.from_bytes(pm[2:4], "little") / 10, int.from_bytes(pm[4:6], "little") / 10) == (12.3, 45.6)
    for i, step in enumerate(log):
        if steps[i][0] != command(MODE, 1, 0):
            check_wire_timing(step, delay_ms=scenario["uart"][0]["reply_delay_ms"])
    # the board reads a reply while it is still arriving: in pieces, not as a whole frame at once
    assert any(len(step) > 1 for step in log), log


def test_sds011_reply_delay_is_honoured(vboard: Start, tmp_path: Path) -> None:
    board = vboard(air_scenario(reply_delay_ms=250))
    log = on_board(board.path, uart_probe([(command(MODE), 700), (command(QUERY), 700)]), tmp_path)
    for step in log:
        assert len(split_frames(bytes.fromhex("".join(h for _, h in step)))) == 1, log
        check_wire_timing(step, delay_ms=250)


def test_sds011_mode_is_kept_across_a_soft_reset(vboard: Start, tmp_path: Path) -> None:
    """The reporting mode "is still effective after power off" (protocol V1.3); a soft reset keeps it too."""
    board = vboard(air_scenario(mode="query"))
    on_board(board.path, uart_probe([(command(MODE, 1, 0), 300)]), tmp_path)  # set active
    soft_reset(board.path)
    log = on_board(board.path, uart_probe([(command(MODE), 1500)]), tmp_path)
    frames = split_frames(bytes.fromhex("".join(h for _, h in log[0])))
    replies = [f for f in frames if f[1] == REPLY_CFG]
    assert [f[2:5] for f in replies] == [bytes([MODE, 0, 0])], frames  # 0: active mode
    assert any(f[1] == REPLY_DATA for f in frames), frames  # and it reports by itself


I2C_PROBE = """
import time, json
from machine import Pin, I2C
i2c = I2C(0, sda=Pin(41), scl=Pin(42), freq=100000)
dark = sorted(i2c.scan())
Pin(36, Pin.OUT).value(0)  # Vext on (active low)
time.sleep_ms(10)
lit = sorted(i2c.scan())
ids = {str(a): i2c.readfrom_mem(a, 0xD0, 1)[0] for a in lit}
print(json.dumps([dark, lit, ids]))
"""


def test_bme280_and_bmp280_answer_with_their_chip_ids(vboard: Start, tmp_path: Path) -> None:
    scenario = air_scenario()
    scenario["i2c"][0]["devices"] = [
        {"addr": 0x76, "chip": "bme280", "rail": {"pin": 36, "active": 0}, "startup_ms": 2},
        {"addr": 0x77, "chip": "bmp280"},  # not behind Vext: always powered
    ]
    dark, lit, ids = on_board(vboard(scenario).path, I2C_PROBE, tmp_path)
    assert dark == [0x77], "a part behind Vext answered before Vext was switched on"
    assert lit == [0x76, 0x77]
    assert ids == {"118": 0x60, "119": 0x58}  # BME280 0x60, BMP280 0x58 (Bosch datasheets, reg 0xD0)


def crc8_maxim(data: bytes) -> int:
    """Dallas/Maxim 1-Wire CRC: x^8 + x^5 + x^4 + 1, LSB first (DS18B20 datasheet)."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


ONEWIRE_PROBE = """
import time, json
from machine import Pin
import onewire, ds18x20
out = {}
for pin in (7, 6):
    ow = onewire.OneWire(Pin(pin))
    ds = ds18x20.DS18X20(ow)
    roms = ds.scan()
    rom = roms[0]
    before = ds.read_temp(rom)
    ds.convert_temp()
    t0 = time.ticks_ms()
    bit_early = ow.readbit()
    early = ds.read_temp(rom)
    early_ms = time.ticks_diff(time.ticks_ms(), t0)
    time.sleep_ms(800)
    bit_late = ow.readbit()
    pad = ds.read_scratch(rom)
    out[str(pin)] = {"roms": [bytes(r).hex() for r in roms], "before": before, "early": early,
                     "bit_early": bit_early, "early_ms": early_ms, "bit_late": bit_late,
                     "after": ds.read_temp(rom), "pad": bytes(pad).hex()}
print(json.dumps(out))
"""


def test_ds18b20_power_on_value_conversion_time_and_crcs(vboard: Start, tmp_path: Path) -> None:
    scenario = temperature_scenario(ds18b20(rom="28aa0b1c2d3e4f00", temp_c=21.0625))
    scenario["onewire"].append({"pin": 6, "devices": [ds18b20(rom="28bb0b1c2d3e4f00", converts=False)]})
    got = on_board(vboard(scenario).path, ONEWIRE_PROBE, tmp_path)
    good, stuck = got["7"], got["6"]
    for probe in (good, stuck):
        (rom,) = probe["roms"]
        raw = bytes.fromhex(rom)
        assert raw[0] == 0x28 and crc8_maxim(raw[:7]) == raw[7], rom  # family 0x28, ROM CRC
        pad = bytes.fromhex(probe["pad"])
        assert len(pad) == 9 and crc8_maxim(pad[:8]) == pad[8], probe["pad"]
        assert probe["before"] == 85.0  # power-on value of the temperature register
    if good["early_ms"] < 600:  # read well inside tCONV (750 ms): the old value, read slots 0
        assert good["early"] == 85.0 and good["bit_early"] == 0, good
    assert good["bit_late"] == 1
    assert good["after"] == 21.0625  # 12 bits: 1/16 °C
    pad = bytes.fromhex(good["pad"])
    assert int.from_bytes(pad[0:2], "little", signed=True) == 337  # 21.0625 * 16
    assert pad[4] == 0x7F  # configuration register: 12-bit resolution
    assert stuck["after"] == 85.0


def crc8_sensirion(data: bytes) -> int:
    """CRC-8 of the SCD4x: polynomial 0x31, init 0xFF, no reflection (datasheet 3.11)."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


SCD41_PROBE = """
import time, json
from machine import Pin, I2C
i2c = I2C(0, sda=Pin(41), scl=Pin(42), freq=100000)
A = 0x62
def cmd(c):
    try:
        i2c.writeto(A, bytes([c >> 8, c & 0xFF]))
        return True
    except OSError:
        return False
def read(c, n, wait_ms=1):
    if not cmd(c):
        return None
    time.sleep_ms(wait_ms)
    return i2c.readfrom(A, n).hex()
out = {}
t0 = time.ticks_ms()
while not cmd(0x3F86):  # stop_periodic_measurement, until the sensor has powered up
    if time.ticks_diff(time.ticks_ms(), t0) > 5000:
        raise SystemExit("no ACK")
    time.sleep_ms(50)
t_stop = time.ticks_ms()
out["serial_while_stopping"] = read(0x3682, 9)
out["stopping_ms"] = time.ticks_diff(time.ticks_ms(), t_stop)
time.sleep_ms(520)
out["serial"] = read(0x3682, 9)
t1 = time.ticks_ms()
cmd(0x219D)  # measure_single_shot
out["early"] = read(0xEC05, 9)
out["early_ms"] = time.ticks_diff(time.ticks_ms(), t1)
time.sleep_ms(max(0, 5100 - time.ticks_diff(time.ticks_ms(), t1)))
out["measurement"] = read(0xEC05, 9)
print(json.dumps(out))
"""


def words(hexbytes: str) -> list[int]:
    raw = bytes.fromhex(hexbytes)
    assert len(raw) % 3 == 0
    out = []
    for i in range(0, len(raw), 3):
        assert crc8_sensirion(raw[i : i + 2]) == raw[i + 2], f"bad CRC in {hexbytes}"
        out.append(int.from_bytes(raw[i : i + 2], "big"))
    return out


def test_scd41_single_shot_takes_five_seconds_and_every_word_has_crc(vboard: Start, tmp_path: Path) -> None:
    assert crc8_sensirion(b"\xbe\xef") == 0x92  # the datasheet's example
    scenario = air_scenario()
    scenario["i2c"][0]["devices"].append(
        {
            "addr": 0x62,
            "chip": "scd41",
            "co2_ppm": 612,
            "temp_c": 22.5,
            "humidity": 41.0,
            "serial": "0x8a1f3b7c2d19",
            "periodic": True,
        }
    )
    got = on_board(vboard(scenario).path, SCD41_PROBE, tmp_path)
    if got["stopping_ms"] < 400:
        assert got["serial_while_stopping"] is None  # 500 ms after stop_periodic_measurement: no ACK
    assert words(got["serial"]) == [0x8A1F, 0x3B7C, 0x2D19]
    if got["early_ms"] < 4500:
        assert got["early"] is None  # still measuring: no ACK
    co2, t_raw, rh_raw = words(got["measurement"])
    assert co2 == 612
    assert abs(-45 + 175 * t_raw / 65535 - 22.5) < 0.01
    assert abs(100 * rh_raw / 65535 - 41.0) < 0.01


def test_scenario_refuses_a_fault_the_kit_cannot_have() -> None:
    """tools/vboard/README.md: "`scenario.py KIT [--fault NAME ...]` prints the scenario of a healthy kit
    with the faults staged". A fault the kit cannot have (`scd41_periodic` on the air kit, which lists no
    SCD41; `sds011_swapped` on the temperature kit) must not print the healthy scenario and exit 0: a test
    that believes it staged a fault would silently test a healthy board. Unknown names are refused; these
    must be too."""
    for kit, fault in (("air", "scd41_periodic"), ("temperature", "sds011_swapped")):
        faulty = subprocess.run(
            [sys.executable, "tools/vboard/scenario.py", kit, "--fault", fault],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        healthy = subprocess.run(
            [sys.executable, "tools/vboard/scenario.py", kit],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert faulty.returncode != 0 or faulty.stdout != healthy.stdout, (kit, fault, "silently not staged")


def test_state_json_reads_as_documented_on_a_fresh_board(vboard: Start, tmp_path: Path) -> None:
    """tools/vboard/README.md: "What the parts remember lives in /_vboard/state.json on the board ...;
    read it with `print(open('/_vboard/state.json').read())`". That must work on a board whose parts
    have not changed state yet."""
    board = vboard(air_wired())
    script = (
        "import json\n"
        "try:\n"
        "    s = open('/_vboard/state.json').read()\n"
        "except OSError as e:\n"
        "    s = 'OSError %s' % e\n"
        "print(json.dumps(s))\n"
    )
    state = on_board(board.path, script, tmp_path)
    assert not state.startswith("OSError"), state


def test_sds011_working_period_is_kept(vboard: Start, tmp_path: Path) -> None:
    """Protocol V1.3, "Set working period": "The setting is still effective after power off". The sensor
    answers "set working period 5 min" with C5 08 01 05 (accepted); the next query of the working period
    must say 5, not 0 (continuous)."""
    board = vboard(air_wired())
    log = on_board(board.path, uart_probe([(command(0x08, 1, 5), 300), (command(0x08), 300)]), tmp_path)
    set_reply, query_reply = (split_frames(bytes.fromhex("".join(h for _, h in s))) for s in log)
    assert set_reply and set_reply[0][2:5] == bytes([0x08, 1, 5]), set_reply
    assert query_reply and query_reply[0][2:5] == bytes([0x08, 0, 5]), query_reply
