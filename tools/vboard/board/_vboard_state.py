# The virtual board's "physical world": the staged wiring from scenario.json and the state that
# lives in the parts themselves (an SDS011 remembers its reporting mode across resets), kept in
# state.json so it survives the board's soft resets as it would on a bench.
import json

_scenario = None
_state = None


def scenario():
    global _scenario
    if _scenario is None:
        with open("/_vboard/scenario.json") as f:
            _scenario = json.load(f)
    return _scenario


def _initial(sc):
    """What the parts remember at their first power-up, as the scenario stages it."""
    st = {}
    for u in sc.get("uart", []):
        if u.get("device", "sds011") == "sds011":
            st["sds011"] = {
                "mode": u.get("mode", "active"),
                "working": not u.get("asleep", False),
                "period": int(u.get("working_period", 0)),
            }
    for bus in sc.get("i2c", []):
        for d in bus.get("devices", []):
            if d.get("chip") == "scd41":
                st["scd41"] = {"periodic": bool(d.get("periodic", False))}
    return st


def state():
    """The parts' own state, written out at every boot so the file is there from the start. A part whose
    state no command has changed since it was staged follows the scenario (a rewired board: a new
    scenario.json and a soft reset); what a command changed stays, as in the real part."""
    global _state
    if _state is None:
        staged = _initial(scenario())
        try:
            with open("/_vboard/state.json") as f:
                _state = json.load(f)
        except OSError:
            _state = {}
        before = _state.get("staged", {})
        for part, first in staged.items():
            if part not in _state or _state[part] == before.get(part):
                _state[part] = dict(first)
        _state["staged"] = staged
        save_state()
    return _state


def save_state():
    with open("/_vboard/state.json", "w") as f:
        json.dump(state(), f)


def pin_id(p):
    """The GPIO number of a Pin object or a plain int."""
    if p is None:
        return None
    if isinstance(p, int):
        return p
    return p.id


_ticks_last = None
_ticks_total = 0


def now_us():
    """Microseconds since the board booted, never wrapping (ticks_us wraps after about 18 minutes): the
    one clock the simulated parts schedule their bytes and conversions on."""
    global _ticks_last, _ticks_total
    import time

    t = time.ticks_us()
    if _ticks_last is not None:
        _ticks_total += time.ticks_diff(t, _ticks_last)
    _ticks_last = t
    return _ticks_total
