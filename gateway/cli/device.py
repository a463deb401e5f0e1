"""``havel device add|list|remove|forget-nonces|import|export``: the gateway's device registry. Keys come
from files or a hidden prompt, and are never printed unless ``--show-keys`` is given."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from havel.codecs.lorawan.ids import parse_id_hex, parse_key
from havel.errors import InputError, SecurityError
from havel.gateway.cli.options import load_config, open_registry, where
from havel.gateway.network.sessions import Device, Session
from havel.gateway.registry_io import format_export, parse_import


@click.group()
def device() -> None:
    """Manage the gateway's device registry."""


_KEY_FILE = click.Path(dir_okay=False, allow_dash=True, path_type=Path)


def _key_input(option: str, value: str | None, file: Path | None, label: str, *, ask: bool) -> str | None:
    """A key from ``option`` (argv: visible to every user in ``ps``; the command warns), from
    ``option``-file (mode 0600, or ``-`` for stdin), or, when ``ask`` and stdin is a terminal, from a
    hidden prompt."""
    if value is not None and file is not None:
        raise InputError(f"give {option} or {option}-file, not both")
    if value is not None:
        return value
    if file is not None:
        if str(file) == "-":
            return sys.stdin.read().strip()
        try:
            mode = file.stat().st_mode
            if mode & 0o077:
                raise SecurityError(f"{file} is readable by other users", hint=f"chmod 600 {file}")
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"cannot read {option}-file {file}: {exc.strerror or exc}") from exc
    if ask and sys.stdin.isatty():
        text: str = click.prompt(f"{label} (32 hex digits, not shown)", hide_input=True)
        return text.strip()
    return None


