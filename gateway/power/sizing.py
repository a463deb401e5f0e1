"""``havel gateway power``: expected runtime on battery and solar balance of a roof configuration.

Draws come from ``hw/gateways`` (each figure names its source there, or says it is assumed): the Pi from
the Raspberry Pi documentation's typical bare-board current, the concentrator from its maker's figures
(receive, and transmit for the average TX duty), the UPS or HAT from its converter efficiency and own draw.
Sun from approximate monthly irradiation in Potsdam (query PVGIS for the real roof). Everything at 5 V on
the Pi's side; the battery supplies that through the converter's efficiency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from havel.errors import ConfigError
from havel.gateway.setup.boards import load_board, power_data

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


@dataclass(frozen=True)
class Sizing:
    """The result (watts, watt-hours, hours)."""

    pi: str
    board: str
    hat: str
    load_w: float  # at 5 V: Pi + concentrator (receive + TX duty share)
    battery_draw_w: float  # from the battery: load / efficiency + the HAT's own draw
    battery_wh: float
    usable_wh: float
    runtime_h: float  # on a full battery without sun
    autonomy_h: float
    battery_wh_needed: float  # for the autonomy
    solar_w: float
    solar: list[dict[str, float | str]] = field(default_factory=list)  # per month: yield, need, balance
    solar_w_needed: float = 0.0  # for a positive balance in the darkest month
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def meets_autonomy(self) -> bool:
        return self.runtime_h >= self.autonomy_h

    @property
    def worst_month(self) -> dict[str, float | str] | None:
        return min(self.solar, key=lambda m: float(m["balance_wh_day"])) if self.solar else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pi": self.pi,
            "board": self.board,
            "hat": self.hat,
            "load_w": round(self.load_w, 2),
            "battery_draw_w": round(self.battery_draw_w, 2),
            "battery_wh": self.battery_wh,
            "usable_wh": round(self.usable_wh, 1),
            "runtime_h": round(self.runtime_h, 1),
            "autonomy_h": self.autonomy_h,
            "meets_autonomy": self.meets_autonomy,
            "battery_wh_needed": round(self.battery_wh_needed, 1),
            "solar_w": self.solar_w,
            "solar": self.solar,
            "solar_w_needed": round(self.solar_w_needed, 1),
            "sources": self.sources,
        }


def size(
    *,
    pi: str,
    board: str,
    hat: str,
    battery_wh: float | None = None,
    chemistry: str | None = None,
    solar_w: float = 0.0,
    autonomy_h: float = 72.0,
    tx_duty: float | None = None,
) -> Sizing:
    """Runtime and solar balance; ConfigError naming the choices for an unknown Pi, HAT or chemistry."""
    data = power_data()
    pis, hats, usable = data["pis"], data["hats"], data["usable_fraction"]
    if pi not in pis:
        raise ConfigError(f"unknown Pi {pi!r}", hint=f"one of {', '.join(pis)}")
    if hat not in hats:
        raise ConfigError(f"unknown UPS/HAT {hat!r}", hint=f"one of {', '.join(hats)}")
    h = hats[hat]
    chemistry = chemistry or str(h.get("chemistry", "lifepo4"))
    if chemistry not in usable or chemistry == "source":
        raise ConfigError(
            f"unknown battery chemistry {chemistry!r}",
            hint=f"one of {', '.join(k for k in usable if k != 'source')}",
        )
    b = load_board(board)
    duty = float(data["tx_duty"]["default"] if tx_duty is None else tx_duty)
    if not 0 <= duty <= 0.1:
        raise ConfigError(f"TX duty {duty} is outside 0..0.1 (EU868 allows at most 10 % on one sub-band)")
    wh = float(h["battery_wh"] if battery_wh is None else battery_wh)
    if wh < 0 or solar_w < 0 or autonomy_h <= 0:
        raise ConfigError("battery Wh and solar W must be >= 0, the autonomy > 0 hours")
    pi_w = float(pis[pi]["w"])
    load = pi_w + b.rx_w + duty * (b.tx_w - b.rx_w)
    draw = load / float(h["efficiency"]) + float(h["overhead_w"])
    frac = float(usable[chemistry])
    usable_wh = wh * frac
    solar_cfg = data["solar"]
    eff = float(solar_cfg["system_efficiency"])
    need = draw * 24
    months: list[dict[str, float | str]] = []
    if solar_w:
        for m in MONTHS:
            gain = solar_w * float(solar_cfg["peak_sun_hours"][m]) * eff
            months.append(
                {
                    "month": m,
                    "yield_wh_day": round(gain, 1),
                    "need_wh_day": round(need, 1),
                    "balance_wh_day": round(gain - need, 1),
                }
            )
    darkest = min(float(solar_cfg["peak_sun_hours"][m]) for m in MONTHS)
    return Sizing(
        pi=pi,
        board=board,
        hat=hat,
        load_w=load,
        battery_draw_w=draw,
        battery_wh=wh,
        usable_wh=usable_wh,
        runtime_h=usable_wh / draw if draw else math.inf,
        autonomy_h=autonomy_h,
        battery_wh_needed=autonomy_h * draw / frac,
        solar_w=solar_w,
        solar=months,
        solar_w_needed=need / (darkest * eff),
        sources={  # one per figure, each with the figure it backs
            "pi": f"{pi_w:g} W: {pis[pi]['source']}",
            "board_rx": f"{b.rx_w:g} W receiving: {b.rx_source}",
            "board_tx": f"{b.tx_w:g} W transmitting: {b.tx_source}",
            "hat": str(h["source"]),
            "battery": str(usable["source"]),
            "tx_duty": str(data["tx_duty"]["source"]),
            "solar": str(solar_cfg["source"]),
        },
    )
