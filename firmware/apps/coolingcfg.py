"""The cooling node's settings code, loaded only while it runs and released after (apps/cooling.py
calls it): building the app at boot, the controller with the settings downlinks saved, taking back
the valve's persisted counters, and the valve downlinks (FPorts 20..24)."""

import json

from control import valve as vc
from lw.store import Record
from payload import cooling as codec

from apps import cooling as app
from apps.base import App, make_battery

_SETTINGS = ("on_c", "off_c", "max_on_s", "budget_l_per_day")


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


def controller(a, th, clock):
    """The ValveController of app `a` for thresholds `th`, with the settings saved by downlinks
    and the persisted budget and counters."""
    th = dict(th)
    saved = _load(a._crec)
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
    ctl = vc.ValveController(th, now_s, enabled)
    _restore(ctl, a._rec)
    return ctl


def _restore(ctl, rec):
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
    if snap is None or not ctl.restore(snap, rec.damaged):
        ctl.restore_unreadable()


def _save_settings(a):
    if a._crec is not None:
        d = {"enabled": a.ctl.enabled}
        for k in _SETTINGS:
            d[k] = a.ctl.cfg[k]
        a._crec.save(json.dumps(d).encode())


def downlink(a, fport, payload, now_ms):
    """FPorts 20..24; PayloadError propagates (the node logs and ignores it)."""
    d = codec.decode_down(fport, payload)
    if d is None:
        return False
    ctl = a.ctl
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
                a.refused.append((fport, "ttl longer than override_max_s"))
                return True
        else:
            ctl.set_enabled(d["enabled"])
    except ValueError as e:
        a.refused.append((fport, str(e)))
        return True
    _save_settings(a)
    a.poll(now_ms)  # act on it now (an override closed must close at once)
    return True


def build(cfg, io, clock, store):
    th = cfg.get("thresholds", {})
    s = cfg.get("sensors", {})
    pin, active = io.valve()
    pin.value(1 - active)  # the valve closed before anything else can fail (CoolingApp closes it too)
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
        res = app.reservoir_reader(r[0], r[1])  # its closure lives in apps/cooling.py, not here
    return app.CoolingApp(clock, th, amb, pin, active, res, make_battery(io, clock), store)


def init(a, clock, th, battery, store):
    """CoolingApp.__init__() after its pin, ambient sensor and reservoir switch."""
    App.__init__(a, clock, battery)
    a.close()  # first thing: whatever the pin was, the valve is closed
    a._rec = Record(store, "valve") if store is not None else None
    a._crec = Record(store, "valvecfg") if store is not None else None
    # the controller, with the settings saved by downlinks and the persisted counters
    a.ctl = controller(a, th, clock)
    a.temp_c = None
    a._temp_at_ms = None
    a._next_measure = None
    a._reported = (a.ctl.opens, a.ctl.total_open_s)
    a._pending = None
    a._hit_max_on = False
    a.refused = []  # downlinks refused (kept for the console/simulator)
