"""``havel gateway run|status`` and ``havel device add|list|remove|forget-nonces|import|export``.

Every command takes ``--config FILE`` (the daemon's TOML) or ``--data-dir DIR`` (defaults for the rest).
Keys are never printed unless ``--show-keys`` is given.

``gateway`` also has ``check``, ``backup``, ``restore`` and ``outbox show|discard``. Commands that only
look (``gateway status``, ``gateway outbox show``, ``gateway backup``) open the database
read-only: they never change it, whichever config they were given. They find a running daemon through the
lock it holds on the data directory (:mod:`.runlock`), not through the config's HTTP port alone.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from havel.codecs.lorawan.ids import parse_id_hex, parse_key
from havel.errors import ConfigError, HavelError, InputError, SecurityError
from havel.gateway import config as config_mod
from havel.gateway import db, runlock
from havel.gateway.config import Config
from havel.gateway.registry import Device, Registry, Session, format_export, parse_import

DEFAULT_CONFIG = Path("/etc/havel/gateway.toml")


def _where(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Data directory (instead of --config).",
    )(f)
    f = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"Gateway config file (default {DEFAULT_CONFIG} when present).",
    )(f)
    return f


def load_config(config_path: Path | None, data_dir: Path | None) -> Config:
    """The config from ``--config``, or defaults around ``--data-dir``, or the system config file."""
    if config_path is not None and data_dir is not None:
        raise InputError("give --config or --data-dir, not both")
    if data_dir is not None:
        return config_mod.defaults(data_dir)
    if config_path is not None:
        return config_mod.load(config_path)
    if DEFAULT_CONFIG.exists():
        return config_mod.load(DEFAULT_CONFIG)
    raise ConfigError("no configuration given", hint="pass --config FILE or --data-dir DIR")


def _registry(cfg: Config) -> Registry:
    return Registry(db.open_db(cfg.db_path))


# --------------------------------------------------------------------------------------------- gateway


@click.group()
def gateway() -> None:
    """Run and inspect the gateway daemon."""


@gateway.command("run")
@_where
def gateway_run(config_path: Path | None, data_dir: Path | None) -> None:
    """Run the daemon until SIGTERM (systemd: see gateway/havel-gateway.service)."""
    from havel.gateway import daemon

    cfg = load_config(config_path, data_dir)
    daemon.run(cfg)


@gateway.command("check")
@_where
def gateway_check(config_path: Path | None, data_dir: Path | None) -> None:
    """Validate the configuration exactly as `run` does (sinks and components too) and say what it means.
    Creates no file and connects to nothing."""
    from havel.codecs.lorawan.ids import eui_hex
    from havel.gateway import preflight
    from havel.gateway.udp import is_loopback

    cfg = load_config(config_path, data_dir)
    preflight.validate(cfg)
    allowed = ", ".join(eui_hex(e) for e in cfg.udp.allowed_gateways) or "the first one heard"
    click.echo(
        f"config ok: gateway {cfg.gateway_id}, data {cfg.data_dir}, GWMP {cfg.udp.bind}:{cfg.udp.port} "
        f"(gateways: {allowed}), sinks {', '.join(s['name'] for s in cfg.sinks)}, "
        f"components {', '.join(preflight.component_names(cfg))}"
    )
    if not is_loopback(cfg.udp.bind):
        click.echo(
            f"warning: udp.bind {cfg.udp.bind} is reachable from the network and GWMP has no "
            "authentication: firewall the port to your concentrators (docs/gateway.md)"
        )


@gateway.command("status")
@_where
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON status.")
@click.pass_context
def gateway_status(
    ctx: click.Context, config_path: Path | None, data_dir: Path | None, as_json: bool
) -> None:
    """What the running daemon reports (forwarders, uplinks, outbox, sinks); offline: the database, read
    only. Exit status 0 ok, 2 degraded (or running but not answering), 3 daemon not running."""
    cfg = load_config(config_path, data_dir)
    running = runlock.running(cfg.data_dir)
    status: dict[str, Any] | None = None
    address = None
    if running is not None and running.get("http"):
        address = str(running["http"])  # where it really listens, whatever config we were given
    elif running is None and cfg.http.port:
        address = f"{cfg.http.bind}:{cfg.http.port}"  # (a daemon from before the lock told its address)
    if address is not None:
        try:
            with urllib.request.urlopen(f"http://{address}/status", timeout=3) as resp:
                status = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 503 and the like still carry the status document
            with contextlib.suppress(ValueError, OSError):
                status = json.loads(exc.read())
        except (urllib.error.URLError, OSError, ValueError):
            status = None
    if not isinstance(status, dict):
        status = _offline_status(cfg, running)
    if as_json:
        click.echo(json.dumps(status, indent=2, default=str))
    else:
        _print_status(status)
    ctx.exit({"ok": 0, "running": 0, "degraded": 2}.get(str(status.get("state")), 3))


def _offline_status(cfg: Config, running: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the database says, read-only; ``running``: the daemon's lock document when one runs."""
    st: dict[str, Any] = {"gateway_id": cfg.gateway_id, "state": "not running", "data_dir": str(cfg.data_dir)}
    if running is not None:
        pid = running.get("pid")
        st["pid"] = pid
        if running.get("http"):
            st["state"] = "degraded"
            st["note"] = f"the daemon (pid {pid}) runs but does not answer on {running['http']}"
        else:
            st["state"] = "running"
            st["note"] = f"the daemon (pid {pid}) runs without an HTTP port; this is what its database says"
    if not cfg.db_path.exists():
        return st
    from havel.gateway.outbox import Outbox, pending_by_sink

    try:
        conn = db.open_db_readonly(cfg.db_path)
    except HavelError as exc:
        st["error"] = str(exc)
        return st
    try:
        st["devices"] = _count_devices(conn)
        per_sink = pending_by_sink(conn)
        if per_sink:
            ob = Outbox.reader(conn)
            st["outbox"] = {
                "depth": ob.depth(),
                "bytes": ob.size_bytes(),
                "oldest": ob.oldest_received_at(),
                "dropped": ob.dropped(),
                "waiting_per_sink": per_sink,
            }
    except (HavelError, sqlite3.Error) as exc:
        st["error"] = str(exc)
    finally:
        conn.close()
    return st