@device.command("add")
@where
@click.option("--name", required=True, help="Unique device name, e.g. pegel-havel-1.")
@click.option("--dev-eui", required=True, help="DevEUI, 16 hex digits (big-endian, as printed on the label).")
@click.option("--codec", required=True, help="Payload codec: air, water, temperature, cooling, cayenne-lpp.")
@click.option(
    "--otaa", "activation", flag_value="otaa", help="Over-the-air activation (needs --join-eui and a key)."
)
@click.option(
    "--abp",
    "activation",
    flag_value="abp",
    help="Activation by personalisation (needs --dev-addr, --nwk-s-key-file, --app-s-key-file).",
)
@click.option("--join-eui", help="JoinEUI (AppEUI), 16 hex digits.")
@click.option("--app-key-file", type=_KEY_FILE, help="File with the AppKey (32 hex digits); - reads stdin.")
@click.option("--app-key", help="AppKey as an argument (visible in the process list: use --app-key-file).")
@click.option("--dev-addr", help="DevAddr, 8 hex digits.")
@click.option("--nwk-s-key-file", type=_KEY_FILE, help="File with the NwkSKey; - reads stdin.")
@click.option("--nwk-s-key", help="NwkSKey on the command line (visible in the process list).")
@click.option("--app-s-key-file", type=_KEY_FILE, help="File with the AppSKey; - reads stdin.")
@click.option("--app-s-key", help="AppSKey on the command line (visible in the process list).")
def device_add(
    config_path: Path | None,
    data_dir: Path | None,
    name: str,
    dev_eui: str,
    codec: str,
    activation: str | None,
    join_eui: str | None,
    app_key_file: Path | None,
    app_key: str | None,
    dev_addr: str | None,
    nwk_s_key_file: Path | None,
    nwk_s_key: str | None,
    app_s_key_file: Path | None,
    app_s_key: str | None,
) -> None:
    """Register one device. Keys come from files (--app-key-file, - for stdin) or a hidden prompt."""
    if activation is None:
        raise InputError("say how the device activates: --otaa or --abp")
    if sum(str(f) == "-" for f in (app_key_file, nwk_s_key_file, app_s_key_file) if f) > 1:
        raise InputError("only one key can come from stdin (-)")
    app_key_arg, nwk_arg, apps_arg = app_key is not None, nwk_s_key is not None, app_s_key is not None
    app_key = _key_input("--app-key", app_key, app_key_file, "AppKey", ask=activation == "otaa")
    nwk_s_key = _key_input("--nwk-s-key", nwk_s_key, nwk_s_key_file, "NwkSKey", ask=activation == "abp")
    app_s_key = _key_input("--app-s-key", app_s_key, app_s_key_file, "AppSKey", ask=activation == "abp")
    eui = parse_id_hex(dev_eui, what="--dev-eui", size=8)
    if activation == "otaa":
        if not join_eui or not app_key:
            raise InputError("--otaa needs --join-eui and an AppKey (--app-key-file FILE, or - for stdin)")
        if dev_addr or nwk_s_key or app_s_key:
            raise InputError("--dev-addr, --nwk-s-key and --app-s-key are for --abp devices")
        dev = Device(
            name=name,
            dev_eui=eui,
            codec=codec,
            activation="otaa",
            join_eui=parse_id_hex(join_eui, what="--join-eui", size=8),
            app_key=parse_key(app_key, "--app-key"),
        )
    else:
        if not dev_addr or not nwk_s_key or not app_s_key:
            raise InputError("--abp needs --dev-addr, --nwk-s-key-file and --app-s-key-file")
        if app_key:
            raise InputError("--app-key is for --otaa devices")
        dev = Device(
            name=name,
            dev_eui=eui,
            codec=codec,
            activation="abp",
            join_eui=parse_id_hex(join_eui, what="--join-eui", size=8) if join_eui else None,
            session=Session(
                parse_id_hex(dev_addr, what="--dev-addr", size=4),
                parse_key(nwk_s_key, "--nwk-s-key"),
                parse_key(app_s_key, "--app-s-key"),
            ),
        )
    reg = open_registry(load_config(config_path, data_dir))
    try:
        reg.add(dev)
    finally:
        reg.conn.close()
    click.echo(f"added {dev.name} ({dev.eui_hex}, {dev.activation}, codec {dev.codec})")
    for option, given in (("--app-key", app_key_arg), ("--nwk-s-key", nwk_arg), ("--app-s-key", apps_arg)):
        if given:
            click.echo(
                f"havel: warning: a key given as {option} is visible to other users in the process list; "
                f"use {option}-file FILE (or - for stdin) next time",
                err=True,
            )


@device.command("list")
@where
@click.option("--show-keys", is_flag=True, help="Also print the keys (careful: screens are photographed).")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def device_list(config_path: Path | None, data_dir: Path | None, show_keys: bool, as_json: bool) -> None:
    """List registered devices with their session state."""
    reg = open_registry(load_config(config_path, data_dir))
    try:
        devices = reg.devices()
    finally:
        reg.conn.close()
    if as_json:
        rows = []
        for d in devices:
            row = d.export(show_keys=show_keys)
            row["fcnt_up"] = d.session.fcnt_up if d.session else None
            row["fcnt_down"] = d.session.fcnt_down if d.session else None
            rows.append(row)
        click.echo(json.dumps(rows, indent=2))
        return
    cols = ["name", "DevEUI", "activation", "codec", "DevAddr", "FCnt up", "FCnt down", "last seen"]
    if show_keys:
        cols += ["AppKey", "NwkSKey", "AppSKey"]
    t = Table(*cols, title=f"{len(devices)} device(s)")
    import time as _time

    for d in devices:
        s = d.session
        seen = f"{_time.time() - d.last_seen:.0f} s ago" if d.last_seen else "never"
        cells: list[str] = [
            d.name,
            d.eui_hex,
            d.activation,
            d.codec,
            f"{s.dev_addr:08X}" if s else "(not joined)",
            "" if not s or s.fcnt_up is None else str(s.fcnt_up),
            str(s.fcnt_down) if s else "",
            seen,
        ]
        if show_keys:
            cells += [
                d.app_key.hex().upper() if d.app_key else "",
                s.nwk_s_key.hex().upper() if s else "",
                s.app_s_key.hex().upper() if s else "",
            ]
        t.add_row(*cells)
    # piped or captured output is read by scripts and tests: never wrap a DevEUI or key in the middle
    Console(width=None if sys.stdout.isatty() else (220 if show_keys else 160)).print(t)


