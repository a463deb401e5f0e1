"""BME280 driver against the byte-level simulator: datasheet compensation, BMP280 rejection, faults."""

from fake_buses import FakeI2C
from fakeclock import FakeClock
from sensors import base
from sensors.bme280 import BME280, compensate_p, compensate_t
from sim_sensors import DATASHEET_CAL_P, DATASHEET_CAL_T, SimBME280

from mptest import approx


def _setup(**kw):
    clock = FakeClock()
    sim = SimBME280(clock, **kw)
    return clock, sim, FakeI2C(clock, [sim])


def test_compensation_matches_datasheet_example():
    # BMP280 datasheet 3.12 (same formulas in the BME280 datasheet 8.1): adc_T 519888 -> 25.08 C,
    # adc_P 415148 -> 100653.27 Pa with the example calibration words
    t, t_fine = compensate_t(519888, DATASHEET_CAL_T)
    assert approx(t, 25.08, 0.01)
    assert approx(t_fine, 128422, 2)
    assert approx(compensate_p(415148, t_fine, DATASHEET_CAL_P), 100653.27, 0.5)


def test_reads_temperature_pressure_humidity():
    clock, sim, i2c = _setup(temp_c=23.4, pressure_hpa=1001.7, humidity=61.5)
    d = BME280(i2c, clock)
    t, p, h = d.read()
    assert d.status == base.OK and d.error is None
    assert approx(t, 23.4, 0.02)
    assert approx(p, 1001.7, 0.05)
    assert approx(h, 61.5, 0.1)
    sim.temp_c = -12.5
    sim.humidity = 95.0
    t, p, h = d.read()
    assert approx(t, -12.5, 0.02) and approx(h, 95.0, 0.1)
    assert sim.measurements == 2  # forced mode: one conversion per read


def test_bmp280_rejected_when_humidity_needed():
    clock, sim, i2c = _setup(chip_id=0x58)
    d = BME280(i2c, clock, need_humidity=True)
    assert d.read() is None
    assert d.status == base.FAULT
    assert "BMP280" in d.error and "0x58" in d.error
    assert sim.measurements == 0  # rejected before measuring anything


def test_bmp280_accepted_without_humidity():
    clock, sim, i2c = _setup(chip_id=0x58, temp_c=30.0)
    d = BME280(i2c, clock, need_humidity=False)
    t, p, h = d.read()
    assert approx(t, 30.0, 0.02) and h is None


def test_missing_sensor_is_absent():
    clock, sim, i2c = _setup()
    sim.present = False
    d = BME280(i2c, clock)
    assert d.read() is None and d.status == base.ABSENT
    d2 = BME280(i2c, clock, addr=0x77)  # nothing at the other address either
    assert d2.read() is None and d2.status == base.ABSENT


def test_hanging_bus_gives_timeout_quickly():
    clock, sim, i2c = _setup()
    d = BME280(i2c, clock)
    assert d.read() is not None
    i2c.hang = True
    t0 = clock.now_ms()
    assert d.read() is None
    assert d.status == base.TIMEOUT
    assert clock.now_ms() - t0 <= 200  # gave up after one bus timeout, did not retry forever
    i2c.hang = False
    assert d.read() is not None and d.status == base.OK  # recovers, re-probes the chip


def test_conversion_that_never_ends_is_a_fault_not_a_number():
    clock, sim, i2c = _setup()
    sim.stuck_measuring = True
    d = BME280(i2c, clock)
    assert d.read() is None and d.status == base.TIMEOUT


def test_unknown_chip_id():
    clock, sim, i2c = _setup(chip_id=0x61)
    d = BME280(i2c, clock)
    assert d.read() is None and d.status == base.FAULT and "0x61" in d.error
