"""``havel kit``: kits for volunteers: the assembly guide, the wiring check, the guided build (also as a
local web page) and the label."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from havel.errors import HavelError
from havel.provisioning import checklist, guide, identity, kitbuild, kitcheck, label
from havel.provisioning.cli_common import choose_port, console, passphrase, settings_for
from havel.provisioning.kits import list_kits, load_kit
from havel.provisioning.registry import Registry
from havel.provisioning.transport import Board as BoardLink


@click.group()
def kit() -> None:
    """Kits for volunteers: assembly guide, wiring check, guided build, label."""


@kit.command("list")
def kit_list() -> None:
    """List the kits."""
    for name in list_kits():
        console.print(f"{name}: {load_kit(name).title}")


@kit.command("guide")
@click.argument("kit_name")
@click.option(
    "--out", type=click.Path(path_type=Path), help="Write the Markdown here instead of printing it."
)
def kit_guide(kit_name: str, out: Path | None) -> None:
    """The Markdown assembly guide (wiring table, BOM) of a kit."""
    text = guide.render(load_kit(kit_name))
    if out:
        out.write_text(text)
        console.print(f"wrote {out}")
    else:
        click.echo(text)


@kit.command("check")
@click.option("--kit", "kit_name", required=True)
@click.option("--port", default="auto", show_default=True)
@click.pass_context
def kit_check(ctx: click.Context, kit_name: str, port: str) -> None:
    """Check the wiring of every part of the kit, on the board."""
    k = load_kit(kit_name)
    with BoardLink(choose_port(port)) as link:
        items = kitcheck.run_check(link, k, k.board())
    checklist.print_checklist(items, console)
    if any(not it.passed for it in items):
        ctx.exit(1)


def _flash_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options of a guided build (`kit build` and the kit bench page), in their `--help` order."""
    options = [
        click.option(
            "--port", default="auto", show_default=True, help="Serial port of the board, or 'auto'."
        ),
        click.option("--bundle", "bundle_dir", type=click.Path(path_type=Path)),
        click.option(
            "--trust",
            "trust",
            multiple=True,
            type=click.Path(path_type=Path),
            help="Trusted public key (PEM) instead of the settings' trusted_keys.",
        ),
        click.option("--unsigned", is_flag=True, help="Development only: accept an unsigned bundle."),
        click.option(
            "--allow-downgrade", is_flag=True, help="Flash a bundle older than the one on the board."
        ),
        click.option(
            "--image", type=click.Path(path_type=Path), help="MicroPython image file, if the board needs one."
        ),
        click.option("--image-sha256", help="Expected SHA-256 of --image (else <image>.sha256 is read)."),
        click.option(
            "--baud",
            type=click.IntRange(9600, 2_000_000),
            help="Serial rate for installing MicroPython on an ESP32 (lower it on a long cable).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _build_options(kit_name: str, flash: dict[str, Any]) -> kitbuild.BuildOptions:
    return kitbuild.BuildOptions(
        kit=kit_name,
        port=flash["port"],
        bundle_dir=flash["bundle_dir"],
        unsigned=flash["unsigned"],
        image=flash["image"],
        image_sha256=flash["image_sha256"],
        trusted_keys=list(flash["trust"]),
        allow_downgrade=flash["allow_downgrade"],
        baud=flash["baud"],
    )


@kit.command("build")
@click.option("--kit", "kit_name", required=True)
@_flash_options
@click.option("--yes", "assume_yes", is_flag=True, help="Answer yes to every question.")
@click.pass_context
def kit_build(ctx: click.Context, kit_name: str, assume_yes: bool, **flash: Any) -> None:
    """Guided build: find board, MicroPython, flash, check, register, label. Resumes where it stopped."""
    s = settings_for(ctx)
    opts = _build_options(kit_name, flash)

    def confirm(q: str) -> bool:
        return True if assume_yes else click.confirm(q, default=True)

    res = kitbuild.build(
        opts,
        s,
        confirm=confirm,
        passphrase=lambda: passphrase(s),
        new_passphrase=lambda: passphrase(s, confirm=True),
        console=console,
    )
    if not res.ok:
        ctx.exit(1)


@kit.command("serve")
@_flash_options
@click.option(
    "--http-port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port of the page."
)
@click.pass_context
def kit_serve(ctx: click.Context, http_port: int, **flash: Any) -> None:
    """The kit bench: `kit build` as a web page on this computer (localhost only), until Ctrl-C."""
    from havel.provisioning.web.bench import KitBench
    from havel.web import serve

    bench = KitBench(settings_for(ctx), _build_options("", flash))
    try:
        srv = serve(bench.app, "127.0.0.1", http_port)
    except OSError as exc:
        raise HavelError(
            f"cannot listen on 127.0.0.1:{http_port}: {exc.strerror}",
            hint="another kit bench may be running; or pick another port with --http-port",
        ) from exc
    url = f"http://127.0.0.1:{srv.server_address[1]}/"
    console.print(f"Kit bench at {url} (Ctrl-C stops it)", highlight=False)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        bench.app.events.close()
        srv.server_close()


@kit.command("label")
@click.argument("dev_eui")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Folder for the SVG and PNG.")
@click.pass_context
def kit_label(ctx: click.Context, dev_eui: str, out_dir: Path | None) -> None:
    """Write the label (SVG and PNG, TR005 QR code) of a registered node again."""
    s = settings_for(ctx)
    eui = identity.parse_eui(dev_eui, "DevEUI")
    e = Registry.open(s.registry, passphrase(s)).find(eui)
    if e is None:
        raise HavelError(f"DevEUI {dev_eui} is not in the registry")
    paths = label.write_labels((out_dir or s.label_dir) / e.name, e.name, e.join_eui, e.dev_eui, s.profile_id)
    console.print("wrote " + ", ".join(str(p) for p in paths))
