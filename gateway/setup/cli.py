"""``havel gateway setup``: see :mod:`havel.gateway.setup` and docs/roof.md."""

from __future__ import annotations

from pathlib import Path

import click

from havel.codecs.lorawan.ids import parse_id_hex
from havel.gateway.setup import files, install
from havel.gateway.setup.boards import board_names, load_board


@click.command("setup")
@click.option("--board", help="Concentrator board (see --list-boards).")
@click.option("--list-boards", is_flag=True, help="List the supported boards and exit.")
@click.option("--gateway-eui", help="Gateway EUI, 16 hex digits (default: from the Pi's MAC address).")
@click.option("--gateway-id", default="havel-gw", show_default=True, help="Gateway id (MQTT topics).")
@click.option("--udp-port", type=click.IntRange(1, 65535), default=1700, show_default=True)
@click.option("--http-port", type=click.IntRange(0, 65535), default=9110, show_default=True)
@click.option(
    "--forwarder-bin",
    type=click.Path(path_type=Path),
    default=files.FORWARDER_BIN,
    show_default=True,
    help="The sx1302_hal lora_pkt_fwd binary (docs/roof.md: building it).",
)
@click.option("--havel-bin", type=click.Path(path_type=Path), default=files.HAVEL_BIN, show_default=True)
@click.option("--ups", help="NUT UPS name for the [power] section, e.g. roofups or roofups@127.0.0.1:3493.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Write under this folder instead of / (an image, a test).",
)
@click.option("--dry-run", is_flag=True, help="Print every folder and file with its content; write nothing.")
def setup(
    board: str | None,
    list_boards: bool,
    gateway_eui: str | None,
    gateway_id: str,
    udp_port: int,
    http_port: int,
    forwarder_bin: Path,
    havel_bin: Path,
    ups: str | None,
    root: Path,
    dry_run: bool,
) -> None:
    """Set up the packet forwarder, the concentrator reset and the systemd units for a rooftop gateway."""
    if list_boards or not board:
        for name in board_names():
            b = load_board(name)
            click.echo(f"{name:22} {b.interface.upper():3}  {b.title}")
        if not list_boards:
            raise click.UsageError("choose a board with --board NAME")
        return
    b = load_board(board)
    eui = (
        parse_id_hex(gateway_eui, what="--gateway-eui", size=8) if gateway_eui else install.eui_from_mac(root)
    )
    opts = files.Options(
        board=b,
        gateway_eui=eui,
        gateway_id=gateway_id,
        udp_port=udp_port,
        http_port=http_port,
        forwarder_bin=forwarder_bin,
        havel_bin=havel_bin,
        ups=ups,
    )
    click.echo(f"{'dry run: ' if dry_run else ''}{b.title}, gateway EUI {eui:016X}, under {root}")
    counts = install.apply(install.plan(opts), root, dry_run=dry_run, say=click.echo)
    click.echo(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    for problem in install.check_buses(b, root):
        click.echo(f"warning: {problem}", err=True)
    for problem in install.check_mount(install.target(root, files.DATA_DIR)):
        click.echo(f"warning: {problem}", err=True)
    if not dry_run and root == Path("/"):
        click.echo(
            f"next: build or install the forwarder at {forwarder_bin} (docs/roof.md), set the [[sink]] in "
            f"{files.CONFIG}, then `systemctl daemon-reload && systemctl enable --now "
            f"{files.GATEWAY_UNIT} {files.PKTFWD_UNIT}`"
        )
