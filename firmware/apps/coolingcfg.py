"""The cooling node's boot code, loaded only while it runs and released after (apps/cooling.py
calls it): building the app, the controller with the settings downlinks saved, taking back the
valve's persisted counters. The valve downlinks are apps/coolingset.py's."""

import json

from control import valve as vc
from lw.store import Record

from apps import cooling as app
from apps.base import App, make_battery


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
        for k in app.SETTINGS:
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
