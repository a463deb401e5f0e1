"""The uplink intake: from a gateway backend's receptions to stored outcomes, downlinks and listeners.

What happens to an uplink: the backend (GWMP) hands over the copies of a datagram (:meth:`Intake.on_push`);
they are journaled in one group commit every few milliseconds (:data:`INTAKE_GROUP_S`) before their
PUSH_ACKs are released, and go into the network server's dedup window; when a window closes, the network
server's flush stores the batch in one transaction with the downlink scheduler's counter and queue changes
(:meth:`Intake.process`); after COMMIT the downlinks go out, metrics and outcome listeners are told, and the
delivery to the sinks is woken.

When the database refuses a write the PUSH_ACKs of what it refused are withheld and
:class:`~havel.gateway.storagehealth.StorageHealth` records it; the housekeeping task then calls
:meth:`Intake.probe_storage` until the frames left in the intake journal are stored, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from havel.errors import HavelError
from havel.gateway import db
from havel.gateway.backends.base import Backend
from havel.gateway.downlinks import DownlinkScheduler, Transmission
from havel.gateway.journal import MASK_BITS, Journal
from havel.gateway.journal_log import LogJournal
from havel.gateway.metrics import Metrics
from havel.gateway.network.outcome import Outcome, Reason, Status
from havel.gateway.network.reception import RadioFrame, Reception, reception
from havel.gateway.network.server import NetworkServer
from havel.gateway.outbox import Outbox
from havel.gateway.registry import Registry
from havel.gateway.storagehealth import StorageHealth
from havel.gateway.write_batch import WriteBatch

log = logging.getLogger("havel.gateway")

# Group commit window of the intake journal: everything received in it is journaled in one commit (one
# fsync, about half a millisecond on an SD card or the test machine's disk) before the PUSH_ACKs go out.
# Packet forwarders wait 100 ms for a PUSH_ACK (and only count a late one; they never resend).
INTAKE_GROUP_S = 0.008
_ACCEPTED = Status.ACCEPTED  # (a module constant: an enum member lookup costs more, per uplink)


class Intake:
    """See the module docstring. Use it only from the event loop's thread."""

    def __init__(
        self,
        *,
        conn: sqlite3.Connection,
        registry: Registry,
        journal: Journal | LogJournal,
        netserver: NetworkServer,
        downlinks: DownlinkScheduler,
        outbox: Outbox,
        metrics: Metrics,
        health: StorageHealth,
        wake: asyncio.Event,
        outcome_listeners: list[Callable[[Outcome], None]],
        notify_delivery: Callable[[], None],
    ) -> None:
        self.conn = conn
        self.registry = registry
        self.journal = journal
        self.netserver = netserver
        self.downlinks = downlinks
        self.outbox = outbox
        self.metrics = metrics
        self.health = health
        self.outcome_listeners = outcome_listeners
        self.notify_delivery = notify_delivery
        self.backend: Backend | None = None  # set once the backend listens (the journal is replayed before)
        self.last_uplink: float | None = None  # unix time of the last accepted uplink
        self._intake: list[Reception] = []
        self._intake_scheduled = False
        self._wake = wake  # set when there is something to flush (or to stop)
        # SQLite written in batches, the journal in the intake log (None: a commit per store, the journal in
        # SQLite)
        self.batch: WriteBatch | None = None

    def _backend(self) -> Backend:
        assert self.backend is not None, "receptions and downlinks need a listening backend"
        return self.backend

    @property
    def waiting(self) -> bool:
        """Whether receptions wait for their journal commit."""
        return bool(self._intake)

    def on_push(
        self, gateway_eui: int, datagram: bytes, now: datetime, rxs: Sequence[tuple[int, RadioFrame]]
    ) -> None:
        at = now.timestamp()
        intake = self._intake
        for index, rx in rxs:
            copy = reception(gateway_eui, rx, now)
            copy.origin = (datagram, index, at)
            intake.append(copy)
        self._schedule_intake()

    def on_rx(self, gateway_eui: int, rx: RadioFrame, now: datetime) -> None:
        self._intake.append(reception(gateway_eui, rx, now))
        self._schedule_intake()

    def _schedule_intake(self) -> None:
        if not self._intake_scheduled:
            # one journal commit (one fsync) for everything received in the next few milliseconds: under
            # load that is many datagrams per commit; their PUSH_ACKs wait at most this long plus the commit
            self._intake_scheduled = True
            asyncio.get_running_loop().call_later(INTAKE_GROUP_S, self.take_in)

    def take_in(self) -> None:
        """Journal the copies received in the last few ms (one commit), then hand them to the network
        server and release their PUSH_ACKs."""
        self._intake_scheduled = False
        copies, self._intake = self._intake, []
        if self.health.retry:
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
        if self.batch is not None:
            self._take_in_logged(waiting, early)
            return
        flushed: tuple[list[Outcome], list[Transmission]] | None = None
        try:
            with db.unit_of_work(self.conn):
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
            withheld = self._backend().withhold_acks()
            self.metrics.inc("push_acks_withheld_total", withheld)
            self.health.failed("journaling received frames", exc, f"{withheld} PUSH_ACK(s) withheld")
            if flushed is not None:  # stored in a savepoint of the commit that failed: not stored after all
                self.netserver.storage_failed(flushed[0], str(exc))
        else:
            if waiting or flushed:
                self.health.ok()
            self._backend().release_acks()
        self._account(early)
        if flushed is not None:
            self._after_flush(*flushed)
        self._wake.set()

    def _take_in_logged(self, waiting: list[Reception], early: list[Outcome]) -> None:
        """:meth:`take_in` with the journal in the intake log: the copies are durable once appended (no
        database write); the frames whose window closed are stored in the open write batch."""
        try:
            self._journal(waiting)
        except HavelError as exc:
            # not in the log: no PUSH_ACK (the frames are still processed from memory, and stored if the
            # database takes them)
            withheld = self._backend().withhold_acks()
            self.metrics.inc("push_acks_withheld_total", withheld)
            self.health.failed("journaling received frames", exc, f"{withheld} PUSH_ACK(s) withheld")
        else:
            self._backend().release_acks()
        self._account(early)
        deadline = self.netserver.next_deadline()
        if deadline is not None and deadline <= time.monotonic():
            self.process()
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
            if self.batch is not None:  # (the intake log: no database write)
                self._journal(copies)
            else:
                with db.unit_of_work(self.conn):
                    self._journal(copies)
        except HavelError as exc:
            withheld = self._backend().withhold_acks()
            self.metrics.inc("push_acks_withheld_total", withheld)
            self.metrics.inc("uplinks_not_stored_total", len(copies))
            self.health.failed("journaling received frames", exc, f"{withheld} PUSH_ACK(s) withheld")
            return
        self._backend().release_acks()
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

    def replay_journal(self, why: str = "received before the last stop") -> None:
        """Frames received (and acknowledged) but not stored: at start those of a previous run, after a
        storage failure those this run could not store. Processed now, with their original receive time,
        never with a downlink, and stored at once (before the forwarder starts, at start: they are published
        as ``buffered``)."""
        entries = self.journal.pending()
        if not entries:
            return
        log.warning("taking %d frame(s) %s from the intake journal", len(entries), why)
        mono = time.monotonic()
        if self.batch is not None:
            self.batch.begin()
        with db.unit_of_work(self.conn):
            for e in entries:
                copy = Reception(e.gateway_eui, e.rx, e.received_at, e.time_source, e.seq, replayed=True)
                out = self.netserver.receive(copy, mono)
                if out is not None:
                    self.journal.forget([e.seq])
                    self._account([out])
        self.process(force=True)

    async def flush_loop(self, stop: asyncio.Event) -> None:
        """Store each batch when its dedup window closes, until ``stop``."""
        while not stop.is_set():
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
                self.process()
            except Exception:  # a bug must not stop the intake; the frames stay in the journal
                log.exception("processing uplinks failed")
            await asyncio.sleep(0)  # let PUSH_ACKs and PULL_RESPs out between batches

    def process(self, force: bool = False) -> None:
        """Store the frames whose dedup window closed (all with ``force``) in a commit of their own.

        That commit is not fsynced (:func:`~havel.gateway.db.deferred_sync`): its frames stay in the intake
        journal until it is durable, so a power cut only means they are stored again from there (same
        message ids); the next journal commit fsyncs it. Saves a flash write per uplink at a city's pace.
        Before a downlink goes out (its frame counter must never be used twice) the log is fsynced.

        With SQLite written in batches the frames are stored in the open batch, which is committed before
        a downlink goes out."""
        if self.batch is not None:
            self._process_batched(force)
            return
        with db.deferred_sync(self.conn):
            outcomes, sends = self._flush_uplinks(force)
            if force:  # (at stop, replay and recovery) the journal rows of what was stored go now, not later
                with contextlib.suppress(HavelError):  # (still marked: the next journal commit deletes them)
                    self.journal.settle()
        if sends:
            try:
                db.sync_wal(self.conn)
            except HavelError as exc:
                self.health.failed("making stored uplinks durable before their downlinks", exc)
                sends = []
        self._after_flush(outcomes, sends)

    def _process_batched(self, force: bool) -> None:
        batch = self.batch
        assert batch is not None
        batch.begin()
        outcomes, sends = self._flush_uplinks(force)
        lost = not batch.check()
        if not lost and sends:
            # a frame counter, DevNonce or JoinNonce must be durable before it leaves the machine
            lost = not batch.commit("a downlink leaves")
        if lost:  # stored in a batch that is gone: not stored after all (the log still holds the frames)
            self.netserver.storage_failed(outcomes, "the write batch was lost")
            sends = []
        self._after_flush(outcomes, sends)

    def _flush_uplinks(self, force: bool = False) -> tuple[list[Outcome], list[Transmission]]:
        """The network server's flush (its own transaction, or a savepoint of the caller's); returns the
        outcomes and the downlinks to send once that is committed (:meth:`_after_flush`)."""
        sends: list[Transmission] = []
        backend = self.backend
        reachable = backend.can_send if backend is not None and not force else (lambda _eui: False)

        def after_store(out: Outcome) -> None:
            # inside the uplink transaction: downlink counters and queue changes commit with the counter
            if out.best is not None and out.best.replayed:
                return  # from the journal after a restart: its receive windows are long gone
            status = out.status
            if status == _ACCEPTED:
                tx, results = self.downlinks.on_uplink(out, reachable)
                for r in results:
                    self.outbox.put(r)
                if tx is not None:
                    sends.append(tx)
            elif status == Status.JOINED:
                tx = self.downlinks.join_accept(out, reachable)
                if tx is not None:
                    sends.append(tx)
            elif status == Status.RETRANSMISSION:  # sent again: a confirmed frame whose ACK was missed
                tx = self.downlinks.ack_again(out, reachable)
                if tx is not None:
                    sends.append(tx)

        outcomes = self.netserver.flush(
            time.monotonic(), datetime.now(UTC), force=force, after_store=after_store
        )
        return outcomes, sends

    def _after_flush(self, outcomes: list[Outcome], sends: list[Transmission]) -> None:
        """Once the flush is committed: downlinks out, metrics, listeners, the forwarder woken."""
        storage = Reason.STORAGE  # (an enum member lookup costs more than the comparison: once per batch)
        failed = next((o for o in outcomes if o.reason == storage), None)
        committed = failed is None
        if failed is not None:  # they stay in the intake journal: processed again once writes succeed
            self.health.failed("storing uplinks", failed.detail or "write refused")
        elif outcomes:
            self.health.ok()
        if committed:
            for tx in sends:
                self._backend().transmit(
                    tx.gateway_eui, tx.frame, fallback=tx.fallback, info=tx, window=tx.window
                )
                self.metrics.inc("downlinks_total", kind=tx.kind, window=tx.window)
        self._account(outcomes)
        if outcomes:
            self.notify_delivery()

    def _account(self, outcomes: list[Outcome]) -> None:
        """Metrics and listeners for what became of some frames (accepted ones counted once per call: a
        batch is hundreds of them)."""
        accepted = 0
        listeners = self.outcome_listeners
        for out in outcomes:
            status = out.status
            if status == _ACCEPTED:
                accepted += 1
            elif status == Status.REJECTED:
                self.metrics.inc("uplinks_rejected_total", reason=out.reason or "unknown")
                log.debug("uplink rejected (%s): %s", out.reason, out.detail)
            elif status == Status.JOINED:
                self.metrics.inc("joins_total")
            elif status == Status.RETRANSMISSION:
                self.metrics.inc("uplinks_retransmitted_total")
            for listener in listeners:
                try:
                    listener(out)
                except Exception:
                    log.exception("outcome listener failed")
        if accepted:
            self.metrics.inc("uplinks_accepted_total", accepted)
            self.last_uplink = time.time()

    def probe_storage(self) -> None:
        """A tiny write transaction: when it commits, the database may take writes again, and the frames
        a failed store left in the intake journal are processed (once every frame waiting in memory is)."""
        if not self.health.try_due():
            return
        try:
            with db.unit_of_work(self.conn):
                self.conn.execute("UPDATE db_identity SET db_id = db_id")
        except HavelError as exc:
            self.health.failed("testing the database", exc)
            return
        self._recover_storage()

    def _recover_storage(self) -> None:
        """The database took a write again: store what waits in the dedup window, then what the failed
        stores left in the intake journal, in the order it came. Storage counts as working again only when
        all of that went in (a small write may fit where a batch does not: a full disk can take a page into
        the write-ahead log's last block); otherwise the next try waits longer, up to RETRY_MAX_S."""
        if not self.health.try_due():
            return
        self.health.retry = False
        self.process(force=True)
        if not self.health.retry:
            try:
                self.replay_journal("that could not be stored while the database refused writes")
            except HavelError as exc:
                self.health.failed("storing frames from the intake journal", exc)
        if not self.health.retry and self.batch is not None and not self.batch.commit("recovering"):
            self.health.retry = True
        if self.health.retry:  # failed again
            self.health.try_failed()
            return
        self.health.recovered()
        self.notify_delivery()


def _mask(copies: list[Reception]) -> int:
    """The bit mask of the rxpk indexes of these copies of one datagram."""
    mask = 0
    for copy in copies:
        assert copy.origin is not None
        mask |= 1 << copy.origin[1]
    return mask