def _count_devices(conn: sqlite3.Connection) -> int | None:
    try:
        return int(conn.execute("SELECT count(*) FROM devices").fetchone()[0])
    except sqlite3.OperationalError:  # no registry yet
        return None


def _print_status(st: dict[str, Any]) -> None:
    con = Console()
    state = st.get("state")
    color = {"ok": "green", "degraded": "yellow"}.get(str(state), "red")
    con.print(
        f"[bold]gateway {st.get('gateway_id')}[/bold]: [{color}]{state}[/{color}]"
        + (f"  up {st['uptime_s']:.0f} s, GWMP {st.get('udp')}" if "uptime_s" in st else "")
    )
    fwds = st.get("forwarders") or []
    if fwds:
        t = Table(
            "concentrator", "proto", "last heard", "rx", "tx", "downlinks", "state", title="packet forwarders"
        )
        for f in fwds:
            t.add_row(
                f["gateway"],
                f"v{f['version']}",
                f"{f['seen_s_ago']} s ago",
                str(f["rx"]),
                str(f["tx"]),
                "ready" if f["downlink_ready"] else "no PULL_DATA yet",
                "[red]SILENT[/red]" if f["silent"] else "[green]ok[/green]",
            )
        con.print(t)
    elif "uptime_s" in st:
        con.print("[yellow]no packet forwarder has spoken yet[/yellow]")
    up = st.get("uplinks")
    if up:
        rej = ", ".join(f"{k} {v:g}" for k, v in up["rejected"].items()) or "none"
        again = f", {up['retransmitted']:g} sent again" if up.get("retransmitted") else ""
        con.print(
            f"uplinks: {up['received']:g} received, {up['accepted']:g} accepted{again}; rejected: {rej}"
        )
    ob = st.get("outbox")
    if ob:
        done = ob.get("delivered") or 0
        held = f" (and {done} delivered, deleted within seconds)" if done else ""
        waiting = (ob.get("depth") or 0) - done
        con.print(f"outbox: {waiting} waiting{held}, {ob.get('bytes')} bytes, dropped {ob.get('dropped')}")
        per_sink = ob.get("waiting_per_sink") or {}
        if per_sink:
            con.print("waiting per sink: " + ", ".join(f"{k} {v}" for k, v in per_sink.items()))
    for key in ("note", "error"):
        if st.get(key):
            con.print(f"[yellow]{st[key]}[/yellow]" if key == "note" else f"[red]{st[key]}[/red]")
    storage = st.get("storage")
    if isinstance(storage, dict) and not storage.get("ok", True):
        con.print(f"[red]storage failing while {storage.get('doing')}: {storage.get('error')}[/red]")
    for name, s in (st.get("sinks") or {}).items():
        if isinstance(s, dict) and "state" in s:
            color = {"up": "green", "down": "red"}.get(str(s["state"]), "yellow")
            err = f", last error: {s['last_error']}" if s.get("last_error") else ""
            con.print(
                f"sink {name}: [{color}]{s['state']}[/{color}] since {s.get('since')}, sent {s.get('sent')}, "
                f"acknowledged {s.get('acked')}, waiting {s.get('inflight')}{err}"
            )
        elif isinstance(s, dict):
            con.print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in s.items()))
    dl = st.get("downlinks")
    if dl:
        adr = dl.get("adr") or {}
        con.print(
            f"downlinks: {dl.get('queued', 0)} queued, {dl.get('sent', 0)} sent, "
            f"{dl.get('acked', 0)} acknowledged, {dl.get('failed', 0)} failed, "
            f"{dl.get('duty_cycle_blocked', 0)} held by the duty cycle; "
            f"ADR: {adr.get('requested', 0)} asked, {adr.get('accepted', 0)} accepted, "
            f"{adr.get('refused', 0)} refused; ADRACKReq answered {dl.get('adr_ack_answered', 0)}"
        )
    if "devices" in st:
        con.print(f"devices: {st['devices']}")
    from havel.gateway.power.cli import status_lines  # the UPS and the forwarder watchdog (docs/roof.md)

    for line in status_lines(st):
        con.print(line)


