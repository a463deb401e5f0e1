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

from apps.base import App, make_battery

_CONTROL_MS = const(10000)  # valve decisions at least this often
_MEASURE_MS = const(60000)  # ambient temperature this often
_SETTINGS = ("on_c", "off_c", "max_on_s", "budget_l_per_day")


class ValveOutput:
    """The valve's output pin. Normally closed valve: `active` is the level that opens it."""

    def __init__(self, pin, active=1):
        self.pin = pin
        self.active = active
        self.is_open = False
        self.switches = 0
        self.close()  # first thing: whatever the pin was, the valve is closed

    def set(self, want_open):
        if want_open != self.is_open:
            self.switches += 1
        self.pin.value(self.active if want_open else 1 - self.active)
        self.is_open = bool(want_open)

    def close(self):
        self.pin.value(1 - self.active)
        self.is_open = False


class CoolingApp(App):
    name = "cooling"

    def __init__(self, clock, th, ambient, output, reservoir=None, battery=None, store=None):
        App.__init__(self, clock, battery)
        self.output = output  # closed by its constructor already
        self.ambient = ambient
        self.reservoir = reservoir  # callable: True ok / False low / None unreadable; None: not fitted
        self._rec = Record(store, "valve") if store is not None else None
        self._crec = Record(store, "valvecfg") if store is not None else None
        th = dict(th)
        saved = self._load(self._crec)
        enabled = True
        if isinstance(saved, dict):
            # settings changed by downlink outlive resets (unless they no longer fit the config)
            enabled = saved.get("enabled", True) is not False
            merged = dict(th)
            for k in _SETTINGS:
                if k in saved:
                    merged[k] = saved[k]
            try:
                vc.check_config(merged)
                th = merged
            except ValueError:
                pass
        now_s = clock.now_ms() // 1000
        self.ctl = vc.ValveController(th, now_s, enabled)
        self._restore(self._rec)
        self.temp_c = None
        self._temp_at_ms = None
        self._next_measure = None
        self._reported = (self.ctl.opens, self.ctl.total_open_s)
        self._pending = None
        self._hit_max_on = False
        self.refused = []  # downlinks refused (kept for the console/simulator)

    @staticmethod
    def _load(rec):
        if rec is None:
            return None
        raw = rec.load()
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _restore(self, rec):
        """Budget and counters from flash. A damaged copy is charged as used water (fail closed):
        one slot unreadable = the newest save may be lost; nothing readable = the day's budget."""
        if rec is None:
            return
        raw = rec.load()
        if raw is None and not rec.damaged:
            return  # first boot
        snap = None
        if raw is not None:
            try:
                snap = json.loads(raw)
            except ValueError:
                snap = None
        if snap is None or not self.ctl.restore(snap, rec.damaged):
            self.ctl.restore_unreadable()

    def save(self):
        if self._rec is not None:
            snap = self.ctl.snapshot(self.clock.now_ms() // 1000)
            self._rec.save(json.dumps(snap).encode())

    def _save_settings(self):
        if self._crec is not None:
            d = {"enabled": self.ctl.enabled}
            for k in _SETTINGS:
                d[k] = self.ctl.cfg[k]
            self._crec.save(json.dumps(d).encode())

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
            self.output.set(want)
            if ctl.changed:
                if want:
                    self._hit_max_on = False
                elif ctl.reason == vc.R_MAX_ON:
                    self._hit_max_on = True
                self.save()
            elif ctl.save_due(now_s):
                self.save()  # open: the water counted ahead by the last save is spent
        except BaseException:
            self.output.close()
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
        self.output.close()
        self.save()

    # -- reports -------------------------------------------------------------------------------------
    def report(self, now_ms):
        ctl = self.ctl
        opens, total = ctl.opens, ctl.total_open_s
        d_open = total - self._reported[1]
        r = ctl.reason
        mode = "auto"
        if ctl.override_mode == vc.OVERRIDE_OPEN:
            mode = "override_open"
        elif ctl.override_mode == vc.OVERRIDE_CLOSED:
            mode = "override_closed"
        elif ctl.open and r == vc.R_FLUSH:
            mode = "flush"
        self._pending = (opens, total)
        return {"valve_open": self.output.is_open, "enabled": ctl.enabled, "mode": mode,
                "actuations": opens - self._reported[0], "open_time": d_open,
                "water_used": ctl.litres(d_open), "water_today": ctl.litres(ctl.used_s),
                "ambient_temperature": self.temp_c if r != vc.R_INVALID and r != vc.R_STALE else None,
                "on_threshold": ctl.cfg["on_c"], "off_threshold": ctl.cfg["off_c"],
                "interlock": {"reservoir_low": r == vc.R_RESERVOIR, "budget": ctl.budget_left_s() == 0,
                              "max_on_time": self._hit_max_on},
                "faults": {"temperature": r == vc.R_INVALID or r == vc.R_STALE, "valve": False,
                           "flow_meter": False}}

    def sent(self, result):
        App.sent(self, result)
        if result.tx_count and self._pending is not None:
            self._reported = self._pending  # counted from here on
        self._pending = None

    def encode(self, data):
        return codec.encode(data)

    # -- downlinks -----------------------------------------------------------------------------------
    def downlink(self, fport, payload, now_ms):
        """FPorts 20..24; PayloadError propagates (the node logs and ignores it)."""
        if fport < codec.FPORT_SET_THRESHOLDS or fport > codec.FPORT_ENABLE:
            return False
        d = codec.decode_down(fport, payload)
        if d is None:
            return False
        ctl = self.ctl
        try:
            if fport == codec.FPORT_SET_THRESHOLDS:
                ctl.update({"on_c": d["on_threshold"], "off_c": d["off_threshold"]})
            elif fport == codec.FPORT_SET_MAX_ON_TIME:
                ctl.update({"max_on_s": d["max_on_time"]})
            elif fport == codec.FPORT_SET_WATER_BUDGET:
                ctl.update({"budget_l_per_day": d["daily_budget"]})
            elif fport == codec.FPORT_OVERRIDE:
                st = d["state"]
                mode = vc.OVERRIDE_NONE
                if st == "open":
                    mode = vc.OVERRIDE_OPEN
                elif st == "closed":
                    mode = vc.OVERRIDE_CLOSED
                if not ctl.override(mode, d["ttl"], now_ms // 1000):
                    self.refused.append((fport, "ttl longer than override_max_s"))
                    return True
            else:
                ctl.set_enabled(d["enabled"])
        except ValueError as e:
            self.refused.append((fport, str(e)))
            return True
        self._save_settings()
        self.poll(now_ms)  # act on it now (an override closed must close at once)
        return True


def reservoir_reader(pin, ok_level):
    """The reservoir switch as a callable: True when the level is fine."""
    def read():
        return pin.value() == ok_level
    return read


def build(cfg, io, clock, store=None):
    th = cfg.get("thresholds", {})
    s = cfg.get("sensors", {})
    pin, active = io.valve()
    out = ValveOutput(pin, active)  # closed before anything else can fail
    # only the ambient sensor's driver is imported: the other one's code never takes heap
    if s.get("ambient", "ds18b20") == "sht31":
        from sensors.sht31 import SHT31

        amb = SHT31(io.i2c(), clock, addr=s.get("sht31_addr", 0x44))
    else:
        from sensors.ds18b20 import DS18B20

        amb = DS18B20(io.onewire(), clock)
    res = None
    if vc.check_config(th)["reservoir"]:
        r = io.reservoir()
        if r is None:
            raise ValueError("cooling: thresholds.reservoir is true but the board has no reservoir input")
        res = reservoir_reader(r[0], r[1])
    return CoolingApp(clock, th, amb, out, res, make_battery(io, clock), store)


def check_thresholds(th):
    """The valve settings (control/valve.py DEFAULTS); ValueError names the bad key."""
    return vc.check_config(th)
