"""The gateway's TOML configuration: read, validated at start, with defaults so a minimal file is short.

Every problem raises :class:`havel.errors.ConfigError` naming the key (``udp.port``) and what is wrong.
Every section is a typed section read by :func:`havel.gateway.settings.read`: the core ones are declared
here, those of the optional components (``[forwarder]``, ``[relay]``, ``[watchdog]``, ``[power]``,
``[upstream]``) in :mod:`havel.gateway.sections`. The ``[[sink]]`` tables are kept as tables here (their
type, name and ``commands`` checked) and read by their sinks; what needs more than the file (a key file,
the paths of the relay, the sinks' keys) is checked by :func:`havel.gateway.preflight.validate`, which
``check`` runs and ``run`` runs before it starts.
What holds for every value, whoever owns it, is checked for the whole document first
(:func:`havel.gateway.settings.check_values`): no NaN or infinity, no integer beyond 64 bits, no NUL
character in a string, and tables nested at most :data:`~havel.gateway.settings.MAX_DEPTH` deep.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from havel.codecs.lorawan.ids import parse_id_hex
from havel.errors import ConfigError, InputError
from havel.gateway.sections import (
    DeliverySection,
    PowerSection,
    RelaySection,
    UpstreamSection,
    WatchdogSection,
)
from havel.gateway.settings import MAX_DEPTH, check, check_values, key, read

SINK_TYPES = ("mqtt", "file")
_GATEWAY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_FILE_BYTES = 1 << 20  # a gateway.toml is a few kilobytes
MAX_ALLOWED_GATEWAYS = 1024
MAX_SINKS = 32  # each is a connection and a column of acknowledgements in the outbox
T = TypeVar("T")


def _ip(value: Any, where: str) -> str:
    v = check(str, value, where)
    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise ConfigError(f"{where} {v!r} is not an IP address", hint="e.g. 127.0.0.1") from None
    return str(v)


def _euis(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_ALLOWED_GATEWAYS:
        raise ConfigError(
            f"{where} must be a list of at most {MAX_ALLOWED_GATEWAYS} gateway EUIs",
            hint='e.g. ["AA555A0000000101"]',
        )
    out: list[int] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{where}[{i}] must be a string of 16 hex digits, not {item!r}")
        try:
            out.append(parse_id_hex(item, what=f"{where}[{i}]", size=8))
        except InputError as exc:
            raise ConfigError(str(exc), hint='e.g. "AA555A0000000101"') from None
    return tuple(dict.fromkeys(out))


def _store_url(value: Any, where: str) -> str:
    v = check(str, value, where)
    if not v.startswith(("redis://", "rediss://")) or "@" in v.split("/", 3)[2]:
        raise ConfigError(
            f"{where} must be a redis:// or rediss:// URL without user or password",
            hint="the password goes in network.store_password_file (mode 0600)",
        )
    return v


def _roof_name(value: Any, where: str) -> str:
    v = check(str, value, where)
    if not _GATEWAY_ID.match(v):
        raise ConfigError(f"{where} {v!r} may only hold letters, digits, '-' and '_' (1-64)")
    return v


def _net_id(value: Any, where: str) -> int:
    """A 24-bit NetID as hex digits ("000013"; an integer is taken as is)."""
    v = value
    if isinstance(v, str):
        try:
            v = int(v, 16)
        except ValueError:
            raise ConfigError(f"{where} {value!r} is not hexadecimal") from None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < (1 << 24):
        raise ConfigError(f'{where} must be a 24-bit hex string like "000013", not {value!r}')
    return v


def _gateway_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _GATEWAY_ID.match(value):
        raise ConfigError(
            f"{where} {value!r} may only hold letters, digits, '-' and '_' (1-64)",
            hint="it is part of MQTT topics",
        )
    return value


@dataclass(frozen=True)
class GatewaySection:
    """``[gateway]``: the gateway's name and where it keeps its database."""

    id: str = key("havel-gw", parse=_gateway_id)  # part of every MQTT topic
    data_dir: str = key("/var/lib/havel")  # relative: to the config file's folder


@dataclass(frozen=True)
class UdpConfig:
    """``[udp]``: where the packet forwarders send to."""

    bind: str = key("127.0.0.1", parse=_ip)
    port: int = key(1700, lo=1, hi=65535)
    silent_after_s: float = key(90.0, lo=1.0)  # no PUSH_DATA/PULL_DATA for this long: forwarder silent
    # the gateway EUIs served; empty: the first one heard (GWMP has no authentication, see
    # backends/semtech_udp/forwarders.py)
    allowed_gateways: tuple[int, ...] = key((), parse=_euis)
    max_datagrams_per_s: float = key(2000.0, lo=1.0)  # from one source address (a concentrator: far fewer)


