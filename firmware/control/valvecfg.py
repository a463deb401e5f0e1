"""The valve controller's settings: defaults and the check (control/valve.py check_config() loads
this module for a check and releases it after: settings are checked at boot and on downlinks)."""

from control.valve import _T_MAX_C, _T_MIN_C, DAY_S

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
