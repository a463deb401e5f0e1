"""``havel demo`` (``make demo``): the real gateway and the simulator together for about a minute.

What runs: a local Mosquitto (when installed) on a free loopback port; the real daemon
(``havel gateway run``) as a child process with embedded defaults (temporary data directory, SQLite, a
``file`` sink, plus an ``mqtt`` sink to that broker); the simulator with firmware nodes (one of every
simulated node kind, e.g. a water-level node on a rising river and a cooling point in a heat wave, and a
second temperature node) joining over the air. The live
table shows what the gateway decoded and published (read back from its file sink), joins, the water
alarms, the valve's actions, and a valve command sent over MQTT on the way to the node and back.
It ends with a summary; Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from havel.codecs.payload import find_kind
from havel.errors import HavelError
from havel.gateway.demo_support import Feed, LocalBroker, free_port


def _summary(kind: str, data: dict[str, Any] | None) -> str:
    if not isinstance(data, dict):
        return "(undecodable)"
    declared = find_kind(kind)
    if declared is None:
        return json.dumps(data)[:60]
    return declared.summary(data)


class Board:
    """The state the live table shows."""

    def __init__(self, mqtt: bool) -> None:
        self.devices: dict[str, dict[str, Any]] = {}
        self.log: deque[str] = deque(maxlen=12)
        self.counts = {"uplinks": 0, "joins": 0, "alarms": 0, "valve_actions": 0, "commands": 0}
        self.valve_open: dict[str, bool] = {}
        self.mqtt = mqtt
        self.results: list[dict[str, Any]] = []

    def take(self, line: dict[str, Any], sim_hour: float) -> None:
        topic, p = line.get("topic", ""), line.get("payload", {})
        clock = f"{int(sim_hour) % 24:02d}:{int(sim_hour * 60) % 60:02d}"
        if topic.endswith("/up") and p.get("fport") != 1:
            self.counts["uplinks"] += 1
            d = p.get("data") or {}
            if p.get("fport") == 2:  # the node's status after a boot
                self.log.append(
                    f"{clock} {p.get('device')} booted: firmware {d.get('firmware')}, "
                    f"reset {d.get('reset_cause')}, report every {d.get('interval')} s"
                )
        elif topic.endswith("/up"):
            self.counts["uplinks"] += 1
            name = p.get("device", "?")
            kind = p.get("codec", "?")
            best = (p.get("rx") or [{}])[0]
            sf = str(best.get("datr", "")).split("BW")[0]
            self.devices[name] = {
                "kind": kind,
                "fcnt": p.get("fcnt"),
                "reading": _summary(kind, p.get("data")),
                # the data rate too: the gateway's ADR moves it (and the power, which shows in the SNR)
                "signal": f"{sf} {best.get('rssi')} dBm / {best.get('snr')} dB",
                "receivers": len(p.get("rx") or []),
                "buffered": p.get("buffered"),
            }
            data = p.get("data") or {}
            if kind == "water" and data.get("alarm") and p.get("confirmed"):
                self.counts["alarms"] += 1
                self.log.append(
                    f"{clock} [red]water alarm {data.get('alarm_level')}[/red] at {name}: "
                    f"{data.get('level')} cm"
                )
            if kind == "cooling":
                was = self.valve_open.get(name)
                now_open = bool(data.get("valve_open"))
                if was is not None and was != now_open:
                    self.counts["valve_actions"] += 1
                    # a close while it is hot is a rule at work (max on-time, the day's water): say which
                    held = [k.replace("_", " ") for k, v in (data.get("interlock") or {}).items() if v]
                    self.log.append(
                        f"{clock} [cyan]valve {'opened' if now_open else 'closed'}[/cyan] at {name} "
                        f"({data.get('mode')}, {data.get('ambient_temperature')} °C"
                        f"{''.join(', ' + h for h in held)})"
                    )
                self.valve_open[name] = now_open
        elif topic.endswith("/join"):
            self.counts["joins"] += 1
            self.log.append(f"{clock} [green]joined[/green] {p.get('device')} as DevAddr {p.get('dev_addr')}")
            self.devices.setdefault(
                p.get("device", "?"),
                {
                    "kind": "",
                    "fcnt": "-",
                    "reading": "joined",
                    "signal": "",
                    "receivers": 0,
                    "buffered": False,
                },
            )
        elif topic.endswith("/down/result"):
            self.results.append(p)
            self.log.append(
                f"{clock} downlink {p.get('command_id')} to {p.get('device')}: "
                f"[magenta]{p.get('state')}[/magenta] {p.get('detail') or ''}"
            )

    def render(
        self, sim_hour: float, elapsed: float, duration: float, status: dict[str, Any] | None
    ) -> Group:
        t = Table(
            title=f"Havel demo: simulated {int(sim_hour) % 24:02d}:{int(sim_hour * 60) % 60:02d} "
            f"(real {elapsed:.0f}/{duration:.0f} s)",
            expand=True,
        )
        for col in (
            "device",
            "FCnt",
            "last decoded reading (from the gateway's output)",
            "best signal",
            "heard by",
        ):
            t.add_column(col)
        for name in sorted(self.devices):
            d = self.devices[name]
            t.add_row(name, str(d["fcnt"]), d["reading"], d["signal"], f"{d['receivers']} gw")
        c = self.counts
        up = status.get("uplinks", {}) if status else {}
        ob = status.get("outbox", {}) if status else {}
        adr = (status.get("downlinks") or {}).get("adr") or {} if status else {}
        line = (
            f"uplinks published {c['uplinks']}  joins {c['joins']}  water alarms {c['alarms']}  "
            f"valve actions {c['valve_actions']}  |  gateway: accepted {up.get('accepted', 0):g}, "
            f"rejected {sum((up.get('rejected') or {}).values()):g}, "
            f"outbox {(ob.get('depth') or 0) - (ob.get('delivered') or 0)} waiting, "
            f"ADR changes {adr.get('accepted', 0)}  |  "
            f"MQTT {'on' if self.mqtt else 'off (no mosquitto)'}"
        )
        return Group(
            t, Panel("\n".join(self.log) or "waiting for the nodes to join...", title="events"), line
        )


def _status(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1) as r:
            return dict(json.loads(r.read()))
    except (OSError, ValueError):
        return None


@click.command("demo")
@click.option("--duration", type=float, default=60.0, show_default=True, help="Real seconds to run.")
@click.option(
    "--speed", type=float, default=900.0, show_default=True, help="Simulated seconds per real second."
)
@click.option("--no-mqtt", is_flag=True, help="Do not start a local Mosquitto even when installed.")
@click.option("--keep", is_flag=True, help="Keep the temporary data directory (and say where).")
@click.option("--plain", is_flag=True, help="Print events line by line instead of the live table.")
def demo(duration: float, speed: float, no_mqtt: bool, keep: bool, plain: bool) -> None:
    """Run the gateway and the simulator together for a minute."""
    from havel.gateway.sim.cli import register
    from havel.gateway.sim.nodes import KINDS
    from havel.gateway.sim.runner import GATEWAY_EUI_BASE, Simulation, make_specs
    from havel.gateway.sim.world import World

    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="havel-demo-"))
    # mosquitto drops privileges before it reads its config: it may pass through tmp (not list it) into
    # its own folder; the database with the nodes' keys stays private
    os.chmod(tmp, 0o711)  # noqa: S103
    (tmp / "broker").mkdir(mode=0o755)
    os.chmod(tmp / "broker", 0o755)  # noqa: S103
    broker = LocalBroker(tmp / "broker")
    mqtt = False if no_mqtt else broker.start()
    udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    out = tmp / "published.jsonl"
    cfg = tmp / "gateway.toml"
    sinks = f'[[sink]]\ntype = "file"\nname = "local"\npath = "{out}"\n'
    if mqtt:
        sinks += (
            f'\n[[sink]]\ntype = "mqtt"\nname = "platform"\nhost = "127.0.0.1"\nport = {broker.port}\n'
            "tls = false\nreconnect_min_s = 0.2\ncommands = true\n"
        )
    # the simulation's two concentrators (a gateway serves only the first EUI it hears unless they are listed)
    euis = ", ".join(f'"{GATEWAY_EUI_BASE + i:016X}"' for i in (1, 2))
    cfg.write_text(
        f'[gateway]\nid = "demo"\ndata_dir = "{tmp / "data"}"\n\n[udp]\nport = {udp}\n'
        f"allowed_gateways = [{euis}]\n\n"
        f'[http]\nport = {http}\n\n[network]\ndedup_window_ms = 100\n\n[log]\nlevel = "info"\n\n{sinks}'
    )
    # one node of every kind the simulator runs, and a second temperature node (inside and outside)
    specs = make_specs({kind: 2 if kind == "temperature" else 1 for kind in KINDS}, interval_s=900.0)
    register(specs, cfg, None)
    log = open(tmp / "gateway.log", "wb")  # noqa: SIM115 - the child writes to it until it stops
    gw = subprocess.Popen(
        [sys.executable, "-m", "havel", "gateway", "run", "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sim: Simulation | None = None
    board = Board(mqtt)
    feed = Feed(out)
    interrupted = False
    commander: Any = None
    commander_loop: Any = None
    try:
        deadline = time.monotonic() + 20
        while _status(http) is None:
            if gw.poll() is not None or time.monotonic() > deadline:
                raise HavelError(f"the gateway did not start; see {tmp / 'gateway.log'}")
            time.sleep(0.1)
        if mqtt:
            from havel.gateway.mqtt import LoopThread, MqttClient
            from havel.gateway.settings import MqttSettings

            # the platform's side: the gateway's own MQTT client, in a loop thread of its own
            platform = MqttSettings(
                host="127.0.0.1", port=broker.port, tls=False, clean_start=True, session_expiry_s=0
            )
            commander = MqttClient(platform, name="demo platform", client_id="havel-demo-platform")
            commander_loop = LoopThread("demo-platform")
            commander_loop.run(commander.start(), 10)
        world = World(start_hour=6.0, flood_start_s=3 * 3600.0, flood_ramp_s=7 * 3600.0)
        sim = Simulation(("127.0.0.1", udp), specs, speed=speed, world=world, concentrators=2, wait_s=0.5)
        sim.start()
        t0 = time.monotonic()
        command_sent = False
        cooling_eui = next(f"{s.dev_eui:016X}" for s in specs if s.kind == "cooling")

        def step() -> Group | None:
            nonlocal command_sent
            hour = (world.start_hour + sim.sim_time() / 3600) if sim else 0.0
            for line in feed.read():
                board.take(line, hour)
                if plain and line.get("topic", "").endswith(("/up", "/join", "/result")):
                    p = line["payload"]
                    console.print(
                        f"{line['topic']}: {p.get('device')} {_summary(p.get('codec', ''), p.get('data'))}"
                        if line["topic"].endswith("/up")
                        else f"{line['topic']}: {p}"
                    )
            elapsed = time.monotonic() - t0
            warm = sim is not None and 27.0 <= world.air_c(sim.sim_time()) <= 29.0
            if commander is not None and not command_sent and warm:
                # the platform asks the cooling point to mist now, for an hour: warm enough for the city's
                # rule (26 °C), still below the valve's own threshold (30 °C), so the effect is the command's
                commander.publish_threadsafe(
                    f"havel/demo/devices/{cooling_eui}/down",
                    json.dumps({"fport": 23, "data": {"state": "open", "ttl": 3600}, "id": "mist-now"}),
                )
                board.counts["commands"] += 1
                board.log.append(
                    "platform -> MQTT: [magenta]open the valve for 1 h[/magenta] (command mist-now)"
                )
                command_sent = True
            return None if plain else board.render(hour, elapsed, duration, _status(http))

        if plain:
            while time.monotonic() - t0 < duration:
                step()
                time.sleep(0.25)
        else:
            with Live(
                board.render(world.start_hour, 0, duration, None), console=console, refresh_per_second=4
            ) as live:
                while time.monotonic() - t0 < duration:
                    frame = step()
                    if frame is not None:
                        live.update(frame)
                    time.sleep(0.25)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if sim is not None:
            sim.stop()
        if commander is not None and commander_loop is not None:
            with contextlib.suppress(Exception):
                commander_loop.run(commander.stop(), 10)
            commander_loop.close()
        final = _status(http)
        if gw.poll() is None:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(20)
            except subprocess.TimeoutExpired:
                gw.kill()
                gw.wait(5)
        log.close()
        broker.stop()
    for line in feed.read():  # what the gateway flushed while stopping
        board.take(line, 0)
    up = (final or {}).get("uplinks", {})
    states = ", ".join(sorted({str(r.get("state", "")) for r in board.results})) or "none"
    console.print()
    console.print(
        Panel(
            f"{'interrupted: ' if interrupted else ''}{len(specs)} simulated nodes, "
            f"{sum(n.uplinks for n in sim.nodes) if sim else 0} uplinks sent by their firmware MACs\n"
            f"gateway: {up.get('accepted', 0):g} accepted, rejected {up.get('rejected') or {}}, "
            f"joins {board.counts['joins']}, exit status {gw.returncode}\n"
            f"published: {board.counts['uplinks']} uplinks, {board.counts['alarms']} water alarms "
            f"(confirmed), {board.counts['valve_actions']} valve actions, "
            f"{len(board.results)} downlink results ({states})\n"
            f"MQTT: {'a local mosquitto on port ' + str(broker.port) if mqtt else 'not used'}",
            title="summary",
        )
    )
    if keep:
        console.print(f"data kept in {tmp} (gateway.toml, data/havel.db, published.jsonl, gateway.log)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
