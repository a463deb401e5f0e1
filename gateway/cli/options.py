"""The options every gateway and device command shares (``--config`` or ``--data-dir``), and what they
lead to: the config, the registry, the running daemon."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from havel.errors import ConfigError, InputError
from havel.gateway import config as config_mod
from havel.gateway import db, runlock
from havel.gateway.config import Config
from havel.gateway.registry import Registry

DEFAULT_CONFIG = Path("/etc/havel/gateway.toml")


def where(f: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--config`` and ``--data-dir`` options (see :func:`load_config`)."""
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


COMMIT_WAIT_MS = 30_000  # how long a write waits for the lock of a daemon asked to commit its write batch


def open_registry(cfg: Config) -> Registry:
    """The registry in the config's database (opened for writing; a running daemon is asked to commit its
    write batch first, so that the write does not wait for its lock)."""
    # (a daemon asked commits within milliseconds, but a loaded machine may keep it from running for a while)
    asked = runlock.ask_to_commit(cfg.data_dir)
    return Registry(db.open_db(cfg.db_path, busy_timeout_ms=COMMIT_WAIT_MS if asked else 5000))


def refuse_while_running(cfg: Config, doing: str) -> None:
    """InputError when a daemon runs on the config's data directory."""
    running = runlock.running(cfg.data_dir)
    if running is not None:
        raise InputError(
            f"a gateway (pid {running.get('pid')}) is running on {cfg.data_dir}: stop it before {doing}",
            hint="systemctl stop havel-gateway",
        )
