"""The one validation that ``havel gateway check`` runs and ``havel gateway run`` runs before it starts.

A config can be wrong in places :mod:`havel.gateway.config` does not read: the ``[[sink]]`` tables (read by
the sinks), ``[forwarder]`` (the northbound forwarder), ``[relay]`` (the disaster relay). The daemon meets
those only when it builds its components, after it has opened (created) its database. :func:`validate`
builds everything the daemon builds from the config, the same way, against a database in memory, and
throws it away. So ``check`` refuses exactly what ``run`` would refuse, and ``run`` (which calls this
first, :meth:`havel.gateway.daemon.Gateway.start`) refuses it before it creates any file.

What this asks of a component (``daemon.COMPONENTS``): its factory reads and checks its section and may
read files (a key), but creates no file, opens no connection and binds no socket; that is the job of its
``start()``. A factory should raise ConfigError naming the key; where one trips over a value of the wrong
type instead (a TypeError, ValueError ...), that becomes a ConfigError naming its section, so that neither
``check`` nor ``run`` shows the operator a traceback for a config mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

from havel.errors import ConfigError, HavelError
from havel.gateway import db
from havel.gateway.config import Config
from havel.gateway.outbox import Outbox
from havel.gateway.registry import Registry


def component_names(cfg: Config) -> list[str]:
    """The components the daemon starts for this config, in order (those always started, then those whose
    section is present); ConfigError for a section no component claims."""
    from havel.gateway.daemon import ALWAYS, COMPONENTS

    for name in cfg.components:
        if name not in COMPONENTS:
            raise ConfigError(f"[{name}] configures a component this gateway does not know")
    return [n for n in COMPONENTS if n in ALWAYS or n in cfg.components]


def component_factory(name: str) -> Any:
    """The factory ``create(ctx)`` of a component (ConfigError when its module cannot be imported)."""
    from havel.gateway.daemon import COMPONENTS

    module_name, attr = COMPONENTS[name].split(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"[{name}] is configured but its module is not available: {exc}") from None


def validate(cfg: Config) -> None:
    """Everything ``run`` checks in the config before it serves: raises ConfigError (or another
    HavelError, e.g. a relay key file others can read) naming the key. Creates no file."""
    from havel.gateway.daemon import DaemonContext, Gateway, relay_rules

    if cfg.network.store is not None:  # a roof of a shared network (docs/multiroof.md)
        from havel.gateway.network.shared.daemon import check

        check(cfg)  # the URL and the password file; no connection yet
    if "relay" in cfg.components:
        with _section("relay.rules"):
            relay_rules(cfg)  # the relay's priority rules, which the network server takes before components
    conn = db.open_db(":memory:")
    loop = asyncio.new_event_loop()  # (components keep a reference; none is run)
    try:
        registry = Registry(conn)
        outbox = Outbox(conn, sinks=[s["name"] for s in cfg.sinks])
        gateway = Gateway(cfg)
        for name in component_names(cfg):
            ctx = DaemonContext(
                cfg, cfg.components.get(name, {}), conn, outbox, registry, gateway.metrics, gateway, loop
            )
            factory = component_factory(name)
            with _section(name):
                factory(ctx)
    finally:
        loop.close()
        conn.close()


@contextlib.contextmanager
def _section(where: str) -> Iterator[None]:
    """A value of the wrong type that a section's reader did not check becomes a ConfigError naming it."""
    try:
        yield
    except HavelError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        raise ConfigError(
            f"[{where}] holds a value of the wrong type or form ({type(exc).__name__}: {exc})",
            hint="compare it with gateway/gateway.example.toml and the component's documentation",
        ) from None
