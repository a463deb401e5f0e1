"""``havel keys``: the encrypted registry of node identities and keys, and its exports for network
servers."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from havel.provisioning import exports, identity
from havel.provisioning.cli_common import console, passphrase, settings_for
from havel.provisioning.private_file import write_private
from havel.provisioning.registry import Registry


@click.group()
def keys() -> None:
    """Node identities and the encrypted registry."""


@keys.command("init")
@click.pass_context
def keys_init(ctx: click.Context) -> None:
    """Create the encrypted registry."""
    s = settings_for(ctx)
    Registry.create(s.registry, passphrase(s, confirm=True))
    console.print(f"registry created: {s.registry} (mode 0600)")


@keys.command("show")
@click.option("--reveal", is_flag=True, help="Also print the AppKeys.")
@click.pass_context
def keys_show(ctx: click.Context, reveal: bool) -> None:
    """List registered nodes (keys hidden unless --reveal)."""
    s = settings_for(ctx)
    reg = Registry.open(s.registry, passphrase(s))
    if reveal:
        # One line per value, not a table: a table squeezed into a narrow terminal wraps or cuts the
        # 32-digit AppKey, and a volunteer copies it from here. The longest line is 41 characters.
        for e in reg.entries:
            console.print(f"[bold]{escape(e.name)}[/bold] (kit {escape(e.kit) or '-'})", highlight=False)
            for what, value in (
                ("DevEUI", identity.eui_hex(e.dev_eui)),
                ("JoinEUI", identity.eui_hex(e.join_eui)),
                ("AppKey", e.app_key.hex().upper()),
            ):
                console.print(f"  {what:<8} {value}", highlight=False, overflow="ignore", crop=False)
        return
    t = Table("Name", "DevEUI", "JoinEUI", "Kit", caption="AppKeys hidden: --reveal shows them")
    t.columns[0].overflow = t.columns[3].overflow = "fold"  # two lines rather than a cut-off name
    for col in t.columns[1:3]:
        col.no_wrap, col.min_width = True, 16  # an EUI is never broken over two lines
    for e in reg.entries:
        t.add_row(e.name, identity.eui_hex(e.dev_eui), identity.eui_hex(e.join_eui), e.kit)
    console.print(t)


@keys.command("export")
@click.option("--format", "fmt", type=click.Choice(exports.FORMATS), default="havel", show_default=True)
@click.option(
    "--out", "out", type=click.Path(path_type=Path), help="File to write (mode 0600); default stdout."
)
@click.pass_context
def keys_export(ctx: click.Context, fmt: str, out: Path | None) -> None:
    """Export the registry for a network server (contains the AppKeys)."""
    s = settings_for(ctx)
    text = exports.export(Registry.open(s.registry, passphrase(s)).entries, fmt)
    if out is None:
        click.echo(text, nl=False)
        return
    write_private(out, text.encode())
    console.print(f"wrote {out} (mode 0600: it holds keys)")
