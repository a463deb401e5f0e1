"""The gateway daemon: it opens the database, builds the parts and starts, runs and stops them.

One event loop, one SQLite connection (used only from the loop's thread). The parts, in the order an uplink
meets them: the GWMP backend (:mod:`.backends.semtech_udp`), the intake (:mod:`.intake`: journal, then the
network server of :mod:`.network`, downlinks after COMMIT), the outbox, and the northbound delivery that takes
the records from the outbox to the sinks. The status and its gauges are :mod:`.status`, the HTTP port
:mod:`.monitoring`, the database's write health :mod:`.storagehealth`.

Components (:mod:`.components`): the northbound delivery always runs; the disaster relay, the forwarder
watchdog, the UPS and the upstream mode run when their config section is present. Each is built from its
typed section and held in a typed field of :attr:`Gateway.components`. Downlink commands are taken by
:mod:`.command_submission`.

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
import logging
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from havel import __version__
from havel.codecs.lorawan.ids import eui_hex
from havel.errors import ConfigError, HavelError, StorageError
from havel.gateway import components, db, preflight
from havel.gateway.backends.semtech_udp.forwarders import PacketForwarder
from havel.gateway.backends.semtech_udp.server import GwmpServer
from havel.gateway.command_submission import CommandSubmission
from havel.gateway.components import Components, DaemonContext
from havel.gateway.config import Config
from havel.gateway.downlinks import DownlinkScheduler, Transmission
from havel.gateway.intake import Intake
from havel.gateway.integrity import FullCheck, check_at_start
from havel.gateway.journal import Journal
from havel.gateway.journal_log import LogJournal
from havel.gateway.metrics import Metrics
from havel.gateway.monitoring import MonitoringServer
from havel.gateway.network.outcome import Outcome
from havel.gateway.network.server import NetworkServer
from havel.gateway.northbound import Northbound
from havel.gateway.outbox import Outbox
from havel.gateway.process import setup_logging, tune_gc
from havel.gateway.registry import Registry
from havel.gateway.runlock import RunLock
from havel.gateway.sdnotify import Notifier
from havel.gateway.sections import relay_rules
from havel.gateway.status import StatusReport
from havel.gateway.storagehealth import StorageHealth
from havel.gateway.write_batch import WriteBatch

if TYPE_CHECKING:
    from havel.gateway.network.shared.daemon import SharedNetwork

log = logging.getLogger("havel.gateway")


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
        self.components: Components | None = None  # once started
        self.northbound: Northbound | None = None  # the delivery to the sinks (always started)
        self.commands: CommandSubmission | None = None  # takes downlink commands, once started
        self.stats = _Stats()
        # Called after COMMIT with every Outcome (accepted, joined, rejected): the relay and the demo listen.
        self.outcome_listeners: list[Callable[[Outcome], None]] = []
        # Called with (event, details) for gateway-level events: forwarder silent/back, sink state.
        self.event_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.http_port: int | None = None
        self.udp_addr: tuple[str, int] | None = None
        self.udp: GwmpServer | None = None  # the GWMP backend, once started
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.monitoring = MonitoringServer(self.metrics, self.status)
        self._closed = False
        self.conn: sqlite3.Connection | None = None
        self.runlock = RunLock(cfg.data_dir)
        self.health = StorageHealth(self.metrics, self.notifier)
        self.intake: Intake | None = None  # the uplink path, once the database is open
        self.shared: SharedNetwork | None = None  # the network server on a shared store ([network] store)
        self.report = StatusReport(self)
        self.full_check: FullCheck | None = None  # the whole database's check, after start
        self.damage: StorageError | None = None  # what that check found (the daemon stops)
        self.batch: WriteBatch | None = None  # SQLite written in batches ([storage] batch_s), once started
        self.journal: Journal | LogJournal | None = None
        self.commit_signal = False  # SIGUSR1 commits the write batch (a daemon in the main thread)

    # ------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the database, bind the sockets, start the components; READY=1 when done."""
        cfg = self.cfg
        preflight.validate(cfg)  # what `havel gateway check` runs, before any file is created
        self.loop = asyncio.get_running_loop()
        self.runlock.acquire({"state": "starting"})
        self.conn = db.open_db(cfg.db_path)
        problems = check_at_start(self.conn)  # (the outbox's bulk right after start: gateway/integrity.py)
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
        devices = 0  # (in the shared store: the roof's registry holds none)
        if cfg.network.store is not None:  # several roofs, one network server's state on Redis
            from havel.gateway.network.shared.daemon import SharedNetwork

            self.shared = SharedNetwork(
                cfg, self.conn, self.outbox, self.metrics, journal=self.journal, rules=relay_rules(cfg.relay)
            )
            devices = self.shared.start()
            self.shared.roof.on_results = self._notify_forwarder  # command results stored: deliver them
            # (the intake uses only the network server's receive/flush face, which the shared one has)
            self.netserver = cast(NetworkServer, self.shared)
        else:
            self.netserver = NetworkServer(
                self.registry, self.outbox, cfg.network, journal=self.journal, rules=relay_rules(cfg.relay)
            )
        self.intake = Intake(
            conn=self.conn,
            registry=self.registry,
            journal=self.journal,
            netserver=self.netserver,
            downlinks=self.downlinks,
            outbox=self.outbox,
            metrics=self.metrics,
            health=self.health,
            wake=self._wake,
            outcome_listeners=self.outcome_listeners,
            notify_delivery=self._notify_forwarder,
        )
        self._warn_about_sinks()
        self.intake.replay_journal()  # (rows an earlier version, or batch_s = 0, left in SQLite's journal)
        if cfg.storage.batch_s > 0 and self.shared is None and cfg.upstream is None:
            self._start_batches()
        self.udp = udp = GwmpServer(
            self.intake.on_rx,
            self.metrics,
            silent_after_s=cfg.udp.silent_after_s,
            on_tx_done=self._on_tx_done,
            on_push=self.intake.on_push,
            on_silence=self._on_silence,
            allowed_gateways=cfg.udp.allowed_gateways,
            max_datagrams_per_s=cfg.udp.max_datagrams_per_s,
        )
        udp.defer_acks = True
        self.intake.backend = udp
        if self.shared is not None:
            self.shared.backend = udp
        try:
            self.udp_addr = await udp.start(cfg.udp.bind, cfg.udp.port)
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
        self.commands = CommandSubmission(
            self.conn,
            self.outbox,
            self.downlinks,
            self.metrics,
            self.health,
            self.loop,
            self._notify_forwarder,
            shared=self.shared,
            durable=self._commit_command if self.batch is not None else None,
        )
        ctx = DaemonContext(cfg, self.conn, self.outbox, self.registry, self.metrics, self, self.loop)
        self.components = components.build(ctx)
        self.northbound = self.components.northbound
        for name, comp in self.components.in_order():
            await comp.start()
            log.info("component %s started", name)
        self._tasks = [
            asyncio.create_task(self.intake.flush_loop(self._stop), name="flush"),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
        ]
        if self.shared is not None:
            self._tasks.append(asyncio.create_task(self.shared.run(self._stop), name="shared-store"))
        self.runlock.update(
            {
                "state": "running",
                "gateway_id": cfg.gateway_id,
                "http": f"{cfg.http.bind}:{self.http_port}" if self.http_port else None,
                "udp": f"{self.udp_addr[0]}:{self.udp_addr[1]}",
                "sinks": [s["name"] for s in cfg.sinks],
                "config": str(cfg.source) if cfg.source else None,
                "commit_signal": "SIGUSR1" if self.commit_signal else None,
            }
        )
        self.notifier.ready(f"listening on {self.udp_addr[0]}:{self.udp_addr[1]}")
        self.full_check = FullCheck(cfg.db_path, self.loop, self._checked)
        self.full_check.start()
        log.info(
            "havel gateway %s %s: GWMP on %s:%d, %d device(s), http %s",
            __version__,
            cfg.gateway_id,
            self.udp_addr[0],
            self.udp_addr[1],
            self.registry.count() if self.shared is None else devices,
            f"{cfg.http.bind}:{self.http_port}" if self.http_port else "off",
        )

    def _start_batches(self) -> None:
        """The intake journal in the sector log, SQLite in batches (:mod:`.write_batch`). Not on a shared
        store nor in the upstream mode: their counters and sessions live elsewhere (Redis, the network
        servers followed), so a lost batch could not be rebuilt from this database and the log."""
        assert self.intake is not None
        journal = LogJournal.open(self._db(), self.cfg.log_path, self.cfg.storage.log_bytes)
        self.batch = batch = WriteBatch(
            self._db(),
            self.cfg.storage.batch_s,
            on_commit=self._batch_committed,
            on_lost=self._batch_lost,
            held=self.outbox.acks.recorded_count,
        )
        journal.on_full = lambda: batch.commit("the intake log is full")
        journal.on_low = batch.commit_or_soon  # (less than half the log free)
        self.journal = self.intake.journal = self.netserver.journal = journal
        self.intake.batch = batch
        self.intake.replay_journal()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # (not the main thread)
            self.loop.add_signal_handler(signal.SIGUSR1, batch.pause)
            self.commit_signal = True  # (the run lock says so: only then does the CLI send it)

    def _commit_command(self) -> bool:
        """A downlink command was queued: durable before its result is published."""
        return self.batch is None or self.batch.commit("a downlink command was queued")

    def _batch_committed(self) -> None:
        assert isinstance(self.journal, LogJournal)
        self.journal.durable()
        self.outbox.acks.committed()

    def _batch_lost(self, exc: StorageError) -> None:
        """A write batch was rolled back: what ran ahead of the database in memory is rebuilt from it and
        the intake log, then the storage-failure path (probe, recovery, replay) takes over."""
        assert isinstance(self.journal, LogJournal)
        self.journal.reset()  # every frame after the database's mark waits again
        self.netserver.dedup.forget_all()  # frames it remembers as stored are not: not duplicates
        acks = self.outbox.acks  # acknowledgements recorded in the batch: held again where records wait
        for sink, seqs in acks.held.items():
            acks.recorded.append((sink, seqs))
        acks.held = {}
        acks.settle()
        with contextlib.suppress(StorageError, sqlite3.Error):
            self.registry.refresh(force=True)
            self.outbox.quota.exact_bytes()
        if self.northbound is not None:
            self.northbound.forwarder.rewind()
        self.health.failed("committing a write batch", exc, "rebuilt from the database and the intake log")

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
        if self.udp is not None:
            self.udp.close()
        if self.intake is not None:
            try:
                if self.intake.waiting:
                    self.intake.take_in()
                self.intake.process(force=True)
                if self.batch is not None:
                    self.batch.commit("stop")
            except (sqlite3.Error, StorageError):
                # what is not processed stays in the intake journal for the next start; the rest of the
                # shutdown (sinks, run lock) must still happen
                log.exception("the database failed while the last uplinks were processed at shutdown")
        for name, comp in reversed(self.components.in_order() if self.components is not None else []):
            try:
                await comp.stop()
            except Exception:
                log.exception("component %s did not stop cleanly", name)
        await self.monitoring.close()
        if self.full_check is not None:
            self.full_check.join(30.0)
        if self.commit_signal:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
        if self.conn is not None:
            if self.batch is not None:  # (a unit still open at a crash of the stop path: rolled back)
                self.batch.commit("stop")
            self.conn.close()
            self.conn = None
        if isinstance(self.journal, LogJournal):
            self.journal.close()
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
        if self.damage is not None:
            raise self.damage

    def _checked(self, problems: list[str]) -> None:
        """The whole database was checked (:class:`FullCheck`): damage stops the daemon, as at start."""
        if not problems or self._closed:
            return
        self.damage = StorageError(
            f"database {self.cfg.db_path} is damaged: {'; '.join(problems[:3])}",
            hint="restore a backup: havel gateway restore --from BACKUP (see docs/gateway.md)",
        )
        log.critical("%s: stopping", self.damage)
        self.health.failed("checking the database", "; ".join(problems[:3]), "the gateway stops")
        self.request_stop()

    # -------------------------------------------------------------------------------------- uplinks
    def _warn_about_sinks(self) -> None:
        """Say it when nothing leaves this machine: every sink writes to standard output (the default when
        the config has no ``[[sink]]``)."""
        if all(s.get("type") == "file" and s.get("path", "-") == "-" for s in self.cfg.sinks):
            log.warning(
                "no northbound sink is configured: uplinks are written to standard output only (add an "
                "[[sink]] table of type mqtt or file to %s)",
                self.cfg.source or "the config",
            )

    def _notify_forwarder(self) -> None:
        if self.northbound is not None:
            self.northbound.poke()

    def _on_tx_done(self, info: Any, error: str) -> None:
        if error != "NONE" and isinstance(info, Transmission):
            self.downlinks.on_tx_failed(info, error)
            self.metrics.inc("downlinks_failed_total", error=error)

    def _on_silence(self, fwd: PacketForwarder, silent: bool) -> None:
        self.emit_event(
            "forwarder_silent" if silent else "forwarder_back",
            {"gateway": eui_hex(fwd.eui), "seen_s_ago": round(time.monotonic() - fwd.last_seen, 1)},
        )

    def emit_event(self, event: str, details: dict[str, Any]) -> None:
        """Hand a gateway event (a forwarder silent, a sink down, ...) to every event listener."""
        for listener in self.event_listeners:
            try:
                listener(event, details)
            except Exception:
                log.exception("event listener failed")

    # ------------------------------------------------------------------------------------- downlinks
    def submit_downlink(self, dev_eui: int, body: Any) -> dict[str, Any]:
        """Queue a downlink command from the event loop's thread (:meth:`CommandSubmission.submit`)."""
        assert self.commands is not None, "the gateway is not started"
        return self.commands.submit(dev_eui, body)

    def submit_downlink_threadsafe(self, dev_eui: int, body: Any) -> None:
        """The same from another thread (an MQTT client's)."""
        assert self.commands is not None, "the gateway is not started"
        self.commands.submit_threadsafe(dev_eui, body)

    # ---------------------------------------------------------------------------------- housekeeping
    async def _housekeeping(self) -> None:
        period = 1.0
        last_dog = 0.0
        while not self._stop.is_set():
            try:
                if self.udp is not None:
                    self.udp.check()
                if self.downlinks.any_expired():  # no write transaction (and fsync) when idle
                    with db.unit_of_work(self._db()):
                        for r in self.downlinks.expire():
                            self.outbox.put(r)
                    self._notify_forwarder()
                if self.health.failing and self.intake is not None:
                    self.intake.probe_storage()
                if self.batch is not None:
                    self.batch.due()
                now = time.monotonic()
                dog = self.notifier.watchdog_s
                if dog and now - last_dog >= dog / 2:
                    self.notifier.watchdog()
                    last_dog = now
            except StorageError as exc:
                self.health.failed("housekeeping", exc)
            except HavelError as exc:
                log.error("housekeeping: %s", exc)
            await asyncio.sleep(period)

    # --------------------------------------------------------------------------------- status, http
    def status(self) -> dict[str, Any]:
        """Everything a person on the roof wants to know, JSON-ready (see :mod:`.status`)."""
        return self.report.status()


def run(cfg: Config) -> int:
    """Run the daemon until SIGTERM; exit status 0 after a clean stop."""
    setup_logging(cfg.log.format, cfg.log.level)
    gw = Gateway(cfg)
    asyncio.run(gw.run(own_process=True))
    return 0
