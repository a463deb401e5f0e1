"""Cooling-point node: the valve controller (control/valve.py) on a fail-safe output pin, the
ambient temperature (DS18B20 or SHT31), the reservoir-level switch, reports and valve downlinks.

The valve output is closed when this module builds it, on shutdown(), before any exception leaves
poll(), and whenever the controller says so; a reset brings it back closed (boot.py drives the pin
inactive first thing, and the controller waits its minimum off-time after a boot). The control
loop needs no network: it runs at every wake-up whether the node has joined or not.
"""

import json

from control import valve as vc
from lw.store import Record
from micropython import const
from payload import cooling as codec

from apps.base import App

_CONTROL_MS = const(10000)  # valve decisions at least this often
_MEASURE_MS = const(60000)  # ambient temperature this often

# the settings a downlink may change, saved (record "valvecfg") and taken back at boot
SETTINGS = ("on_c", "off_c", "max_on_s", "budget_l_per_day")


class CoolingApp(App):
    name = "cooling"
    # set by apps/coolingcfg.py init() (annotations only: MicroPython compiles no code for them)
    _rec: "Record | None"
    ctl: "vc.ValveController"

    def __init__(self, clock, th, ambient, pin, active=1, reservoir=None, battery=None, store=None):
        """pin: the valve output (normally closed valve; `active` is the level that opens it),
        closed first thing. Boot code: apps/coolingcfg.py init()."""
        self.pin = pin
        self.active = active
        self.ambient = ambient
        self.reservoir = reservoir  # callable: True ok / False low / None unreadable; None: not fitted
        # boot code: apps/coolingcfg.py, loaded for the call and released after
        vc.call_once("apps.coolingcfg", "init", (self, clock, th, battery, store))

    # -- the valve output ------------------------------------------------------------------------------
    def set_valve(self, want_open):
        self.pin.value(self.active if want_open else 1 - self.active)
        self.is_open = bool(want_open)

    def close(self):
        self.pin.value(1 - self.active)
        self.is_open = False

    def save(self):
        if self._rec is not None:
            snap = self.ctl.snapshot(self.clock.now_ms() // 1000)
            self._rec.save(json.dumps(snap).encode())

    # -- control -------------------------------------------------------------------------------------
    def _measure(self, now_ms):
        t = self.ambient.read()
        if t is not None and not isinstance(t, (int, float)):
            t = t[0]  # SHT31 gives (temp, humidity)
        if t is None:
            self._note(self.ambient)
        else:
            self.temp_c = t
            self._temp_at_ms = now_ms
        # a failed reading leaves the last good one to age: stale after stale_s closes the valve

    def poll(self, now_ms):
        try:
            if self._next_measure is None or now_ms >= self._next_measure:
                self.errors = []
                self._measure(now_ms)
                self._next_measure = now_ms + _MEASURE_MS
            age = None if self._temp_at_ms is None else (now_ms - self._temp_at_ms) // 1000
            res = None
            if self.reservoir is not None:
                res = self.reservoir()
            ctl = self.ctl
            now_s = now_ms // 1000
            want = ctl.step(now_s, self.temp_c, age, res)
            self.set_valve(want)
            if ctl.changed:
                if want:
                    self._hit_max_on = False
                elif ctl.reason == vc.R_MAX_ON:
                    self._hit_max_on = True
                self.save()
            elif ctl.save_due(now_s):
                self.save()  # open: the water counted ahead by the last save is spent
        except BaseException:
            self.close()
            raise

    def poll_ms(self, now_ms):
        wake = now_ms + _CONTROL_MS
        if self._next_measure is not None and self._next_measure < wake:
            wake = self._next_measure
        t = self.ctl.next_check_s(now_ms // 1000)
        if t is not None and t * 1000 < wake:
            wake = t * 1000
        return max(0, wake - now_ms)

    def shutdown(self):
        self.close()
        self.save()

    # -- reports -------------------------------------------------------------------------------------
    def report(self, now_ms):
        ctl = self.ctl
        opens, total = ctl.opens, ctl.total_open_s
        d_open = total - self._reported[1]
        r = ctl.reason
        # codec.MODES: auto, override_open, override_closed (the OVERRIDE_* values), flush
        m = ctl.override_mode
        if not m and ctl.open and r == vc.R_FLUSH:
            m = 3
        self._pending = (opens, total)
        return {
            "valve_open": self.is_open,
            "enabled": ctl.enabled,
            "mode": codec.MODES[m],
            "actuations": opens - self._reported[0],
            "open_time": d_open,
            "water_used": ctl.litres(d_open),
            "water_today": ctl.litres(ctl.used_s),
            "ambient_temperature": self.temp_c if r != vc.R_INVALID and r != vc.R_STALE else None,
            "on_threshold": ctl.cfg["on_c"],
            "off_threshold": ctl.cfg["off_c"],
            "interlock": {
                "reservoir_low": r == vc.R_RESERVOIR,
                "budget": ctl.budget_left_s() == 0,
                "max_on_time": self._hit_max_on,
            },
            "faults": {
                "temperature": r == vc.R_INVALID or r == vc.R_STALE,
                "valve": False,
                "flow_meter": False,
            },
        }

    def sent(self, result):
        App.sent(self, result)
        if result.tx_count and self._pending is not None:
            self._reported = self._pending  # counted from here on
        self._pending = None

    def encode(self, data):
        return codec.encode(data)

    # -- downlinks -----------------------------------------------------------------------------------
    def downlink(self, fport, payload, now_ms):
        """FPorts 20..24: decoded (PayloadError propagates: the node logs and ignores it), then
        applied by apps/coolingset.py, loaded once the decoder is released."""
        if fport < codec.FPORT_SET_THRESHOLDS or fport > codec.FPORT_ENABLE:
            return False
        d = codec.decode_down(fport, payload)
        return vc.call_once("apps.coolingset", "downlink", (self, fport, d, now_ms))


def reservoir_reader(pin, ok_level):
    """The reservoir switch as a callable: True when the level is fine."""

    def read():
        return pin.value() == ok_level

    return read


def build(cfg, io, clock, store=None):
    return vc.call_once("apps.coolingcfg", "build", (cfg, io, clock, store))


# the valve settings check (control/valve.py check_config); ValueError names the bad key
check_thresholds = vc.check_config
