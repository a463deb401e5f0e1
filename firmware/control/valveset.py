"""The valve controller's settings check, settings changes and overrides. control/valve.py loads
this module for one call (a settings downlink, an override, the check at boot) and releases it
after; the defaults are control/valvecfg.py's (boot code), since a change is checked as a
complete set: the controller's settings with the change applied."""

from control.valve import (
    _T_MAX_C,
    _T_MIN_C,
    DAY_S,
    OVERRIDE_CLOSED,
    OVERRIDE_NONE,
    OVERRIDE_OPEN,
    _budget_s,
    finite,
)


def check(out):
    """Raise ValueError naming the key when a value of the complete settings `out` is out of range
    or inconsistent (control/valvecfg.py check_config() fills in the defaults first)."""
    for k in ("on_c", "off_c", "city_min_c"):
        v = out[k]
        # no (int, float) tuple: it would be built for every value checked
        if (
            isinstance(v, bool)
            or not (isinstance(v, int) or isinstance(v, float))
            or not _T_MIN_C <= v <= _T_MAX_C
        ):
            raise ValueError("valve: '%s' must be a temperature in %d..%d C" % (k, _T_MIN_C, _T_MAX_C))
    if out["off_c"] >= out["on_c"]:
        raise ValueError("valve: 'off_c' must be below 'on_c' (hysteresis)")
    for k in ("min_off_s", "max_on_s", "stale_s", "override_max_s"):
        v = out[k]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0 or v > DAY_S:
            raise ValueError("valve: '%s' must be a whole number of seconds in 1..86400" % k)
    for k in ("budget_l_per_day", "flow_l_per_min"):
        v = out[k]
        if isinstance(v, bool) or not (isinstance(v, int) or isinstance(v, float)) or not v > 0 or v > 60000:
            raise ValueError("valve: '%s' must be a positive number of litres" % k)
    fa = out["flush_after_s"]
    if isinstance(fa, bool) or not isinstance(fa, int) or fa < 0 or fa > 30 * DAY_S:
        raise ValueError("valve: 'flush_after_s' must be 0 (off) or seconds up to 30 days")
    fs = out["flush_s"]
    if isinstance(fs, bool) or not isinstance(fs, int) or not 1 <= fs <= 600:
        raise ValueError("valve: 'flush_s' must be 1..600 seconds")
    if not isinstance(out["reservoir"], bool):
        raise ValueError("valve: 'reservoir' must be true or false")


def update(ctl, changes):
    """ValveController.update(): the settings change only when the whole new set passes."""
    for k in changes:
        if k not in ctl.cfg:  # a complete set: every setting there is
            raise ValueError("valve: unknown setting '%s'" % k)
    c = ctl.cfg
    for k in changes:  # checked in place (no copy of the settings): new values in, old in changes
        c[k], changes[k] = changes[k], c[k]
    try:
        check(c)
    except ValueError:
        for k in changes:  # refused: the old values back
            c[k], changes[k] = changes[k], c[k]
        raise
    for k in changes:
        changes[k] = c[k]
    ctl._budget_s = _budget_s(c)


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
