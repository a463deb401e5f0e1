"""Cooling-point (mist shower) valve controller: a pure state machine, no I/O, no `machine`.

The valve is normally closed; this module only decides. Every rule closes the valve; only the
temperature hysteresis (or a time-limited override) opens it, and only when no rule objects:

  disabled config -> override "closed" -> reservoir low -> temperature invalid -> temperature stale
  -> city rule (mist only above city_min_c) -> daily budget -> max on-time -> minimum off-time
  -> override "open" -> hysteresis (open at >= on_c, close at <= off_c).

Times are seconds of a clock the caller keeps (`now_s`); it needs no network and no wall clock, and
does not trust that clock to be monotonic: the controller keeps its own elapsed time, which a clock
that stops or jumps back does not move (so no limit can be stretched by it). Non-finite inputs (NaN
or infinite temperature, age or time) count as invalid: closed.

Across resets: the controller starts closed and waits the minimum off-time before it may open (a
brown-out caused by the solenoid must not turn into rapid cycling; a reset is a closing, so neither
the minimum off-time nor the maximum on-time can be bypassed by one). The daily budget, the budget
day and the actuation counters survive resets through snapshot()/restore(). While the valve is
open, a snapshot counts the next SAVE_AHEAD_S seconds (or less, up to the next limit) as already
used, and save_due() asks for a new snapshot when that is spent: a reset at any moment can never
refund water, and costs at most SAVE_AHEAD_S of budget. Nothing persisted is an absolute time.
"""

import sys

from lw.mac import release
from micropython import const

# Why the valve is in its state (host/simnode.py's VALVE_REASON_NAMES names them, for the simulator).
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

OVERRIDE_NONE = const(0)
OVERRIDE_OPEN = const(1)
OVERRIDE_CLOSED = const(2)

DAY_S = const(86400)
SAVE_AHEAD_S = const(60)  # while open: persist at least this often, counting this far ahead as used
_T_MIN_C = -40.0  # a plausible outside air temperature; anything else is a broken sensor
_T_MAX_C = 60.0


def call_once(name, fn, args):
    """Call `fn` of the one-job module `name` with `args`: loaded for the call and released after
    (a module already loaded by an outer call stays for it). apps/cooling.py uses it too."""
    mine = name not in sys.modules
    __import__(name)
    try:
        return getattr(sys.modules[name], fn)(*args)
    finally:
        if mine:
            release(name)


def check_config(cfg):
    """Return a complete settings dict from `cfg` (missing keys take control/valvecfg.py's
    DEFAULTS). Raises ValueError naming the key when a value is out of range or inconsistent."""
    return call_once("control.valvecfg", "check_config", (cfg,))


def _budget_s(cfg):
    return int(cfg["budget_l_per_day"] * 60 / cfg["flow_l_per_min"])


