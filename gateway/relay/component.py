"""The relay as a gateway daemon component (``[relay]`` in the gateway config, :class:`RelaySection`).

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from havel.errors import ConfigError, HavelError
from havel.gateway.relay.aprs_config import APRSConfig
from havel.gateway.relay.aprs_relay import APRSRelay
from havel.gateway.relay.emergency import EmergencySwitch
from havel.gateway.relay.manager import Manager
from havel.gateway.relay.outage import OutageDetector
from havel.gateway.relay.priority import Classifier
from havel.gateway.relay.signing import CounterStore, Signer, SigningKey, identity
from havel.gateway.sections import RelaySection
from havel.gateway.settings import read

if TYPE_CHECKING:
    from havel.gateway.components import DaemonContext

log = logging.getLogger("havel.relay")


def validate(section: RelaySection | dict[str, Any], sink_names: list[str]) -> RelaySection:
    """Check a ``[relay]`` section (or its table) without creating or opening anything (``gateway check``
    and ``run``).

    Raises ConfigError naming the key, or LegalError (an APRS path without a licensed callsign, encryption
    on an amateur-radio Reticulum interface). The key file and the brokers are not touched here.
    """
    s = section if isinstance(section, RelaySection) else read(RelaySection, section, "relay")
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
            from havel.gateway.relay.reticulum_relay import ReticulumConfig

            ReticulumConfig.from_config(p, f"relay.path[{i}]")
        elif kind != "mqtt":
            raise ConfigError(f"relay.path[{i}].type must be aprs, mqtt or reticulum, got {kind!r}")
    Classifier.from_config(list(s.rules))
    return s


def emergency_switch(section: RelaySection | None, data_dir: Path) -> EmergencySwitch:
    """The emergency switch the gateway's relays act on: the state file in ``data_dir`` when present, else
    ``[relay] emergency``. The daemon and ``havel relay emergency status`` both take it from here, so the
    status shown is the state that decides whether the station transmits."""
    return EmergencySwitch(data_dir, config_default=section is not None and section.emergency)


def build_relays(s: RelaySection, data_dir: Path, gateway_id: str) -> tuple[list[Any], Signer | None]:
    """The relays of ``[[relay.path]]``, sharing one signer and one counter. Raises ConfigError/LegalError."""
    if not s.path:
        return [], None
    calls = [p.get("callsign") for p in s.path if p.get("type") == "aprs"]
    # one spelling of the identity (upper case, SSID 0 without "-0"): what goes on the air is what is signed
    sender = identity(str(s.sender or (calls[0] if calls and calls[0] else gateway_id)))
    key_path = Path(s.key_file)
    signing_key = SigningKey.load(key_path if key_path.is_absolute() else data_dir / key_path)
    signer = Signer(signing_key, sender, CounterStore(data_dir / "relay-counter"))
    switch = emergency_switch(s, data_dir)
    relays: list[Any] = []
    for i, p in enumerate(s.path):
        kind, where = p.get("type"), f"relay.path[{i}]"
        if kind == "aprs":
            relays.append(APRSRelay(APRSConfig.from_config(p, where), signer, switch))
        elif kind == "mqtt":
            from havel.gateway.relay.mqtt_relay import MQTTRelay

            relays.append(MQTTRelay(p, signer, gateway_id, switch=switch, data_dir=data_dir, where=where))
        elif kind == "reticulum":
            from havel.gateway.relay.reticulum_relay import ReticulumConfig, ReticulumRelay

            relays.append(ReticulumRelay(ReticulumConfig.from_config(p, where), signer))
        else:
            raise ConfigError(f"{where}.type must be aprs, mqtt or reticulum, got {kind!r}")
    return relays, signer


class RelayComponent:
    """Starts the relays and ticks the manager in the daemon's event loop."""

    def __init__(self, ctx: DaemonContext, section: RelaySection) -> None:
        self.ctx = ctx
        cfg = ctx.config
        sinks = [str(s["name"]) for s in cfg.sinks]  # (the config names every sink)
        s = validate(section, sinks)
        self.primary = str(s.primary or (sinks[0] if sinks else "primary"))
        if self.primary not in sinks:
            raise ConfigError(
                f"relay.primary {self.primary!r} is not a configured [[sink]] name",
                hint=f"one of: {', '.join(str(s) for s in sinks) or '(no sinks)'}",
            )
        self.relays, self.signer = build_relays(s, Path(cfg.data_dir), cfg.gateway_id)
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
        self.switch = emergency_switch(s, Path(cfg.data_dir))
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
        # the documented way (docs/gateway.md, "For components"): the northbound component's delivery
        northbound = self.ctx.gateway.northbound
        if northbound is None:  # not built yet
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