@gateway.command("backup")
@_where
@click.option(
    "--to", "dest", required=True, type=click.Path(dir_okay=False, path_type=Path), help="New backup file."
)
def gateway_backup(config_path: Path | None, data_dir: Path | None, dest: Path) -> None:
    """Copy the database to a new file (0600), consistent even while the daemon runs; reads only."""
    cfg = load_config(config_path, data_dir)
    conn = db.open_db_readonly(cfg.db_path)
    try:
        problems = db.check_integrity(conn)
        if problems:
            raise HavelError(
                f"the database is damaged ({problems[0]}): not backed up",
                hint="restore an earlier backup with `havel gateway restore`",
            )
        db.backup(conn, dest)
    finally:
        conn.close()
    click.echo(f"backed up {cfg.db_path} to {dest}")


@gateway.command("restore")
@_where
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A backup made by `havel gateway backup` (or a copy of havel.db).",
)
@click.option("--yes", is_flag=True, help="Do not ask.")
def gateway_restore(config_path: Path | None, data_dir: Path | None, source: Path, yes: bool) -> None:
    """Replace the database with a checked backup (the daemon must be stopped). The replaced database is
    kept next to it as havel.db.replaced-<time>."""
    cfg = load_config(config_path, data_dir)
    _refuse_while_running(cfg, "restoring a backup")
    if not yes and not click.confirm(f"Replace {cfg.db_path} with {source}?", default=False):
        raise click.Abort()
    moved = db.restore(source, cfg.db_path)
    click.echo(
        f"restored {source} to {cfg.db_path}" + (f"; the old database is now {moved}" if moved else "")
    )


@gateway.group("outbox")
def gateway_outbox() -> None:
    """Inspect the outbox, or discard the records of a sink that is no longer configured."""


@gateway_outbox.command("show")
@_where
def outbox_show(config_path: Path | None, data_dir: Path | None) -> None:
    """Records waiting per sink, configured or not (reads only)."""
    from havel.gateway.outbox import pending_by_sink

    cfg = load_config(config_path, data_dir)
    conn = db.open_db_readonly(cfg.db_path)
    try:
        per_sink = pending_by_sink(conn)
    finally:
        conn.close()
    running = runlock.running(cfg.data_dir)
    active = set(running.get("sinks") or []) if running else {s["name"] for s in cfg.sinks}
    for name, n in per_sink.items():
        click.echo(f"{name}: {n} waiting" + ("" if name in active else " (not configured)"))
    if not per_sink:
        click.echo("the outbox knows no sink yet")