@device.command("remove")
@where
@click.argument("device_id", metavar="NAME_OR_DEVEUI")
def device_remove(config_path: Path | None, data_dir: Path | None, device_id: str) -> None:
    """Forget a device and its session (its used DevNonces are kept: see forget-nonces)."""
    reg = open_registry(load_config(config_path, data_dir))
    try:
        dev = reg.find(device_id)
        reg.remove(dev.dev_eui)
        nonces = reg.dev_nonce_count(dev.dev_eui)
    finally:
        reg.conn.close()
    kept = f"; its {nonces} used DevNonce(s) are kept ('havel device forget-nonces' clears them)"
    click.echo(f"removed {dev.name} ({dev.eui_hex}){kept if nonces else ''}")


@device.command("forget-nonces")
@where
@click.argument("device_id", metavar="NAME_OR_DEVEUI")
def device_forget_nonces(config_path: Path | None, data_dir: Path | None, device_id: str) -> None:
    """Clear the DevNonces a device used (also of a removed one, by DevEUI): its recorded join-requests
    are accepted again. Only for a device with a new AppKey or one reflashed with its DevNonce at 0."""
    reg = open_registry(load_config(config_path, data_dir))
    try:
        try:
            eui = reg.find(device_id).dev_eui
        except InputError:
            eui = parse_id_hex(device_id, what="DevEUI", size=8)  # a removed device: by DevEUI only
        n = reg.forget_dev_nonces(eui)
    finally:
        reg.conn.close()
    click.echo(
        f"cleared {n} used DevNonce(s) of {eui:016X}: join-requests with them are accepted again "
        "(a recorded one could open a session)"
    )


@device.command("import")
@where
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--replace", is_flag=True, help="Replace devices that are already registered (new keys, new session)."
)
def device_import(config_path: Path | None, data_dir: Path | None, file: Path, replace: bool) -> None:
    """Import devices from JSON or CSV (the provisioning tool's export); all records are checked first."""
    devices = parse_import(file.read_bytes(), file.name)
    reg = open_registry(load_config(config_path, data_dir))
    added = replaced = 0
    try:
        existing = {d.dev_eui for d in reg.devices()}
        clash = [d for d in devices if d.dev_eui in existing]
        if clash and not replace:
            raise InputError(
                f"{len(clash)} device(s) already registered, e.g. {clash[0].eui_hex}",
                hint="use --replace to overwrite them",
            )
        added, replaced = reg.import_devices(devices, replace=replace)
    finally:
        reg.conn.close()
    click.echo(f"imported {added + replaced} device(s) from {file.name} ({added} new, {replaced} replaced)")


@device.command("export")
@where
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.option("--show-keys", is_flag=True, help="Include the keys (without it they read <redacted>).")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (0600) instead of stdout."
)
def device_export(
    config_path: Path | None, data_dir: Path | None, fmt: str, show_keys: bool, output: Path | None
) -> None:
    """Export the registry in the import format."""
    reg = open_registry(load_config(config_path, data_dir))
    try:
        text = format_export(reg.devices(), fmt, show_keys=show_keys)
    finally:
        reg.conn.close()
    if output is None:
        sys.stdout.write(text)
        return
    # a new 0600 file renamed over the target: an existing 0644 file would keep its mode under O_CREAT
    from havel.provisioning.private_file import write_private

    write_private(output, text.encode("utf-8"))
    click.echo(
        f"exported to {output}" + ("" if show_keys else " (keys redacted; --show-keys to include them)")
    )