def finite(x):
    """An int or float that is neither NaN nor infinite (bools are not numbers here)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    return x - x == 0  # NaN - NaN and inf - inf are NaN


class ValveController:
    """Decide the valve state. `step()` returns True for open; read `reason`, `opens`, `used_s`."""

    # set by control/valvecfg.py init() (annotations only: MicroPython compiles no code for them)
    cfg: dict
    _budget_s: int
    _ovr_until: int

    def __init__(self, cfg, now_s, enabled=True):
        """Closed, waiting the minimum off-time (a reset counts as a closing); settings from `cfg`
        (checked: ValueError names a bad key). Boot code: control/valvecfg.py init()."""
        call_once("control.valvecfg", "init", (self, cfg, now_s, enabled))

    # -- persistence -----------------------------------------------------------------------------
    def snapshot(self, now_s=None):
        """What must survive a reset: [opens, closes, used_s, day_s, total_open_s] (ints).

        Taken while the valve is open (with now_s), used_s already counts the next SAVE_AHEAD_S
        seconds (less when a limit closes the valve sooner) as spent; save_due() says when that
        is used up and a new snapshot must be written. So a reset at any moment never refunds
        water budget, and flash is written at most every SAVE_AHEAD_S while open."""
        used = self.used_s
        self._charged_until = None
        if self.open and finite(now_s):
            now_i = self._now(now_s)
            h = now_i + SAVE_AHEAD_S
            lim = self._limit_i(now_i)
            if lim < h:
                h = lim
            if h > now_i:
                used += h - now_i
            self._charged_until = h
        return [self.opens, self.closes, int(used), int(self.day_s), int(self.total_open_s)]

    def save_due(self, now_s):
        """True while open when the last snapshot's advance charge is spent (or none was taken)."""
        if not self.open:
            return False
        return self._charged_until is None or not finite(now_s) or self._now(now_s) >= self._charged_until

    def restore(self, snap, lost_newest=False):
        """Take back a snapshot after a reset; a malformed one is refused (returns False).

        lost_newest: the store had a newer copy it could not read (a damaged slot): the snapshot
        may be one save behind, so SAVE_AHEAD_S more are charged (a save never charges more than
        that beyond the one before it)."""
        return call_once("control.valvecfg", "restore", (self, snap, lost_newest))

    def restore_unreadable(self):
        """The persisted state exists but no copy can be read: fail closed, the budget of a full
        day counts as spent (from now), since how much was used is unknown."""
        call_once("control.valvecfg", "restore_unreadable", (self,))

    # -- settings from downlinks --------------------------------------------------------------------
    def update(self, changes):
        """Apply a partial settings change (e.g. from a downlink); ValueError names a bad key and
        leaves the settings as they were."""
        call_once("control.valveset", "update", (self, changes))

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
        return call_once("control.valveset", "override", (self, mode, ttl_s, now_s))

    def budget_left_s(self):
        return max(0, self._budget_s - self.used_s)

    # -- the rules -----------------------------------------------------------------------------------
    def _now(self, now_s):
        """The controller's own time at the caller's now_s (without moving it)."""
        dt = now_s - self._last_s
        return self._t + dt if dt > 0 else self._t

    def _account(self, now_s):
        dt = now_s - self._last_s
        if dt < 0:
            dt = 0  # a clock that went backwards must not refund budget nor stretch a limit
        self._last_s = now_s
        self._t += dt
        if self.open:
            self.used_s += dt
            self.total_open_s += dt
        self.day_s += dt
        while self.day_s >= DAY_S:
            self.day_s -= DAY_S
            self.used_s = 0
        if self.override_mode != OVERRIDE_NONE and self._t >= self._ovr_until:
            self.override_mode = OVERRIDE_NONE  # TTL over: back to automatic

    def _decide(self, temp_c, temp_age_s, reservoir_ok):
        c = self.cfg
        now = self._t
        if not self.enabled:
            return False, R_DISABLED
        if self.override_mode == OVERRIDE_CLOSED:
            return False, R_OVERRIDE_CLOSED
        if c["reservoir"] and reservoir_ok is not True:
            return False, R_RESERVOIR  # low, or the level switch cannot be read: closed
        # a number inside the plausible outside range (None, NaN, 85.0 and the like are not)
        if not finite(temp_c) or not _T_MIN_C <= temp_c <= _T_MAX_C:
            return False, R_INVALID
        if not finite(temp_age_s) or not 0 <= temp_age_s <= c["stale_s"]:
            return False, R_STALE  # unknown, NaN, from the future or too old
        if temp_c <= c["city_min_c"]:
            return False, R_CITY
        if self.used_s >= self._budget_s:
            return False, R_BUDGET
        if self.open:
            if now - self._opened_at >= c["max_on_s"]:
                return False, R_MAX_ON
        elif now - self._closed_at < c["min_off_s"]:
            return False, R_MIN_OFF
        if self.override_mode == OVERRIDE_OPEN:
            return True, R_OVERRIDE_OPEN
        if self.open and self._by_flush:
            if now - self._opened_at >= c["flush_s"]:
                return False, R_COOL  # flushed
            return True, R_FLUSH
        if self.open and not self._by_override:
            if temp_c <= c["off_c"]:
                return False, R_COOL
            return True, R_HEAT
        # closed, or opened by an override that has ended: the on threshold decides
        if temp_c >= c["on_c"]:
            return True, R_HEAT
        if not self.open and c["flush_after_s"] and now - self._closed_at >= c["flush_after_s"]:
            return True, R_FLUSH  # the line stood still too long (all interlocks passed above)
        return False, R_COOL

    def step(self, now_s, temp_c, temp_age_s, reservoir_ok):
        """Advance to now_s with the latest inputs; returns True when the valve must be open.

        temp_c: outside temperature (None when the sensor failed); temp_age_s: seconds since it was
        measured; reservoir_ok: True (enough water), False (low) or None (switch unreadable).
        """
        if finite(now_s):
            self._account(now_s)
            want, why = self._decide(temp_c, temp_age_s, reservoir_ok)
        else:
            want, why = False, R_INVALID  # no usable time: no rule can be checked
        self.changed = want != self.open
        if want and not self.open:
            self.opens += 1
            self._opened_at = self._t
            self._by_override = why == R_OVERRIDE_OPEN
            self._by_flush = why == R_FLUSH
        elif self.open and not want:
            self.closes += 1
            self._closed_at = self._t
            self._charged_until = None
        self.open = want
        self.reason = why
        return want

    def _limit_i(self, now_i):
        """Own time at which a limit closes the open valve (max on-time, budget, override, flush)."""
        t = self._opened_at + self.cfg["max_on_s"]
        b = now_i + self.budget_left_s()
        if b < t:
            t = b
        if self.override_mode != OVERRIDE_NONE and self._ovr_until < t:
            t = self._ovr_until
        if self._by_flush and self._opened_at + self.cfg["flush_s"] < t:
            t = self._opened_at + self.cfg["flush_s"]
        return t

    def next_check_s(self, now_s):
        """Latest time (on the caller's clock) the caller must step again while the valve is open
        (max on-time, budget, override expiry, the next save), so that a limit is not overrun by a
        long sleep and the advance charge of the last snapshot does not run out unsaved."""
        if not self.open or not finite(now_s):
            return None
        now_i = self._now(now_s)
        t = self._limit_i(now_i)
        if self._charged_until is not None and self._charged_until < t:
            t = self._charged_until
        return now_s + (t - now_i)
