"""The gateway daemon's network server on a shared store (``[network] store``): what the daemon builds in
place of the SQLite network server when several roofs share one network (docs/multiroof.md).

:class:`SharedNetwork` has the face of :class:`~havel.gateway.network.server.NetworkServer` that the
daemon's intake uses (``receive``, ``next_deadline``, ``flush``, ``storage_failed``), so every uplink still
passes the intake journal, the outbox, the sinks, the relay and the metrics; underneath, a
:class:`~havel.gateway.network.shared.roof.Roof` claims each frame in Redis, processes it once across the
roofs and sends or hands over its downlinks (join-accept, ACK, queued command) through the backend.

A copy of a frame another roof holds comes back from :meth:`SharedNetwork.receive` at once as a
``duplicate`` rejection (that roof stores it; this one only watches that it does, and takes it over when
it does not), so it is neither journaled nor stored here.

Downlink commands from MQTT (:meth:`SharedNetwork.submit`) go to the device's queue in Redis, so the roof
that processes the device's next uplink sends them, once."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from datetime import datetime
from typing import Any

from havel.codecs.lorawan.ids import eui_hex, parse_hex
from havel.errors import CodecError, ConfigError, HavelError, InputError
from havel.gateway.backends.base import Backend, DownlinkFrame
from havel.gateway.config import Config
from havel.gateway.downlink_commands import COMMAND_ID, MAX_TTL_S
from havel.gateway.metrics import Metrics
from havel.gateway.network.outcome import Outcome, Reason, rejected
from havel.gateway.network.reception import Reception
from havel.gateway.network.server import JournalLike, NetworkServer, OutboxLike
from havel.gateway.network.shared.connection import (
    UNREACHABLE,
    DamagedEntry,
    StoreSettings,
    connect,
    redacted,
)
from havel.gateway.network.shared.results import event_result, result_record
from havel.gateway.network.shared.roof import Downlink, Roof
from havel.gateway.network.shared.sessionstore import RedisSessionStore
from havel.gateway.network.shared.state import SharedState

log = logging.getLogger("havel.gateway.shared")

# the downlink sub-band's duty cycle (EU868 g1, where RX1 of the 868.1-868.5 MHz channels lies): a gateway
# that sent waits airtime x 99 before it is chosen again
DUTY = 0.01
POLL_S = 0.01  # how often the downlinks other roofs handed to this one are looked for
TICK_S = 0.25  # how often an unreachable store is tried again (and the cache's age checked)
FIELDS = ("fport", "data", "raw", "confirmed", "ttl_s", "id")
EXPIRE_S = 1.0  # how often the commands whose ttl_s ran out are looked for


class BadTtl(InputError):
    """A command's ttl_s out of range."""


def store_settings(cfg: Config) -> StoreSettings:
    n = cfg.network
    if n.store is None:
        raise ConfigError("network.store is not set", hint="the shared store's redis:// or rediss:// URL")
    return StoreSettings(n.store, n.store_password_file, n.store_ca_file, n.store_timeout_s)


def check(cfg: Config) -> None:
    """What ``havel gateway check`` can check of the store settings without a connection: the URL and the
    password file (mode 0600)."""
    connect(store_settings(cfg))


