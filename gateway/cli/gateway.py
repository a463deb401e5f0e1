"""``havel gateway``: run the daemon, check its config, and ask how it is doing; the backup, outbox,
setup and power commands are added from their own modules."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from havel.gateway import runlock
from havel.gateway.cli.options import load_config, where
from havel.gateway.cli.status import offline_status, print_status
from havel.gateway.cli.storage import gateway_backup, gateway_outbox, gateway_restore
from havel.gateway.power.cli import power, power_check
from havel.gateway.setup.cli import setup


@click.group()
def gateway() -> None:
    """Run and inspect the gateway daemon."""


@gateway.command("run")
@where
def gateway_run(config_path: Path | None, data_dir: Path | None) -> None:
    """Run the daemon until SIGTERM (systemd: see gateway/havel-gateway.service)."""
    from havel.gateway import daemon

    cfg = load_config(config_path, data_dir)
    daemon.run(cfg)


@gateway.command("check")
@where
def gateway_check(config_path: Path | None, data_dir: Path | None) -> None:
    """Validate the configuration exactly as `run` does (sinks and components too) and say what it means.
    Creates no file and connects to nothing."""
    from havel.codecs.lorawan.ids import eui_hex
    from havel.gateway import components, preflight
    from havel.gateway.backends.semtech_udp.server import is_loopback

    cfg = load_config(config_path, data_dir)
    preflight.validate(cfg)
    allowed = ", ".join(eui_hex(e) for e in cfg.udp.allowed_gateways) or "the first one heard"
    click.echo(
        f"config ok: gateway {cfg.gateway_id}, data {cfg.data_dir}, GWMP {cfg.udp.bind}:{cfg.udp.port} "
        f"(gateways: {allowed}), sinks {', '.join(s['name'] for s in cfg.sinks)}, "
        f"components {', '.join(components.names(cfg))}"
    )
    if not is_loopback(cfg.udp.bind):
        click.echo(
            f"warning: udp.bind {cfg.udp.bind} is reachable from the network and GWMP has no "
            "authentication: firewall the port to your concentrators (docs/gateway.md)"
        )


@gateway.command("status")
@where
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
        status = offline_status(cfg, running)
    if as_json:
        click.echo(json.dumps(status, indent=2, default=str))
    else:
        print_status(status)
    ctx.exit({"ok": 0, "running": 0, "degraded": 2}.get(str(status.get("state")), 3))


gateway.add_command(gateway_backup)
gateway.add_command(gateway_restore)
gateway.add_command(gateway_outbox)
# rooftop commands, in their own packages: `havel gateway setup` (gateway/setup), `power`, `power-check`
# (gateway/power)
gateway.add_command(setup)
gateway.add_command(power)
gateway.add_command(power_check)
