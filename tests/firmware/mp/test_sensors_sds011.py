"""SDS011 driver against the simulated sensor on a fake UART: frames, checksums, modes, sleep."""

from fake_buses import FakeUART
from fakeclock import FakeClock
from sensors import base
from sensors.sds011 import CONTINUOUS, QUERY, SDS011, command_frame, frame_ok
from sim_sensors import SimSDS011


def _setup(mode=QUERY, warmup_ms=30000, **kw):
    clock = FakeClock()
    sim = SimSDS011(clock, **kw)
    uart = FakeUART(clock, sim)
    return clock, sim, uart, SDS011(uart, clock, mode=mode, warmup_ms=warmup_ms)


def test_command_frame_layout():
    # datasheet V1.3 example: "set sleep" AA B4 06 01 00 00..00 FF FF 05 AB
    buf = bytearray(19)
    command_frame(buf, 6, 1, 0)
    assert bytes(buf) == bytes([0xAA, 0xB4, 6, 1, 0] + [0] * 10 + [0xFF, 0xFF, 0x05, 0xAB])
    assert frame_ok(bytes([0xAA, 0xC0, 0xD4, 0x04, 0x3A, 0x0A, 0xA1, 0x60, 0x1D, 0xAB]))
    assert not frame_ok(bytes([0xAA, 0xC0, 0xD4, 0x04, 0x3A, 0x0A, 0xA1, 0x60, 0x1E, 0xAB]))


def test_query_mode_reading_and_sleep_between():
    clock, sim, uart, d = _setup(pm25=12.3, pm10=20.5)
    assert d.read() == (12.3, 20.5)
    assert d.status == base.OK
    assert sim.query_mode and sim.sleeping  # switched to query mode, fan asleep after reading
    sim.pm25 = 55.1
    assert d.read()[0] == 55.1
    assert sim.sleeping
    assert sim.fan_on_ms < 2 * 35000  # about the 30 s warm-up per reading, not the whole time


def test_sensor_left_in_query_mode_works_in_continuous_mode():
    clock, sim, uart, d = _setup(mode=CONTINUOUS, query_mode=True, sleeping=True, pm25=7.0, pm10=9.9)
    assert d.read() == (7.0, 9.9)
    assert not sim.query_mode


def test_continuous_mode_resynchronises_after_a_bad_frame():
    clock, sim, uart, d = _setup(mode=CONTINUOUS, warmup_ms=0, pm25=3.3, pm10=4.4)
    assert d.read() == (3.3, 4.4)
    sim.corrupt_checksum = 1  # the first frame after waking is broken
    assert d.read() == (3.3, 4.4)
    assert d.bad_frames == 1


def test_checksum_errors_only_is_a_fault():
    clock, sim, uart, d = _setup()
    sim.corrupt_checksum = 100
    assert d.read() is None
    assert d.status == base.FAULT and "checksum" in d.error
    assert sim.sleeping  # the fan is put to sleep even when the reading failed


def test_missing_or_swapped_uart_is_absent():
    clock = FakeClock()
    d = SDS011(FakeUART(clock, None), clock)
    assert d.read() is None and d.status == base.ABSENT and "swapped" in d.error
    sim = SimSDS011(clock)
    uart = FakeUART(clock, sim)
    uart.swapped = True
    d = SDS011(uart, clock)
    assert d.read() is None and d.status == base.ABSENT
    uart.swapped = False
    assert d.read() == (12.3, 20.5)  # fixed wiring: found again
