"""The cooling-point valve controller: one test (at least) for each safety rule."""

from control import valve
from control.valve import (
    OVERRIDE_CLOSED,
    OVERRIDE_NONE,
    OVERRIDE_OPEN,
    R_BOOT,
    R_BUDGET,
    R_CITY,
    R_COOL,
    R_FLUSH,
    R_HEAT,
    R_INVALID,
    R_MAX_ON,
    R_MIN_OFF,
    R_OVERRIDE_CLOSED,
    R_OVERRIDE_OPEN,
    R_RESERVOIR,
    R_STALE,
    ValveController,
)

from mptest import raises

CFG = {
    "on_c": 30.0,
    "off_c": 28.0,
    "city_min_c": 26.0,
    "min_off_s": 600,
    "max_on_s": 900,
    "budget_l_per_day": 240,
    "flow_l_per_min": 4.0,
    "stale_s": 600,
    "override_max_s": 7200,
    "reservoir": True,
}


def _warm(start=0):
    """A controller whose boot minimum off-time is over."""
    v = ValveController(CFG, start)
    v.step(start + 600, 25.0, 5, True)
    return v


def test_closed_at_boot_even_when_hot():
    v = ValveController(CFG, 0)
    assert not v.open and v.reason == R_BOOT
    assert not v.step(1, 35.0, 1, True)  # hot, but the reset counts as a closing: minimum off-time
    assert v.reason == R_MIN_OFF
    assert v.step(600, 35.0, 1, True) and v.reason == R_HEAT


def test_hysteresis():
    v = _warm()
    assert not v.step(700, 29.9, 1, True) and v.reason == R_COOL
    assert v.step(710, 30.0, 1, True)  # on at >= on_c
    assert v.step(720, 28.5, 1, True)  # between the thresholds: stays open
    assert not v.step(730, 28.0, 1, True) and v.reason == R_COOL  # off at <= off_c
    assert not v.step(1400, 29.0, 1, True)  # between the thresholds: stays closed


def test_minimum_off_time():
    v = _warm()
    v.step(700, 31.0, 1, True)
    v.step(710, 27.0, 1, True)
    assert not v.open
    assert not v.step(720, 33.0, 1, True) and v.reason == R_MIN_OFF
    assert not v.step(710 + 599, 33.0, 1, True)
    assert v.step(710 + 600, 33.0, 1, True)


def test_maximum_on_time_per_activation():
    v = _warm()
    assert v.step(1000, 35.0, 1, True)
    assert v.next_check_s(1000) == 1900
    assert v.step(1899, 35.0, 1, True)
    assert not v.step(1900, 35.0, 1, True) and v.reason == R_MAX_ON
    assert not v.step(2499, 35.0, 1, True) and v.reason == R_MIN_OFF  # then the off-time
    assert v.step(2500, 35.0, 1, True) and v.opens == 2  # a new activation


def test_daily_budget():
    v = _warm()
    t = 1000
    while True:  # hot all day: activations of max_on_s until the budget is used up
        v.step(t, 35.0, 1, True)
        if v.reason == R_BUDGET:
            break
        t += 10
    assert not v.open and v.used_s == 3600 and v.budget_left_s() == 0
    assert v.opens == 4  # 4 x 900 s
    assert not v.step(t + 20000, 35.0, 1, True) and v.reason == R_BUDGET
    assert v.step(86400 + 10, 35.0, 1, True)  # a new day, a new budget
    assert v.used_s == 0


def test_budget_not_overrun_by_a_long_step():
    v = _warm()
    v.used_s = 3550
    v.step(1000, 35.0, 1, True)
    assert v.snapshot(1000)[2] == 3600  # charged ahead up to the budget's end, not beyond
    assert v.next_check_s(1000) == 1050  # the caller must come back when the budget ends
    assert not v.step(1050, 35.0, 1, True) and v.reason == R_BUDGET


def test_invalid_temperature_means_closed():
    for bad in (None, float("nan"), 85.0, -55.0, True, "31"):
        v = _warm()
        assert v.step(700, 35.0, 1, True)
        assert not v.step(710, bad, 1, True), bad
        assert v.reason == R_INVALID


