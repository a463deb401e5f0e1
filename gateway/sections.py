"""The config sections of the daemon's optional parts, each declared once as a typed section.

``[forwarder]`` (the delivery from the outbox to the sinks, always running), ``[relay]``, ``[watchdog]``,
``[power]`` and ``[upstream]`` (started when their section is present). :func:`havel.gateway.config.from_dict`
reads them with :func:`havel.gateway.settings.read` into :class:`~havel.gateway.config.Config`, so an unknown
key, a value of the wrong type or out of range is refused when the config is loaded, by ``havel gateway
check`` and ``run`` alike, with the exact key named. Each component is then built from its section
(:mod:`havel.gateway.components`). The keys are documented in ``gateway/gateway.example.toml`` and in each
component's module.

These declarations import nothing of the components themselves, so reading a config stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from havel.codecs.lorawan.ids import parse_id_hex
from havel.errors import ConfigError, HavelError
from havel.gateway.power import nut
from havel.gateway.settings import check, key, read
from havel.gateway.setup.files import PKTFWD_UNIT

if TYPE_CHECKING:
    from havel.gateway.relay.priority import Classifier

__all__ = [
    "DeliverySection",
    "PowerSection",
    "RelaySection",
    "UpstreamSection",
    "UpstreamServer",
    "WatchdogSection",
    "relay_rules",
]

POSITIVE = 0.001  # the smallest time (s) a section takes where zero would mean "never" or "spin"


def _tables(value: Any, where: str) -> tuple[dict[str, Any], ...]:
    """A list of tables (``[[relay.path]]``, the relay's ``rules``), each checked by its reader."""
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of tables, not {value!r:.40}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}[{i}] must be a table, not {item!r:.40}")
    return tuple(value)


# ------------------------------------------------------------------------------------------ [forwarder]


@dataclass(frozen=True)
class DeliverySection:
    """``[forwarder]``: the delivery from the outbox to the sinks (:mod:`havel.gateway.delivery`; the
    section keeps its name from before that module had its own)."""

    batch: int = key(500, lo=1, hi=1_000_000, whole=True)  # records fetched from the outbox at once
    window: int = key(2000, lo=1, hi=1_000_000, whole=True)  # records awaiting acknowledgement per sink
    poll_s: float = key(0.1, lo=POSITIVE)  # new records are seen this soon without a wake-up
    down_after_s: float = key(30.0, lo=POSITIVE)  # a sink without connection or acks this long: down
    up_after_s: float = key(10.0, lo=POSITIVE)  # healthy this long after being down: up
    retry_s: float = key(5.0, lo=POSITIVE)  # a refused record is tried again after this
    ack_interval_s: float = key(5.0, lo=POSITIVE)  # acknowledgements are committed in groups this old ...
    ack_batch: int = key(1000, lo=1, hi=1_000_000, whole=True)  # ... or this large
    buffered_after_s: float = key(10.0, lo=POSITIVE)  # published later than this: ``buffered: true``


# ---------------------------------------------------------------------------------------------- [relay]


@dataclass(frozen=True)
class RelaySection:
    """``[relay]`` (:mod:`havel.gateway.relay.component`); each ``[[relay.path]]`` is read by its relay,
    each rule by :class:`havel.gateway.relay.priority.Classifier`."""

    emergency: bool = key(False)  # the config switch; `havel relay emergency on|off` overrides it
    primary: str | None = key(None)  # the [[sink]] whose outage is watched; None: the first sink
    sender: str | None = key(None)  # the signing identity; None: the APRS callsign, else the gateway id
    key_file: str = key("relay.key")  # shared signing key (hex, 0600), relative to the data directory
    down_after_s: float = key(30.0, lo=POSITIVE)
    up_after_s: float = key(60.0, lo=POSITIVE)
    state_interval_s: float = key(900.0, lo=POSITIVE)
    max_age_s: float = key(21600.0, lo=POSITIVE)
    tick_s: float = key(0.5, lo=POSITIVE)
    rules: tuple[dict[str, Any], ...] = key((), parse=_tables)
    path: tuple[dict[str, Any], ...] = key((), parse=_tables)


def relay_rules(relay: RelaySection | None) -> Classifier | None:
    """The relay's priority rules when the relay is configured, else None: the network server stores each
    uplink with the higher of their class and its own (ConfigError for a bad rule)."""
    if relay is None:
        return None
    from havel.gateway.relay.priority import Classifier

    return Classifier.from_config(list(relay.rules))


# ------------------------------------------------------------------------------------------- [watchdog]

DEFAULT_RESTART = ("systemctl", "restart", PKTFWD_UNIT)


