"""Cooling-point (mist shower) valve controller: a pure state machine, no I/O, no `machine`.

The valve is normally closed; this module only decides. Every rule closes the valve; only the
temperature hysteresis (or a time-limited override) opens it, and only when no rule objects:

  disabled config -> override "closed" -> reservoir low -> temperature invalid -> temperature stale
  -> city rule (mist only above city_min_c) -> daily budget -> max on-time -> minimum off-time
  -> override "open" -> hysteresis (open at >= on_c, close at <= off_c).

Times are seconds of a monotonic clock the caller keeps (`now_s`); it needs no network and no wall
clock. After a reset the controller starts closed and waits the minimum off-time before it may open
(a brown-out caused by the solenoid must not turn into rapid cycling). The daily budget and the
actuation counter survive resets through snapshot()/restore().
"""

from micropython import const

# Why the valve is in its state (reported in the status uplink; the cooling codec names them).
R_BOOT = const(0)
R_COOL = const(1)
R_HEAT = const(2)
R_CITY = const(3)
R_INVALID = const(4)
R_STALE = const(5)
R_RESERVOIR = const(6)
R_BUDGET = const(7)
R_MAX_ON = const(8)
R_MIN_OFF = const(9)
R_OVERRIDE_OPEN = const(10)
R_OVERRIDE_CLOSED = const(11)
R_DISABLED = const(12)
R_FLUSH = const(13)

REASON_NAMES = ("boot", "cool", "heat", "city_rule", "temp_invalid", "temp_stale", "reservoir_low",
                "budget_exhausted", "max_on_time", "min_off_time", "override_open", "override_closed",
                "disabled", "flush")

OVERRIDE_NONE = const(0)
OVERRIDE_OPEN = const(1)
OVERRIDE_CLOSED = const(2)

DAY_S = const(86400)
_T_MIN_C = -40.0  # a plausible outside air temperature; anything else is a broken sensor
_T_MAX_C = 60.0

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


def _budget_s(cfg):
    return int(cfg["budget_l_per_day"] * 60 / cfg["flow_l_per_min"])


def temp_valid(t):
    """A number inside the plausible outside range (None, NaN, 85.0 and the like are not)."""
    if t is None or isinstance(t, bool) or not isinstance(t, (int, float)):
        return False
    return t == t and _T_MIN_C <= t <= _T_MAX_C


