"""``havel flash``: build, sign and verify a kit's firmware bundle, and flash it to a board."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from havel import __version__
from havel.errors import InputError
from havel.provisioning import bundle as bundle_mod
from havel.provisioning import flash as flash_mod
from havel.provisioning import signing
from havel.provisioning.cli_common import choose_port, console, settings_for
from havel.provisioning.kits import firmware_dir, load_kit
from havel.provisioning.transport import Board as BoardLink


@click.group(invoke_without_command=True)
@click.option("--kit", "kit_name", help="Kit whose app to flash (air, water, temperature, cooling).")
@click.option("--port", default="auto", show_default=True, help="Serial port, or 'auto'.")
@click.option("--bundle", "bundle_dir", type=click.Path(path_type=Path), help="A built bundle folder.")
@click.option(
    "--trust", "trust", multiple=True, type=click.Path(path_type=Path), help="Trusted public key (PEM)."
)
@click.option("--unsigned", is_flag=True, help="Development only: accept a bundle without a valid signature.")
@click.option("--force", is_flag=True, help="Copy every file, not only the changed ones.")
@click.option("--allow-downgrade", is_flag=True, help="Flash a bundle older than the one on the board.")
@click.pass_context
def flash(
    ctx: click.Context,
    kit_name: str | None,
    port: str,
    bundle_dir: Path | None,
    trust: tuple[Path, ...],
    unsigned: bool,
    force: bool,
    allow_downgrade: bool,
) -> None:
    """Flash the firmware bundle of a kit's app (only changed files), then verify it on the board."""
    if ctx.invoked_subcommand is not None:
        return
    s = settings_for(ctx)
    if bundle_dir is None:
        if kit_name is None:
            raise InputError("say which kit to flash (--kit air) or which bundle (--bundle DIR)")
        if unsigned:
            bundle_dir = s.state_dir / "dev-bundles" / load_kit(kit_name).app
            k = load_kit(kit_name)
            radio = k.board().radio
            bundle_mod.build_bundle(
                firmware_dir(), k.app, bundle_dir, signing_key=None, radios=[radio.chip] if radio else None
            )
        elif s.bundle_dir is not None:
            bundle_dir = s.bundle_dir / load_kit(kit_name).app
        else:
            raise InputError(
                "no signed bundle configured",
                hint="pass --bundle DIR, or --unsigned to build one from firmware/ for development",
            )
    keys = [signing.load_public_key(p) for p in (list(trust) or s.trusted_keys)]
    manifest = bundle_mod.verify_bundle(bundle_dir, keys, allow_unsigned=unsigned)
    if kit_name is not None:
        flash_mod.check_radio(manifest, load_kit(kit_name).board())
    if unsigned:
        console.print("[yellow]Flashing an UNSIGNED bundle (development only).[/yellow]")
    with (
        BoardLink(choose_port(port)) as link,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
        ) as prog,
    ):
        task = prog.add_task("flashing", total=None)

        def progress(done: int, total: int, path: str) -> None:
            prog.update(task, completed=done, total=total, description=path)

        rep = flash_mod.flash_bundle(
            link, bundle_dir, manifest, progress=progress, force=force, allow_downgrade=allow_downgrade
        )
        if kit_name is not None:
            flash_mod.write_board_file(link, load_kit(kit_name).board())
    console.print(
        f"{len(rep.copied)} file(s) copied, {len(rep.unchanged)} unchanged, all verified "
        f"({rep.payload_bytes} bytes in {rep.seconds:.1f} s)."
    )


@flash.command("build")
@click.option("--kit", "kit_name", required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--sign-key", type=click.Path(path_type=Path), help="The city's Ed25519 private key (PEM).")
@click.option("--all-radios", is_flag=True, help="Include every radio driver (one bundle for every board).")
@click.option(
    "--bundle-version",
    "version",
    default=__version__,
    show_default=True,
    help="Version of the bundle (dotted numbers); boards refuse a lower one than they have.",
)
def flash_build(kit_name: str, out_dir: Path, sign_key: Path | None, all_radios: bool, version: str) -> None:
    """Build (and sign) the bundle of a kit's app from firmware/, for the kit board's radio."""
    key = signing.load_private_key(sign_key) if sign_key else None
    k = load_kit(kit_name)
    radio = k.board().radio
    radios = None if all_radios or radio is None else [radio.chip]
    m = bundle_mod.build_bundle(
        firmware_dir(), k.app, out_dir, signing_key=key, radios=radios, version=version
    )
    console.print(
        f"version {m.version}, {len(m.files)} files, {m.total_bytes} bytes, radios {', '.join(m.radios)} "
        f"-> {out_dir} "
        f"({'signed' if key else 'UNSIGNED'})"
    )


@flash.command("keygen")
@click.argument("private_key", type=click.Path(path_type=Path))
def flash_keygen(private_key: Path) -> None:
    """Make the city's Ed25519 signing key (private PEM, mode 0600) and its .pub."""
    pub = signing.generate_signing_key(private_key)
    console.print(f"private key {private_key} (keep it safe), public key {pub} (give it to the flashers)")
