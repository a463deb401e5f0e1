"""The cooling-point node: the valve controller on a fail-safe output pin, with the real loop,
MAC and downlinks; resets, exceptions and a missing network."""

from mptest import raises
from nodetest import World

TH = {
    "on_c": 30.0,
    "off_c": 28.0,
    "city_min_c": 26.0,
    "min_off_s": 300,
    "max_on_s": 600,
    "budget_l_per_day": 100,
    "flow_l_per_min": 4.0,
    "stale_s": 300,
    "reservoir": True,
}


def _world(**kw):
    w = World("cooling", {"thresholds": TH, "interval_s": 600}, **kw)
    return w, w.io.sim["ds18b20"], w.io.valve_pin


def test_closed_at_boot_opens_when_hot_after_min_off():
    w, amb, pin = _world()
    amb.temp_c = 33.0
    w.run_for(200000)
    assert pin.value() == 0  # hot, but the boot counts as a closing: minimum off-time first
    w.run_for(200000)
    assert pin.value() == 1
    amb.temp_c = 27.0
    w.run_for(120000)
    assert pin.value() == 0
    assert [v for _, v in pin.history] == [1, 0]


def test_report_counts_actuations_and_water():
    w, amb, pin = _world()
    amb.temp_c = 33.0
    w.run_for(320000)
    assert pin.value() == 1
    w.run_for(300000)  # the 600 s report: open, 1 actuation
    u = w.uplinks(1)[-1]
    p = u.payload
    assert p[0] == 0x10 | 0x08 | 0x04  # open, enabled, auto
    assert p[2] == 1 and 200 <= ((p[3] << 8) | p[4]) <= 320
    assert p[9:11] == b"\x01\x4a"  # 33.0 Cel
    assert p[11:15] == b"\x01\x2c\x01\x18"  # thresholds 30.0 / 28.0
    amb.temp_c = 25.0  # below the city's 26 Cel: closed, and stays closed
    w.run_for(600000)
    p = w.uplinks(1)[-1].payload
    assert p[0] == 0x14 and p[2] == 0  # closed; no actuation since the last report


def test_reset_while_open_comes_back_closed():
    w, amb, pin = _world()
    amb.temp_c = 35.0
    w.run_for(400000)
    assert pin.value() == 1
    used = w.node.app.ctl.used_s
    pin.value(1)  # the pin as the reset left it (worst case: still driven)
    node = w.reset("watchdog")
    assert pin.value() == 0  # closed before anything else happened
    w.run_for(250000)
    assert pin.value() == 0  # and stays closed for the minimum off-time, though it is hot
    assert node.app.ctl.used_s >= used  # the water budget was not refunded by the reset
    w.run_for(100000)
    assert pin.value() == 1


def test_exception_closes_the_valve():
    w, amb, pin = _world()
    amb.temp_c = 35.0
    w.run_for(400000)
    assert pin.value() == 1

    def broken():
        raise RuntimeError("reservoir switch driver crashed")

    w.node.app.reservoir = broken
    raises(RuntimeError, w.node.run, w.clock.sleep_ms, None, 5)
    assert pin.value() == 0


def test_works_without_network():
    w, amb, pin = _world(answer_joins=False)
    amb.temp_c = 35.0
    w.run_for(400000)
    assert not w.node.mac.joined
    assert pin.value() == 1
    amb.temp_c = 20.0
    w.run_for(60000)
    assert pin.value() == 0


def test_stale_temperature_closes_and_is_reported():
    w, amb, pin = _world()
    amb.temp_c = 35.0
    w.run_for(400000)
    assert pin.value() == 1
    amb.present = False  # probe unplugged: the last reading ages
    w.run_for(330000 + 60000)
    assert pin.value() == 0
    w.run_for(600000)
    p = w.uplinks(1)[-1].payload
    assert p[1] & 0x08 and p[9:11] == b"\x80\x00"  # faults.temperature, ambient absent


def test_reservoir_low_interlock():
    w, amb, pin = _world()
    amb.temp_c = 35.0
    w.run_for(400000)
    assert pin.value() == 1
    w.io.reservoir_pin.value(1)  # float switch: level low
    w.run_for(20000)
    assert pin.value() == 0
    w.run_for(600000)
    p = w.uplinks(1)[-1].payload
    assert p[1] & 0x01 and not p[0] & 0x08


def test_override_downlinks_with_ttl():
    w, amb, pin = _world()
    amb.temp_c = 29.0  # between the thresholds: automatic stays closed
    w.run_for(400000)
    assert pin.value() == 0
    w.net.queue.append({"fport": 23, "payload": b"\x10\x01\x00\x78"})  # open for 120 s
    w.run_for(600000)  # the next uplink carries it
    t_open = [t for t, v in pin.history if v == 1]
    assert len(t_open) == 1
    assert pin.value() == 0  # the TTL is over
    t_close = [t for t, v in pin.history if v == 0][-1]
    assert 115000 <= t_close - t_open[0] <= 135000
    w.net.queue.append({"fport": 23, "payload": b"\x10\x01\x00\x00"})  # open without TTL: refused
    w.run_for(600000)
    assert pin.value() == 0
    assert any("refused" in line for line in w.log)


def test_threshold_and_enable_downlinks():
    w, amb, pin = _world()
    amb.temp_c = 31.0
    w.net.queue.append({"fport": 20, "payload": b"\x10\x01\x54\x01\x40"})  # on 34.0, off 32.0
    w.run_for(700000)
    assert w.node.app.ctl.cfg["on_c"] == 34.0 and pin.value() == 0
    amb.temp_c = 35.0
    w.net.queue.append({"fport": 24, "payload": b"\x10\x00"})  # disable misting
    w.run_for(700000)
    assert pin.value() == 0 and not w.node.app.ctl.enabled
    w.reset()
    assert not w.node.app.ctl.enabled and w.node.app.ctl.cfg["on_c"] == 34.0  # kept over a reset


def test_line_flush_on_a_warm_day():
    th = dict(TH)
    th.update({"flush_after_s": 900, "flush_s": 60})
    w = World("cooling", {"thresholds": th, "interval_s": 600})
    w.io.sim["ds18b20"].temp_c = 27.0  # above the city's 26 Cel, below on_c: no misting by heat
    w.run_for(1000000)
    ons = [t for t, v in w.io.valve_pin.history if v == 1]
    offs = [t for t, v in w.io.valve_pin.history if v == 0]
    assert ons and 55000 <= offs[0] - ons[0] <= 70000
    assert w.node.app.ctl.opens == 1
