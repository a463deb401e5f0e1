"""A node kind declared once: its codec, alarm meaning, simulator behaviour, live-table line and kit.

Every kind of Havel node (air, water, ...) has one :class:`NodeKind` value, ``KIND`` in its codec module
(``codecs/payload/<kind>.py``), listed once in ``registry.KIND_MODULES``. Everything else that differs per
kind asks that declaration instead of naming kinds: the gateway's outbox priority (:meth:`NodeKind.priority`),
the simulator (``sim_config`` and ``sim_world``), the demo's live table (``summary``), the CLI choices, the
kit guide (``kit``: ``hw/kits/<kit>.json``) and the tests and benchmarks that go over every kind.
docs/add-a-node-kind.md lists the files a new kind touches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from havel.codecs.payload.base import NodeCodec

#: ``sim_world(io, world, t_s, noise)``: set the simulated chips of the firmware's SimIO (``io.sim``) to the
#: simulated city at time ``t_s``; ``noise(mu, sigma)`` is the node's own random source.
SimWorld = Callable[[Any, Any, float, Callable[[float, float], float]], None]
#: ``sim_config(world, interval_s)``: the ``sensors`` and ``thresholds`` of the simulated node's config.json.
SimConfig = Callable[[Any, float], Mapping[str, Any]]


def _no_summary(data: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in data.items())[:60]


@dataclass(frozen=True)
class NodeKind:
    """What makes one kind of node: see the module docstring.

    ``alarm_keys``: keys of the readings uplink whose true (or above zero) value means the node is in
    alarm (stored as never-dropped alarms, relayed first). ``state``: readings that are actuator state
    (a valve), kept ahead of routine readings. ``sim_config``/``sim_world`` are None for a kind the
    simulator does not run.
    """

    codec: NodeCodec
    kit: str
    alarm_keys: tuple[str, ...] = ()
    state: bool = False
    summary: Callable[[Mapping[str, Any]], str] = _no_summary
    sim_config: SimConfig | None = None
    sim_world: SimWorld | None = None

    @property
    def name(self) -> str:
        """The kind's name: its codec's, its firmware app's and (usually) its kit's."""
        return self.codec.name

    @property
    def simulated(self) -> bool:
        return self.sim_world is not None

    def in_alarm(self, data: Mapping[str, Any]) -> bool:
        """Whether decoded ``data`` says the node is in alarm (by ``alarm_keys``)."""
        for key in self.alarm_keys:
            value = data.get(key)
            if value is True:
                return True
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                return True
        return False

    def priority(self, data: Mapping[str, Any]) -> str | None:
        """``alarm`` or ``state`` as this kind's readings say, None for routine readings."""
        if self.in_alarm(data):
            return "alarm"
        return "state" if self.state else None
