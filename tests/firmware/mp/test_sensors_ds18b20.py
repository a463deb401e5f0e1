"""DS18B20 driver against the simulated 1-Wire bus: 85.0 C power-on value, CRC, shorts, absence."""

from fake_buses import FakeOneWire
from fakeclock import FakeClock
from sensors import base
from sensors.crc import crc8_maxim
from sensors.ds18b20 import DS18B20
from sim_sensors import SimDS18B20


def _setup(**kw):
    clock = FakeClock()
    sim = SimDS18B20(clock, **kw)
    return clock, sim, DS18B20(FakeOneWire(clock, [sim]), clock)


def test_crc8_maxim_check_values():
    # a ROM code with its CRC in the last byte: the CRC over all 8 bytes is 0
    rom = b"\x28\xff\x64\x1e\x0f\x19\x02\x00"
    rom = rom[:7] + bytes([crc8_maxim(rom, 0, 7)])
    assert crc8_maxim(rom) == 0
    assert crc8_maxim(b"123456789") == 0xA1  # CRC-8/MAXIM-DOW check value


def test_reads_temperature_including_negative():
    clock, sim, d = _setup(temp_c=21.5)
    assert d.read() == 21.5 and d.status == base.OK
    sim.temp_c = -10.125
    assert d.read() == -10.125
    assert sim.conversions == 2
    assert clock.now_ms() >= 1500  # waited for each 750 ms conversion


def test_power_on_85_is_a_fault():
    clock, sim, d = _setup(temp_c=20.0)
    sim.loses_power = True  # resets during conversion: scratchpad keeps 85.0 C
    assert d.read() is None
    assert d.status == base.FAULT and "85.0" in d.error


def test_real_85_from_scratchpad_never_reported():
    clock, sim, d = _setup(temp_c=85.0)
    assert d.read() is None and d.status == base.FAULT


def test_crc_error_is_a_fault():
    clock, sim, d = _setup()
    sim.corrupt_crc = 1
    assert d.read() is None and d.status == base.FAULT and "CRC" in d.error
    assert d.read() == 18.5


def test_absent_sensor():
    clock = FakeClock()
    d = DS18B20(FakeOneWire(clock, []), clock)
    assert d.read() is None and d.status == base.ABSENT


def test_sensor_unplugged_after_first_read():
    clock, sim, d = _setup()
    assert d.read() == 18.5
    sim.present = False
    assert d.read() is None and d.status == base.ABSENT


def test_shorted_bus_is_a_fault_not_zero_degrees():
    clock, sim, d = _setup()
    ow = d._ow
    ow.shorted = True
    assert d.read() is None and d.status == base.FAULT  # all-zero data passes CRC but is no reading
    ow.shorted = False
    assert d.read() == 18.5
    assert d.read() == 18.5
    d2 = DS18B20(ow, clock)
    ow.shorted = True
    assert d2.read() is None and d2.status == base.FAULT and "low" in d2.error


def test_a_slow_clone_is_read_not_timed_out():
    # a probe that passes the kit check (which waits up to 1.5 s) must also be read by the node
    clock, sim, d = _setup(temp_c=12.25)
    sim.conversion_ms = 1400
    assert d.read() == 12.25 and d.status == base.OK


def test_hung_conversion_times_out():
    clock, sim, d = _setup()
    sim.stuck_converting = True
    t0 = clock.now_ms()
    assert d.read() is None and d.status == base.TIMEOUT
    assert clock.now_ms() - t0 <= 1600  # gave up after the 1.5 s conversion limit
    sim.stuck_converting = False
    assert d.read() == 18.5