@gateway_outbox.command("discard")
@_where
@click.option("--sink", "sink", required=True, help="Name of the sink whose records go.")
@click.option("--yes", is_flag=True, help="Do not ask.")
def outbox_discard(config_path: Path | None, data_dir: Path | None, sink: str, yes: bool) -> None:
    """Drop every record waiting for a sink that is no longer configured (records other sinks still
    wait for stay, for them). Says how many and asks first; refused for a sink the running daemon
    delivers to."""
    from havel.gateway.outbox import discard_sink, pending_by_sink

    cfg = load_config(config_path, data_dir)
    running = runlock.running(cfg.data_dir)
    if running is not None and sink in (running.get("sinks") or []):
        raise InputError(
            f"the running daemon (pid {running.get('pid')}) delivers to sink {sink!r}",
            hint="remove the sink from its config and restart it first",
        )
    conn = db.open_db_readonly(cfg.db_path)
    try:
        per_sink = pending_by_sink(conn)
    finally:
        conn.close()
    if sink not in per_sink:
        raise InputError(f"the outbox knows no sink {sink!r}", hint=f"known: {', '.join(per_sink) or 'none'}")
    n = per_sink[sink]
    if not yes and not click.confirm(
        f"Drop the {n} record(s) waiting for sink {sink!r}? They will never be delivered to it.",
        default=False,
    ):
        raise click.Abort()
    conn = db.open_db(cfg.db_path)
    try:
        waiting, deleted = discard_sink(conn, sink)
    finally:
        conn.close()
    click.echo(f"discarded sink {sink}: {waiting} record(s) released, {deleted} deleted")


def _refuse_while_running(cfg: Config, doing: str) -> None:
    running = runlock.running(cfg.data_dir)
    if running is not None:
        raise InputError(
            f"a gateway (pid {running.get('pid')}) is running on {cfg.data_dir}: stop it before {doing}",
            hint="systemctl stop havel-gateway",
        )


# --------------------------------------------------------------------------------------------- device


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
@_where
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
    reg = _registry(load_config(config_path, data_dir))
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
@_where
@click.option("--show-keys", is_flag=True, help="Also print the keys (careful: screens are photographed).")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def device_list(config_path: Path | None, data_dir: Path | None, show_keys: bool, as_json: bool) -> None:
    """List registered devices with their session state."""
    reg = _registry(load_config(config_path, data_dir))
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
@_where
@click.argument("device_id", metavar="NAME_OR_DEVEUI")
def device_remove(config_path: Path | None, data_dir: Path | None, device_id: str) -> None:
    """Forget a device and its session (its used DevNonces are kept: see forget-nonces)."""
    reg = _registry(load_config(config_path, data_dir))
    try:
        dev = reg.find(device_id)
        reg.remove(dev.dev_eui)
        nonces = reg.dev_nonce_count(dev.dev_eui)
    finally:
        reg.conn.close()
    kept = f"; its {nonces} used DevNonce(s) are kept ('havel device forget-nonces' clears them)"
    click.echo(f"removed {dev.name} ({dev.eui_hex}){kept if nonces else ''}")


@device.command("forget-nonces")
@_where
@click.argument("device_id", metavar="NAME_OR_DEVEUI")
def device_forget_nonces(config_path: Path | None, data_dir: Path | None, device_id: str) -> None:
    """Clear the DevNonces a device used (also of a removed one, by DevEUI): its recorded join-requests
    are accepted again. Only for a device with a new AppKey or one reflashed with its DevNonce at 0."""
    reg = _registry(load_config(config_path, data_dir))
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
@_where
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--replace", is_flag=True, help="Replace devices that are already registered (new keys, new session)."
)
def device_import(config_path: Path | None, data_dir: Path | None, file: Path, replace: bool) -> None:
    """Import devices from JSON or CSV (the provisioning tool's export); all records are checked first."""
    devices = parse_import(file.read_bytes(), file.name)
    reg = _registry(load_config(config_path, data_dir))
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
@_where
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.option("--show-keys", is_flag=True, help="Include the keys (without it they read <redacted>).")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (0600) instead of stdout."
)
def device_export(
    config_path: Path | None, data_dir: Path | None, fmt: str, show_keys: bool, output: Path | None
) -> None:
    """Export the registry in the import format."""
    reg = _registry(load_config(config_path, data_dir))
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


# rooftop commands, in their own packages: `havel gateway setup` (gateway/setup), `power`, `power-check`
# (gateway/power)
from havel.gateway.power.cli import power as _power  # noqa: E402
from havel.gateway.power.cli import power_check as _power_check  # noqa: E402
from havel.gateway.setup.cli import setup as _setup  # noqa: E402

gateway.add_command(_setup)
gateway.add_command(_power)
gateway.add_command(_power_check)

__all__ = ["HavelError", "device", "gateway", "load_config"]
