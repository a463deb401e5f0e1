"""The gateway daemon: asyncio wiring of the UDP server, network server, downlinks, outbox and sinks.

One event loop, one SQLite connection (used only from the loop's thread). What happens to an uplink:
``udp`` -> :meth:`Gateway._on_rx` -> ``netserver.receive`` (dedup window) -> ``flush`` in one transaction
(counter + outbox record + downlink queue changes) -> after COMMIT: downlinks sent, listeners told, and
the northbound forwarder (D2) picks the records up from the outbox.

Components: everything optional the daemon starts comes from :data:`COMPONENTS` (name -> factory path).
A factory is ``create(ctx: DaemonContext) -> Component``; a component has ``async start()``,
``async stop()`` and optionally ``health() -> dict``. The northbound ``forwarder`` always runs; ``relay``
(the disaster relay, gateway/relay/) starts when the config has a ``[relay]`` section.

Operations: SIGTERM/SIGINT stop cleanly (frames in the dedup window are processed, components stopped,
the database closed); ``/healthz``, ``/metrics`` (Prometheus) and ``/status`` (JSON) on a local HTTP port;
sd_notify READY/WATCHDOG/STOPPING under systemd; logs plain or JSON.

Storage: a PUSH_ACK means the rxpk is stored. When the database refuses a write (disk full, I/O error) the
PUSH_ACKs of what it refused are withheld, ``/healthz`` answers 503 with the error, ``storage_ok`` is 0 in
``/metrics`` and the log says so; once a test write succeeds again (tried every second) the frames left in
the intake journal are processed again, without a restart. At start the database must pass
``PRAGMA quick_check`` and be the one the data directory had (:mod:`.db`); the daemon holds a lock on the
data directory (:mod:`.runlock`) that also tells ``havel gateway status`` where it listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from havel import __version__
from havel.codecs.lorawan.ids import eui_hex
from havel.errors import ConfigError, HavelError, StorageError
from havel.gateway import db, preflight
from havel.gateway.config import Config
from havel.gateway.downlinks import DownlinkScheduler, Transmission
from havel.gateway.gwmp import RxPacket
from havel.gateway.journal import MASK_BITS, Journal
from havel.gateway.metrics import Metrics
from havel.gateway.monitoring import MonitoringServer
from havel.gateway.network.outcome import REJECT_REASONS, Outcome, Reason, Status
from havel.gateway.network.reception import Reception, reception
from havel.gateway.network.server import NetworkServer
from havel.gateway.outbox import Outbox
from havel.gateway.process import setup_logging, tune_gc
from havel.gateway.registry import Registry
from havel.gateway.runlock import RunLock
from havel.gateway.sdnotify import Notifier
from havel.gateway.udp import Forwarder, GwmpServer

log = logging.getLogger("havel.gateway")


class Component(Protocol):
    """Something the daemon starts and stops (the northbound forwarder, the disaster relay)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# name -> "module:factory". The daemon always starts "forwarder"; the others when their config section
# exists (config.COMPONENT_SECTIONS). The relay engineer adds nothing here but a module with `create`.
COMPONENTS: dict[str, str] = {
    "forwarder": "havel.gateway.northbound:create",
    "relay": "havel.gateway.relay.component:create",
    "watchdog": "havel.gateway.setup.watchdog:create",  # restarts a silent packet forwarder
    "power": "havel.gateway.power.component:create",  # UPS state through NUT
}
ALWAYS = ("forwarder",)
# Group commit window of the intake journal: everything received in it is journaled in one commit (one
# fsync, about half a millisecond on an SD card or the test machine's disk) before the PUSH_ACKs go out.
# Packet forwarders wait 100 ms for a PUSH_ACK (and only count a late one; they never resend).
INTAKE_GROUP_S = 0.008
# While the database refuses writes, a tiny test write this often tells when it takes them again.
STORAGE_PROBE_S = 1.0
STORAGE_RETRY_MAX_S = 10.0  # (the longest wait between tries while small writes pass and batches fail)
@dataclass
class DaemonContext:
    """What a component gets: the config (its own section in ``section``), the database objects (use them
    only from the event loop's thread), metrics, and hooks into the daemon."""

    config: Config
    section: dict[str, Any]
    conn: sqlite3.Connection
    outbox: Outbox
    registry: Registry
    metrics: Metrics
    gateway: Gateway
    loop: asyncio.AbstractEventLoop


@dataclass
class _Stats:
    started: float = field(default_factory=time.time)
    last_uplink: float | None = None


