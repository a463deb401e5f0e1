"""The valve controller's boot code: the settings defaults and check_config(), building the
controller and taking back the persisted counters. control/valve.py loads this module for one
call and releases it after (boot and config checks only, never in the control loop); the range
checks are control/valveset.py's, loaded for that call."""

from control.valve import (
    DAY_S,
    OVERRIDE_NONE,
    R_BOOT,
    R_DISABLED,
    SAVE_AHEAD_S,
    _budget_s,
    call_once,
    finite,
)

DEFAULTS = {
    "on_c": 30.0,  # open at or above
    "off_c": 28.0,  # close at or below
    "city_min_c": 26.0,  # the city's rule: mist only when the outside temperature is above this
    "min_off_s": 600,
    "max_on_s": 900,
    "budget_l_per_day": 500,  # daily water budget
    "flow_l_per_min": 4.0,  # flow of the open valve (nozzles at line pressure): litres = flow x time
    "stale_s": 600,  # a temperature older than this is no temperature
    "override_max_s": 14400,  # the longest TTL a downlink override may ask for
    "reservoir": True,  # a reservoir-level switch is fitted (False: mains water, no interlock)
    # Legionella: after this long without any opening, flush the line for flush_s - only when the
    # city rule allows misting (warm days below on_c are when stagnant water is the risk). 0 = off.
    "flush_after_s": 0,
    "flush_s": 60,
}


def check_config(cfg):
    """Return a complete settings dict from `cfg` (missing keys take DEFAULTS).

    Raises ValueError naming the key when a value is out of range or inconsistent.
    """
    out = {}
    for k in DEFAULTS:
        out[k] = cfg.get(k, DEFAULTS[k])
    for k in cfg:
        if k not in DEFAULTS:
            raise ValueError("valve: unknown setting '%s'" % k)
    call_once("control.valveset", "check", (out,))
    return out


def restore(ctl, snap, lost_newest):
    """ValveController.restore()."""
    try:
        opens, closes, used, day, total = snap
        for v in snap:
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                return False
        if day >= DAY_S:
            return False
    except (TypeError, ValueError):
        return False
    ctl.opens = opens
    ctl.closes = closes
    ctl.used_s = used
    ctl.day_s = day
    ctl.total_open_s = total
    if lost_newest:
        ctl.used_s += SAVE_AHEAD_S
        ctl.total_open_s += SAVE_AHEAD_S
        ctl.restore_fault = True
    return True


def restore_unreadable(ctl):
    """ValveController.restore_unreadable()."""
    ctl.used_s = ctl._budget_s
    ctl.day_s = 0
    ctl.restore_fault = True


def init(ctl, cfg, now_s, enabled):
    """ValveController.__init__()."""
    ctl.cfg = check_config(cfg)
    ctl._budget_s = _budget_s(ctl.cfg)
    ctl.enabled = enabled
    ctl.open = False  # off at boot, whatever it was before the reset
    ctl.reason = R_BOOT if enabled else R_DISABLED
    ctl.opens = 0  # actuations: closed -> open transitions, lifetime (persisted)
    ctl.closes = 0
    ctl.used_s = 0  # open seconds in the current budget day (persisted)
    ctl.total_open_s = 0  # lifetime open seconds (persisted; reports send differences)
    ctl.day_s = 0  # seconds into the current budget day (persisted)
    ctl.changed = False  # True on the step that changed the state (for an event uplink)
    ctl.restore_fault = False  # the persisted state was (partly) unreadable: charged as used
    # the controller's own seconds since it was built: only forward steps of the caller's clock
    # move it, so every rule below is timed on it (opened/closed/override times are on it too)
    ctl._t = 0
    ctl._last_s = now_s if finite(now_s) else 0
    ctl._opened_at = 0  # own time of the last opening (meaningful while open)
    ctl._closed_at = 0  # the reset counts as a closing: minimum off-time applies
    ctl.override_mode = OVERRIDE_NONE  # OVERRIDE_*: automatic, or an override until _ovr_until
    ctl._ovr_until = 0
    ctl._charged_until = None  # own time up to which the last snapshot counted the open valve
    ctl._by_override = False
    ctl._by_flush = False