@dataclass(frozen=True)
class NetworkConfig:
    """``[network]``: the edge network server and join server."""

    net_id: int = key(0x000000, parse=_net_id)
    # DevAddrs are allocated below this prefix of dev_addr_prefix_len bits; in the file one key,
    # "26000000/7"; default: from net_id (NetID type 0: 7-bit NwkID)
    dev_addr_prefix: int = key(0x00000000)
    dev_addr_prefix_len: int = key(7, toml=False)
    rx1_delay_s: int = key(1, lo=1, hi=15)
    rx1_dr_offset: int = key(0, lo=0, hi=5)
    rx2_dr: int = key(0, lo=0, hi=6)  # DR7 is FSK: not for LoRa downlinks
    tx_power_dbm: int = key(14, lo=0, hi=27)
    dedup_window_ms: int = key(200, lo=0, hi=5000)  # wait this long for copies from other concentrators
    duplicate_ttl_s: float = key(600.0, lo=1.0)  # copies arriving later than the window still count
    battery_stale_s: float = key(86_400.0, lo=60.0)  # send DevStatusReq when the last report is older
    downlink_ttl_s: float = key(3600.0, lo=1.0)  # default lifetime of a queued application downlink
    confirmed_retries: int = key(4, lo=1, hi=16)  # attempts of a confirmed downlink before it is failed
    downlink_queue_max: int = key(32, lo=1, hi=10_000)  # application commands queued per device
    adr: bool = key(True)  # steer data rate and power of devices that set the ADR bit (gateway/adr.py)
    adr_margin_db: float = key(10.0, lo=0.0)  # installation margin above the data rate's demodulation floor
    # several roofs sharing one network server's state on Redis (docs/multiroof.md): redis:// or rediss://
    # (TLS, verified); None: this roof's own SQLite registry. The password only from store_password_file.
    store: str | None = key(None, parse=_store_url)
    store_password_file: str | None = key(None)
    store_ca_file: str | None = key(None)
    store_timeout_s: float = key(1.0, lo=0.05, hi=30.0)  # a silent store counts as unreachable after this
    roof: str | None = key(None, parse=_roof_name)  # this roof's name in the shared store; None: gateway id


@dataclass(frozen=True)
class HttpConfig:
    """``[http]``: /healthz and /metrics. ``port = 0`` switches it off."""

    bind: str = key("127.0.0.1", parse=_ip)
    port: int = key(9110, lo=0, hi=65535)