class ValveController:
    """Decide the valve state. `step()` returns True for open; read `reason`, `opens`, `used_s`."""

    def __init__(self, cfg, now_s, enabled=True):
        self.cfg = check_config(cfg)
        self._budget_s = _budget_s(self.cfg)
        self.enabled = enabled
        self.open = False  # off at boot, whatever it was before the reset
        self.reason = R_BOOT if enabled else R_DISABLED
        self.opens = 0  # actuations: closed -> open transitions, lifetime (persisted)
        self.closes = 0
        self.used_s = 0  # open seconds in the current budget day (persisted)
        self.total_open_s = 0  # lifetime open seconds (persisted; reports send differences)
        self.day_s = 0  # seconds into the current budget day (persisted)
        self.changed = False  # True on the step that changed the state (for an event uplink)
        self._last_s = now_s
        self._opened_at = None
        self._closed_at = now_s  # the reset counts as a closing: minimum off-time applies
        self._ovr = OVERRIDE_NONE
        self._ovr_until = 0
        self._by_override = False
        self._by_flush = False

    # -- persistence -----------------------------------------------------------------------------
    def snapshot(self, now_s=None):
        """What must survive a reset: [opens, closes, used_s, day_s, total_open_s] (ints).

        Taken while the valve is open (with now_s), used_s already counts the rest of this
        activation as spent: a reset in the middle of it can never refund water budget, and the
        caller need not write flash during the activation."""
        used = self.used_s
        if self.open and now_s is not None:
            t = self.next_check_s(now_s)
            if t is not None and t > now_s:
                used += t - now_s
        return [self.opens, self.closes, int(used), int(self.day_s), int(self.total_open_s)]

    def restore(self, snap):
        """Take back a snapshot after a reset; a malformed one is refused (returns False)."""
        try:
            opens, closes, used, day, total = snap
            for v in snap:
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    return False
            if day >= DAY_S:
                return False
        except (TypeError, ValueError):
            return False
        self.opens = opens
        self.closes = closes
        self.used_s = used
        self.day_s = day
        self.total_open_s = total
        return True

    # -- settings from downlinks --------------------------------------------------------------------
    def update(self, changes):
        """Apply a partial settings change (e.g. from a downlink); ValueError names a bad key and
        leaves the settings as they were."""
        new = dict(self.cfg)
        new.update(changes)
        self.cfg = check_config(new)
        self._budget_s = _budget_s(self.cfg)

    def set_enabled(self, on):
        """Misting on/off (downlink FPort 24). Disabled: closed, whatever else holds."""
        self.enabled = bool(on)

    def litres(self, seconds):
        """Water for `seconds` of open valve at the configured flow."""
        return seconds * self.cfg["flow_l_per_min"] / 60.0

    # -- overrides ---------------------------------------------------------------------------------
    def override(self, mode, ttl_s, now_s):
        """Downlink/manual override with a time-to-live. mode OVERRIDE_OPEN, OVERRIDE_CLOSED or
        OVERRIDE_NONE (back to automatic). Returns False (and changes nothing) for a TTL that is
        missing, zero or longer than override_max_s: an override never lasts forever."""
        if mode == OVERRIDE_NONE:
            self._ovr = OVERRIDE_NONE
            return True
        if mode not in (OVERRIDE_OPEN, OVERRIDE_CLOSED):
            return False
        if not isinstance(ttl_s, int) or ttl_s <= 0 or ttl_s > self.cfg["override_max_s"]:
            return False
        self._ovr = mode
        self._ovr_until = now_s + ttl_s
        return True

    def override_left_s(self, now_s):
        """Seconds of override left (0 when none)."""
        if self._ovr == OVERRIDE_NONE:
            return 0
        return max(0, self._ovr_until - now_s)

    @property
    def override_mode(self):
        return self._ovr

    def budget_left_s(self):
        return max(0, self._budget_s - self.used_s)

    # -- the rules -----------------------------------------------------------------------------------
    def _account(self, now_s):
        dt = now_s - self._last_s
        if dt < 0:
            dt = 0  # a clock that went backwards must not refund budget
        self._last_s = now_s
        if self.open:
            self.used_s += dt
            self.total_open_s += dt
        self.day_s += dt
        while self.day_s >= DAY_S:
            self.day_s -= DAY_S
            self.used_s = 0
        if self._ovr != OVERRIDE_NONE and now_s >= self._ovr_until:
            self._ovr = OVERRIDE_NONE  # TTL over: back to automatic

    def _decide(self, now_s, temp_c, temp_age_s, reservoir_ok):
        c = self.cfg
        if not self.enabled:
            return False, R_DISABLED
        if self._ovr == OVERRIDE_CLOSED:
            return False, R_OVERRIDE_CLOSED
        if c["reservoir"] and reservoir_ok is not True:
            return False, R_RESERVOIR  # low, or the level switch cannot be read: closed
        if not temp_valid(temp_c):
            return False, R_INVALID
        if temp_age_s is None or temp_age_s < 0 or temp_age_s > c["stale_s"]:
            return False, R_STALE
        if temp_c <= c["city_min_c"]:
            return False, R_CITY
        if self.used_s >= self._budget_s:
            return False, R_BUDGET
        if self.open:
            if now_s - self._opened_at >= c["max_on_s"]:
                return False, R_MAX_ON
        elif now_s - self._closed_at < c["min_off_s"]:
            return False, R_MIN_OFF
        if self._ovr == OVERRIDE_OPEN:
            return True, R_OVERRIDE_OPEN
        if self.open and self._by_flush:
            if now_s - self._opened_at >= c["flush_s"]:
                return False, R_COOL  # flushed
            return True, R_FLUSH
        if self.open and not self._by_override:
            if temp_c <= c["off_c"]:
                return False, R_COOL
            return True, R_HEAT
        # closed, or opened by an override that has ended: the on threshold decides
        if temp_c >= c["on_c"]:
            return True, R_HEAT
        if not self.open and c["flush_after_s"] and now_s - self._closed_at >= c["flush_after_s"]:
            return True, R_FLUSH  # the line stood still too long (all interlocks passed above)
        return False, R_COOL

    def step(self, now_s, temp_c, temp_age_s, reservoir_ok):
        """Advance to now_s with the latest inputs; returns True when the valve must be open.

        temp_c: outside temperature (None when the sensor failed); temp_age_s: seconds since it was
        measured; reservoir_ok: True (enough water), False (low) or None (switch unreadable).
        """
        self._account(now_s)
        want, why = self._decide(now_s, temp_c, temp_age_s, reservoir_ok)
        self.changed = want != self.open
        if want and not self.open:
            self.opens += 1
            self._opened_at = now_s
            self._by_override = why == R_OVERRIDE_OPEN
            self._by_flush = why == R_FLUSH
        elif self.open and not want:
            self.closes += 1
            self._closed_at = now_s
        self.open = want
        self.reason = why
        return want

    def next_check_s(self, now_s):
        """Latest time the caller must step again while the valve is open (max on-time, budget,
        override expiry), so that a limit is not overrun by a long sleep."""
        if not self.open:
            return None
        t = self._opened_at + self.cfg["max_on_s"]
        b = now_s + self.budget_left_s()
        if b < t:
            t = b
        if self._ovr != OVERRIDE_NONE and self._ovr_until < t:
            t = self._ovr_until
        if self._by_flush and self._opened_at + self.cfg["flush_s"] < t:
            t = self._opened_at + self.cfg["flush_s"]
        return t
