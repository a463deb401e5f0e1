"""``havel gateway backup|restore`` and ``havel gateway outbox show|discard``: the database and the
records waiting in it."""

from __future__ import annotations

from pathlib import Path

import click

from havel.errors import HavelError, InputError
from havel.gateway import db, db_backup, runlock
from havel.gateway.cli.options import COMMIT_WAIT_MS, load_config, refuse_while_running, where


@click.command("backup")
@where
@click.option(
    "--to", "dest", required=True, type=click.Path(dir_okay=False, path_type=Path), help="New backup file."
)
def gateway_backup(config_path: Path | None, data_dir: Path | None, dest: Path) -> None:
    """Copy the database to a new file (0600), consistent even while the daemon runs; reads only."""
    cfg = load_config(config_path, data_dir)
    conn = db.open_db_readonly(cfg.db_path)
    try:
        problems = db_backup.check_integrity(conn)
        if problems:
            raise HavelError(
                f"the database is damaged ({problems[0]}): not backed up",
                hint="restore an earlier backup with `havel gateway restore`",
            )
        db_backup.backup(conn, dest)
    finally:
        conn.close()
    click.echo(f"backed up {cfg.db_path} to {dest}")


@click.command("restore")
@where
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
    refuse_while_running(cfg, "restoring a backup")
    if not yes and not click.confirm(f"Replace {cfg.db_path} with {source}?", default=False):
        raise click.Abort()
    moved = db_backup.restore(source, cfg.db_path)
    click.echo(
        f"restored {source} to {cfg.db_path}" + (f"; the old database is now {moved}" if moved else "")
    )


@click.group("outbox")
def gateway_outbox() -> None:
    """Inspect the outbox, or discard the records of a sink that is no longer configured."""


@gateway_outbox.command("show")
@where
def outbox_show(config_path: Path | None, data_dir: Path | None) -> None:
    """Records waiting per sink, configured or not (reads only)."""
    from havel.gateway.outbox_sinks import pending_by_sink

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
@where
@click.option("--sink", "sink", required=True, help="Name of the sink whose records go.")
@click.option("--yes", is_flag=True, help="Do not ask.")
def outbox_discard(config_path: Path | None, data_dir: Path | None, sink: str, yes: bool) -> None:
    """Drop every record waiting for a sink that is no longer configured (records other sinks still
    wait for stay, for them). Says how many and asks first; refused for a sink the running daemon
    delivers to."""
    from havel.gateway.outbox_sinks import discard_sink, pending_by_sink

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
    asked = runlock.ask_to_commit(cfg.data_dir)  # (a running daemon's write batch would hold the lock)
    conn = db.open_db(cfg.db_path, busy_timeout_ms=COMMIT_WAIT_MS if asked else 5000)
    try:
        waiting, deleted = discard_sink(conn, sink)
    finally:
        conn.close()
    click.echo(f"discarded sink {sink}: {waiting} record(s) released, {deleted} deleted")
