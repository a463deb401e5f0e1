"""One simulated node (the firmware's own code, :mod:`havel.gateway.sim`) joined to the real gateway."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from havel.gateway import config
from havel.gateway.sim.runner import Simulation, make_specs, parse_counts
from support.gateway_run import InProcessGateway, provision_sim, write_config


def run_until(pred: Callable[[], Any], timeout_s: float) -> bool:
    """Poll ``pred`` until it holds (True) or ``timeout_s`` passed (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


@contextmanager
def joined_node(
    tmp_path: Path, *, interval_s: float = 300, **sim: Any
) -> Iterator[tuple[InProcessGateway, Simulation]]:
    """The real gateway (file sink ``tmp_path/out.jsonl``) and one simulated temperature node reporting
    every ``interval_s``, registered and joined; ``sim`` are :class:`Simulation` options."""
    cfg = config.load(write_config(tmp_path, network={"dedup_window_ms": 40}))
    specs = make_specs(parse_counts("temperature=1"), interval_s=interval_s)
    provision_sim(cfg, specs)
    with InProcessGateway(cfg) as gw, Simulation(gw.udp, specs, **sim) as simulation:
        mac = simulation.nodes[0].node.mac
        assert run_until(lambda: mac.joined, 30), simulation.history
        yield gw, simulation