def test_stale_temperature_means_closed():
    v = _warm()
    assert v.step(700, 35.0, 10, True)
    assert v.step(710, 35.0, 600, True)
    assert not v.step(720, 35.0, 601, True) and v.reason == R_STALE
    assert not v.step(730, 35.0, None, True) and v.reason == R_STALE


def test_reservoir_low_interlock():
    v = _warm()
    assert v.step(700, 35.0, 1, True)
    assert not v.step(710, 35.0, 1, False) and v.reason == R_RESERVOIR
    assert not v.step(720, 35.0, 1, None) and v.reason == R_RESERVOIR  # unreadable switch: closed
    cfg = dict(CFG)
    cfg["reservoir"] = False  # mains water: no switch fitted
    v = ValveController(cfg, 0)
    assert v.step(600, 35.0, 1, None)


def test_city_rule_mist_only_above_outside_temperature():
    cfg = dict(CFG)
    cfg.update({"on_c": 24.0, "off_c": 22.0, "city_min_c": 26.0})  # thresholds below the city's rule
    v = ValveController(cfg, 0)
    assert not v.step(600, 25.0, 1, True) and v.reason == R_CITY
    assert not v.step(610, 26.0, 1, True) and v.reason == R_CITY  # "above" means strictly above
    assert v.step(620, 26.5, 1, True)
    assert v.override(OVERRIDE_OPEN, 600, 630)
    assert not v.step(640, 25.0, 1, True) and v.reason == R_CITY  # not even an override


def test_override_open_with_ttl_expires():
    v = _warm()
    assert v.override(OVERRIDE_OPEN, 300, 700)
    assert v.override_mode == OVERRIDE_OPEN  # until 1000 (checked below)
    assert v.step(710, 29.0, 1, True) and v.reason == R_OVERRIDE_OPEN  # below on_c, open by override
    assert v.next_check_s(710) == 1000
    assert v.step(999, 29.0, 1, True)
    assert not v.step(1000, 29.0, 1, True) and v.reason == R_COOL  # TTL over: automatic again
    assert v.override_mode == OVERRIDE_NONE


def test_override_open_cannot_beat_interlocks():
    v = _warm()
    assert v.override(OVERRIDE_OPEN, 3600, 700)
    assert not v.step(710, 29.0, 1, False) and v.reason == R_RESERVOIR
    assert not v.step(720, None, 1, True) and v.reason == R_INVALID
    assert v.step(730, 29.0, 1, True)
    assert not v.step(730 + 900, 29.0, 1, True) and v.reason == R_MAX_ON


def test_override_closed_with_ttl():
    v = _warm()
    assert v.step(700, 35.0, 1, True)
    assert v.override(OVERRIDE_CLOSED, 1000, 710)
    assert not v.step(710, 35.0, 1, True) and v.reason == R_OVERRIDE_CLOSED
    assert not v.step(1709, 35.0, 1, True)
    assert v.step(1710, 35.0, 1, True)  # expired, min off-time (1000 s) is over too


def test_override_needs_a_bounded_ttl():
    v = _warm()
    for ttl in (0, -5, None, 7201, 1.5):
        assert not v.override(OVERRIDE_OPEN, ttl, 700), ttl
    assert not v.override(7, 60, 700)
    assert v.override_mode == OVERRIDE_NONE
    assert not v.step(710, 29.0, 1, True)
    assert v.override(OVERRIDE_CLOSED, 7200, 700)
    assert v.override(OVERRIDE_NONE, None, 720) and v.override_mode == OVERRIDE_NONE


def test_every_actuation_counted():
    v = _warm()
    temps = [31, 27, 31, 27, 31]
    t = 700
    for x in temps:
        v.step(t, float(x), 1, True)
        t += 700
    assert v.opens == 3 and v.closes == 2
    assert v.step(t, 27.0, 1, True) is False
    assert v.closes == 3 and v.changed
    assert v.step(t + 1, 27.0, 1, True) is False and not v.changed


