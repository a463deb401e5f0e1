"""Water-level node: JSN-SR04T distance to the surface, DS18B20 water temperature, battery.

The speed of sound is compensated with the DS18B20 reading when there is one (the probe hangs at
the surface; the air column under a bridge is closer to it than to a standard atmosphere: an
approximation, stated here), else the driver's 15 C default.

Level above gauge zero (cm) = (zero_mm - distance_mm) / 10. Alarm levels are thresholds on that
level; crossing one upwards sends at once as a confirmed uplink, and while in alarm the node
reports every alarm_interval_s instead of the normal interval. Leaving a level needs the level to
fall hysteresis_cm below it. A target inside the ultrasonic blind zone means water right under
the sensor: that is an alarm (at the highest level the blind zone lies above), with no number sent.
"""

from micropython import const
from payload import water as codec
from sensors import base as sbase
from sensors.jsnsr04t import JSNSR04T

from apps.base import App, make_battery

THRESHOLD_DEFAULTS = {
    "zero_mm": None,
    "levels_cm": [],
    "hysteresis_cm": 5,
    "rise_cm_per_h": 0,
    "rate_window_s": 900,
    "alarm_interval_s": 120,
    "measure_s": 60,
}
_MAX_LEVELS = const(3)


def check_thresholds(th):
    """Complete water thresholds (defaults filled in); ValueError names the bad key."""
    out = dict(THRESHOLD_DEFAULTS)
    for k in th:
        if k not in out:
            raise ValueError("water: unknown setting '%s'" % k)
        out[k] = th[k]
    z = out["zero_mm"]
    if isinstance(z, bool) or not isinstance(z, int) or not 0 < z <= 20000:
        raise ValueError("water: 'zero_mm' (sensor to gauge zero, mm) is required, 1..20000")
    lv = out["levels_cm"]
    if not isinstance(lv, list) or len(lv) > _MAX_LEVELS:
        raise ValueError("water: 'levels_cm' must be a list of up to 3 alarm levels")
    prev = None
    for x in lv:
        if isinstance(x, bool) or not isinstance(x, int) or not -5000 <= x <= 30000:
            raise ValueError("water: 'levels_cm' entries must be whole cm in -5000..30000")
        if prev is not None and x <= prev:
            raise ValueError("water: 'levels_cm' must rise strictly")
        prev = x
    for k, lo, hi in (
        ("hysteresis_cm", 0, 500),
        ("rise_cm_per_h", 0, 10000),
        ("rate_window_s", 60, 86400),
        ("alarm_interval_s", 60, 43200),
        ("measure_s", 10, 43200),
    ):
        v = out[k]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError("water: '%s' must be a whole number in %d..%d" % (k, lo, hi))
    return out


class WaterLevel:
    """The alarm logic alone (pure): feed levels, read alarm_level / rising_fast / crossed_up."""

    def __init__(self, th):
        self.th = check_thresholds(th)
        self.alarm_level = 0
        self.rising_fast = False
        self._ref = None  # (t_s, level_cm) the rise rate is measured from

    def update(self, now_s, level_cm, at_least=False):
        """New level (None: no reading). at_least: the level is a lower bound (blind zone).
        Returns True when the alarm level went up (send now, confirmed) or back to 0."""
        if level_cm is None:
            return False  # no reading: keep the alarm state we have, never invent a level
        lv = self.th["levels_cm"]
        hyst = self.th["hysteresis_cm"]
        new = 0
        for i in range(len(lv)):
            if level_cm >= lv[i]:
                new = i + 1
        old = self.alarm_level
        # going down: a level is left only hyst cm below it
        k = old
        while k > new:
            if level_cm >= lv[k - 1] - hyst:
                new = k
                break
            k -= 1
        self.alarm_level = new
        if not at_least:
            self._rate(now_s, level_cm)
        return new > old or (old > 0 and new == 0)

    def _rate(self, now_s, level_cm):
        rise = self.th["rise_cm_per_h"]
        if not rise:
            return
        if self._ref is None:
            self._ref = (now_s, level_cm)
            return
        t0, l0 = self._ref
        if now_s - t0 >= self.th["rate_window_s"]:
            self.rising_fast = (level_cm - l0) * 3600 >= rise * (now_s - t0)
            self._ref = (now_s, level_cm)

    def state(self):
        return [self.alarm_level, 1 if self.rising_fast else 0, self._ref]

    def restore(self, st):
        self.alarm_level = int(st[0])
        self.rising_fast = bool(st[1])
        self._ref = tuple(st[2]) if st[2] else None


