"""``havel airtime``: time on air of a LoRaWAN frame and the pauses the EU868 duty cycles ask after it."""

from __future__ import annotations

import json
from typing import Any

import click

from havel.codecs.lorawan import airtime as airtime_mod
from havel.codecs.lorawan import eu868, phy
from havel.errors import InputError


@click.command(name="airtime")
@click.option("--sf", type=click.IntRange(7, 12), help="Spreading factor 7..12.")
@click.option(
    "--bw",
    "bw_khz",
    type=click.Choice(["125", "250", "500"]),
    default="125",
    show_default=True,
    help="Bandwidth in kHz.",
)
@click.option("--dr", type=click.IntRange(0, 6), help="EU868 data rate instead of --sf/--bw.")
@click.option(
    "--bytes",
    "size",
    type=click.IntRange(0, 255),
    required=True,
    help="Application payload (FRMPayload) bytes; the PHYPayload adds 13 (MHDR, FHDR, FPort, MIC) "
    "plus --fopts-len. With --phy: the whole PHYPayload length.",
)
@click.option("--fopts-len", type=click.IntRange(0, 15), default=0, help="FOpts bytes in the frame.")
@click.option("--phy", "is_phy", is_flag=True, help="--bytes is the PHYPayload length.")
@click.option("--down", is_flag=True, help="Downlink (no payload CRC).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def airtime(
    sf: int | None,
    bw_khz: str,
    dr: int | None,
    size: int,
    fopts_len: int,
    is_phy: bool,
    down: bool,
    as_json: bool,
) -> None:
    """Time on air of a LoRaWAN frame and the minimum pause after it under each EU868 duty cycle.

    Semtech AN1200.13 formula, CR 4/5, 8-symbol preamble, explicit header, low-data-rate optimisation
    on for SF11/SF12 at 125 kHz. The pause is airtime x (1/duty - 1).
    """
    if dr is not None:
        if sf is not None:
            raise InputError("give either --dr or --sf/--bw, not both")
        sf, bw = eu868.DATA_RATES[dr]
    elif sf is None:
        raise InputError("--sf (or --dr) is required", hint="e.g. havel airtime --sf 12 --bytes 51")
    else:
        bw = int(bw_khz)
    phy_len = size if is_phy else size + airtime_mod.LORAWAN_OVERHEAD + fopts_len
    if phy_len > phy.MAX_PHY_LEN:
        raise InputError(f"a PHYPayload of {phy_len} bytes exceeds 255")
    ldro = airtime_mod.ldro_needed(sf, bw)
    toa_us = eu868.airtime_us(phy_len, sf, bw, crc=not down)
    pauses: list[dict[str, Any]] = []
    for duty in eu868.DUTY_CYCLES:
        bands = [f"{lo / 1e6:g}-{hi / 1e6:g} MHz" for lo, hi, d in eu868.SUBBANDS if d == duty]
        pause = round(airtime_mod.pause_s(toa_us, duty), 3)
        pauses.append(
            {
                "duty": duty,
                "subbands": bands,
                "pause_s": pause,
                "max_frames_per_hour": int(3600 * 1e6 * duty // toa_us),
            }
        )
    result: dict[str, Any] = {
        "sf": sf,
        "bw_khz": bw,
        "phy_len": phy_len,
        "app_bytes": None if is_phy else size,
        "ldro": ldro,
        "crc": not down,
        "airtime_us": toa_us,
        "airtime_ms": toa_us / 1000,
        "pauses": pauses,
    }
    if not is_phy:
        drs = [d for d, v in eu868.DATA_RATES.items() if v == (sf, bw)]
        if drs and size > eu868.max_app_payload(drs[0]):
            result["warning"] = (
                f"{size} bytes exceed the EU868 maximum of {eu868.max_app_payload(drs[0])} at DR{drs[0]}"
            )
    if as_json:
        click.echo(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    what = f"{phy_len}-byte PHYPayload" + ("" if is_phy else f" ({size} application bytes)")
    console.print(
        f"Time on air: {toa_us / 1000:.3f} ms for a {what} at SF{sf}/{bw} kHz, CR 4/5, "
        f"LDRO {'on' if ldro else 'off'}"
    )
    table = Table("duty cycle", "sub-bands", "min pause", "max frames/hour")
    for p in pauses:
        table.add_row(
            f"{p['duty'] * 100:g} %",
            ", ".join(p["subbands"]),
            f"{p['pause_s']:.3f} s",
            str(p["max_frames_per_hour"]),
        )
    console.print(table)
    if "warning" in result:
        console.print(f"[yellow]warning:[/] {result['warning']}")
