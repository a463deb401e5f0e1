"""The cooling node's valve downlinks (FPorts 20..24), applied once decoded: apps/cooling.py
loads this module for one downlink and releases it after (the decoder, payload/coolingdown.py,
has been released by then). The settings changed are saved and outlive resets."""

import json

from control import valve as vc
from payload import cooling as codec

from apps.cooling import SETTINGS


def _save_settings(a):
    if a._crec is not None:
        d = {"enabled": a.ctl.enabled}
        for k in SETTINGS:
            d[k] = a.ctl.cfg[k]
        a._crec.save(json.dumps(d).encode())


def downlink(a, fport, d, now_ms):
    """Apply `d`, the decoded valve downlink on `fport`; a refused one is noted in a.refused."""
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
