"""The provisioning commands of ``havel``: ``board``, ``flash``, ``keys`` and ``kit``.

Commands are thin: they parse options, call the modules that do the work, and print with ``rich``.
Errors are raised as HavelError subclasses; the ``havel`` entry point turns them into one line.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from havel import __version__
from havel.errors import HavelError, InputError
from havel.provisioning import bundle as bundle_mod
from havel.provisioning import exports, guide, identity, kitbuild, kitcheck, label, ports
from havel.provisioning import flash as flash_mod
from havel.provisioning import settings as settings_mod
from havel.provisioning.kits import firmware_dir, list_kits, load_kit
from havel.provisioning.private_file import write_private
from havel.provisioning.registry import Registry
from havel.provisioning.transport import Board as BoardLink

console = Console()


def _settings(ctx: click.Context) -> settings_mod.Settings:
    path = (ctx.find_root().params or {}).get("settings")
    return settings_mod.load(Path(path) if path else None)


def _passphrase(s: settings_mod.Settings, *, confirm: bool = False) -> str:
    return s.passphrase() or click.prompt("Registry passphrase", hide_input=True, confirmation_prompt=confirm)


def _port(port: str) -> str:
    cand = ports.choose_port(
        port,
        ports.list_ports(),
        in_dialout=ports.user_in_dialout(),
        ask=_ask_port if port == "auto" else None,
    )
    return cand.device


def _ask_port(found: list[ports.Candidate]) -> ports.Candidate:
    for i, c in enumerate(found, 1):
        console.print(f"  {i}. {c.device}  {c.chip}  {c.description}")
    n = click.prompt("Which board?", type=click.IntRange(1, len(found)))
    return found[n - 1]


# ------------------------------------------------------------------ havel board
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
    with BoardLink(_port(port)) as link:
        info = link.call("fsutil", "hv_info")
        man = flash_mod.installed_manifest(link)
    for k, v in info.items():
        console.print(f"{k}: {v}")
    console.print(f"havel bundle: {man.app + ' (' + str(len(man.files)) + ' files)' if man else 'none'}")


# ------------------------------------------------------------------ havel flash
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
    s = _settings(ctx)
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
    keys = [bundle_mod.load_public_key(p) for p in (list(trust) or s.trusted_keys)]
    manifest = bundle_mod.verify_bundle(bundle_dir, keys, allow_unsigned=unsigned)
    if kit_name is not None:
        flash_mod.check_radio(manifest, load_kit(kit_name).board())
    if unsigned:
        console.print("[yellow]Flashing an UNSIGNED bundle (development only).[/yellow]")
    with (
        BoardLink(_port(port)) as link,
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
    key = bundle_mod.load_private_key(sign_key) if sign_key else None
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
    pub = bundle_mod.generate_signing_key(private_key)
    console.print(f"private key {private_key} (keep it safe), public key {pub} (give it to the flashers)")


# ------------------------------------------------------------------ havel keys
@click.group()
def keys() -> None:
    """Node identities and the encrypted registry."""


@keys.command("init")
@click.pass_context
def keys_init(ctx: click.Context) -> None:
    """Create the encrypted registry."""
    s = _settings(ctx)
    Registry.create(s.registry, _passphrase(s, confirm=True))
    console.print(f"registry created: {s.registry} (mode 0600)")


@keys.command("show")
@click.option("--reveal", is_flag=True, help="Also print the AppKeys.")
@click.pass_context
def keys_show(ctx: click.Context, reveal: bool) -> None:
    """List registered nodes (keys hidden unless --reveal)."""
    s = _settings(ctx)
    reg = Registry.open(s.registry, _passphrase(s))
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
    s = _settings(ctx)
    text = exports.export(Registry.open(s.registry, _passphrase(s)).entries, fmt)
    if out is None:
        click.echo(text, nl=False)
        return
    write_private(out, text.encode())
    console.print(f"wrote {out} (mode 0600: it holds keys)")


# ------------------------------------------------------------------ havel kit
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
    with BoardLink(_port(port)) as link:
        items = kitcheck.run_check(link, k, k.board())
    kitcheck.print_checklist(items, console)
    if any(not it.passed for it in items):
        ctx.exit(1)


@kit.command("build")
@click.option("--kit", "kit_name", required=True)
@click.option("--port", default="auto", show_default=True)
@click.option("--bundle", "bundle_dir", type=click.Path(path_type=Path))
@click.option(
    "--trust",
    "trust",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Trusted public key (PEM) instead of the settings' trusted_keys.",
)
@click.option("--unsigned", is_flag=True, help="Development only: accept an unsigned bundle.")
@click.option("--allow-downgrade", is_flag=True, help="Flash a bundle older than the one on the board.")
@click.option(
    "--image", type=click.Path(path_type=Path), help="MicroPython image file, if the board needs one."
)
@click.option("--image-sha256", help="Expected SHA-256 of --image (else <image>.sha256 is read).")
@click.option(
    "--baud",
    type=click.IntRange(9600, 2_000_000),
    help="Serial rate for installing MicroPython on an ESP32 (lower it on a long cable).",
)
@click.option("--yes", "assume_yes", is_flag=True, help="Answer yes to every question.")
@click.pass_context
def kit_build(
    ctx: click.Context,
    kit_name: str,
    port: str,
    bundle_dir: Path | None,
    trust: tuple[Path, ...],
    unsigned: bool,
    allow_downgrade: bool,
    image: Path | None,
    image_sha256: str | None,
    baud: int | None,
    assume_yes: bool,
) -> None:
    """Guided build: find board, MicroPython, flash, check, register, label. Resumes where it stopped."""
    s = _settings(ctx)
    opts = kitbuild.BuildOptions(
        kit=kit_name,
        port=port,
        bundle_dir=bundle_dir,
        unsigned=unsigned,
        image=image,
        image_sha256=image_sha256,
        trusted_keys=list(trust),
        allow_downgrade=allow_downgrade,
        baud=baud,
    )

    def confirm(q: str) -> bool:
        return True if assume_yes else click.confirm(q, default=True)

    res = kitbuild.build(
        opts,
        s,
        confirm=confirm,
        passphrase=lambda: _passphrase(s),
        new_passphrase=lambda: _passphrase(s, confirm=True),
        console=console,
    )
    if not res.ok:
        ctx.exit(1)


@kit.command("serve")
@click.option("--port", default="auto", show_default=True, help="Serial port of the board, or 'auto'.")
@click.option("--bundle", "bundle_dir", type=click.Path(path_type=Path))
@click.option(
    "--trust",
    "trust",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Trusted public key (PEM) instead of the settings' trusted_keys.",
)
@click.option("--unsigned", is_flag=True, help="Development only: accept an unsigned bundle.")
@click.option(
    "--image", type=click.Path(path_type=Path), help="MicroPython image file, if the board needs one."
)
@click.option("--image-sha256", help="Expected SHA-256 of --image (else <image>.sha256 is read).")
@click.option("--baud", type=click.IntRange(9600, 2_000_000), help="Serial rate for installing MicroPython.")
@click.option("--allow-downgrade", is_flag=True, help="Flash a bundle older than the one on the board.")
@click.option(
    "--http-port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port of the page."
)
@click.pass_context
def kit_serve(
    ctx: click.Context,
    port: str,
    bundle_dir: Path | None,
    trust: tuple[Path, ...],
    unsigned: bool,
    image: Path | None,
    image_sha256: str | None,
    baud: int | None,
    allow_downgrade: bool,
    http_port: int,
) -> None:
    """The kit bench: `kit build` as a web page on this computer (localhost only), until Ctrl-C."""
    from havel.provisioning.web.bench import KitBench
    from havel.web import serve

    base = kitbuild.BuildOptions(
        kit="",
        port=port,
        bundle_dir=bundle_dir,
        unsigned=unsigned,
        image=image,
        image_sha256=image_sha256,
        trusted_keys=list(trust),
        allow_downgrade=allow_downgrade,
        baud=baud,
    )
    bench = KitBench(_settings(ctx), base)
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
    s = _settings(ctx)
    eui = identity.parse_eui(dev_eui, "DevEUI")
    e = Registry.open(s.registry, _passphrase(s)).find(eui)
    if e is None:
        raise HavelError(f"DevEUI {dev_eui} is not in the registry")
    paths = label.write_labels((out_dir or s.label_dir) / e.name, e.name, e.join_eui, e.dev_eui, s.profile_id)
    console.print("wrote " + ", ".join(str(p) for p in paths))
