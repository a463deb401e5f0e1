"""``havel relay``: the emergency switch, the crisis-centre receiver, key generation."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import click

from havel.errors import ConfigError
from havel.gateway.relay.emergency import EmergencySwitch
from havel.gateway.relay.signing import SigningKey


def _switch(config: str | None, data_dir: str | None) -> EmergencySwitch:
    """The gateway's emergency switch: with --config exactly the one the daemon acts on (its data directory
    and its ``[relay] emergency``); with only --data-dir the state file alone (the config is not known)."""
    if config:
        from havel.gateway.config import load
        from havel.gateway.relay.component import emergency_switch

        cfg = load(config)
        return emergency_switch(cfg.relay, Path(data_dir) if data_dir else cfg.data_dir)
    if not data_dir:
        raise ConfigError("give --config FILE (the gateway's config) or --data-dir DIR")
    return EmergencySwitch(Path(data_dir))


@click.group("relay")
def relay() -> None:
    """Disaster relay: emergency mode, the crisis-centre receiver, signing keys."""


@relay.command("emergency")
@click.argument("action", type=click.Choice(["on", "off", "status"]))
@click.option("--config", "config", type=click.Path(dir_okay=False), help="The gateway's config file.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="The gateway's data directory.")
@click.option(
    "--receiver-config",
    type=click.Path(dir_okay=False, exists=True),
    help="At the crisis centre: send a signed command over the receiver's [mqtt] broker instead.",
)
@click.option("--gateway", "gateway_id", help="With --receiver-config: the gateway id to command.")
def emergency(
    action: str, config: str | None, data_dir: str | None, receiver_config: str | None, gateway_id: str | None
) -> None:
    """Declare (on) or end (off) the emergency; the ham relay transmits only while it is on.

    Third-party traffic on amateur radio is legal only in a declared emergency (AFuV). On the gateway this
    writes the state file the daemon reads before every transmission. At the crisis centre,
    ``--receiver-config FILE --gateway ID`` sends the same switch as a signed MQTT command over the mesh
    broker (the gateway's MQTT relay path needs ``emergency_commands = true``).
    """
    if receiver_config:
        _remote_emergency(action, receiver_config, gateway_id)
        return
    switch = _switch(config, data_dir)
    if action == "status":
        st = switch.state()
        if st.source == "config" and not config:
            click.echo(
                "emergency: no state file; the gateway config's [relay] emergency decides "
                "(give --config to read it)"
            )
            return
        click.echo(
            f"emergency {'ON' if st.on else 'off'} (by {st.source}"
            f"{', since ' + st.since if st.since else ''})"
        )
        return
    st = switch.set(action == "on", "cli")
    click.echo(
        "emergency ON: the amateur-radio relay may transmit"
        if st.on
        else "emergency off: the amateur-radio relay is silent"
    )


def _remote_emergency(action: str, receiver_config: str, gateway_id: str | None) -> None:
    from havel.gateway.relay.mqtt_relay import CONTROL_SENDER, send_emergency_command
    from havel.gateway.relay.receive.config import ReceiverConfig
    from havel.gateway.relay.signing import CounterStore, Signer

    if action == "status":
        raise ConfigError("status is local only: run it on the gateway (or read its relay/status topic)")
    cfg = ReceiverConfig.load(receiver_config)
    sender = next((s for s in cfg.senders if s.gateway_id == gateway_id), None)
    if sender is None:
        raise ConfigError(f"--gateway {gateway_id!r} is not a [[sender]] gateway_id in {receiver_config}")
    if not cfg.mqtt:
        raise ConfigError(f"{receiver_config} has no [mqtt] broker to send the command over")
    m = cfg.mqtt
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    signer = Signer(sender.key, CONTROL_SENDER, CounterStore(cfg.data_dir / "control-counter"))
    send_emergency_command(
        m, prefix=cfg.prefix, gateway_id=sender.gateway_id, on=action == "on", signer=signer
    )
    click.echo(f"signed emergency {action} sent to gateway {sender.gateway_id}")


@relay.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False))
def keygen(path: str) -> None:
    """Write a new shared signing key (hex, mode 0600) for a gateway and its receiver."""
    if Path(path).exists():
        raise ConfigError(f"{path} exists; refusing to overwrite a key", hint="choose a new file name")
    SigningKey.generate().save(path)
    click.echo(f"key written to {path} (copy it to the receiver over a trusted channel)")


@relay.command("receive")
@click.option(
    "--config",
    "config",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The receiver's TOML config.",
)
@click.option("--live/--no-live", default=True, help="Show the live table of the latest alarms.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (tests, demos).")
@click.option("--web", is_flag=True, help="Also serve the crisis-centre board, a read-only web page.")
@click.option(
    "--web-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the board listens on; another than loopback lets that network read it (warned).",
)
@click.option(
    "--web-port", default=8766, show_default=True, type=click.IntRange(0, 65535), help="Port of the board."
)
@click.option(
    "--web-rules",
    type=click.Path(dir_okay=False, exists=True),
    help="The gateway's config (its [relay] rules), so the board names the threshold an alarm crossed.",
)
def receive(
    config: str,
    live: bool,
    duration: float | None,
    web: bool,
    web_host: str,
    web_port: int,
    web_rules: str | None,
) -> None:
    """Run the crisis-centre receiver: verify, deduplicate, republish into the local broker."""
    from havel.gateway.relay.receive.config import ReceiverConfig
    from havel.gateway.relay.receive.receiver import Receiver

    cfg = ReceiverConfig.load(config)
    rules = None
    if web:
        _check_web_host(web_host)
    if web_rules:
        from havel.gateway.relay.board import alarm_rules

        rules = alarm_rules(web_rules)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    rx = Receiver(cfg).start()
    click.echo(f"receiver ready: listening on {', '.join(rx.wait_ready()) or 'nothing yet'}", err=True)
    board = _start_board(rx, rules, web_host, web_port) if web else None
    deadline = None if duration is None else time.monotonic() + duration
    try:
        if live:
            from rich.live import Live

            with Live(_table(rx), refresh_per_second=2) as view:
                while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                    stop.wait(0.5)
                    view.update(_table(rx))
        else:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if board is not None:
            board[0].stop()
            board[1].shutdown()
            board[1].server_close()
        rx.stop()
    totals = {k: rx.core.total(k) for k in rx.core.COUNTERS}
    click.echo("receiver stopped: " + ", ".join(f"{k} {v}" for k, v in totals.items()), err=True)
    restarts = {n: h["restarts"] for n, h in rx.health().items() if isinstance(h, dict) and h.get("restarts")}
    if restarts:
        click.echo("listener restarts: " + ", ".join(f"{k} {v}" for k, v in restarts.items()), err=True)
    errors = {
        n: h["handler_errors"]
        for n, h in rx.health().items()
        if isinstance(h, dict) and h.get("handler_errors")
    }
    if errors:
        click.echo("handler errors: " + ", ".join(f"{k} {v}" for k, v in errors.items()), err=True)


def _check_web_host(host: str) -> Any:
    """The board's address: an IP address, not a wildcard (one network, chosen by the operator)."""
    import ipaddress

    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError as exc:
        raise ConfigError(f"--web-host {host!r} is not an IP address") from exc
    if addr.is_unspecified:
        raise ConfigError(
            f"--web-host {host} would listen on every network",
            hint="name the one address the wall screen reaches the board on",
        )
    return addr


def _start_board(rx: Any, rules: Any, host: str, port: int) -> tuple[Any, Any]:
    """The board served in a thread of its own; loopback unless the operator names another address."""
    from havel.errors import HavelError
    from havel.gateway.relay.board import Board
    from havel.web import serve

    addr = _check_web_host(host)
    if not addr.is_loopback:
        click.echo(
            f"warning: the board listens on {host}: everyone who reaches that address can read the alarms "
            "(read-only, no TLS, no login)",
            err=True,
        )
    board = Board(rx, rules)
    try:
        srv = serve(board.app, host, port)
    except OSError as exc:
        rx.stop()
        raise HavelError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="another board may be running; or pick another port with --web-port",
        ) from exc
    board.start()
    threading.Thread(target=srv.serve_forever, name="board-http", daemon=True).start()
    shown = f"[{host}]" if addr.version == 6 else host
    click.echo(f"crisis-centre board at http://{shown}:{srv.server_address[1]}/", err=True)
    return board, srv


