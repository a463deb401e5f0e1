"""The water-level node: level from the ultrasonic sensor, alarm path (confirmed at once, then more
often), hysteresis, blind zone, rising fast, faults, state kept across deep sleep."""

from apps.water import WaterLevel, check_thresholds
from simnode import Retained

from mptest import raises
from nodetest import World

TH = {
    "zero_mm": 3000,
    "levels_cm": [200, 250, 280],
    "hysteresis_cm": 5,
    "alarm_interval_s": 120,
    "measure_s": 60,
    "rise_cm_per_h": 60,
    "rate_window_s": 600,
}


def _level(u):
    v = (u.payload[1] << 8) | u.payload[2]
    return v - 0x10000 if v & 0x8000 else v


def test_normal_report():
    w = World("water", {"thresholds": TH})
    w.io.sim["jsn-sr04t"].distance_mm = 1500
    w.run_for(60000)
    u = w.uplinks(1)[0]
    assert not u.confirmed
    assert u.payload[0] == 0x10  # no alarm
    assert _level(u) == 150
    assert abs(((u.payload[3] << 8) | u.payload[4]) - 1500) <= 2
    assert u.payload[5:7] == b"\x00\x78"  # 12.0 Cel water temperature


def test_alarm_crossing_sends_confirmed_at_once_then_more_often():
    w = World("water", {"thresholds": TH})
    sim = w.io.sim["jsn-sr04t"]
    sim.distance_mm = 1500
    w.run_for(60000)
    n0 = len(w.uplinks(1))
    t_cross = w.clock.now_ms()
    sim.distance_mm = 900  # level 210 cm: threshold 1 crossed
    w.run_for(100000)
    ups = w.uplinks(1)
    assert len(ups) == n0 + 1  # did not wait for the 15 min interval
    a = ups[-1]
    assert a.confirmed and a.payload[0] == 0x10 | 0x08 | 1
    assert a.end_ms - t_cross <= 60000 + 10000  # within one measuring period (plus duty cycle)
    w.run_for(600000)
    more = w.uplinks(1)[n0 + 1 :]
    assert 4 <= len(more) <= 6  # every 120 s while in alarm
    assert not any(u.confirmed for u in more)  # only the crossing is confirmed
    sim.distance_mm = 700  # level 230: still level 1, no new crossing
    w.run_for(120000)
    assert not w.uplinks(1)[-1].confirmed
    sim.distance_mm = 400  # 260 cm: level 2 crossed -> confirmed again
    w.run_for(70000)
    assert w.uplinks(1)[-1].confirmed and w.uplinks(1)[-1].payload[0] & 0x03 == 2


def test_alarm_clears_with_hysteresis():
    w = World("water", {"thresholds": TH})
    sim = w.io.sim["jsn-sr04t"]
    sim.distance_mm = 900  # 210 cm
    w.run_for(70000)
    assert w.node.app.logic.alarm_level == 1
    sim.distance_mm = 1020  # 198 cm: below 200 but within the 5 cm hysteresis
    w.run_for(120000)
    assert w.node.app.logic.alarm_level == 1
    n = len(w.uplinks(1))
    sim.distance_mm = 1100  # 190 cm: cleared
    w.run_for(70000)
    assert w.node.app.logic.alarm_level == 0
    last = w.uplinks(1)[-1]
    assert len(w.uplinks(1)) == n + 1 and last.confirmed and last.payload[0] & 0x0B == 0
    assert w.node.app.interval_s(900) == 900


def test_blind_zone_is_an_alarm_without_a_number():
    w = World("water", {"thresholds": TH})
    w.io.sim["jsn-sr04t"].distance_mm = 100  # water 10 cm under the sensor
    w.run_for(60000)
    u = w.uplinks(1)[0]
    # the blind zone (250 mm) starts 275 cm above gauge zero: at least level 2 (250 cm) is reached
    assert u.confirmed and u.payload[0] & 0x08 and u.payload[0] & 0x03 == 2
    assert u.payload[1:5] == b"\x80\x00\xff\xff"  # level and distance: absent


def test_rising_fast():
    lg = WaterLevel(TH)
    lg.update(0, 100)
    lg.update(600, 105)
    assert not lg.rising_fast  # 30 cm/h
    lg.update(1200, 120)
    assert lg.rising_fast  # 90 cm/h
    assert lg.alarm_level == 0  # rising fast alone is no alarm


def test_sensor_fault_keeps_alarm_state_and_sends_nulls():
    w = World("water", {"thresholds": TH})
    sim = w.io.sim["jsn-sr04t"]
    sim.distance_mm = 900
    w.run_for(70000)
    sim.no_echo = True
    w.io.sim["ds18b20"].present = False
    w.run_for(130000)
    u = w.uplinks(1)[-1]
    assert u.payload[1:7] == b"\x80\x00\xff\xff\x80\x00"
    assert u.payload[0] & 0x08  # still in alarm: a missing reading does not clear it
    assert any("no echo" in line for line in w.log)


def test_deep_sleep_keeps_alarm_state_and_report_time():
    w = World("water", {"thresholds": TH})
    sim = w.io.sim["jsn-sr04t"]
    sim.distance_mm = 900
    w.run_for(70000)
    ram = Retained()
    w.node.retain = ram
    ms = w.node.step()
    fcnt = w.node.mac.fcnt_up
    w.node.retain_state(ms)
    w.clock.sleep_ms(ms)
    from simnode import make_node

    node, _ = make_node(
        "water", w.clock, w.radio, w.store, w.cfg, reset_cause="deep_sleep", io=w.io, retain=ram
    )
    assert node.app.logic.alarm_level == 1
    assert not node.status_due  # no status uplink after every deep-sleep wake-up
    assert node.next_report_ms > w.clock.now_ms()
    assert node.mac.fcnt_up == fcnt  # exact counter from RAM, no skip-ahead to the flash block


def test_threshold_config_errors():
    for bad in (
        {},
        {"zero_mm": 0},
        {"zero_mm": 3000, "levels_cm": [300, 200]},
        {"zero_mm": 3000, "x": 1},
        {"zero_mm": 3000, "levels_cm": [1, 2, 3, 4]},
        {"zero_mm": 3000, "alarm_interval_s": 5},
    ):
        raises(ValueError, check_thresholds, bad)


def test_run_with_deep_sleep_retains_before_sleeping():
    w = World("water", {"thresholds": TH})
    ram = Retained()
    w.node.retain = ram
    sleeps = []

    def deepsleep(ms):
        sleeps.append((ms, ram.data))
        w.clock.sleep_ms(ms)

    w.node.run(deepsleep, None, steps=6, deep=True)
    assert sleeps and all(data for _, data in sleeps)
    assert max(len(data) for _, data in sleeps) < 2048  # fits the ESP32's RTC user memory
    assert all(ms <= 60000 for ms, _ in sleeps)  # wakes for every 60 s measurement


def test_unacknowledged_alarm_is_confirmed_again():
    w = World("water", {"thresholds": TH})
    sim = w.io.sim["jsn-sr04t"]
    sim.distance_mm = 1500
    w.run_for(60000)
    w.net.ack_confirmed = False  # the network does not answer (gateway down, downlink lost)
    sim.distance_mm = 900
    w.run_for(100000)
    assert w.uplinks(1)[-1].confirmed
    n = len(w.uplinks(1))
    w.net.ack_confirmed = True
    w.run_for(130000)
    later = w.uplinks(1)[n:]
    assert later and later[0].confirmed  # asked again at the next alarm-interval report
    w.run_for(130000)
    assert not w.uplinks(1)[-1].confirmed  # acknowledged: back to unconfirmed reports
