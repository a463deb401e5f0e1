"""The soil-moisture node: three seesaw probes at 10/30/60 cm scaled by their calibration, a DS18B20 soil
temperature, faults as absent readings (0xFF, 0x8000) with the reason on the console."""

from apps.soil import check_thresholds
from sim_sensors import SimSeesawSoil

from mptest import raises
from nodetest import World


def _moisture(u):
    return [None if b == 0xFF else b / 2 for b in u.payload[1:4]]


def _temperature(u):
    v = (u.payload[4] << 8) | u.payload[5]
    return None if v == 0x8000 else (v - 0x10000 if v & 0x8000 else v) / 10


def test_three_depths_and_temperature():
    w = World("soil")
    w.io.sim["soil0"].capacitance = 300 + 7 * 21  # 21 % with the default calibration 300..1000
    w.io.sim["soil1"].capacitance = 580  # 40 %
    w.io.sim["soil2"].capacitance = 1000  # 100 %
    w.io.sim["ds18b20"].temp_c = 11.5
    w.run_for(60000)
    u = w.uplinks(1)[0]
    assert len(u.payload) == 7 and u.payload[0] == 0x10
    assert _moisture(u) == [21.0, 40.0, 100.0]
    assert _temperature(u) == 11.5


def test_calibration_from_the_config():
    w = World("soil", {"sensors": {"dry": 200, "wet": 1800}})
    w.io.sim["soil0"].capacitance = 200
    w.io.sim["soil1"].capacitance = 1000  # half way
    w.io.sim["soil2"].capacitance = 1900  # a little wetter than the wet reference: 100 %
    w.run_for(60000)
    assert _moisture(w.uplinks(1)[0]) == [0.0, 50.0, 100.0]


def test_faults_are_absent_readings_in_their_place():
    w = World("soil")
    w.io.sim["soil0"].present = False  # unplugged
    w.io.sim["soil1"].busy = True  # answers 0xFFFF
    w.io.sim["soil2"].capacitance = 5000  # far outside 300..1000: out of the soil or broken
    w.io.sim["ds18b20"].present = False
    w.run_for(60000)
    u = w.uplinks(1)[0]
    assert _moisture(u) == [None, None, None] and _temperature(u) is None
    text = " ".join(w.log)
    assert "soil@0x36" in text and "soil@0x37" in text and "capacitance 5000" in text


def test_probe_found_again_after_a_fault():
    w = World("soil")
    w.io.sim["soil1"].present = False
    w.run_for(60000)
    assert _moisture(w.uplinks(1)[-1])[1] is None
    w.io.sim["soil1"].present = True
    w.io.sim["soil1"].capacitance = 650
    w.run_for(900000)
    assert _moisture(w.uplinks(1)[-1])[1] == 50.0


def test_no_thresholds():
    check_thresholds({})
    raises(ValueError, check_thresholds, {"dry_percent": 20})


def test_sim_probe_percent_follows_the_default_calibration():
    p = SimSeesawSoil(None)
    p.percent = 35.0
    assert p.capacitance == 545 and p.percent == 35.0
