"""What a UPS reading means for the gateway, and which changes are events. Pure: no I/O, no clock.

NUT's ``ups.status`` holds flags: ``OL`` on line (mains), ``OB`` on battery, ``LB`` low battery (the UPS's
own threshold), ``RB`` replace battery, ``CHRG``/``DISCHRG``. Havel calls the battery low earlier than the
UPS when ``battery.runtime`` or ``battery.charge`` fall below its own limits, so that it has stopped
cleanly long before upsmon powers the Pi off.
"""

from __future__ import annotations

from dataclasses import dataclass

# states of the power supply as the gateway sees it
MAINS, BATTERY, LOW, UNKNOWN = "mains", "battery", "low", "unknown"


@dataclass(frozen=True)
class Limits:
    """On battery, below either of these the battery counts as low (``[power]`` keys)."""

    low_runtime_s: float = 600.0
    low_charge_pct: float = 25.0


@dataclass(frozen=True)
class Reading:
    """One reading of the UPS variables."""

    status: str  # ups.status as read, e.g. "OB DISCHRG"
    on_battery: bool
    ups_low: bool  # the UPS itself says LB
    charge_pct: float | None
    runtime_s: float | None
    replace_battery: bool

    def state(self, limits: Limits) -> str:
        """mains, battery or low."""
        if not self.on_battery:
            return MAINS
        if (
            self.ups_low
            or (self.runtime_s is not None and self.runtime_s < limits.low_runtime_s)
            or (self.charge_pct is not None and self.charge_pct < limits.low_charge_pct)
        ):
            return LOW
        return BATTERY

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "charge_pct": self.charge_pct,
            "runtime_s": self.runtime_s,
            "replace_battery": self.replace_battery,
        }


def _number(v: str | None) -> float | None:
    if v is None:
        return None
    try:
        return float(v)
    except ValueError:
        return None


def reading(variables: dict[str, str]) -> Reading:
    """A Reading from NUT variables; ValueError when ``ups.status`` is missing or says neither OL nor OB."""
    status = variables.get("ups.status", "").strip()
    flags = set(status.split())
    if not flags & {"OL", "OB"}:
        raise ValueError(f"ups.status {status!r} says neither OL (mains) nor OB (battery)")
    return Reading(
        status=status,
        on_battery="OB" in flags,
        ups_low="LB" in flags,
        charge_pct=_number(variables.get("battery.charge")),
        runtime_s=_number(variables.get("battery.runtime")),
        replace_battery="RB" in flags,
    )


def event_for(old: str, new: str) -> str | None:
    """The gateway event of a change of state (None when nothing to say)."""
    if old == new:
        return None
    if new == LOW:
        return "power_low_battery"
    if new == BATTERY and old in (MAINS, UNKNOWN):
        return "power_on_battery"
    if new == MAINS and old in (BATTERY, LOW):
        return "power_mains_back"
    return None