@dataclass(frozen=True)
class LogConfig:
    """``[log]``: ``format`` plain or json, ``level`` debug/info/warning/error."""

    format: str = key("plain", choices=("plain", "json"))
    level: str = key("info", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class OutboxConfig:
    """``[outbox]``: disk quota of the durable outbox (None = unlimited; 0 in the file)."""

    quota_mb: float | None = key(512.0, lo=0.0)


@dataclass(frozen=True)
class StorageConfig:
    """``[storage]``: how the daemon writes the SD card (docs/storage-wear.md)."""

    # SQLite is committed in batches this far apart (s); received frames wait in the intake log
    # (<data_dir>/intake.log) until then. 0: a SQLite commit per stored batch of uplinks, the intake
    # journal in SQLite (the shared store and the upstream mode always work so)
    batch_s: float = key(30.0, lo=0.0, hi=600.0)
    log_mb: float = key(4.0, lo=0.002, hi=1024.0)  # the intake log's size (MiB), written whole once

    @property
    def log_bytes(self) -> int:
        return int(self.log_mb * (1 << 20)) // 512 * 512


# The sections this module reads, by their name in the file.
SECTIONS: dict[str, type] = {
    "gateway": GatewaySection,
    "udp": UdpConfig,
    "network": NetworkConfig,
    "http": HttpConfig,
    "log": LogConfig,
    "outbox": OutboxConfig,
    "storage": StorageConfig,
}
# The optional components' sections (havel.gateway.sections): a missing one is None in the Config, except
# [forwarder] (the delivery always runs, with its defaults).
COMPONENT_SECTIONS: dict[str, type] = {
    "forwarder": DeliverySection,
    "relay": RelaySection,
    "watchdog": WatchdogSection,
    "power": PowerSection,
    "upstream": UpstreamSection,
}


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    gateway_id: str
    data_dir: Path
    udp: UdpConfig = field(default_factory=UdpConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    sinks: list[dict[str, Any]] = field(default_factory=list)
    forwarder: DeliverySection = field(default_factory=DeliverySection)  # the delivery to the sinks
    relay: RelaySection | None = None  # the disaster relay
    watchdog: WatchdogSection | None = None  # restarts a silent packet forwarder
    power: PowerSection | None = None  # the UPS, through NUT
    upstream: UpstreamSection | None = None  # in front of other network servers
    source: Path | None = None
    # the one mqtt sink (``commands = true``) whose broker the daemon takes downlink commands from; None: none
    command_sink: str | None = None

    @property
    def db_path(self) -> Path:
        """The one SQLite database: registry, sessions and outbox."""
        return self.data_dir / "havel.db"

    @property
    def log_path(self) -> Path:
        """The intake log (:mod:`.journal_log`) when the daemon writes SQLite in batches."""
        return self.data_dir / "intake.log"

    @property
    def topic_prefix(self) -> str:
        """The MQTT topic prefix of the first MQTT sink (``havel`` by default)."""
        for sink in self.sinks:
            if sink.get("type") == "mqtt":
                return str(sink.get("prefix", "havel"))
        return "havel"


# ------------------------------------------------------------------------------------------------ reading


def load(path: str | Path) -> Config:
    """Read and validate a TOML file."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"config file {p} is larger than {MAX_FILE_BYTES} bytes")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {p} does not exist", hint="pass --config with the path of your gateway.toml"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except RecursionError:  # inline tables or arrays nested thousands deep
        raise ConfigError(f"{p}: values nested too deeply", hint=f"at most {MAX_DEPTH} levels") from None
    return from_dict(raw, source=p)


def from_dict(raw: dict[str, Any], *, source: Path | None = None) -> Config:
    """Validate an already parsed TOML document; relative ``data_dir`` is taken from the file's folder."""
    if not isinstance(raw, dict):
        raise ConfigError("the configuration must be a table")
    check_values(raw)
    known = {*SECTIONS, "sink", *COMPONENT_SECTIONS}
    for name in raw:
        if name not in known:
            raise ConfigError(
                f"unknown section or key '{name}'", hint=f"known sections: {', '.join(sorted(known))}"
            )
    gw = read(GatewaySection, raw.get("gateway"), "gateway")
    gateway_id = gw.id
    data_dir = Path(gw.data_dir)
    if not data_dir.is_absolute() and source is not None:
        data_dir = source.parent / data_dir

    udp = read(UdpConfig, raw.get("udp"), "udp")

    n = raw.get("network")
    n_rest = {k: v for k, v in n.items() if k != "dev_addr_prefix"} if isinstance(n, dict) else n
    network = read(NetworkConfig, n_rest, "network")
    prefix, plen = _prefix(n if isinstance(n, dict) else {}, network.net_id)
    network = dataclasses.replace(network, dev_addr_prefix=prefix, dev_addr_prefix_len=plen)

    http = read(HttpConfig, raw.get("http"), "http")
    log = read(LogConfig, raw.get("log"), "log")
    outbox = read(OutboxConfig, raw.get("outbox"), "outbox")
    if outbox.quota_mb == 0:
        outbox = OutboxConfig(quota_mb=None)

    sinks_raw = raw.get("sink", [{"type": "file", "path": "-"}])
    if not isinstance(sinks_raw, list) or not all(isinstance(s, dict) for s in sinks_raw):
        raise ConfigError("'sink' must be an array of tables ([[sink]])")
    if len(sinks_raw) > MAX_SINKS:
        raise ConfigError(f"sink: {len(sinks_raw)} [[sink]] tables, at most {MAX_SINKS}")
    sinks: list[dict[str, Any]] = []
    names: set[str] = set()
    command_sink: str | None = None
    for i, s in enumerate(sinks_raw):
        kind = s.get("type")
        if kind not in SINK_TYPES:
            raise ConfigError(f"sink[{i}].type is {kind!r}", hint=f"one of {', '.join(SINK_TYPES)}")
        name = s.get("name", kind if kind not in names else f"{kind}{i}")
        if not isinstance(name, str) or not _GATEWAY_ID.match(name):
            raise ConfigError(
                f"sink[{i}].name {name!r} may only hold letters, digits, '-' and '_' (1-64)",
                hint="it names the sink in metrics, the outbox and logs",
            )
        if name in names:
            raise ConfigError(f"sink[{i}].name {name!r} is used twice")
        names.add(name)
        # commands = true: subscribe to downlink commands on this sink's broker (off by default, so that a
        # sink feeding another party's broker, FROST or FIWARE, never takes commands from it)
        commands = s.get("commands", False)
        if not isinstance(commands, bool) or (commands and kind != "mqtt"):
            raise ConfigError(f"sink[{i}].commands must be true or false, and true only on an mqtt sink")
        if commands and command_sink is not None:
            raise ConfigError(
                f"sink[{i}].commands: {command_sink!r} already takes downlink commands",
                hint="name one [[sink]] with commands = true",
            )
        command_sink = name if commands else command_sink
        sinks.append({**{k: v for k, v in s.items() if k != "commands"}, "name": name})
    if not sinks:
        raise ConfigError("no [[sink]] configured", hint="add at least a file sink")

    def optional(name: str, section: type[T]) -> T | None:
        return read(section, raw[name], name) if name in raw else None

    return Config(
        gateway_id=gateway_id,
        data_dir=data_dir,
        udp=udp,
        network=network,
        http=http,
        log=log,
        outbox=outbox,
        storage=read(StorageConfig, raw.get("storage"), "storage"),
        sinks=sinks,
        forwarder=read(DeliverySection, raw.get("forwarder"), "forwarder"),
        relay=optional("relay", RelaySection),
        watchdog=optional("watchdog", WatchdogSection),
        power=optional("power", PowerSection),
        upstream=optional("upstream", UpstreamSection),
        source=source,
        command_sink=command_sink,
    )


def defaults(data_dir: Path, *, gateway_id: str = "havel-gw") -> Config:
    """A config with every default (used by ``--data-dir`` without a file, and by the demo)."""
    return from_dict({"gateway": {"id": gateway_id, "data_dir": str(data_dir)}})


# ------------------------------------------------------------------------------------------------ helpers


def _prefix(n: dict[str, Any], net_id: int) -> tuple[int, int]:
    """``dev_addr_prefix = "26000000/7"``; default: NetID type 0 rule (NwkID = 6 LSB of NetID)."""
    if "dev_addr_prefix" not in n:
        return ((net_id & 0x3F) << 25, 7)  # type 0: 7-bit prefix 0b0 + 6-bit NwkID
    v = n["dev_addr_prefix"]
    if not isinstance(v, str) or "/" not in v:
        raise ConfigError(f'network.dev_addr_prefix {v!r} must look like "26000000/7"')
    addr_s, len_s = v.split("/", 1)
    try:
        addr, plen = int(addr_s, 16), int(len_s)
    except ValueError:
        raise ConfigError(f'network.dev_addr_prefix {v!r} must look like "26000000/7"') from None
    if not (0 <= addr < 1 << 32 and 1 <= plen <= 31):
        raise ConfigError(f"network.dev_addr_prefix {v!r} is out of range", hint="prefix length 1..31")
    mask = ((1 << plen) - 1) << (32 - plen)
    if addr & ~mask & 0xFFFFFFFF:
        raise ConfigError(f"network.dev_addr_prefix {v!r} has bits set beyond the prefix length")
    return addr, plen


def schema() -> dict[str, set[str]]:
    """Every key the gateway config takes, by table (``sink`` for all sink types, ``relay.path`` for all
    path types): what gateway/gateway.example.toml documents, one comment per key."""
    from havel.gateway.relay.aprs_config import APRSConfig
    from havel.gateway.relay.mqtt_relay import MqttPathOptions
    from havel.gateway.relay.reticulum_relay import ReticulumConfig
    from havel.gateway.sections import UpstreamServer
    from havel.gateway.settings import MqttSettings, keys_of
    from havel.gateway.sinks import file, mqtt

    out = {name: set(keys_of(section)) for name, section in {**SECTIONS, **COMPONENT_SECTIONS}.items()}
    # (gateway_id is set by the daemon from [gateway] id, not written in a [[sink]])
    out["sink"] = (mqtt.SINK_KEYS | MqttSettings.key_names() | file.KEYS | {"commands"}) - {"gateway_id"}
    mqtt_path = {"name", "prefix", "status_topic", "max_inflight"} | MqttSettings.key_names()
    out["relay.path"] = (
        {"type"} | set(keys_of(APRSConfig)) | set(keys_of(ReticulumConfig)) | set(keys_of(MqttPathOptions))
    ) | mqtt_path
    out["upstream.server"] = set(keys_of(UpstreamServer))
    return out
