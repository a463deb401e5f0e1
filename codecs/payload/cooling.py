"""Cooling-point node: a normally-closed misting valve driven by ambient temperature, with interlocks.

Uplink FPort 1, ``readings`` (15 bytes): the byte layout is in docs/payloads.md (one table there, not a
copy here).

Downlinks: FPort 20 ``set_thresholds`` (on, off: i16 0.1 Cel, off < on), FPort 21 ``set_max_on_time``
(u16 s, 10..7200), FPort 22 ``set_water_budget`` (u16 L/day, 1..60000), FPort 23 ``override``
(u8 state 0 closed / 1 open / 2 auto, u16 ttl s), FPort 24 ``enable`` (u8 0/1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import construct as cs

from havel.codecs.payload.base import NodeCodec
from havel.codecs.payload.common import common_ports
from havel.codecs.payload.fields import Bool, Choice, Reading, described, header, temperature_c
from havel.codecs.payload.kind import NodeKind
from havel.codecs.payload.port import Data, Port, flags_of
from havel.errors import CodecError

MODES = {"auto": 0, "override_open": 1, "override_closed": 2, "flush": 3}
INTERLOCKS = ("reservoir_low", "budget", "max_on_time")
FAULTS = ("temperature", "valve", "flow_meter")


def _threshold() -> Reading:
    return Reading(cs.Int16sb, "0.1", lo=-20, hi=60, unit="Cel")


def _litres() -> Reading:
    return Reading(cs.Int16ub, "0.1", lo=0, hi=6553.4, sentinel=0xFFFF, unit="L")


READINGS = cs.Struct(
    header(
        described("valve_open", Bool(cs.Flag), "the valve is open now"),
        described("enabled", Bool(cs.Flag), "misting enabled (FPort 24)"),
        described("mode", Choice(cs.BitsInteger(2), MODES), "flush is a line flushing run"),
    ),
    "_flags"
    / cs.BitStruct(
        cs.Padding(2),
        described("flow_meter", Bool(cs.Flag), "no pulses while open, or pulses while closed (leak)"),
        described("valve", Bool(cs.Flag), "valve feedback disagrees with the output"),
        described("temperature", Bool(cs.Flag), "ambient sensor invalid or stale (valve kept closed)"),
        described("max_on_time", Bool(cs.Flag), "an opening since the last report hit the maximum on-time"),
        described("budget", Bool(cs.Flag), "today's water budget is used up (valve kept closed)"),
        described("reservoir_low", Bool(cs.Flag), "reservoir low (valve kept closed)"),
    ),
    described("actuations", Reading(cs.Int8ub, lo=0, hi=255), "openings since the last report, saturates"),
    described(
        "open_time", Reading(cs.Int16ub, lo=0, hi=65535, unit="s"), "open since the last report, saturates"
    ),
    described("water_used", _litres(), "since the last report"),
    described("water_today", _litres(), "since local midnight"),
    "ambient_temperature" / temperature_c(-40, 85),
    described("on_threshold", _threshold(), "in force"),
    described("off_threshold", _threshold(), "in force"),
    cs.Terminated,
)

UNITS = {
    "open_time": "s",
    "water_used": "L",
    "water_today": "L",
    "ambient_temperature": "Cel",
    "on_threshold": "Cel",
    "off_threshold": "Cel",
}
VALUES = (
    "actuations",
    "open_time",
    "water_used",
    "water_today",
    "ambient_temperature",
    "on_threshold",
    "off_threshold",
)
KEYS = ("valve_open", "enabled", "mode", *VALUES, "interlock", "faults")


# ``data``: the header's valve state, the values, then the flag byte as two objects
VIEW = {
    "valve_open": "_header.valve_open",
    "enabled": "_header.enabled",
    "mode": "_header.mode",
    **{k: k for k in VALUES},
    "interlock": {k: f"_flags.{k}" for k in INTERLOCKS},
    "faults": {k: f"_flags.{k}" for k in FAULTS},
}


def _from_data(d: Data) -> Any:
    interlock = flags_of(d, "interlock", INTERLOCKS)
    faults = flags_of(d, "faults", FAULTS)
    obj: dict[str, Any] = {k: d[k] for k in VALUES}
    obj["_header"] = {"valve_open": d["valve_open"], "enabled": d["enabled"], "mode": d["mode"]}
    obj["_flags"] = {**interlock, **faults}
    return obj


def _check(data: Data) -> tuple[list[str], list[str]]:
    # runs for every uplink: the common case (valve closed, no flag set) touches each flag group once
    interlock, faults = data["interlock"], data["faults"]
    errors: list[str] = []
    if data["valve_open"]:
        for lock in ("reservoir_low", "budget"):
            if interlock[lock]:
                errors.append(f"valve reported open while the {lock} interlock is active")
        if faults["temperature"] and data["mode"] == "auto":
            errors.append("valve reported open in automatic mode with a faulty temperature reading")
        if not data["enabled"]:
            errors.append("valve reported open while misting is disabled")
    warnings: list[str] = []
    if any(interlock.values()):
        warnings += [f"interlock.{k} is active" for k, v in interlock.items() if v]
    if any(faults.values()):
        warnings += [f"faults.{k}: fault reported" for k, v in faults.items() if v]
    if data["off_threshold"] >= data["on_threshold"]:
        warnings.append("off_threshold is not below on_threshold: no hysteresis")
    return warnings, errors


# --- downlinks ---------------------------------------------------------------------------------------

SET_THRESHOLDS = cs.Struct(
    header(),
    "on_threshold" / _threshold(),
    described("off_threshold", _threshold(), "below on_threshold"),
    cs.Terminated,
)
SET_MAX_ON_TIME = cs.Struct(
    header(), "max_on_time" / Reading(cs.Int16ub, lo=10, hi=7200, unit="s"), cs.Terminated
)
SET_WATER_BUDGET = cs.Struct(
    header(), "daily_budget" / Reading(cs.Int16ub, lo=1, hi=60000, unit="L"), cs.Terminated
)
OVERRIDE_STATES = {"closed": 0, "open": 1, "auto": 2}
OVERRIDE = cs.Struct(
    header(),
    "state" / Choice(cs.Int8ub, OVERRIDE_STATES),
    "ttl" / Reading(cs.Int16ub, lo=0, hi=65535, unit="s"),
    cs.Terminated,
)
ENABLE = cs.Struct(header(), "enabled" / Bool(cs.Flag), cs.Terminated)


def _thresholds_from_data(d: Data) -> Any:
    on, off = d["on_threshold"], d["off_threshold"]
    if isinstance(on, int | float) and isinstance(off, int | float) and not off < on:
        raise CodecError(f"off_threshold: {off} Cel must be below on_threshold {on} Cel (hysteresis)")
    return {"_header": {}, **d}


def _override_from_data(d: Data) -> Any:
    state, ttl = d["state"], d["ttl"]
    if state == "auto" and ttl != 0:
        raise CodecError("ttl: must be 0 with state 'auto' (ending an override has no time-to-live)")
    if state in ("open", "closed") and isinstance(ttl, int) and not 60 <= ttl <= 65535:
        raise CodecError(f"ttl: {ttl} s is out of range 60..65535 s for an override (it must expire)")
    return {"_header": {}, **d}


def _check_thresholds(data: Data) -> tuple[list[str], list[str]]:
    if data["off_threshold"] >= data["on_threshold"]:
        return [], ["off_threshold is not below on_threshold: the node must refuse this"]
    return [], []


def _check_override(data: Data) -> tuple[list[str], list[str]]:
    if data["state"] == "auto" and data["ttl"] != 0:
        return ["ttl: ignored with state 'auto'"], []
    if data["state"] in ("open", "closed") and data["ttl"] < 60:
        return [], [f"ttl: {data['ttl']} s is below 60 s: the node must refuse this override"]
    return [], []


def _with_header(d: Data) -> Any:
    return {"_header": {}, **d}


CODEC = NodeCodec(
    "cooling",
    "cooling point: misting valve state, water use, thresholds, interlocks",
    [
        Port(
            1,
            "up",
            "readings",
            "valve, actuations, open time, water used, ambient temperature, thresholds, interlocks, faults",
            READINGS,
            UNITS,
            KEYS,
            view=VIEW,
            from_data=_from_data,
            check=_check,
        ),
        Port(
            20,
            "down",
            "set_thresholds",
            "switch-on and switch-off temperatures",
            SET_THRESHOLDS,
            {"on_threshold": "Cel", "off_threshold": "Cel"},
            ("on_threshold", "off_threshold"),
            from_data=_thresholds_from_data,
            check=_check_thresholds,
        ),
        Port(
            21,
            "down",
            "set_max_on_time",
            "maximum time the valve stays open per activation",
            SET_MAX_ON_TIME,
            {"max_on_time": "s"},
            ("max_on_time",),
            from_data=_with_header,
        ),
        Port(
            22,
            "down",
            "set_water_budget",
            "daily water budget",
            SET_WATER_BUDGET,
            {"daily_budget": "L"},
            ("daily_budget",),
            from_data=_with_header,
        ),
        Port(
            23,
            "down",
            "override",
            "force open/closed for a time-to-live, or back to auto",
            OVERRIDE,
            {"ttl": "s"},
            ("state", "ttl"),
            from_data=_override_from_data,
            check=_check_override,
        ),
        Port(
            24,
            "down",
            "enable",
            "enable or disable misting",
            ENABLE,
            {},
            ("enabled",),
            from_data=_with_header,
        ),
        *common_ports(),
    ],
)


def _summary(data: Mapping[str, Any]) -> str:
    valve = "[bold cyan]OPEN[/bold cyan]" if data.get("valve_open") else "closed"
    return (
        f"{data.get('ambient_temperature')} °C, valve {valve} ({data.get('mode')}), "
        f"{data.get('water_today')} L today"
    )


def _sim_world(io: Any, world: Any, t_s: float, noise: Callable[[float, float], float]) -> None:
    io.sim["ds18b20"].temp_c = round(world.air_c(t_s) + noise(0, 0.1), 2)


# state: the valve's readings are actuator state, kept ahead of routine readings at the outbox quota
KIND = NodeKind(
    CODEC,
    kit="cooling",
    state=True,
    summary=_summary,
    sim_config=lambda world, interval_s: {
        "thresholds": {"min_off_s": 300, "max_on_s": 1800, "stale_s": 1200}
    },
    sim_world=_sim_world,
)
