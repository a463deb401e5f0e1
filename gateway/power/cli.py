"""``havel gateway power`` (sizing) and ``havel gateway power-check`` (may the daemon start?)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from havel.gateway.power import sizing
from havel.gateway.setup.boards import load_kit


@click.command("power")
@click.option("--kit", help="A roof kit from hw/gateways/kits (its Pi, board, HAT, battery and panel).")
@click.option("--pi", help="Raspberry Pi model: pi3bplus, pi4b, pi5, zero2w.")
@click.option("--board", help="Concentrator board (havel gateway setup --list-boards).")
@click.option("--hat", help="UPS or HAT: none, pijuice, usb_ups, dc_ups_12v.")
@click.option("--battery-wh", type=click.FloatRange(min=0), help="Battery capacity (default: the HAT's).")
@click.option("--battery", "chemistry", help="lifepo4, lead_acid or lipo (default: the HAT's).")
@click.option("--solar-w", type=click.FloatRange(min=0), help="Solar panel peak power.")
@click.option("--autonomy-h", type=click.FloatRange(min=1), help="Hours the city asks for (default 72).")
@click.option("--tx-duty", type=click.FloatRange(0, 0.1), help="Average transmit duty (default 0.01).")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def power(
    kit: str | None,
    pi: str | None,
    board: str | None,
    hat: str | None,
    battery_wh: float | None,
    chemistry: str | None,
    solar_w: float | None,
    autonomy_h: float | None,
    tx_duty: float | None,
    as_json: bool,
) -> None:
    """Expected runtime on battery and solar balance of a roof configuration, from documented draws."""
    base = load_kit(kit) if kit else {}
    s = sizing.size(
        pi=pi or str(base.get("pi", "pi4b")),
        board=board or str(base.get("board", "rak2287_pihat")),
        hat=hat or str(base.get("hat", "none")),
        battery_wh=battery_wh if battery_wh is not None else base.get("battery_wh"),
        chemistry=chemistry or base.get("battery"),
        solar_w=solar_w if solar_w is not None else float(base.get("solar_w", 0)),
        autonomy_h=autonomy_h or float(base.get("autonomy_h", 72)),
        tx_duty=tx_duty,
    )
    if as_json:
        click.echo(json.dumps(s.as_dict(), indent=2))
        return
    click.echo(
        f"{s.pi} + {s.board} + {s.hat}: {s.load_w:.2f} W at 5 V, {s.battery_draw_w:.2f} W from the battery"
    )
    if s.battery_wh:
        verdict = "meets" if s.meets_autonomy else "does NOT meet"
        click.echo(
            f"battery {s.battery_wh:g} Wh ({s.usable_wh:.0f} Wh usable): {s.runtime_h:.1f} h without sun, "
            f"{verdict} {s.autonomy_h:g} h (needs {s.battery_wh_needed:.0f} Wh)"
        )
    else:
        click.echo(f"no battery: {s.autonomy_h:g} h would need {s.battery_wh_needed:.0f} Wh")
    if s.solar:
        click.echo(f"solar {s.solar_w:g} W, Wh per day (yield - need = balance):")
        for m in s.solar:
            gain, need, bal = m["yield_wh_day"], m["need_wh_day"], m["balance_wh_day"]
            click.echo(f"  {m['month']}: {gain:7.1f} - {need:.1f} = {bal:+.1f}")
        worst = s.worst_month
        assert worst is not None
        ok = "positive all year" if float(worst["balance_wh_day"]) >= 0 else f"negative in {worst['month']}"
        click.echo(f"balance {ok}; {s.solar_w_needed:.0f} W of panel keep the darkest month positive")
    click.echo("sources:")
    for what, src in s.sources.items():
        click.echo(f"  {what}: {src}")


@click.command("power-check")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/etc/havel/gateway.toml"),
)
def power_check(config_path: Path) -> None:
    """Exit 1 while the UPS battery is low (the gateway unit's ExecStartPre), else 0."""
    from havel.gateway import config as config_mod
    from havel.gateway.power.component import check

    cfg = config_mod.load(config_path)
    section = cfg.power
    if section is None:
        click.echo("no [power] section: nothing to check")
        return
    ok, text = check(section)
    click.echo(text if ok else f"{text}: not starting until mains is back")
    sys.exit(0 if ok else 1)


def status_lines(st: dict[str, Any]) -> list[str]:
    """What ``havel gateway status`` prints for the rooftop components (UPS, forwarder watchdog)."""
    lines = []
    pw = st.get("power")
    if isinstance(pw, dict):
        if pw.get("reachable") is False:
            lines.append(f"power ({pw.get('ups')}): [red]UPS not readable[/red]: {pw.get('last_error')}")
        else:
            color = {"mains": "green", "battery": "yellow"}.get(str(pw.get("state")), "red")
            charge, runtime = pw.get("charge_pct"), pw.get("runtime_s")
            lines.append(
                f"power ({pw.get('ups')}): [{color}]{pw.get('state')}[/{color}] ({pw.get('status')}), "
                f"charge {'?' if charge is None else f'{charge:g}'} %, "
                f"runtime left {'?' if runtime is None else f'{runtime:g}'} s"
            )
    wd = st.get("watchdog")
    if isinstance(wd, dict):
        for eui, w in (wd.get("forwarders") or {}).items():
            last = w.get("last") or {}
            lines.append(
                f"forwarder watchdog {eui}: {w.get('state')}, {w.get('attempts')} restart(s)"
                + (f", last {last.get('result')}: {last.get('output')}" if last else "")
            )
    return lines
