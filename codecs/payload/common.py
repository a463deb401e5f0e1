"""Payloads every Havel node speaks, whatever it measures (docs/payloads.md, "Common to every node").

Uplink FPort 2, ``status`` (the answer to ``request_status``, and sent after every boot): firmware version,
reset cause, uptime, battery, reporting interval. The layout tables in docs/payloads.md are printed from
the Structs below (codecs/payload/layout.py).

Downlinks: FPort 10 ``set_interval`` (u16 s, 60..43200), FPort 11 ``request_status`` (header only),
FPort 12 ``reboot`` (u8 delay s, 0..255).
"""

from __future__ import annotations

from typing import Any

import construct as cs

from havel.codecs.payload.fields import Choice, Reading, battery_mv, described, header
from havel.codecs.payload.port import Data, Port
from havel.errors import CodecError

RESET_CAUSES = {
    "power_on": 0,
    "watchdog": 1,
    "brownout": 2,
    "software": 3,
    "deep_sleep": 4,
    "pin": 5,
    "boot_loop": 6,
}

STATUS = cs.Struct(
    header(described("reset_cause", Choice(cs.BitsInteger(4), RESET_CAUSES), "others decode as unknown_<n>")),
    described("firmware", cs.Array(3, Reading(cs.Int8ub, lo=0, hi=255)), 'major, minor, patch: "1.2.3"'),
    described("uptime", Reading(cs.Int32ub, lo=0, hi=0xFFFFFFFF, unit="s"), "since the last reset"),
    "battery" / battery_mv(),
    described("interval", Reading(cs.Int16ub, lo=0, hi=0xFFFF, unit="s"), "the reporting interval in force"),
    cs.Terminated,
)


def _status_to_data(c: Any) -> Data:
    # item access: ``c`` is construct's Container or the fast path's plain dicts
    major, minor, patch = c["firmware"]
    return {
        "firmware": f"{major}.{minor}.{patch}",
        "reset_cause": c["_header"]["reset_cause"],
        "uptime": c["uptime"],
        "battery": c["battery"],
        "interval": c["interval"],
    }


def _status_from_data(d: Data) -> Any:
    fw = d["firmware"]
    parts = fw.split(".") if isinstance(fw, str) else []
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):  # ("²".isdigit())
        raise CodecError(f"firmware: expected 'major.minor.patch' like '1.2.3', got {fw!r}")
    return {
        "_header": {"reset_cause": d["reset_cause"]},
        "firmware": [int(p) for p in parts],
        "uptime": d["uptime"],
        "battery": d["battery"],
        "interval": d["interval"],
    }


def _status_check(data: Data) -> tuple[list[str], list[str]]:
    if data["reset_cause"].startswith("unknown_"):
        return [f"reset_cause: code {data['reset_cause'][8:]} has no name in format version 1"], []
    return [], []


SET_INTERVAL = cs.Struct(header(), "interval" / Reading(cs.Int16ub, lo=60, hi=43200, unit="s"), cs.Terminated)
REQUEST_STATUS = cs.Struct(header(), cs.Terminated)
REBOOT = cs.Struct(
    header(),
    described("delay", Reading(cs.Int8ub, lo=0, hi=255, unit="s"), "time to send the acknowledgement first"),
    cs.Terminated,
)


def _with_header(d: Data) -> Data:
    return {"_header": {}, **d}


def common_ports() -> list[Port]:
    """The status uplink and the three downlinks every node codec carries."""
    return [
        Port(
            2,
            "up",
            "status",
            "firmware, reset cause, uptime, battery, interval",
            STATUS,
            {"uptime": "s", "battery": "mV", "interval": "s"},
            ("firmware", "reset_cause", "uptime", "battery", "interval"),
            to_data=_status_to_data,
            from_data=_status_from_data,
            check=_status_check,
        ),
        Port(
            10,
            "down",
            "set_interval",
            "set the reporting interval",
            SET_INTERVAL,
            {"interval": "s"},
            ("interval",),
            from_data=_with_header,
        ),
        Port(
            11,
            "down",
            "request_status",
            "ask for a status uplink on FPort 2",
            REQUEST_STATUS,
            {},
            (),
            from_data=_with_header,
        ),
        Port(
            12,
            "down",
            "reboot",
            "reboot after a delay",
            REBOOT,
            {"delay": "s"},
            ("delay",),
            from_data=_with_header,
        ),
    ]
