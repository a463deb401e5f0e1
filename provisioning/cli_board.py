"""``havel board``: find boards on USB and ask one what it runs."""

from __future__ import annotations

import click
from rich.table import Table

from havel.provisioning import flash as flash_mod
from havel.provisioning import ports
from havel.provisioning.cli_common import choose_port, console
from havel.provisioning.transport import Board as BoardLink


@click.group()
def board() -> None:
    """Find boards on USB and talk to them."""


@board.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also list ports that are not known boards.")
def board_list(show_all: bool) -> None:
    """List serial ports and the boards recognised among them."""
    found = ports.list_ports()
    t = Table("Port", "USB ID", "Chip", "Description")
    shown = 0
    for p in found:
        c = ports.classify(p)
        if c is None and not show_all:
            continue
        usb = f"{p.vid:04X}:{p.pid:04X}" if p.vid is not None and p.pid is not None else "-"
        t.add_row(p.device, usb, c.chip if c else "-", p.description or "")
        shown += 1
    if shown:
        console.print(t)
        return
    console.print("[red]No board found.[/red]")
    for i, tip in enumerate(ports.nothing_found_advice(ports=found, in_dialout=ports.user_in_dialout()), 1):
        console.print(f" {i}. {tip}")
    click.get_current_context().exit(1)


@board.command("info")
@click.option("--port", default="auto", show_default=True)
def board_info(port: str) -> None:
    """Show the MicroPython version, unique id and the installed Havel bundle."""
    with BoardLink(choose_port(port)) as link:
        info = link.call("fsutil", "hv_info")
        man = flash_mod.installed_manifest(link)
    for k, v in info.items():
        console.print(f"{k}: {v}")
    console.print(f"havel bundle: {man.app + ' (' + str(len(man.files)) + ' files)' if man else 'none'}")