class WaterApp(App):
    name = "water"

    def __init__(self, clock, th, distance, water_temp=None, battery=None):
        App.__init__(self, clock, battery)
        self.logic = WaterLevel(th)
        self.th = self.logic.th
        self.distance = distance
        self.water_temp = water_temp
        self.level_cm = None
        self.distance_mm = None
        self.temp_c = None
        self._next_measure = None
        self.measurements = 0

    def _measure(self, now_ms):
        self.errors = []
        self.measurements += 1
        t = None
        if self.water_temp is not None:
            t = self.water_temp.read()
            if t is None:
                self._note(self.water_temp)
        self.temp_c = t
        d = self.distance.read(t)
        blind = False
        if d is None:
            self._note(self.distance)
            blind = self.distance.status == sbase.BLIND
        self.distance_mm = d
        if d is not None:
            self.level_cm = (self.th["zero_mm"] - d + 5) // 10
        else:
            self.level_cm = None
        if blind:
            # water closer than the blind zone: the level is at least this (an alarm, not a number)
            bound = (self.th["zero_mm"] - self.distance._blind_mm) // 10
            changed = self.logic.update(now_ms // 1000, bound, True)
        else:
            changed = self.logic.update(now_ms // 1000, self.level_cm)
        if changed:
            self.urgent = True
            self.confirmed = True

    def poll(self, now_ms):
        if self._next_measure is None or now_ms >= self._next_measure:
            self._measure(now_ms)
            self._next_measure = now_ms + self.th["measure_s"] * 1000

    def poll_ms(self, now_ms):
        if self._next_measure is None:
            return 0
        return max(0, self._next_measure - now_ms)

    def sent(self, result):
        unacked = self.confirmed and not result.acked
        App.sent(self, result)
        if unacked:
            self.confirmed = True  # the alarm was not acknowledged: the next report asks again

    def interval_s(self, base_s):
        if self.logic.alarm_level > 0:
            return min(base_s, self.th["alarm_interval_s"])
        return base_s

    def report(self, now_ms):
        if self._next_measure is None:
            self.poll(now_ms)
        lg = self.logic
        return {
            "alarm": lg.alarm_level > 0,
            "alarm_level": lg.alarm_level,
            "rising_fast": lg.rising_fast,
            "level": self.level_cm,
            "distance": self.distance_mm,
            "water_temperature": self.temp_c,
            "battery": self.battery_mv(),
        }

    def encode(self, data):
        return codec.encode(data)

    def retained(self):
        return {"l": self.logic.state(), "m": self._next_measure is not None}

    def restore_retained(self, st):
        self.logic.restore(st["l"])


def build(cfg, io, clock, store=None):
    s = cfg.get("sensors", {})
    trig, echo, pulse = io.ultrasonic()
    dist = JSNSR04T(
        trig,
        echo,
        pulse,
        clock,
        pings=s.get("pings", 5),
        blind_mm=s.get("blind_mm", 250),
        max_mm=s.get("max_mm", 6000),
    )
    wt = None
    if s.get("water_temp", "ds18b20") == "ds18b20":
        from sensors.ds18b20 import DS18B20  # imported only when fitted

        wt = DS18B20(io.onewire(), clock)
    return WaterApp(clock, cfg.get("thresholds", {}), dist, wt, make_battery(io, clock))
