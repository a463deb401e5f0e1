"""The valve controller's boot and downlink code: settings defaults and the check, taking back the
persisted counters, settings changes and overrides. control/valve.py loads this module for one
call and releases it after (it runs at boot and on downlinks only, never in the control loop)."""

from control.valve import (
    _T_MAX_C,
    _T_MIN_C,
    DAY_S,
    OVERRIDE_CLOSED,
    OVERRIDE_NONE,
    OVERRIDE_OPEN,
    R_BOOT,
    R_DISABLED,
    SAVE_AHEAD_S,
    _budget_s,
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
    for k in ("on_c", "off_c", "city_min_c"):
        v = out[k]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v or v < _T_MIN_C or v > _T_MAX_C:
            raise ValueError("valve: '%s' must be a temperature in %d..%d C" % (k, _T_MIN_C, _T_MAX_C))
    if out["off_c"] >= out["on_c"]:
        raise ValueError("valve: 'off_c' must be below 'on_c' (hysteresis)")
    for k in ("min_off_s", "max_on_s", "stale_s", "override_max_s"):
        v = out[k]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0 or v > DAY_S:
            raise ValueError("valve: '%s' must be a whole number of seconds in 1..86400" % k)
    for k in ("budget_l_per_day", "flow_l_per_min"):
        v = out[k]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0 or v > 60000:
            raise ValueError("valve: '%s' must be a positive number of litres" % k)
    fa = out["flush_after_s"]
    if isinstance(fa, bool) or not isinstance(fa, int) or fa < 0 or fa > 30 * DAY_S:
        raise ValueError("valve: 'flush_after_s' must be 0 (off) or seconds up to 30 days")
    fs = out["flush_s"]
    if isinstance(fs, bool) or not isinstance(fs, int) or not 1 <= fs <= 600:
        raise ValueError("valve: 'flush_s' must be 1..600 seconds")
    if not isinstance(out["reservoir"], bool):
        raise ValueError("valve: 'reservoir' must be true or false")
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


def update(ctl, changes):
    """ValveController.update(): the settings change only when the whole new set passes."""
    new = dict(ctl.cfg)
    new.update(changes)
    ctl.cfg = check_config(new)
    ctl._budget_s = _budget_s(ctl.cfg)


def override(ctl, mode, ttl_s, now_s):
    """ValveController.override()."""
    if mode == OVERRIDE_NONE:
        ctl.override_mode = OVERRIDE_NONE
        return True
    if mode not in (OVERRIDE_OPEN, OVERRIDE_CLOSED):
        return False
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not finite(now_s):
        return False
    if ttl_s <= 0 or ttl_s > ctl.cfg["override_max_s"]:
        return False
    ctl.override_mode = mode
    ctl._ovr_until = ctl._now(now_s) + ttl_s
    return True


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