class Gateway:
    """The running daemon (see the module docstring). Tests and the demo run it in-process with
    :meth:`run` or drive :meth:`start` / :meth:`stop` themselves."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.notifier = Notifier()
        self.components: dict[str, Any] = {}
        self.stats = _Stats()
        # Called after COMMIT with every Outcome (accepted, joined, rejected): the relay and the demo listen.
        self.outcome_listeners: list[Callable[[Outcome], None]] = []
        # Called with (event, details) for gateway-level events: forwarder silent/back, sink state.
        self.event_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.http_port: int | None = None
        self.udp_addr: tuple[str, int] | None = None
        self._intake: list[Reception] = []
        self._intake_scheduled = False
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.monitoring = MonitoringServer(self.metrics, self.status)
        self._closed = False
        self.conn: sqlite3.Connection | None = None
        self.runlock = RunLock(cfg.data_dir)
        # the database's write health: None while writes succeed, else (what failed, the error, since when)
        self.storage_fault: tuple[str, str, float] | None = None
        self._storage_retry = False  # frames may wait in the intake journal after a failed store
        self._next_recovery = 0.0  # monotonic time of the next try to work the journal off
        self._recovery_wait = STORAGE_PROBE_S
        self._describe_metrics()

    # ------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the database, bind the sockets, start the components; READY=1 when done."""
        cfg = self.cfg
        preflight.validate(cfg)  # what `havel gateway check` runs, before any file is created
        self.loop = asyncio.get_running_loop()
        self.runlock.acquire({"state": "starting"})
        self.conn = db.open_db(cfg.db_path)
        problems = db.check_integrity(self.conn)
        if problems:
            raise StorageError(
                f"database {cfg.db_path} is damaged: {'; '.join(problems[:3])}",
                hint="restore a backup: havel gateway restore --from BACKUP (see docs/gateway.md)",
            )
        self.registry = Registry(self.conn)
        quota = int(cfg.outbox.quota_mb * 1_000_000) if cfg.outbox.quota_mb else None
        self.outbox = Outbox(self.conn, quota_bytes=quota, sinks=[s["name"] for s in cfg.sinks])
        self.downlinks = DownlinkScheduler(self.registry, cfg.network)
        self.journal = Journal(self.conn)
        self.netserver = NetworkServer(
            self.registry, self.outbox, cfg.network, journal=self.journal, rules=relay_rules(cfg)
        )
        self._warn_about_sinks()
        self._replay_journal()
        self.udp = GwmpServer(
            self._on_rx,
            self.metrics,
            silent_after_s=cfg.udp.silent_after_s,
            on_tx_done=self._on_tx_done,
            on_push=self._on_push,
            on_silence=self._on_silence,
            allowed_gateways=cfg.udp.allowed_gateways,
            max_datagrams_per_s=cfg.udp.max_datagrams_per_s,
        )
        self.udp.defer_acks = True
        try:
            self.udp_addr = await self.udp.start(cfg.udp.bind, cfg.udp.port)
        except OSError as exc:
            raise ConfigError(
                f"udp: cannot listen on {cfg.udp.bind}:{cfg.udp.port}: {exc.strerror}",
                hint="is another gateway or packet-forwarder agent running?",
            ) from None
        if cfg.http.port:
            try:
                self.http_port = await self.monitoring.start(cfg.http.bind, cfg.http.port)
            except OSError as exc:
                raise ConfigError(
                    f"http: cannot listen on {cfg.http.bind}:{cfg.http.port}: {exc.strerror}",
                    hint="set http.port to a free port, or 0 to switch it off",
                ) from None
        for name in self._component_names():
            self.components[name] = self._create_component(name)
        for name, comp in self.components.items():
            await comp.start()
            log.info("component %s started", name)
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="flush"),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
        ]
        self.runlock.update(
            {
                "state": "running",
                "gateway_id": cfg.gateway_id,
                "http": f"{cfg.http.bind}:{self.http_port}" if self.http_port else None,
                "udp": f"{self.udp_addr[0]}:{self.udp_addr[1]}",
                "sinks": [s["name"] for s in cfg.sinks],
                "config": str(cfg.source) if cfg.source else None,
            }
        )
        self.notifier.ready(f"listening on {self.udp_addr[0]}:{self.udp_addr[1]}")
        log.info(
            "havel gateway %s %s: GWMP on %s:%d, %d device(s), http %s",
            __version__,
            cfg.gateway_id,
            self.udp_addr[0],
            self.udp_addr[1],
            self.registry.count(),
            f"{cfg.http.bind}:{self.http_port}" if self.http_port else "off",
        )

    def _component_names(self) -> list[str]:
        names = [n for n in COMPONENTS if n in ALWAYS or n in self.cfg.components]
        for n in self.cfg.components:
            if n not in COMPONENTS:
                raise ConfigError(f"[{n}] configures a component this gateway does not know")
        return names

    def _create_component(self, name: str) -> Any:
        module_name, attr = COMPONENTS[name].split(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"[{name}] is configured but its module is not available: {exc}") from None
        ctx = DaemonContext(
            self.cfg,
            self.cfg.components.get(name, {}),
            self._db(),
            self.outbox,
            self.registry,
            self.metrics,
            self,
            self.loop,
        )
        return factory(ctx)

    def _db(self) -> sqlite3.Connection:
        assert self.conn is not None
        return self.conn

    def request_stop(self) -> None:
        """Ask the daemon to shut down (signal handlers, tests, the demo)."""
        self._stop.set()
        self._wake.set()

    async def wait_stopped(self) -> None:
        """Until :meth:`request_stop`."""
        await self._stop.wait()

    async def stop(self) -> None:
        """Clean shutdown: process what waits in the dedup window, stop components, close the database."""
        if self._closed:
            return
        self._closed = True
        self.notifier.stopping()
        self._stop.set()
        self._wake.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if hasattr(self, "udp"):
            self.udp.close()
        if hasattr(self, "netserver"):
            if self._intake:
                self._take_in()
            self._process(force=True)
        for name, comp in reversed(list(self.components.items())):
            try:
                await comp.stop()
            except Exception:
                log.exception("component %s did not stop cleanly", name)
        await self.monitoring.close()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.runlock.release()
        log.info("havel gateway stopped")

    async def run(self, *, own_process: bool = False) -> None:
        """Start, serve until SIGTERM/SIGINT or :meth:`request_stop`, stop. ``own_process``: the process is
        the daemon's alone, so its garbage collection is set for it once started (:func:`tune_gc`)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            if own_process:
                tune_gc()
            await self._stop.wait()
        finally:
            await self.stop()

    # -------------------------------------------------------------------------------------- uplinks
    def _on_push(
        self, gateway_eui: int, datagram: bytes, now: datetime, rxs: list[tuple[int, RxPacket]]
    ) -> None:
        at = now.timestamp()
        intake = self._intake
        for index, rx in rxs:
            copy = reception(gateway_eui, rx, now)
            copy.origin = (datagram, index, at)
            intake.append(copy)
        self._schedule_intake()

    def _on_rx(self, gateway_eui: int, rx: RxPacket, now: datetime) -> None:
        self._intake.append(reception(gateway_eui, rx, now))
        self._schedule_intake()

    def _schedule_intake(self) -> None:
        if not self._intake_scheduled:
            # one journal commit (one fsync) for everything received in the next few milliseconds: under
            # load that is many datagrams per commit; their PUSH_ACKs wait at most this long plus the commit
            self._intake_scheduled = True
            self.loop.call_later(INTAKE_GROUP_S, self._take_in)

    def _take_in(self) -> None:
        """Journal the copies received in the last few ms (one commit), then hand them to the network
        server and release their PUSH_ACKs."""
        self._intake_scheduled = False
        copies, self._intake = self._intake, []
        if self._storage_retry:
            self._take_in_while_failing(copies)
            return
        early: list[Outcome] = []
        mono = time.monotonic()
        waiting: list[Reception] = []
        receive = self.netserver.receive
        gps = 0
        for copy in copies:
            if copy.time_source == "gps":
                gps += 1
            out = receive(copy, mono)
            if out is None:  # waiting in the dedup window: journaled until it is stored
                waiting.append(copy)
            else:
                early.append(out)
        if gps:
            self.metrics.inc("uplinks_received_total", gps, time_source="gps")
        if len(copies) > gps:
            self.metrics.inc("uplinks_received_total", len(copies) - gps, time_source="local")
        flushed: tuple[list[Outcome], list[Transmission]] | None = None
        try:
            with self.registry.transaction():
                self._journal(waiting)  # (if this commit fails, no row has their ids: forgetting is a no-op)
                # frames whose dedup window closed are stored in this same commit: under load that halves the
                # fsyncs (each about half a millisecond of a stalled event loop). One batch only: the session
                # cache (counters, new sessions) is updated when a commit is done, and a second batch in the
                # same commit would check its frames against counters from before the first.
                deadline = self.netserver.next_deadline()
                if deadline is not None and deadline <= time.monotonic():
                    flushed = self._flush_uplinks()
        except HavelError as exc:
            # Not journaled: no PUSH_ACK for these datagrams (a PUSH_ACK means stored). The frames are still
            # processed from memory and stored if the database takes them later.
            withheld = self.udp.withhold_acks()
            self.metrics.inc("push_acks_withheld_total", withheld)
            self._storage_failed("journaling received frames", exc, f"{withheld} PUSH_ACK(s) withheld")
            if flushed is not None:  # stored in a savepoint of the commit that failed: not stored after all
                self.netserver.storage_failed(flushed[0], str(exc))
        else:
            if waiting or flushed:
                self._storage_ok()
            self.udp.release_acks()
        self._account(early)
        if flushed is not None:
            self._after_flush(*flushed)
        self._wake.set()

    def _take_in_while_failing(self, copies: list[Reception]) -> None:
        """Intake while the database refuses writes: journal first. When that commit fails, nothing of
        these copies is kept (no PUSH_ACK either): frames acknowledged earlier wait in the journal, and
        storing later ones from memory before them would make their counters look replayed. When it
        succeeds, the database works again: PUSH_ACKs go out and the journal is worked off in order."""
        gps = sum(1 for c in copies if c.time_source == "gps")
        if gps:
            self.metrics.inc("uplinks_received_total", gps, time_source="gps")
        if len(copies) > gps:
            self.metrics.inc("uplinks_received_total", len(copies) - gps, time_source="local")
        try:
            with self.registry.transaction():
                self._journal(copies)
        except HavelError as exc:
            withheld = self.udp.withhold_acks()
            self.metrics.inc("push_acks_withheld_total", withheld)
            self.metrics.inc("uplinks_not_stored_total", len(copies))
            self._storage_failed("journaling received frames", exc, f"{withheld} PUSH_ACK(s) withheld")
            return
        self.udp.release_acks()
        self._recover_storage()

    def _journal(self, waiting: list[Reception]) -> None:
        """Journal the copies waiting in the dedup window, in the order they came: one row per datagram
        with several of them (its rxpk that wait, as a mask), a compact row of its own for any other."""
        order: list[list[Reception]] = []  # rows to write: the waiting copies of one datagram, or one copy
        groups: dict[int, list[Reception]] = {}  # id(datagram) -> its copies
        for copy in waiting:
            origin = copy.origin
            if origin is None or origin[1] >= MASK_BITS:
                order.append([copy])
                continue
            group = groups.get(id(origin[0]))
            if group is None:
                group = groups[id(origin[0])] = []
                order.append(group)
            group.append(copy)
        items: list[tuple[int, Any, Any, Any]] = []
        for row in order:
            first = row[0]
            if len(row) > 1:  # (only a datagram's copies share a row)
                assert first.origin is not None
                items.append((first.gateway_eui, first.origin[0], first.origin[2], _mask(row)))
            else:
                items.append((first.gateway_eui, first.rx, first.received_at, first.time_source))
        datagram_id = self.journal.datagram_id
        for row, seq in zip(order, self.journal.add_in_order(items), strict=True):
            for copy in row:
                if len(row) > 1:
                    assert copy.origin is not None
                    copy.journal_id = datagram_id(seq, copy.origin[1])
                else:
                    copy.journal_id = seq
                copy.origin = None  # (the datagram's bytes are not needed any more)

    def _warn_about_sinks(self) -> None:
        """Say it when nothing leaves this machine: every sink writes to standard output (the default when
        the config has no ``[[sink]]``)."""
        if all(s.get("type") == "file" and s.get("path", "-") == "-" for s in self.cfg.sinks):
            log.warning(
                "no northbound sink is configured: uplinks are written to standard output only (add an "
                "[[sink]] table of type mqtt or file to %s)",
                self.cfg.source or "the config",
            )

    def _replay_journal(self, why: str = "received before the last stop") -> None:
        """Frames received (and acknowledged) but not stored: at start those of a previous run, after a
        storage failure those this run could not store. Processed now, with their original receive time,
        never with a downlink, and stored at once (before the forwarder starts, at start: they are published
        as ``buffered``)."""
        entries = self.journal.pending()
        if not entries:
            return
        log.warning("taking %d frame(s) %s from the intake journal", len(entries), why)
        mono = time.monotonic()
        with self.registry.transaction():
            for e in entries:
                copy = Reception(e.gateway_eui, e.rx, e.received_at, e.time_source, e.seq, replayed=True)
                out = self.netserver.receive(copy, mono)
                if out is not None:
                    self.journal.forget([e.seq])
                    self._account([out])
        self._process(force=True)

    async def _flush_loop(self) -> None:
        while not self._stop.is_set():
            deadline = self.netserver.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if timeout is None or timeout > 0 or self._intake_scheduled:
                # (an intake commit is due within INTAKE_GROUP_S: it stores what is due in the same commit)
                if timeout is None:
                    timeout = 1.0
                elif self._intake_scheduled:
                    timeout = max(timeout, 2 * INTAKE_GROUP_S)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                continue
            try:
                self._process()
            except Exception:  # a bug must not stop the intake; the frames stay in the journal
                log.exception("processing uplinks failed")
            await asyncio.sleep(0)  # let PUSH_ACKs and PULL_RESPs out between batches

    def _process(self, force: bool = False) -> None:
        """Store the frames whose dedup window closed (all with ``force``) in a commit of their own."""
        self._after_flush(*self._flush_uplinks(force))

    def _flush_uplinks(self, force: bool = False) -> tuple[list[Outcome], list[Transmission]]:
        """The network server's flush (its own transaction, or a savepoint of the caller's); returns the
        outcomes and the downlinks to send once that is committed (:meth:`_after_flush`)."""
        sends: list[Transmission] = []
        reachable = self.udp.can_send if not force else (lambda _eui: False)

        def after_store(out: Outcome) -> None:
            # inside the uplink transaction: downlink counters and queue changes commit with the counter
            if out.best is not None and out.best.replayed:
                return  # from the journal after a restart: its receive windows are long gone
            if out.status == Status.ACCEPTED:
                tx, results = self.downlinks.on_uplink(out, reachable)
                for r in results:
                    self.outbox.put(r)
                if tx is not None:
                    sends.append(tx)
            elif out.status == Status.JOINED:
                tx = self.downlinks.join_accept(out, reachable)
                if tx is not None:
                    sends.append(tx)
            elif out.status == Status.RETRANSMISSION:  # sent again: a confirmed frame whose ACK was missed
                tx = self.downlinks.ack_again(out, reachable)
                if tx is not None:
                    sends.append(tx)

        outcomes = self.netserver.flush(
            time.monotonic(), datetime.now(UTC), force=force, after_store=after_store
        )
        return outcomes, sends

    def _after_flush(self, outcomes: list[Outcome], sends: list[Transmission]) -> None:
        """Once the flush is committed: downlinks out, metrics, listeners, the forwarder woken."""
        failed = next((o for o in outcomes if o.reason == Reason.STORAGE), None)
        committed = failed is None
        if failed is not None:  # they stay in the intake journal: processed again once writes succeed
            self._storage_failed("storing uplinks", failed.detail or "write refused")
        elif outcomes:
            self._storage_ok()
        if committed:
            for tx in sends:
                self.udp.send(tx.gateway_eui, tx.txpk, fallback=tx.fallback, info=tx, window=tx.window)
                self.metrics.inc("downlinks_total", kind=tx.kind, window=tx.window)
        self._account(outcomes)
        if outcomes:
            self._notify_forwarder()

    def _account(self, outcomes: list[Outcome]) -> None:
        """Metrics and listeners for what became of some frames (accepted ones counted once per call: a
        batch is hundreds of them)."""
        accepted = 0
        listeners = self.outcome_listeners
        for out in outcomes:
            if out.status == Status.ACCEPTED:
                accepted += 1
            elif out.status == Status.REJECTED:
                self.metrics.inc("uplinks_rejected_total", reason=out.reason or "unknown")
                log.debug("uplink rejected (%s): %s", out.reason, out.detail)
            elif out.status == Status.JOINED:
                self.metrics.inc("joins_total")
            elif out.status == Status.RETRANSMISSION:
                self.metrics.inc("uplinks_retransmitted_total")
            for listener in listeners:
                try:
                    listener(out)
                except Exception:
                    log.exception("outcome listener failed")
        if accepted:
            self.metrics.inc("uplinks_accepted_total", accepted)
            self.stats.last_uplink = time.time()

    def _notify_forwarder(self) -> None:
        fwd = self.components.get("forwarder")
        poke = getattr(fwd, "poke", None)
        if callable(poke):
            poke()

    def _on_tx_done(self, info: Any, error: str) -> None:
        if error != "NONE" and isinstance(info, Transmission):
            self.downlinks.on_tx_failed(info, error)
            self.metrics.inc("downlinks_failed_total", error=error)

    def _on_silence(self, fwd: Forwarder, silent: bool) -> None:
        self._emit(
            "forwarder_silent" if silent else "forwarder_back",
            {"gateway": eui_hex(fwd.eui), "seen_s_ago": round(time.monotonic() - fwd.last_seen, 1)},
        )

    def _emit(self, event: str, details: dict[str, Any]) -> None:
        for listener in self.event_listeners:
            try:
                listener(event, details)
            except Exception:
                log.exception("event listener failed")

    # ------------------------------------------------------------------------------------- downlinks
    def submit_downlink(self, dev_eui: int, body: Any) -> dict[str, Any]:
        """Queue a downlink command (from the event loop's thread); the result record goes to the outbox."""
        with self.registry.transaction():
            result = self.downlinks.submit(dev_eui, body)
            self.outbox.put(result)
        state = result["payload"]["state"]
        self.metrics.inc("downlink_commands_total", state=state)
        if state == "rejected":
            log.warning("downlink command for %s rejected: %s", eui_hex(dev_eui), result["payload"]["detail"])
        self._notify_forwarder()
        return result

    def submit_downlink_threadsafe(self, dev_eui: int, body: Any) -> None:
        """The same from another thread (the MQTT client's)."""
        self.loop.call_soon_threadsafe(self._submit_downlink_logged, dev_eui, body)

    def _submit_downlink_logged(self, dev_eui: int, body: Any) -> None:
        # (from the MQTT thread there is no caller to raise to: a command the database could not take is
        # said in the log and in the storage health, not lost in the event loop's exception handler)
        try:
            self.submit_downlink(dev_eui, body)
        except StorageError as exc:
            self._storage_failed(
                "storing a downlink command", exc, f"command for {eui_hex(dev_eui)} not taken"
            )
        except HavelError as exc:
            log.error("downlink command for %s not taken: %s", eui_hex(dev_eui), exc)

    # ---------------------------------------------------------------------------------- housekeeping
    async def _housekeeping(self) -> None:
        period = 1.0
        last_dog = 0.0
        while not self._stop.is_set():
            try:
                self.udp.check()
                if self.downlinks.any_expired():  # no write transaction (and fsync) when idle
                    with self.registry.transaction():
                        for r in self.downlinks.expire():
                            self.outbox.put(r)
                    self._notify_forwarder()
                if self.storage_fault is not None or self._storage_retry:
                    self._probe_storage()
                now = time.monotonic()
                dog = self.notifier.watchdog_s
                if dog and now - last_dog >= dog / 2:
                    self.notifier.watchdog()
                    last_dog = now
            except StorageError as exc:
                self._storage_failed("housekeeping", exc)
            except HavelError as exc:
                log.error("housekeeping: %s", exc)
            await asyncio.sleep(period)

    # --------------------------------------------------------------------------------------- storage
    def _storage_failed(self, doing: str, exc: BaseException | str, consequence: str = "") -> None:
        """The database refused a write: remember it for /healthz and /metrics, log it (again only when
        the error changes), and try again from the housekeeping task."""
        text = str(exc)
        self.metrics.inc("storage_errors_total", doing=doing)
        self._storage_retry = True
        first = self.storage_fault is None
        if first or self.storage_fault[1] != text:  # type: ignore[index]
            log.error(
                "storage failing while %s: %s%s%s",
                doing,
                text,
                f"; {consequence}" if consequence else "",
                "; PUSH_ACKs stop until the database takes writes again" if first else "",
            )
        since = time.time() if first else self.storage_fault[2]  # type: ignore[index]
        self.storage_fault = (doing, text, since)
        if first:
            self.notifier.status(f"storage failing while {doing}: {text}")  # (systemctl status shows it)

    def _storage_ok(self) -> None:
        if self.storage_fault is not None:
            log.warning(
                "storage works again after %.0f s: acknowledging uplinks again",
                time.time() - self.storage_fault[2],
            )
            self.storage_fault = None
            self.notifier.status("storage works again")

    def _probe_storage(self) -> None:
        """A tiny write transaction: when it commits, the database may take writes again, and the frames
        a failed store left in the intake journal are processed (once every frame waiting in memory is)."""
        assert self.conn is not None
        if time.monotonic() < self._next_recovery:
            return
        try:
            with db.transaction(self.conn):
                self.conn.execute("UPDATE db_identity SET db_id = db_id")
        except HavelError as exc:
            self._storage_failed("testing the database", exc)
            return
        self._recover_storage()

    def _recover_storage(self) -> None:
        """The database took a write again: store what waits in the dedup window, then what the failed
        stores left in the intake journal, in the order it came. Storage counts as working again only when
        all of that went in (a small write may fit where a batch does not: a full disk can take a page into
        the write-ahead log's last block); otherwise the next try waits longer, up to STORAGE_RETRY_MAX_S."""
        now = time.monotonic()
        if now < self._next_recovery:
            return
        self._storage_retry = False
        self._process(force=True)
        if not self._storage_retry:
            try:
                self._replay_journal("that could not be stored while the database refused writes")
            except HavelError as exc:
                self._storage_failed("storing frames from the intake journal", exc)
        if self._storage_retry:  # failed again
            self._recovery_wait = min(self._recovery_wait * 2, STORAGE_RETRY_MAX_S)
            self._next_recovery = now + self._recovery_wait
            return
        self._recovery_wait = STORAGE_PROBE_S
        self._next_recovery = 0.0
        self._storage_ok()
        self._notify_forwarder()

    # --------------------------------------------------------------------------------- status, http
    def status(self) -> dict[str, Any]:
        """Everything a person on the roof wants to know, JSON-ready."""
        m = self.metrics
        fwd = self.components.get("forwarder")
        sinks = fwd.health() if fwd is not None and hasattr(fwd, "health") else {}
        forwarders = self.udp.health() if hasattr(self, "udp") else []
        try:
            outbox = self._outbox_status()
        except (HavelError, sqlite3.Error) as exc:  # (a damaged page): say so, keep answering
            self._storage_failed("reading the outbox", exc)
            outbox = {"error": str(exc)}
        try:
            downlinks = {
                "queued": self.downlinks.depth() if hasattr(self, "downlinks") else 0,
                **(self.downlinks.counters if hasattr(self, "downlinks") else {}),
                "adr": dict(self.downlinks.adr.counters) if hasattr(self, "downlinks") else {},
            }
        except (HavelError, sqlite3.Error) as exc:
            self._storage_failed("reading the downlink queue", exc)
            downlinks = {"error": str(exc)}
        fault = self.storage_fault
        storage: dict[str, Any] = {"ok": fault is None}
        if fault is not None:
            storage.update(doing=fault[0], error=fault[1], since=round(fault[2], 3))
        degraded = (
            fault is not None
            or any(f["silent"] for f in forwarders)
            or any(isinstance(v, dict) and v.get("state") == "down" for v in sinks.values())
        )
        return {
            "gateway_id": self.cfg.gateway_id,
            "version": __version__,
            "state": "degraded" if degraded else "ok",
            "uptime_s": round(time.time() - self.stats.started, 1),
            "udp": f"{self.udp_addr[0]}:{self.udp_addr[1]}" if self.udp_addr else None,
            "forwarders": forwarders,
            "devices": self.registry.count() if hasattr(self, "registry") else 0,
            "uplinks": {
                "received": m.total("uplinks_received_total"),
                "accepted": m.total("uplinks_accepted_total"),
                # sent again after their receive windows (a missed ACK, NbTrans): stored once, not rejected
                "retransmitted": m.total("uplinks_retransmitted_total"),
                "rejected": {
                    r: m.get("uplinks_rejected_total", reason=r)
                    for r in REJECT_REASONS
                    if m.get("uplinks_rejected_total", reason=r)
                },
                "last_at": self.stats.last_uplink,
            },
            "joins": m.total("joins_total"),
            "storage": storage,
            "outbox": outbox,
            "sinks": sinks,
            "downlinks": downlinks,
            "components": sorted(self.components),
            # what the rooftop components report: the forwarder watchdog, the UPS (gateway/setup, /power)
            **{n: c.health() for n, c in self.components.items() if n in ("watchdog", "power", "relay")},
        }

    def _outbox_status(self) -> dict[str, Any]:
        if self.conn is None:
            return {}
        oldest = self.outbox.oldest_received_at()
        age = None
        if oldest:
            with contextlib.suppress(ValueError):
                age = round(
                    time.time() - datetime.fromisoformat(oldest.replace("Z", "+00:00")).timestamp(), 1
                )
        fwd = self.components.get("forwarder")
        delivered = getattr(fwd, "delivered_unrecorded", None)
        return {
            "depth": self.outbox.depth(),
            # of those, delivered to every sink, their deletion due with the next group commit (<= 5 s)
            "delivered": delivered() if callable(delivered) else 0,
            "bytes": self.outbox.size_bytes(),
            "oldest_age_s": age,
            "dropped": self.outbox.dropped(),
        }

    def _describe_metrics(self) -> None:
        m = self.metrics
        m.describe("uplinks_received_total", "counter", "uplink copies received from the concentrators")
        m.describe("uplinks_accepted_total", "counter", "uplinks accepted and stored in the outbox")
        m.describe("uplinks_rejected_total", "counter", "uplinks rejected, by reason")
        m.describe("joins_total", "counter", "OTAA joins accepted")
        m.describe(
            "uplinks_retransmitted_total",
            "counter",
            "uplinks a device sent again after their receive windows (a confirmed one missing its ACK is "
            "ACKed again; unconfirmed ones repeated for NbTrans), stored once",
        )
        m.describe("downlinks_total", "counter", "downlinks scheduled, by kind and window")
        m.describe("downlinks_failed_total", "counter", "downlinks the forwarder could not send, by error")
        m.describe("downlink_commands_total", "counter", "downlink commands received, by state")
        m.describe(
            "storage_errors_total", "counter", "database writes (or reads) that failed, by what was done"
        )
        m.describe(
            "uplinks_not_stored_total",
            "counter",
            "uplink copies dropped unacknowledged because the database refused to journal them",
        )
        m.describe(
            "push_acks_withheld_total",
            "counter",
            "PUSH_ACKs not sent because the received frames could not be stored",
        )
        m.gauge_fn("storage_ok", lambda: 0.0 if self.storage_fault is not None else 1.0)
        m.describe("storage_ok", "gauge", "1 while the database takes writes, 0 while it refuses them")

        def outbox_gauges() -> dict[Any, float]:
            if self.conn is None:
                return {}
            s = self._outbox_status()
            return {
                (("what", "depth"),): float(s["depth"]),
                (("what", "delivered"),): float(s["delivered"]),
                (("what", "bytes"),): float(s["bytes"]),
                (("what", "oldest_age_s"),): float(s["oldest_age_s"] or 0),
            }

        def sink_gauges() -> dict[Any, float]:
            fwd = self.components.get("forwarder")
            health = fwd.health() if fwd is not None and hasattr(fwd, "health") else {}
            out: dict[Any, float] = {}
            for name, h in health.items() if isinstance(health, dict) else []:
                if isinstance(h, dict) and "state" in h:
                    out[(("sink", str(name)),)] = 1.0 if h.get("state") == "up" else 0.0
            return out

        def dl_queue() -> float:
            return float(self.downlinks.depth()) if self.conn is not None else 0.0

        def adr_counts() -> dict[Any, float]:
            return {(("outcome", k),): float(v) for k, v in self.downlinks.adr.counters.items()}

        m.gauge_fn("adr_requests_total", adr_counts)
        m.describe(
            "adr_requests_total",
            "counter",
            "LinkADRReq sent (outcome requested) and what became of them: accepted, refused, lost",
        )
        m.gauge_fn("outbox", outbox_gauges)
        m.gauge_fn("sink_up", sink_gauges)
        m.gauge_fn("downlink_queue", dl_queue)
        m.describe(
            "outbox",
            "gauge",
            "outbox depth (records; 'delivered' of them only wait for their deletion to be committed), size "
            "(bytes) and age of the oldest record (s)",
        )
        m.describe("sink_up", "gauge", "1 when the sink is connected")
        m.describe("downlink_queue", "gauge", "application downlinks waiting for their device")

def relay_rules(cfg: Config) -> Any:
    """The relay's priority rules (``[relay] rules``) when the relay is configured, else None: the network
    server stores each uplink with the higher of their class and its own (ConfigError for a bad rule)."""
    section = cfg.components.get("relay")
    if section is None:
        return None
    from havel.gateway.relay.priority import Classifier

    return Classifier.from_config(list(section.get("rules") or []))


def run(cfg: Config) -> int:
    """Run the daemon until SIGTERM; exit status 0 after a clean stop."""
    setup_logging(cfg.log.format, cfg.log.level)
    gw = Gateway(cfg)
    asyncio.run(gw.run(own_process=True))
    return 0


def _mask(copies: list[Reception]) -> int:
    """The bit mask of the rxpk indexes of these copies of one datagram."""
    mask = 0
    for copy in copies:
        assert copy.origin is not None
        mask |= 1 << copy.origin[1]
    return mask
