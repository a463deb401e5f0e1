"""The one validation that ``havel gateway check`` runs and ``havel gateway run`` runs before it starts.

Loading the config (:mod:`havel.gateway.config`) already refuses every key of a wrong type or out of range.
What needs more than the file is checked when the daemon builds its parts: each ``[[sink]]`` (read by its
sink), the paths and rules of ``[relay]`` (a key file, an APRS path without a callsign), a UPS name. The
daemon builds them only after it has opened (created) its database. :func:`validate` builds everything the
daemon builds from the config, the same way (:func:`havel.gateway.components.build`), against a database in
memory, and throws it away. So ``check`` refuses exactly what ``run`` would refuse, and ``run`` (which calls
this first, :meth:`havel.gateway.daemon.Gateway.start`) refuses it before it creates any file.
"""

from __future__ import annotations

import asyncio

from havel.gateway import components, db
from havel.gateway.config import Config
from havel.gateway.outbox import Outbox
from havel.gateway.registry import Registry
from havel.gateway.sections import relay_rules


def validate(cfg: Config) -> None:
    """Everything ``run`` checks in the config before it serves: raises ConfigError (or another
    HavelError, e.g. a relay key file others can read) naming the key. Creates no file."""
    from havel.gateway.daemon import Gateway

    if cfg.network.store is not None:  # a roof of a shared network (docs/multiroof.md)
        from havel.gateway.network.shared.daemon import check

        check(cfg)  # the URL and the password file; no connection yet
    with components.config_errors("relay.rules"):
        relay_rules(cfg.relay)  # the relay's priority rules, which the network server takes before components
    conn = db.open_db(":memory:")
    loop = asyncio.new_event_loop()  # (components keep a reference; none is run)
    try:
        registry = Registry(conn)
        outbox = Outbox(conn, sinks=[s["name"] for s in cfg.sinks])
        gateway = Gateway(cfg)
        components.build(
            components.DaemonContext(cfg, conn, outbox, registry, gateway.metrics, gateway, loop)
        )
    finally:
        loop.close()
        conn.close()