def _table(rx: Any) -> Any:
    from datetime import datetime

    from rich.table import Table

    t = Table(title="Havel relay: latest alarms and states", expand=False)
    for col in ("time", "class", "gateway", "device", "fcnt", "data", "via"):
        t.add_column(col)
    for d in reversed(list(rx.core.latest)[-15:]):
        style = "bold red" if d.record.cls == "alarm" else ""
        t.add_row(
            datetime.fromtimestamp(d.at).strftime("%H:%M:%S"),
            d.record.cls,
            d.gateway_id,
            d.record.device or d.record.dev_eui,
            str(d.record.fcnt),
            ", ".join(f"{k}={v}" for k, v in d.record.data.items()),
            d.via,
            style=style,
        )
    totals = {k: rx.core.total(k) for k in rx.core.COUNTERS}
    # Only signed reports say whether a gateway's primary path is down; the broker link is unsigned.
    primaries = [f"{gw}: primary {v['primary']} (signed, via {v['via']})" for gw, v in rx.core.status.items()]
    links = [f"{gw}: mesh broker link {st['state']} (unsigned)" for gw, st in rx.core.link_status.items()]
    health = rx.health() if hasattr(rx, "health") else {}
    listeners = [
        f"{name} listener: restarted {h['restarts']} times"
        for name, h in health.items()
        if isinstance(h, dict) and h.get("restarts")
    ] + [
        f"{name} listener: {h['handler_errors']} messages its handler failed on"
        for name, h in health.items()
        if isinstance(h, dict) and h.get("handler_errors")
    ]
    lines = [*primaries, *links, *listeners, "  ".join(f"{k}: {v}" for k, v in totals.items())]
    t.caption = "\n".join(lines)
    return t
