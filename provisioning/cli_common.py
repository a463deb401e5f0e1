"""What the provisioning commands share: the console they print on, the settings file, the registry
passphrase and the choice of serial port.

The commands (``havel board``, ``flash``, ``keys``, ``kit``: :mod:`.cli_board`, :mod:`.cli_flash`,
:mod:`.cli_keys`, :mod:`.cli_kit`) are thin: they parse options, call the modules that do the work, and
print with ``rich``. Errors are raised as HavelError subclasses; the ``havel`` entry point turns them into
one line.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from havel.provisioning import ports
from havel.provisioning import settings as settings_mod

console = Console()


def settings_for(ctx: click.Context) -> settings_mod.Settings:
    """The settings file given to ``havel --settings``, or the default one."""
    path = (ctx.find_root().params or {}).get("settings")
    return settings_mod.load(Path(path) if path else None)


def passphrase(s: settings_mod.Settings, *, confirm: bool = False) -> str:
    """The registry passphrase (HAVEL_REGISTRY_PASSPHRASE or the passphrase file), else asked for."""
    return s.passphrase() or click.prompt("Registry passphrase", hide_input=True, confirmation_prompt=confirm)


def choose_port(port: str) -> str:
    """The serial device of ``port`` (a device, or "auto": the one board found, or the one picked)."""
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
