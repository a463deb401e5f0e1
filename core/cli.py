"""The ``havel`` command line: one entry point, subcommands contributed by each subpackage.

Subcommands live next to the code they drive (``havel.codecs.cli``, ``havel.gateway.cli`` ...) and are
imported lazily, so that ``havel frame decode`` does not pay for importing the gateway. Errors derived
from :class:`havel.errors.HavelError` become one line on stderr and exit status 1 (or the error's own).
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from havel import __version__
from havel.errors import HavelError

# name -> (module, attribute, one-line help). A module that is not importable (an optional extra
# missing) makes its command say so when used, instead of breaking the whole CLI.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "frame": ("havel.codecs.lorawan.cli", "frame", "Decode and encode LoRaWAN 1.0.x frames."),
    "airtime": ("havel.codecs.lorawan.cli_airtime", "airtime", "Time on air and duty-cycle pauses (EU868)."),
    "payload": ("havel.codecs.payload.cli", "payload", "Decode and encode sensor payloads."),
    "device": ("havel.gateway.cli.device", "device", "Manage the gateway's device registry."),
    "gateway": ("havel.gateway.cli.gateway", "gateway", "Run and inspect the gateway daemon."),
    "sim": ("havel.gateway.sim.cli", "sim", "Simulated concentrator and nodes speaking GWMP."),
    "demo": ("havel.gateway.demo", "demo", "Run the gateway and the simulator together for a minute."),
    "relay": ("havel.gateway.relay.cli", "relay", "Disaster relay: emergency mode and the receiver."),
    "board": ("havel.provisioning.cli_board", "board", "Find and talk to a board over USB."),
    "flash": ("havel.provisioning.cli_flash", "flash", "Build, sign and flash the firmware bundle."),
    "keys": ("havel.provisioning.cli_keys", "keys", "Node identities, keys and the encrypted registry."),
    "kit": ("havel.provisioning.cli_kit", "kit", "Kits for volunteers: guide, check, build, label."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when they are used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, attr, help_text = spec
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            return _unavailable(cmd_name, help_text, exc)
        cmd = getattr(module, attr, None)
        if not isinstance(cmd, click.Command):
            return _unavailable(cmd_name, help_text, ImportError(f"{module_name}.{attr} is missing"))
        return cmd


def _unavailable(name: str, help_text: str, exc: Exception) -> click.Command:
    @click.command(
        name=name,
        help=f"{help_text} (unavailable: {exc})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def cmd() -> None:
        raise HavelError(
            f"'havel {name}' is not available here: {exc}",
            hint="install the matching extra, e.g. pip install 'havel[reticulum]'",
        )

    return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="havel")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs and tracebacks.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Havel: LoRaWAN sensor nodes, codecs, gateway and disaster relay for the city."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: runs the CLI and turns expected errors into one line."""
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        result = cli.main(args=argv, prog_name="havel", standalone_mode=False)
        # In non-standalone mode click returns ctx.exit(n)'s code instead of exiting.
        if isinstance(result, int) and not isinstance(result, bool):
            sys.exit(result)
        return result
    except HavelError as exc:
        if verbose:
            logging.exception("havel failed")
        click.echo(f"havel: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("havel: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        # One line, like every other error: what is wrong, and where to look.
        where = exc.ctx.command_path if exc.ctx is not None else "havel"
        click.echo(f"havel: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"havel: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("havel: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
