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


def _open_seconds(pin, until_ms):
    """Seconds the valve pin was open, from its change history."""
    total = 0
    opened = None
    for t, v in pin.history:
        if v == 1 and opened is None:
            opened = t
        elif v == 0 and opened is not None:
            total += t - opened
            opened = None
    if opened is not None:
        total += until_ms - opened
    return total // 1000


def test_override_ending_while_hot_then_reset_refunds_no_water():
    """An override opens the valve; its TTL ends while it is hot, so the automatic rule keeps it
    open; a brown-out then (no save at the reset) must not hand back the water used since."""
    for cut_after_s in (130, 200, 290, 410, 555):
        w, amb, pin = _world()
        amb.temp_c = 29.0  # between the thresholds: the automatic rule alone keeps it closed
        w.run_for(400000)
        assert pin.value() == 0
        w.node.handle_downlink(23, b"\x10\x01\x00\x78", w.clock.now_ms())  # open for 120 s
        assert pin.value() == 1
        amb.temp_c = 33.0  # it gets hot: when the override ends, the valve stays open
        w.run_for(cut_after_s * 1000)
        assert pin.value() == 1 and w.node.app.ctl.reason == 2  # R_HEAT: the automatic rule
        used = _open_seconds(pin, w.clock.now_ms())
        node = w.reset("brownout")
        assert node.app.ctl.used_s >= used, (cut_after_s, node.app.ctl.used_s, used)
        # charged ahead by at most one save interval
        assert node.app.ctl.used_s <= used + 60 + 10, (cut_after_s, node.app.ctl.used_s, used)


def test_flash_writes_while_open_are_bounded():
    w, amb, pin = _world()
    amb.temp_c = 35.0
    w.run_for(400000)
    assert pin.value() == 1
    before = w.store.writes
    w.run_for(300000)
    saves = w.store.writes - before
    assert 3 <= saves <= 300 // 60 + 3, saves  # about one per SAVE_AHEAD_S (plus uplink counters)


def test_no_rule_bypassed_by_a_reset_with_the_clock_restarting():
    # minimum off-time: closed at t, reset just after (the board clock starts again from 0)
    w, amb, pin = _world()
    amb.temp_c = 35.0
    w.run_for(400000)
    assert pin.value() == 1
    amb.temp_c = 27.0
    w.run_for(80000)  # measured once a minute
    assert pin.value() == 0
    closed_at = w.clock.now_ms()
    amb.temp_c = 35.0
    w.clock.t = 1000
    w.reset("watchdog")
    w.run_for(280000)
    assert pin.value() == 0  # hot, but the minimum off-time (300 s) is not over
    w.run_for(40000)
    assert pin.value() == 1
    # maximum on-time: a reset mid-activation closes the valve; it is closed for the minimum
    # off-time before the next activation, which again lasts at most max_on_s
    w.run_for(400000)
    w.clock.t = 1000
    w.reset("brownout")
    w.run_for(1500000)
    ons = [t for t, v in pin.history if v == 1]
    offs = [t for t, v in pin.history if v == 0]
    assert ons and offs
    for i in range(1, len(offs)):
        if i < len(ons) and ons[i] > offs[i - 1]:
            assert ons[i] - offs[i - 1] >= 300000 - 10000
    assert closed_at > 0


def test_budget_day_and_figure_survive_resets_with_the_clock_restarting():
    th = dict(TH)
    th.update({"budget_l_per_day": 40})  # 600 s of water a day: one activation
    w = World("cooling", {"thresholds": th, "interval_s": 600})
    amb, pin = w.io.sim["ds18b20"], w.io.valve_pin
    amb.temp_c = 35.0
    w.run_for(1000000)
    assert w.node.app.ctl.budget_left_s() == 0 and pin.value() == 0
    for _ in range(6):  # resets in a loop, each with the clock from zero: no water comes back
        w.clock.t = 1000
        w.reset("watchdog")
        w.run_for(3600000)
        assert pin.value() == 0 and w.node.app.ctl.reason == 7  # R_BUDGET
    assert _open_seconds(pin, w.clock.now_ms()) <= 600


def test_unreadable_valve_record_fails_closed():
    w, amb, pin = _world()
    amb.temp_c = 35.0
    w.run_for(400000)
    assert pin.value() == 1
    w.run_for(100000)
    for slot in ("valve.a", "valve.b"):
        if slot in w.store.data:
            bad = bytearray(w.store.data[slot])
            bad[8] ^= 0x04
            w.store.data[slot] = bytes(bad)
    node = w.reset("brownout")
    assert node.app.ctl.budget_left_s() == 0  # how much was used is unknown: none is left
    w.run_for(900000)
    assert pin.value() == 0 and node.app.ctl.reason == 7