@dataclass(frozen=True)
class WatchdogSection:
    """``[watchdog]`` (:mod:`havel.gateway.setup.watchdog`, docs/roof.md)."""

    restart_command: tuple[str, ...] = key(DEFAULT_RESTART)  # the program and its arguments
    first_after_s: float = key(0.0, lo=0.0)  # silent this much longer than udp.silent_after_s: restart
    backoff_s: float = key(60.0, lo=0.1)  # between restarts, doubling ...
    backoff_max_s: float = key(1800.0, lo=0.1)  # ... up to this
    max_restarts: int = key(5, lo=1, whole=True)  # then it gives up and says so
    timeout_s: float = key(120.0, lo=1.0)  # for the restart command

    def __post_init__(self) -> None:
        if not self.restart_command:
            raise ConfigError(
                "watchdog.restart_command must be a list of strings (the program and its arguments)",
                hint=f"e.g. {list(DEFAULT_RESTART)}",
            )
        if self.backoff_max_s < self.backoff_s:
            raise ConfigError(f"watchdog.backoff_max_s must be at least backoff_s ({self.backoff_s:g})")


# ---------------------------------------------------------------------------------------------- [power]


def _ups(value: Any, where: str) -> str:
    """A NUT UPS name, ``roofups`` or ``roofups@host:port``."""
    text = check(str, value, where)
    try:
        nut.parse_ups(text)
    except HavelError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return text


@dataclass(frozen=True)
class PowerSection:
    """``[power]`` (:mod:`havel.gateway.power.component`, docs/roof.md)."""

    ups: str = key(parse=_ups)  # the NUT UPS name, "roofups" or "roofups@host:port"
    poll_s: float = key(5.0, lo=0.2)
    low_runtime_s: float = key(600.0, lo=0.0)  # on battery with less runtime than this: low
    low_charge_pct: float = key(25.0, lo=0.0)  # ... or less charge than this
    report_every_s: float = key(300.0, lo=1.0)
    flush_timeout_s: float = key(60.0, lo=0.0)
    shutdown_command: tuple[str, ...] = key(())  # program and arguments; empty: the daemon only stops
    timeout_s: float = key(5.0, lo=0.5)


# ------------------------------------------------------------------------------------------- [upstream]

MAX_SERVERS = 8


def _prefix(value: Any, where: str) -> tuple[int, int]:
    """A DevAddr prefix ``"26000000/7"`` as (value, length)."""
    if not isinstance(value, str) or "/" not in value:
        raise ConfigError(f"{where} must be 'HEX/LENGTH', e.g. '26000000/7', not {value!r:.40}")
    text, _, length = value.partition("/")
    try:
        addr, n = int(text, 16), int(length)
    except ValueError:
        raise ConfigError(f"{where} must be 'HEX/LENGTH', e.g. '26000000/7', not {value!r:.40}") from None
    if not (0 <= addr < 1 << 32 and 0 <= n <= 32):
        raise ConfigError(f"{where}: {value!r} is not a 32-bit DevAddr prefix")
    return addr, n


def _prefixes(value: Any, where: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of 'HEX/LENGTH' prefixes")
    return tuple(_prefix(p, f"{where}[{i}]") for i, p in enumerate(value))


def _euis(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of EUIs (16 hex digits)")
    out = []
    for i, item in enumerate(value):
        try:
            out.append(parse_id_hex(item, what=f"{where}[{i}]", size=8))
        except HavelError as exc:
            raise ConfigError(str(exc)) from None
    return tuple(out)


@dataclass(frozen=True)
class UpstreamServer:
    """One ``[[upstream.server]]``: a network server this gateway forwards to, and which frames it gets."""

    name: str  # unique; default upstream<index>
    host: str
    port: int = key(lo=1, hi=65535)
    keepalive_s: float = key(10.0, lo=0.05)
    down_after_s: float = key(30.0, lo=0.1)
    up_after: int = key(2, lo=1)  # answers in a row before a server counts as back
    dev_addr_prefixes: tuple[tuple[int, int], ...] = key((), parse=_prefixes)  # empty: every DevAddr
    join_euis: tuple[int, ...] = key((), parse=_euis)  # empty: every JoinEUI


def _servers(value: Any, where: str) -> tuple[UpstreamServer, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(s, dict) for s in value):
        raise ConfigError("[upstream] needs at least one [[upstream.server]] table with host and port")
    if len(value) > MAX_SERVERS:
        raise ConfigError(f"{where}: {len(value)} servers, at most {MAX_SERVERS}")
    out: list[UpstreamServer] = []
    for i, table in enumerate(value):
        here = f"{where}[{i}]"
        name = check(str, table.get("name", f"upstream{i}"), f"{here}.name")
        if any(s.name == name for s in out):
            raise ConfigError(f"{here}.name {name!r} is used twice", hint="give each server its own name")
        out.append(read(UpstreamServer, {k: v for k, v in table.items() if k != "name"}, here, name=name))
    return tuple(out)


@dataclass(frozen=True)
class UpstreamSection:
    """``[upstream]`` (:mod:`havel.gateway.upstream.component`)."""

    server: tuple[UpstreamServer, ...] = key((), parse=_servers)
    follow: tuple[int, ...] = key((), parse=_euis)  # registry devices served upstream and followed here
    sessions_file: str = key("followed-sessions.json")  # relative: to the data directory

    def __post_init__(self) -> None:
        if not self.server:
            raise ConfigError("[upstream] needs at least one [[upstream.server]] table with host and port")
