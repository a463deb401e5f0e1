"""The daemon's components: what each one is, built from its typed config section, held in typed fields.

A component is something the daemon starts after its own parts and stops before them (:class:`Component`).
The delivery to the sinks (:class:`~havel.gateway.northbound.Northbound`, ``[forwarder]`` and ``[[sink]]``)
always runs; the others run when their section is in the config (:mod:`havel.gateway.sections`):

========== ======================================================= =====================================
section    component                                               what it does
========== ======================================================= =====================================
relay      :class:`havel.gateway.relay.component.RelayComponent`   the disaster relay
watchdog   :class:`havel.gateway.setup.watchdog.WatchdogComponent` restarts a silent packet forwarder
power      :class:`havel.gateway.power.component.PowerComponent`   the UPS through NUT
upstream   :class:`havel.gateway.upstream.component.Upstream`      in front of other network servers
========== ======================================================= =====================================

Each is built with the :class:`DaemonContext` (the shared database objects and the daemon) and its own
section. Building reads and checks, and may read a file (a key), but creates no file, opens no connection
and binds no socket: that is ``start()``'s job, so :func:`havel.gateway.preflight.validate` can build them
all for ``havel gateway check`` and throw them away.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from havel.errors import ConfigError, HavelError

if TYPE_CHECKING:
    from havel.gateway.config import Config
    from havel.gateway.daemon import Gateway
    from havel.gateway.metrics import Metrics
    from havel.gateway.northbound import Northbound
    from havel.gateway.outbox import Outbox
    from havel.gateway.power.component import PowerComponent
    from havel.gateway.registry import Registry
    from havel.gateway.relay.component import RelayComponent
    from havel.gateway.setup.watchdog import WatchdogComponent
    from havel.gateway.upstream.component import Upstream

__all__ = ["Component", "Components", "DaemonContext", "build", "config_errors", "names"]


class Component(Protocol):
    """Something the daemon starts and stops."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class DaemonContext:
    """What a component is built with: the config, the database objects (use them only from the event
    loop's thread), the metrics, the daemon (its listeners and hooks) and its event loop."""

    config: Config
    conn: sqlite3.Connection
    outbox: Outbox
    registry: Registry
    metrics: Metrics
    gateway: Gateway
    loop: asyncio.AbstractEventLoop


@dataclass
class Components:
    """The components of one daemon; an optional one is None when its section is absent."""

    northbound: Northbound
    relay: RelayComponent | None = None
    watchdog: WatchdogComponent | None = None
    power: PowerComponent | None = None
    upstream: Upstream | None = None

    def in_order(self) -> list[tuple[str, Component]]:
        """The components present, by their section's name, in the order they start (stop: reversed)."""
        parts: list[tuple[str, Component | None]] = [
            ("forwarder", self.northbound),
            ("relay", self.relay),
            ("watchdog", self.watchdog),
            ("power", self.power),
            ("upstream", self.upstream),
        ]
        return [(name, c) for name, c in parts if c is not None]

    def health(self) -> dict[str, Any]:
        """What the optional components report in the status, by section name."""
        out: dict[str, Any] = {}
        if self.watchdog is not None:
            out["watchdog"] = self.watchdog.health()
        if self.power is not None:
            out["power"] = self.power.health()
        if self.relay is not None:
            out["relay"] = self.relay.health()
        if self.upstream is not None:
            out["upstream"] = self.upstream.health()
        return out


def names(cfg: Config) -> list[str]:
    """The components a config starts, in order (``havel gateway check`` says them)."""
    present = {"relay": cfg.relay, "watchdog": cfg.watchdog, "power": cfg.power, "upstream": cfg.upstream}
    return ["forwarder", *(name for name, section in present.items() if section is not None)]


def build(ctx: DaemonContext) -> Components:
    """Every component the config asks for, built from its section (not started)."""
    from havel.gateway.northbound import Northbound

    cfg = ctx.config
    with config_errors("forwarder"):
        parts = Components(Northbound(ctx, cfg.forwarder))
    if cfg.relay is not None:
        from havel.gateway.relay.component import RelayComponent

        with config_errors("relay"):
            parts.relay = RelayComponent(ctx, cfg.relay)
    if cfg.watchdog is not None:
        from havel.gateway.setup.watchdog import WatchdogComponent

        with config_errors("watchdog"):
            parts.watchdog = WatchdogComponent(ctx, cfg.watchdog)
    if cfg.power is not None:
        from havel.gateway.power.component import PowerComponent

        with config_errors("power"):
            parts.power = PowerComponent(ctx, cfg.power)
    if cfg.upstream is not None:
        from havel.gateway.upstream.component import Upstream

        with config_errors("upstream"):
            parts.upstream = Upstream(ctx, cfg.upstream)
    return parts


@contextlib.contextmanager
def config_errors(where: str) -> Iterator[None]:
    """A value of the wrong type that a reader of ``where`` did not check (a relay path, a sink's format)
    becomes a ConfigError naming it, never a traceback for the operator."""
    try:
        yield
    except HavelError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        raise ConfigError(
            f"[{where}] holds a value of the wrong type or form ({type(exc).__name__}: {exc})",
            hint="compare it with gateway/gateway.example.toml and the component's documentation",
        ) from None
