"""The simulation: concentrators, nodes, and a clock that runs ``speed`` times faster than the wall clock.

Simulated time ``t_s`` starts at 0 (``World.start_hour`` o'clock). Each node runs in its own thread: it
sleeps (real time) until the simulated time of its next wake-up, then runs one pass of its main loop
(:meth:`SimNode.step`). Inside a pass the node's fake clock moves through the receive windows at radio speed,
and its thread waits for the gateway's downlink in real time (``wait_s``): time acceleration applies to the
sleep between uplinks, never to the receive windows.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from havel.gateway.sim.concentrator import Concentrator
from havel.gateway.sim.nodes import KINDS, Event, SimNode
from havel.gateway.sim.world import World

log = logging.getLogger("havel.sim")

JOIN_EUI = 0x70B3D57ED000AB00
DEV_EUI_BASE = 0x70B3D57ED0010000
GATEWAY_EUI_BASE = 0xAA555A0000000000


@dataclass
class NodeSpec:
    """A node to simulate; keys are made fresh unless given."""

    kind: str
    name: str
    dev_eui: int
    app_key: bytes
    interval_s: float = 600.0
    join_eui: int = JOIN_EUI

    def record(self) -> dict[str, Any]:
        """The device import record (contracts D) for the gateway's registry."""
        return {
            "name": self.name,
            "dev_eui": f"{self.dev_eui:016X}",
            "join_eui": f"{self.join_eui:016X}",
            "app_key": self.app_key.hex().upper(),
            "codec": self.kind,
            "activation": "otaa",
        }


def make_specs(counts: dict[str, int], *, interval_s: float = 600.0) -> list[NodeSpec]:
    """Nodes named ``<kind>-<n>`` with consecutive DevEUIs and fresh random AppKeys."""
    specs: list[NodeSpec] = []
    for kind in KINDS:
        for i in range(counts.get(kind, 0)):
            specs.append(
                NodeSpec(
                    kind,
                    f"sim-{kind}-{i + 1}",
                    DEV_EUI_BASE + len(specs) + 1,
                    secrets.token_bytes(16),
                    interval_s,
                )
            )
    return specs


def parse_counts(text: str) -> dict[str, int]:
    """``temperature=2,water=1,cooling=1`` -> counts (ValueError naming the bad part)."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, n = part.partition("=")
        if kind not in KINDS or not n.isdigit():
            raise ValueError(f"{part!r}: expected KIND=N with KIND one of {', '.join(KINDS)}")
        out[kind] = int(n)
    return out


class Simulation:
    """See the module docstring. ``on_event`` gets every node event (also kept in :attr:`events`)."""

    def __init__(
        self,
        gateway: tuple[str, int],
        specs: list[NodeSpec],
        *,
        speed: float = 600.0,
        world: World | None = None,
        concentrators: int = 1,
        gps: bool = False,
        wait_s: float = 0.6,
        protocol: int = 2,
        on_event: Callable[[Event], None] | None = None,
        adr: bool = True,
        dr: int = 5,
        signal: tuple[float, float] | None = None,
        roofs: list[tuple[str, int]] | None = None,
    ) -> None:
        self.gateway = gateway
        self.specs = specs
        self.speed = speed
        self.world = world or World()
        self.wait_s = wait_s
        self.on_event = on_event
        self.events: queue.Queue[Event] = queue.Queue()
        self.history: list[Event] = []
        # several roofs (docs/multiroof.md): one concentrator per roof, each node heard by one to three
        targets = list(roofs) if roofs else [gateway] * concentrators
        concentrators = len(targets)
        self.concentrators = [
            Concentrator(target, GATEWAY_EUI_BASE + i + 1, version=protocol, gps=gps)
            for i, target in enumerate(targets)
        ]
        self.nodes: list[SimNode] = []
        for i, spec in enumerate(specs):
            sig: list[tuple[float, float] | None]
            if signal is not None:
                sig = [signal] * concentrators
            else:
                sig = [(-70.0 - 12 * ((i + k) % 4), 9.0 - 3 * ((i + k) % 4)) for k in range(concentrators)]
            if roofs:
                hearing = {(i + k) % concentrators for k in range(min(concentrators, 1 + i % 3))}
                sig = [x if k in hearing else None for k, x in enumerate(sig)]
            self.nodes.append(
                SimNode(
                    spec.kind,
                    spec.name,
                    index=i,
                    dev_eui=spec.dev_eui,
                    join_eui=spec.join_eui,
                    app_key=spec.app_key,
                    world=self.world,
                    concentrators=self.concentrators,
                    signal=sig,
                    interval_s=spec.interval_s,
                    wait_s=wait_s,
                    on_event=self._event,
                    adr=adr,
                    dr=dr,
                )
            )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self._lock = threading.Lock()

    def _event(self, ev: Event) -> None:
        with self._lock:
            self.history.append(ev)
        self.events.put(ev)
        if self.on_event is not None:
            self.on_event(ev)

    def sim_time(self) -> float:
        """Simulated seconds since the start."""
        return (time.monotonic() - self._t0) * self.speed

    def start(self) -> Simulation:
        """Start the concentrators and one thread per node (staggered over the first minute)."""
        for c in self.concentrators:
            c.start()
        self._t0 = time.monotonic()
        for i, node in enumerate(self.nodes):
            first = (i * 13.0) % 60.0
            t = threading.Thread(
                target=self._run_node, args=(node, first), name=f"node-{node.name}", daemon=True
            )
            t.start()
            self._threads.append(t)
        return self

    def _run_node(self, node: SimNode, due: float) -> None:
        while not self._stop.is_set():
            ahead = (due - self.sim_time()) / self.speed
            if ahead > 0:
                self._stop.wait(min(ahead, 0.25))
                continue
            node.clock.t = max(node.clock.t, int(due * 1000))
            try:
                due = node.step(due)
            except Exception as exc:  # a node bug must not go unnoticed, nor kill the others
                log.exception("node %s failed", node.name)
                self._event(
                    {"node": node.name, "kind": node.kind, "event": "error", "error": repr(exc), "t_s": due}
                )
                return

    def stop(self) -> None:
        """Stop the nodes and the concentrators."""
        self._stop.set()
        for t in self._threads:
            t.join(5)
        for c in self.concentrators:
            c.close()

    def __enter__(self) -> Simulation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, pred: Callable[[Event], bool], timeout_s: float) -> Event | None:
        """The first event (past or future) matching ``pred`` within ``timeout_s`` real seconds."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while True:
            with self._lock:
                hist = list(self.history[seen:])
            for ev in hist:
                if pred(ev):
                    return ev
            seen += len(hist)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
