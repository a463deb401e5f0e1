"""JSN-SR04T ultrasonic driver (speed of sound, blind zone, median) and the battery ADC driver."""

from fake_buses import FakeADC, FakePin
from fakeclock import FakeClock
from sensors import base
from sensors.battery import Battery
from sensors.jsnsr04t import JSNSR04T, speed_of_sound_m_s
from sim_sensors import SimJSNSR04T

from mptest import approx


def _setup(**kw):
    clock = FakeClock()
    sim = SimJSNSR04T(clock, **kw)
    return clock, sim, JSNSR04T(sim.trig, sim.echo, sim.time_pulse_us, clock)


def test_speed_of_sound():
    assert approx(speed_of_sound_m_s(0.0), 331.3, 0.01)
    assert approx(speed_of_sound_m_s(20.0), 343.2, 0.1)


def test_distance_is_temperature_compensated():
    clock, sim, d = _setup(distance_mm=2000, air_temp_c=-10.0)
    assert approx(d.read(-10.0), 2000, 2)
    assert sim.pings == 5
    # the same echo read as if it were 30 C warmer would be ~5 % off: that is what compensation fixes
    assert d.read(20.0) > 2080
    sim.air_temp_c = 35.0
    assert approx(d.read(35.0), 2000, 2)


def test_median_rejects_spurious_reflections():
    clock, sim, d = _setup(distance_mm=1200)
    sim.outliers = [400, 5900]  # two of five pings hit a strut / a far wall
    assert approx(d.read(20.0), 1200, 2)
    assert d.status == base.OK


def test_blind_zone_is_reported_not_measured():
    clock, sim, d = _setup(distance_mm=100)  # water 10 cm under the sensor
    assert d.read(20.0) is None
    assert d.status == base.BLIND


def test_no_echo_is_absent_and_few_echoes_faulty():
    clock, sim, d = _setup()
    sim.no_echo = True
    t0 = clock.now_ms()
    assert d.read(20.0) is None and d.status == base.ABSENT
    assert clock.now_ms() - t0 < 1000  # every ping times out after one round trip at max range
    sim.no_echo = False
    sim.outliers = [150, 7000, 7000]  # blind, beyond range, beyond range
    assert d.read(20.0) is None and d.status == base.FAULT


def test_trigger_pulse_is_sent():
    clock, sim, d = _setup()
    d.read(20.0)
    levels = [v for _, v in sim.trig.history]
    assert levels[:2] == [1, 0] and levels.count(1) == 5


def test_battery_voltage_with_switched_divider():
    clock = FakeClock()
    en = FakePin(clock, 1)
    adc = FakeADC(int(1850 / 3300 * 65535))  # 1.85 V at the pin, divider 2
    b = Battery(adc, clock, divider=2.0, vref_mv=3300, enable=en, enable_level=0)
    assert approx(b.read(), 3700, 3)
    assert en.value() == 1  # divider switched off again (Heltec: ADC_CTRL active low)
    assert [v for _, v in en.history] == [0, 1]


def test_battery_faults():
    clock = FakeClock()
    b = Battery(FakeADC(0), clock)
    assert b.read() is None and b.status == base.ABSENT
    b = Battery(FakeADC(65535), clock)
    assert b.read() is None and b.status == base.FAULT
    b = Battery(FakeADC(int(0.5 / 3.3 * 65535)), clock)  # 1.0 V: no LiPo is that low
    assert b.read() is None and b.status == base.FAULT