class SharedNetwork:
    """See the module docstring. Use it only from the event loop's thread."""

    def __init__(
        self,
        cfg: Config,
        conn: Any,
        outbox: OutboxLike,
        metrics: Metrics,
        *,
        journal: JournalLike | None = None,
        rules: Any = None,
    ) -> None:
        self.settings = store_settings(cfg)
        self.shared = SharedState(connect(self.settings))
        self.store = RedisSessionStore(self.shared, conn)
        self.ns = NetworkServer(self.store, outbox, cfg.network, journal=journal, rules=rules)
        self.roof_id = cfg.network.roof or cfg.gateway_id
        self.net = cfg.network
        self.roof = Roof(self.roof_id, self.shared, self.store, self.ns, self._transmit, duty=DUTY)
        self.metrics = metrics
        self.backend: Backend | None = None  # the gateway backend (transmit), set once it listens
        self._outbox = outbox
        metrics.gauge_fn("shared_store_online", lambda: 1.0 if self.store.online else 0.0)
        metrics.gauge_fn("shared_roof_events", self._roof_events)

    def _roof_events(self) -> dict[tuple[tuple[str, str], ...], float]:
        events: dict[tuple[tuple[str, str], ...], float] = {
            (("event", k),): float(v) for k, v in self.roof.counts.items()
        }
        # device entries met damaged in the shared store (left out of lookups and of the fallback cache)
        events[(("event", "damaged_device"),)] = float(self.shared.damaged)
        return events

    # ------------------------------------------------------------------ the network server's face
    @property
    def dedup(self) -> Any:
        return self.ns.dedup

    @property
    def pending(self) -> int:
        return self.ns.pending

    @property
    def rules(self) -> Any:
        return self.ns.rules

    @rules.setter
    def rules(self, rules: Any) -> None:
        self.ns.rules = rules

    def receive(self, copy: Reception, mono: float) -> Outcome | None:
        before = self.roof.counts["other_roof"]
        out = self.roof.receive(copy, mono)
        if out is None and self.roof.counts["other_roof"] != before:
            return rejected(Reason.DUPLICATE, "another roof holds this frame and stores it", [copy])
        return out

    def next_deadline(self) -> float | None:
        return self.roof.next_deadline()

    def flush(
        self, mono: float, now: datetime, *, force: bool = False, after_store: Any = None
    ) -> list[Outcome]:
        """The roof's flush; ``after_store`` (the SQLite downlink scheduler's) is not used: the roof takes
        the downlink counters and commands from the shared store and sends its downlinks itself. A forced
        flush (at stop, after a storage failure) sends none, as the daemon's own does not."""
        return self.roof.flush(mono, now, force=force, send=not force)

    def storage_failed(self, outcomes: list[Outcome], detail: str) -> None:
        self.ns.storage_failed(outcomes, detail)

    # ----------------------------------------------------------------------------------- lifecycle
    def start(self) -> int:
        """Load the devices into the fallback cache; returns how many."""
        n = self.store.warm()
        log.info(
            "roof %s on the shared store %s: %d device(s)%s",
            self.roof_id,
            redacted(self.settings.url),
            n,
            "" if self.store.online else " (unreachable: fallback until it answers)",
        )
        return n

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: send what other roofs handed to this roof; bring an unreachable store back (the
        wait for its answer runs in a thread, so a silent store does not hold the event loop); report the
        commands whose ttl_s ran out."""
        next_tick = next_expiry = 0.0
        while not stop.is_set():
            try:
                mono = time.monotonic()
                if self.store.online:
                    self.roof.poll()
                    if mono >= next_expiry:
                        next_expiry = mono + EXPIRE_S
                        self.expire_commands()
                if mono >= next_tick:
                    next_tick = mono + TICK_S
                    if self.store.online or await asyncio.to_thread(self._answers):
                        self.roof.tick(mono)
            except HavelError as exc:
                log.error("roof %s: %s", self.roof_id, exc)
            except UNREACHABLE as exc:
                self.store.offline(exc)
            await asyncio.sleep(POLL_S)

    def _answers(self) -> bool:
        try:
            return bool(self.shared.r.ping())
        except UNREACHABLE:
            return False

    # ------------------------------------------------------------------------------------ downlinks
    def _transmit(self, d: Downlink) -> None:
        if self.backend is None:
            return
        data = bytes.fromhex(d["data"])
        frame = DownlinkFrame(data, int(d["freq_hz"]), str(d["datr"]), int(d["tmst"]))
        fallback = None
        try:  # the RX2 window, sent instead when the packet forwarder reports an error for RX1
            freq, datr, tmst = d["rx2"]
            fallback = DownlinkFrame(data, int(freq), str(datr), int(tmst))
        except (KeyError, ValueError, TypeError):
            pass  # (none given, or damaged: RX1 only)
        if self.backend.transmit(int(d["gateway"], 16), frame, fallback=fallback, window="RX1"):
            self.metrics.inc("downlinks_total", kind=str(d.get("kind", "command")), window="RX1")
        else:
            log.error("no PULL_DATA from %s yet: downlink dropped", d["gateway"])

    def submit(self, dev_eui: int, body: Any) -> dict[str, Any]:
        """Queue a downlink command in the device's queue on the shared store; returns its result record
        (``queued`` or ``rejected`` with a reason: ``bad_field``, ``bad_ttl``, ``unknown_device``,
        ``queue_full`` beyond ``network.downlink_queue_max``, ``damaged``, ``storage``). A store that cannot
        be reached rejects it (reason ``storage``): a command kept only here could go out twice."""
        given = body.get("id") if isinstance(body, dict) else None
        cmd_id = given if isinstance(given, str) and COMMAND_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        request = {k: body[k] for k in FIELDS if isinstance(body, dict) and k in body and k != "id"}
        eui = eui_hex(dev_eui)
        try:
            seq = self.shared.next_command_seq()
            dev = self.store.get(dev_eui)
            if dev is None:
                return result_record(
                    eui, None, cmd_id, seq, "rejected", "unknown_device: not registered", request
                )
            try:
                command = self._command(dev.codec, body, given, cmd_id)
                ttl = self._ttl(body)
            except (InputError, CodecError) as exc:
                reason = "bad_ttl" if isinstance(exc, BadTtl) else "bad_field"
                return result_record(eui, dev.name, cmd_id, seq, "rejected", f"{reason}: {exc}", request)
            now = time.time()
            expires_at = now + ttl
            command.update(eui=eui, name=dev.name, seq=seq, exp=round(expires_at, 3), req=request)
            limit = self.net.downlink_queue_max
            state, n, at = self.shared.submit_command(
                dev_eui, command, limit=limit, expires_at=expires_at, at=now
            )
            if state == "full":
                detail = (
                    f"queue_full: {n} commands already wait for {dev.name} (network.downlink_queue_max"
                    f" = {limit}); it takes one per uplink"
                )
                return result_record(eui, dev.name, cmd_id, seq, "rejected", detail, request)
            if state == "again":  # a re-delivery: its first result again (same id and time)
                return result_record(eui, dev.name, cmd_id, n, "queued", "", request, at=at)
        except UNREACHABLE as exc:
            self.store.offline(exc)
            seq = time.time_ns() // 1000
            detail = "storage: the shared store cannot be reached"
            return result_record(eui, None, cmd_id, seq, "rejected", detail, request)
        except DamagedEntry as exc:  # (the device's entry, not this roof's database)
            log.error("downlink command for %s: %s", eui, exc)
            return result_record(eui, None, cmd_id, seq, "rejected", f"damaged: {exc}", request)
        return result_record(eui, dev.name, cmd_id, seq, "queued", "", request, at=now)

    def _ttl(self, body: dict[str, Any]) -> float:
        """The command's ``ttl_s`` (``network.downlink_ttl_s`` if it has none), checked as a single roof
        checks it."""
        ttl = body.get("ttl_s", self.net.downlink_ttl_s)
        # (compared before any float(): an integer of 400 digits overflows it, and NaN passes '<= 0')
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or (isinstance(ttl, float) and not math.isfinite(ttl))
            or not 0 < ttl <= MAX_TTL_S
        ):
            shown = ascii(ttl)[:40] if isinstance(ttl, int | float) else type(ttl).__name__
            raise BadTtl(f"ttl_s must be a number of seconds above 0 and at most {MAX_TTL_S}, not {shown}")
        return float(ttl)

    def expire_commands(self) -> int:
        """Report the commands whose ttl_s ran out (each by one roof: the one whose sweep takes it out of
        the store); returns how many."""
        n = 0
        for event, text in self.shared.expire_commands(time.time()):
            record = event_result(event, text)
            if record is not None:
                self.roof.results.append(record)
                self.roof.counts["command_expired"] += 1
                n += 1
        self.roof.store_results()
        return n

    def health(self) -> dict[str, Any]:
        """The shared store's part of the roof's status: where it is (no credentials), this roof's name,
        whether it is reachable and since when, when the counters accepted offline were last sent, when the
        fallback cache was last loaded (times are unix seconds)."""
        st = self.store
        return {
            "url": redacted(self.settings.url),
            "roof": self.roof_id,
            "reachable": st.online,
            "since": round(st.since, 3),
            "last_reconcile": round(st.reconciled_at, 3) if st.reconciled_at is not None else None,
            "cache_loaded_at": round(st.warmed_wall, 3) if st.warmed_wall is not None else None,
            "cached_devices": st.cached(),
        }

    @staticmethod
    def _command(codec: str, body: Any, given: Any, cmd_id: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InputError('a downlink command is a JSON object {"fport", "data" | "raw"}')
        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            raise InputError(f"unknown field(s) {', '.join(ascii(k)[:40] for k in unknown[:5])}")
        if given is not None and given != cmd_id:
            raise InputError("id must be 1-64 letters, digits, '.', '_', ':' or '-'")
        fport = body.get("fport")
        if isinstance(fport, bool) or not isinstance(fport, int) or not 1 <= fport <= 223:
            raise InputError(f"fport must be an integer 1..223, not {ascii(fport)[:40]}")
        if ("data" in body) == ("raw" in body):
            raise InputError("give exactly one of 'data' (decoded) or 'raw' (hex)")
        confirmed = body.get("confirmed", False)
        if not isinstance(confirmed, bool):
            raise InputError("confirmed must be true or false")
        if "raw" in body:
            if not isinstance(body["raw"], str):
                raise InputError("raw must be a hex string")
            payload = parse_hex(body["raw"], what="raw")
        else:
            if not isinstance(body["data"], dict):
                raise InputError("data must be a JSON object")
            from havel.codecs.payload import get_codec

            payload = get_codec(codec).encode(body["data"], fport, direction="down")
        if len(payload) > 51:
            raise InputError(f"payload of {len(payload)} bytes exceeds the 51 bytes every data rate carries")
        return {"fport": fport, "data": payload.hex(), "confirmed": confirmed, "id": cmd_id}