def test_works_without_network_for_days():
    # three days of a daily temperature curve, no downlink at all: mists on hot afternoons only
    v = ValveController(CFG, 0)
    opened_hours = set()
    t = 0
    while t < 3 * 86400:
        hour = (t // 3600) % 24
        temp = 32.0 if 12 <= hour < 17 else 20.0
        if v.step(t, temp, 30, True):
            opened_hours.add(hour)
        t += 60
    assert opened_hours and min(opened_hours) >= 12 and max(opened_hours) < 17
    assert v.opens >= 3 and v.used_s <= 3600


def test_reset_while_open_comes_back_closed():
    v = _warm()
    assert v.step(700, 35.0, 1, True)
    v.step(1000, 35.0, 1, True)
    assert v.snapshot(1000)[2] == 360  # 300 s used + the next SAVE_AHEAD_S counted ahead
    snap = v.snapshot()
    # power glitch / watchdog reset: a new controller from the persisted snapshot
    v2 = ValveController(CFG, 0)
    assert v2.restore(snap)
    assert not v2.open
    assert not v2.step(5, 35.0, 1, True) and v2.reason == R_MIN_OFF
    assert v2.used_s == 300 and v2.opens == 1  # the budget is not refunded by a reset
    assert v2.total_open_s == 300 and v2.litres(v2.total_open_s) == 20.0
    assert not v2.restore([1, 2, -3, 4, 5]) and not v2.restore("junk") and not v2.restore(None)
    assert not v2.restore([1, 2, 3, 86400, 5])


def test_config_validation():
    assert valve.check_config({})["on_c"] == 30.0
    for bad in (
        {"on_c": 28.0, "off_c": 28.0},
        {"on_c": "hot"},
        {"max_on_s": 0},
        {"flow_l_per_min": 0},
        {"budget_l_per_day": -1},
        {"min_off_s": 1.5},
        {"reservoir": "yes"},
        {"city_min_c": 99},
        {"on_c": True},
        {"bogus": 1},
    ):
        e = raises(ValueError, valve.check_config, bad)
        assert "valve" in str(e)
    v = ValveController(CFG, 0, enabled=False)
    assert not v.step(1000, 40.0, 1, True)
    assert not v.override(OVERRIDE_OPEN, 60, 1000) or not v.step(1001, 40.0, 1, True)


def test_disable_and_settings_from_downlinks():
    v = _warm()
    assert v.step(700, 35.0, 1, True)
    v.set_enabled(False)
    assert not v.step(710, 35.0, 1, True)
    v.set_enabled(True)
    v.update({"on_c": 36.0, "off_c": 34.0})
    assert not v.step(1400, 35.0, 1, True) and v.reason == R_COOL
    bad = {"on_c": 30.0, "off_c": 31.0}
    raises(ValueError, v.update, bad)
    # a refused change leaves the settings as they were (checked in place, then put back)
    assert v.cfg["on_c"] == 36.0 and v.cfg["off_c"] == 34.0 and bad == {"on_c": 30.0, "off_c": 31.0}
    ok = {"budget_l_per_day": 10, "max_on_s": 3600}  # 10 L at 4 L/min: 150 s
    v.update(ok)
    assert ok == {"budget_l_per_day": 10, "max_on_s": 3600} and v.cfg["max_on_s"] == 3600
    assert v.step(1500, 37.0, 1, True)
    assert not v.step(1650, 37.0, 1, True) and v.reason == R_BUDGET


def test_legionella_flush_after_standing_still_only_when_warm():
    cfg = dict(CFG)
    cfg.update({"flush_after_s": 3 * 86400, "flush_s": 60})
    v = ValveController(cfg, 0)
    t = 600
    while t < 3 * 86400:  # three cool days: never open
        assert not v.step(t, 20.0, 1, True)
        t += 600
    assert not v.step(3 * 86400 + 600, 20.0, 1, True) and v.reason == R_CITY  # cold: no mist, no flush
    assert v.step(3 * 86400 + 1200, 27.0, 1, True) and v.reason == R_FLUSH  # warm, below on_c: flush
    assert v.next_check_s(3 * 86400 + 1200) == 3 * 86400 + 1260
    assert v.step(3 * 86400 + 1259, 27.0, 1, True)
    assert not v.step(3 * 86400 + 1260, 27.0, 1, True) and v.reason == R_COOL
    assert v.opens == 1
    assert not v.step(3 * 86400 + 5000, 27.0, 1, True)  # the timer starts again from the flush
    assert not v.step(3 * 86400 + 6000, 27.0, 1, False) and v.reason == R_RESERVOIR


def test_non_finite_inputs_mean_closed():
    nan, inf = float("nan"), float("inf")
    for temp, age in ((35.0, nan), (35.0, inf), (35.0, -inf), (nan, 1), (inf, 1), (-inf, 1), (35.0, True)):
        v = _warm()
        assert not v.step(700, temp, age, True), (temp, age)
        assert v.reason in (R_INVALID, R_STALE), (temp, age, v.reason)
        # and an open valve closes at once when an input turns non-finite
        assert v.step(710, 35.0, 1, True)
        assert not v.step(720, temp, age, True), (temp, age)
    for now in (nan, inf):
        v = _warm()
        assert v.step(700, 35.0, 1, True)
        assert not v.step(now, 35.0, 1, True) and v.reason == R_INVALID
        assert v.next_check_s(now) is None and not v.override(OVERRIDE_OPEN, 60, now)
        # the bad time did not move the controller's time: the rules go on from the last good one
        assert not v.step(720, 35.0, 1, True) and v.reason == R_MIN_OFF
        assert v.step(710 + 600, 35.0, 1, True)


def test_clock_jumping_back_cannot_stretch_max_on_or_min_off():
    v = _warm()
    assert v.step(1000, 35.0, 1, True)
    forward = 0
    t = 1000
    for _ in range(200):  # the clock jumps back 500 s once, then runs on
        nt = t + 10 if t != 1300 else 800
        if nt > t:
            forward += nt - t
        t = nt
        if not v.step(t, 35.0, 1, True):
            break
    assert v.reason == R_MAX_ON and forward == 900  # 900 s of real open time, not 900 + 500
    closed_fwd = 0
    for _ in range(200):
        step = 10 if t != 1500 else -400
        t += step
        if step > 0:
            closed_fwd += step
        if v.step(t, 35.0, 1, True):
            break
    assert closed_fwd >= 600 and v.opens == 2


def test_open_valve_asks_for_saves_and_each_save_covers_until_the_next():
    v = _warm()
    assert not v.save_due(700)  # closed: nothing to save
    assert v.step(700, 35.0, 1, True)
    assert v.save_due(700)  # open and nothing counted ahead yet
    snap = v.snapshot(700)
    assert snap[2] == valve.SAVE_AHEAD_S and not v.save_due(730)
    assert v.next_check_s(730) == 700 + valve.SAVE_AHEAD_S  # wake up to save in time
    t = 700
    while v.step(t, 35.0, 1, True):
        # the figure on flash is never below the water actually used
        if v.save_due(t):
            snap = v.snapshot(t)
        assert snap[2] >= v.used_s, (t, snap, v.used_s)
        t = v.next_check_s(t) if t % 2 else t + 7
    assert v.reason == R_MAX_ON and v.used_s == 900 and snap[2] >= 900


def test_restore_charges_a_lost_newest_copy():
    v = ValveController(CFG, 0)
    assert v.restore([3, 3, 100, 5000, 700], lost_newest=True)
    assert v.used_s == 100 + valve.SAVE_AHEAD_S and v.restore_fault
    v = ValveController(CFG, 0)
    v.restore_unreadable()
    assert v.budget_left_s() == 0 and v.restore_fault
    assert not v.step(700, 35.0, 1, True) and v.reason == R_BUDGET
    assert v.step(86400 + 10, 35.0, 1, True)  # the next budget day is a normal one


def test_reason_names_for_the_simulator_follow_the_values():
    from simnode import VALVE_REASON_NAMES as names

    assert len(names) == valve.R_FLUSH + 1
    assert names[R_BOOT] == "boot" and names[R_COOL] == "cool" and names[R_HEAT] == "heat"
    assert names[R_CITY] == "city_rule" and names[R_INVALID] == "temp_invalid"
    assert names[R_STALE] == "temp_stale"
    assert names[R_RESERVOIR] == "reservoir_low" and names[R_BUDGET] == "budget_exhausted"
    assert names[R_MAX_ON] == "max_on_time" and names[R_MIN_OFF] == "min_off_time"
    assert names[R_OVERRIDE_OPEN] == "override_open" and names[R_OVERRIDE_CLOSED] == "override_closed"
    assert names[valve.R_DISABLED] == "disabled" and names[valve.R_FLUSH] == "flush"
