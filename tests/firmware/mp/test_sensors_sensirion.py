"""SHT31 and SCD41 drivers against byte-level simulators: CRC-8, not-ready NACKs, faults."""

from fake_buses import FakeI2C
from fakeclock import FakeClock
from sensors import base
from sensors.crc import crc8_sensirion
from sensors.scd41 import SCD41
from sensors.sht31 import SHT31
from sim_sensors import SimSCD41, SimSHT31

from mptest import approx


def test_crc8_sensirion_datasheet_check_value():
    assert crc8_sensirion(b"\xbe\xef") == 0x92  # SHT3x datasheet table 20, SCD4x 3.11
    assert crc8_sensirion(b"\x00\xbe\xef\x00", 1, 3) == 0x92


def test_sht31_reads():
    clock = FakeClock()
    sim = SimSHT31(clock, temp_c=27.3, humidity=41.0)
    d = SHT31(FakeI2C(clock, [sim]), clock)
    t, h = d.read()
    assert d.status == base.OK
    assert approx(t, 27.3, 0.01) and approx(h, 41.0, 0.01)
    assert sim.commands == [0x2400]


def test_sht31_crc_error_is_a_fault():
    clock = FakeClock()
    sim = SimSHT31(clock)
    d = SHT31(FakeI2C(clock, [sim]), clock)
    sim.corrupt_crc = 1
    assert d.read() is None and d.status == base.FAULT and "CRC" in d.error
    assert d.read() is not None  # next reading is fine again


def test_sht31_absent_and_hanging():
    clock = FakeClock()
    sim = SimSHT31(clock)
    i2c = FakeI2C(clock, [sim])
    d = SHT31(i2c, clock, addr=0x45)  # nothing at 0x45 (ADDR pin high)
    assert d.read() is None and d.status == base.ABSENT
    d = SHT31(i2c, clock)
    i2c.hang = True
    assert d.read() is None and d.status == base.TIMEOUT


def test_scd41_single_shot():
    clock = FakeClock()
    sim = SimSCD41(clock, co2_ppm=812, temp_c=22.5, humidity=48.0)
    d = SCD41(FakeI2C(clock, [sim]), clock)
    co2, t, h = d.read()
    assert co2 == 812 and approx(t, 22.5, 0.01) and approx(h, 48.0, 0.01)
    assert sim.commands[:2] == [0x3F86, 0x219D]  # stopped any periodic mode, then single shot
    sim.co2_ppm = 1450
    assert d.read()[0] == 1450
    assert sim.commands.count(0x3F86) == 1  # only once


def test_scd41_left_in_periodic_mode_is_stopped():
    clock = FakeClock()
    sim = SimSCD41(clock, co2_ppm=500)
    sim.command(0x21B1, b"")  # a previous firmware left it measuring periodically
    assert sim.periodic
    d = SCD41(FakeI2C(clock, [sim]), clock)
    assert d.read()[0] == 500 and not sim.periodic


def test_scd41_crc_error_and_invalid_sample():
    clock = FakeClock()
    sim = SimSCD41(clock)
    d = SCD41(FakeI2C(clock, [sim]), clock)
    sim.corrupt_crc = 2  # data-ready word and measurement: the first bad one already fails
    assert d.read() is None and d.status == base.FAULT and "CRC" in d.error
    sim.corrupt_crc = 0
    sim.first_single_shot_invalid = True
    assert d.read() is None and d.status == base.FAULT and "0 ppm" in d.error
    assert d.read() is not None


def test_scd41_absent():
    clock = FakeClock()
    d = SCD41(FakeI2C(clock, []), clock)
    assert d.read() is None and d.status == base.ABSENT
