"""``havel sim``: simulated concentrators and firmware nodes speaking GWMP to a running gateway.

    havel sim --data-dir /tmp/gw --nodes temperature=2,water=1,cooling=1 --speed 600 --duration 60

The nodes get fresh keys each run. ``--data-dir``/``--config`` registers them in that gateway's registry
(replacing earlier simulated devices of the same DevEUI, a running daemon picks them up at once);
``--write-devices FILE`` writes them in the import format instead (0600, it holds keys).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import click

from havel.errors import InputError
from havel.gateway.sim.nodes import KINDS
from havel.gateway.sim.runner import NodeSpec, Simulation, make_specs, parse_counts
from havel.gateway.sim.world import World


def register(specs: list[NodeSpec], config_path: Path | None, data_dir: Path | None) -> None:
    """Put the simulated devices into a gateway's registry (replacing same DevEUIs)."""
    from havel.gateway import db
    from havel.gateway.cli.options import load_config
    from havel.gateway.registry import Registry
    from havel.gateway.registry_io import parse_import

    cfg = load_config(config_path, data_dir)
    conn = db.open_db(cfg.db_path)
    try:
        reg = Registry(conn)
        for dev in parse_import(json.dumps([s.record() for s in specs]), "sim.json"):
            if reg.get(dev.dev_eui) is not None:
                reg.remove(dev.dev_eui)
            elif any(d.name == dev.name for d in reg.devices()):
                reg.remove(reg.find(dev.name).dev_eui)
            reg.add(dev)
    finally:
        conn.close()


def _address(text: str, option: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{option} {text!r}: expected HOST:PORT")
    return host, int(port)


def _describe(ev: dict[str, Any]) -> str:
    e = ev["event"]
    head = f"[{ev['t_s'] / 3600:5.2f} h] {ev['node']:<20}"
    if e == "uplink":
        r = ev["reading"]
        if ev["kind"] == "temperature":
            what = f"air {r['probes'][0]} Cel, surface {r['probes'][1]} Cel"
        elif ev["kind"] == "water":
            what = f"level {r['level']} cm" + (f"  ALARM {r['alarm_level']}" if r["alarm"] else "")
        else:
            valve = "OPEN" if r["valve_open"] else "closed"
            what = f"{r['ambient_temperature']} Cel, valve {valve} ({r['mode']})"
        return f"{head} uplink FCnt {ev['fcnt']}: {what}"
    details = {k: v for k, v in ev.items() if k not in ("node", "kind", "dev_eui", "event", "t_s")}
    return f"{head} {e} {details}"


@click.command("sim")
@click.option(
    "--gateway",
    "gateway_addr",
    default="127.0.0.1:1700",
    show_default=True,
    help="The gateway's GWMP address.",
)
@click.option(
    "--nodes",
    default=",".join(f"{kind}=1" for kind in KINDS),
    show_default=True,
    help=f"KIND=N,... with KIND one of {', '.join(KINDS)}.",
)
@click.option(
    "--speed", type=float, default=600.0, show_default=True, help="Simulated seconds per real second."
)
@click.option(
    "--duration", type=float, default=60.0, show_default=True, help="Real seconds (0: until Ctrl-C)."
)
@click.option(
    "--interval", type=float, default=600.0, show_default=True, help="Report interval (simulated s)."
)
@click.option("--concentrators", type=click.IntRange(1, 8), default=1, show_default=True)
@click.option("--protocol", type=click.Choice(["1", "2"]), default="2", show_default=True)
@click.option("--gps", is_flag=True, help="Forwarders with GPS time (rxpk time + tmms).")
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=0.6,
    show_default=True,
    help="Real seconds a node waits for its downlink (> the gateway's dedup window).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Register the nodes in this gateway's registry.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Register the nodes in the registry of this data directory.",
)
@click.option(
    "--write-devices",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the nodes in the import format (JSON, 0600).",
)
@click.option(
    "--dr",
    type=click.IntRange(0, 5),
    default=5,
    show_default=True,
    help="Data rate the nodes join and start at (0 = SF12 .. 5 = SF7); with ADR the gateway moves it.",
)
@click.option("--no-adr", is_flag=True, help="Nodes without the ADR bit (the kits set it).")
@click.option(
    "--roof",
    "roof_addrs",
    multiple=True,
    help="HOST:PORT of a roof sharing a Redis store (repeat; one concentrator each, every node heard by "
    "one to three of them; docs/multiroof.md). Replaces --gateway and --concentrators.",
)
@click.option("--store", "store_url", help="Register the nodes in this shared store (redis:// or rediss://).")
@click.option("--store-password-file", type=click.Path(dir_okay=False), help="The store's password (0600).")
@click.option("--store-ca-file", type=click.Path(dir_okay=False), help="CA of the store's TLS certificate.")
@click.option("--json", "as_json", is_flag=True, help="Events as JSON lines.")
def sim(
    gateway_addr: str,
    nodes: str,
    speed: float,
    duration: float,
    interval: float,
    concentrators: int,
    protocol: str,
    gps: bool,
    wait_s: float,
    config_path: Path | None,
    data_dir: Path | None,
    write_devices: Path | None,
    dr: int,
    no_adr: bool,
    roof_addrs: tuple[str, ...],
    store_url: str | None,
    store_password_file: str | None,
    store_ca_file: str | None,
    as_json: bool,
) -> None:
    """Simulated concentrators and firmware nodes speaking GWMP to the gateway."""
    host, _, port = gateway_addr.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--gateway {gateway_addr!r}: expected HOST:PORT")
    try:
        counts = parse_counts(nodes)
    except ValueError as exc:
        raise InputError(f"--nodes: {exc}") from None
    specs = make_specs(counts, interval_s=interval)
    if not specs:
        raise InputError("--nodes: nothing to simulate")
    roofs = [_address(a, "--roof") for a in roof_addrs]
    if config_path is None and data_dir is None and write_devices is None and store_url is None:
        raise InputError(
            "the gateway must know the nodes' keys",
            hint="pass --data-dir/--config (register them), --store URL or --write-devices FILE",
        )
    if store_url is not None:
        from havel.gateway.network.shared.connection import StoreSettings, connect
        from havel.gateway.network.shared.state import SharedState
        from havel.gateway.registry_io import parse_import

        shared = SharedState(connect(StoreSettings(store_url, store_password_file, store_ca_file)))
        for dev in parse_import(json.dumps([s.record() for s in specs]), "sim.json"):
            shared.put_device(dev)
    if config_path is not None or data_dir is not None:
        register(specs, config_path, data_dir)
    if write_devices is not None:
        fd = os.open(write_devices, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump([s.record() for s in specs], f, indent=2)

    def show(ev: dict[str, Any]) -> None:
        click.echo(json.dumps(ev) if as_json else _describe(ev))

    simulation = Simulation(
        (host, int(port)),
        specs,
        speed=speed,
        world=World(),
        concentrators=concentrators,
        gps=gps,
        wait_s=wait_s,
        protocol=int(protocol),
        on_event=show,
        adr=not no_adr,
        dr=dr,
        roofs=roofs or None,
    )
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    simulation.start()
    try:
        end = time.monotonic() + duration if duration > 0 else float("inf")
        while not stop["now"] and time.monotonic() < end:
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        simulation.stop()
    ups = sum(n.uplinks for n in simulation.nodes)
    click.echo(
        f"simulated {simulation.sim_time() / 3600:.1f} h: {ups} uplinks from {len(specs)} nodes", err=True
    )
