"""The relay as a gateway daemon component (``[relay]`` in the gateway config; see daemon.COMPONENTS).

[relay]
emergency = false            # the config switch; `havel relay emergency on|off` overrides it
primary = "platform"         # the sink whose outage is watched (default: the first sink)
key_file = "relay.key"       # shared signing key (hex, 0600), relative to the data directory
down_after_s = 30            # outage hysteresis
up_after_s = 60
state_interval_s = 900       # slow cadence of the latest state per sensor while down
max_age_s = 21600            # older records are not relayed (they wait for the primary)
rules = [ {name = "flood", class = "alarm", codec = "water", field = "level", op = ">=", value = 150} ]
[[relay.path]]
type = "aprs"                # see aprs_config.APRSConfig
callsign = "DB0XYZ-10"
addressee = "DB0KST-1"
[[relay.path]]
type = "mqtt"                # keys of an mqtt [[sink]], see mqtt_relay
host = "10.36.0.5"
[[relay.path]]
type = "reticulum"           # havel[reticulum]; see reticulum_relay.ReticulumConfig
config_dir = "/etc/havel/rns"
amateur = false
destination = "<hex>"
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from havel.errors import ConfigError, HavelError

from ..settings import key, keys_of, read
from .aprs_config import APRSConfig
from .aprs_relay import APRSRelay
from .emergency import EmergencySwitch
from .manager import Manager
from .outage import OutageDetector
from .priority import Classifier
from .signing import CounterStore, Signer, SigningKey, identity

log = logging.getLogger("havel.relay")

POSITIVE = 0.001  # the smallest time the relay takes (s)


def _tables(value: Any, where: str) -> tuple[dict[str, Any], ...]:
    """A list of tables (``[[relay.path]]``, the ``rules`` list)."""
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of tables, not {value!r:.40}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}[{i}] must be a table, not {item!r:.40}")
    return tuple(value)


@dataclass(frozen=True)
class RelaySection:
    """``[relay]`` (see the module docstring); each ``[[relay.path]]`` is read by its relay."""

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


KEYS = set(keys_of(RelaySection))


def validate(section: dict[str, Any], sink_names: list[str]) -> RelaySection:
    """Check a ``[relay]`` section without creating or opening anything (``gateway check`` and ``run``).

    Raises ConfigError naming the key, or LegalError (an APRS path without a licensed callsign, encryption
    on an amateur-radio Reticulum interface). The key file and the brokers are not touched here.
    """
    s = read(RelaySection, section, "relay")
    primary = s.primary
    if primary is not None and primary not in sink_names:
        # A wrong name would read as a permanent outage and put the relays on the air for nothing.
        raise ConfigError(
            f"relay.primary {primary!r} is not a configured [[sink]] name",
            hint=f"one of: {', '.join(str(s) for s in sink_names) or '(no sinks)'}",
        )
    for i, p in enumerate(s.path):
        kind = p.get("type")
        if kind == "aprs":
            APRSConfig.from_config(p, f"relay.path[{i}]")  # LegalError without a callsign
        elif kind == "reticulum":
            from .reticulum_relay import ReticulumConfig

            ReticulumConfig.from_config(p, f"relay.path[{i}]")
        elif kind != "mqtt":
            raise ConfigError(f"relay.path[{i}].type must be aprs, mqtt or reticulum, got {kind!r}")
    Classifier.from_config(list(s.rules))
    return s


def emergency_switch(section: dict[str, Any] | None, data_dir: Path) -> EmergencySwitch:
    """The emergency switch the gateway's relays act on: the state file in ``data_dir`` when present, else
    ``[relay] emergency``. The daemon and ``havel relay emergency status`` both take it from here, so the
    status shown is the state that decides whether the station transmits."""
    s = read(RelaySection, section or {}, "relay")
    return EmergencySwitch(data_dir, config_default=s.emergency)


def build_relays(section: dict[str, Any], data_dir: Path, gateway_id: str) -> tuple[list[Any], Signer | None]:
    """The relays of ``[[relay.path]]``, sharing one signer and one counter. Raises ConfigError/LegalError."""
    s = read(RelaySection, section, "relay")
    if not s.path:
        return [], None
    calls = [p.get("callsign") for p in s.path if p.get("type") == "aprs"]
    # one spelling of the identity (upper case, SSID 0 without "-0"): what goes on the air is what is signed
    sender = identity(str(s.sender or (calls[0] if calls and calls[0] else gateway_id)))
    key_path = Path(s.key_file)
    signing_key = SigningKey.load(key_path if key_path.is_absolute() else data_dir / key_path)
    signer = Signer(signing_key, sender, CounterStore(data_dir / "relay-counter"))
    switch = emergency_switch(section, data_dir)
    relays: list[Any] = []
    for i, p in enumerate(s.path):
        kind, where = p.get("type"), f"relay.path[{i}]"
        if kind == "aprs":
            relays.append(APRSRelay(APRSConfig.from_config(p, where), signer, switch))
        elif kind == "mqtt":
            from .mqtt_relay import MQTTRelay

            relays.append(MQTTRelay(p, signer, gateway_id, switch=switch, data_dir=data_dir, where=where))
        elif kind == "reticulum":
            from .reticulum_relay import ReticulumConfig, ReticulumRelay

            relays.append(ReticulumRelay(ReticulumConfig.from_config(p, where), signer))
        else:
            raise ConfigError(f"{where}.type must be aprs, mqtt or reticulum, got {kind!r}")
    return relays, signer


class RelayComponent:
    """Starts the relays and ticks the manager in the daemon's event loop."""

    def __init__(self, ctx: Any) -> None:
        section = dict(ctx.section or {})
        self.ctx = ctx
        cfg = ctx.config
        sinks = [s.get("name") for s in cfg.sinks]
        s = validate(section, sinks)
        self.primary = str(s.primary or (sinks[0] if sinks else "primary"))
        if self.primary not in sinks:
            raise ConfigError(
                f"relay.primary {self.primary!r} is not a configured [[sink]] name",
                hint=f"one of: {', '.join(str(s) for s in sinks) or '(no sinks)'}",
            )
        self.relays, self.signer = build_relays(section, Path(cfg.data_dir), cfg.gateway_id)
        self.detector = OutageDetector(s.down_after_s, s.up_after_s)
        self.manager = Manager(
            ctx.outbox,
            self.primary,
            Classifier.from_config(list(s.rules)),
            self.relays,
            self.detector,
            self._primary_health,
            state_interval_s=s.state_interval_s,
            max_age_s=s.max_age_s,
        )
        self.tick_s = s.tick_s
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        # New records (after their COMMIT) wake the manager at once: alarms must not wait for the tick.
        ctx.gateway.outcome_listeners.append(self._on_outcome)
        self.switch = emergency_switch(section, Path(cfg.data_dir))
        self._describe_metrics(ctx.metrics)

    def _describe_metrics(self, m: Any) -> None:
        """Prometheus gauges, computed at scrape time from the manager, the detector and the relays."""
        m.describe("relay_primary_down", "gauge", "1 while the relay considers the primary sink down")
        m.gauge_fn("relay_primary_down", lambda: 1.0 if self.detector.down else 0.0)
        m.describe("relay_outage_changes", "gauge", "primary state changes since start, by new state")
        m.gauge_fn(
            "relay_outage_changes",
            lambda: {(("state", k),): float(v) for k, v in self.detector.changes.items()},
        )
        m.describe("relay_emergency", "gauge", "1 while the amateur-radio emergency switch is on")
        m.gauge_fn("relay_emergency", lambda: 1.0 if self.switch.is_on() else 0.0)
        m.describe("relay_messages", "gauge", "relay counters since start, by path and what happened")
        m.gauge_fn("relay_messages", self._message_counts)

    def _message_counts(self) -> dict[tuple[tuple[str, str], ...], float]:
        """Every path's counters; the emergency commands (and their handler errors) as their own path."""
        out: dict[tuple[tuple[str, str], ...], float] = {}
        for r in self.relays:
            for k, v in dict(getattr(r, "stats", {})).items():
                out[(("path", r.name), ("what", k))] = float(v)
            commands = getattr(r, "commands", None)
            if commands is not None:
                counts = {**commands.stats, "handler_errors": commands.handler_errors}
                for k, v in counts.items():
                    out[(("path", "emergency_commands"), ("what", k))] = float(v)
        return out

    def _on_outcome(self, outcome: Any) -> None:
        if self._wake is not None and self.detector.down:
            self._wake.set()

    def _primary_health(self) -> tuple[bool, float | None]:
        # the documented way (docs/gateway.md, "For components"): the northbound component's forwarder
        northbound = self.ctx.gateway.components.get("forwarder")
        if northbound is None:  # not started yet (components start in order) or already stopped
            return False, None
        try:
            st = northbound.forwarder.status(self.primary)
        except HavelError:
            return False, None
        return bool(st.connected), st.last_ack_at

    async def start(self) -> None:
        started = []
        for r in self.relays:
            try:
                if asyncio.iscoroutinefunction(r.start):
                    await r.start()
                else:
                    await asyncio.to_thread(r.start)
                started.append(r)
            except (HavelError, OSError) as exc:
                # A path that is unreachable at boot must not keep the gateway (and the other paths) down.
                log.error("relay path %s could not start: %s (continuing without it)", r.name, exc)
        self.relays[:] = started
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="relay")
        log.info(
            "relay: watching sink %r, %d path(s): %s",
            self.primary,
            len(self.relays),
            ", ".join(r.name for r in self.relays),
        )

    async def _loop(self) -> None:
        while True:
            try:
                self.manager.tick()
                for r in self.relays:
                    poll = getattr(r, "poll", None)
                    if callable(poll):
                        poll()
            except Exception:
                log.exception("relay tick failed")
            assert self._wake is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_s)
            self._wake.clear()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for r in self.relays:
            result = r.stop() if asyncio.iscoroutinefunction(r.stop) else await asyncio.to_thread(r.stop)
            if asyncio.iscoroutine(result):
                await result

    def health(self) -> dict[str, Any]:
        """The manager's counters and each path's state, listener restarts included, and the emergency
        switch the relays act on (for /status and the roof page)."""
        return {**self.manager.health(), "emergency": self.switch.is_on()}


def create(ctx: Any) -> RelayComponent:
    """Factory the daemon calls (daemon.COMPONENTS['relay'])."""
    return RelayComponent(ctx)
