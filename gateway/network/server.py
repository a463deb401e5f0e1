"""The edge network server: receptions in, outcomes and outbox records out.

Pure-ish: no sockets and no clocks of its own (``now`` is passed in), no wire protocol (it is fed
:class:`~havel.gateway.network.reception.Reception`); storage goes through a
:class:`~havel.gateway.network.sessions.SessionStore` and the outbox. The pipeline per frame:

1. :meth:`NetworkServer.receive` takes one copy (one concentrator's reception) into the
   :class:`~havel.gateway.network.dedup.Deduplicator`, which groups the copies of a frame.
2. :meth:`NetworkServer.flush` processes the groups whose window closed, all in ONE transaction (group
   commit): data frames through the :class:`~havel.gateway.network.uplinks.DataPath`, frames sent again
   as retransmissions, join-requests through the :class:`~havel.gateway.network.joins.JoinServer`; the
   messages they build (:mod:`~havel.gateway.network.messages`) go to the outbox in one statement, and the
   stored frames leave the intake journal in the same commit.

Every frame ends as an :class:`~havel.gateway.network.outcome.Outcome` (accepted, joined, retransmission,
or rejected with a reason that is a metric label).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from havel.codecs.lorawan import phy
from havel.errors import HavelError, StorageError
from havel.gateway.config import NetworkConfig
from havel.gateway.network.dedup import Deduplicator, signal_key
from havel.gateway.network.joins import JoinServer
from havel.gateway.network.messages import MessageBuilder, RuleClassifier, compiled_codec
from havel.gateway.network.outcome import Outcome, Reason, Status, rejected
from havel.gateway.network.reception import Reception
from havel.gateway.network.sessions import SessionStore
from havel.gateway.network.uplinks import DataPath
from havel.gateway.outbox_records import Row

log = logging.getLogger("havel.gateway.netserver")


class OutboxLike(Protocol):
    """What the network server needs of the outbox."""

    def put(self, record: dict[str, Any]) -> bool: ...

    def put_many(self, records: Iterable[dict[str, Any]]) -> int: ...

    def put_rows(self, rows: list[Row]) -> int: ...


class JournalLike(Protocol):
    """What the network server needs of the intake journal."""

    def forget(self, seqs: Iterable[int]) -> None: ...


class NetworkServer:
    """See the module docstring. ``codec_lookup(name)`` returns a codec with ``decode(data, fport)``."""

    def __init__(
        self,
        store: SessionStore,
        outbox: OutboxLike,
        net: NetworkConfig,
        *,
        codec_lookup: Callable[[str], Any] | None = None,
        rng: random.Random | None = None,
        journal: JournalLike | None = None,
        rules: RuleClassifier | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.net = net
        self.journal = journal
        # frames per transaction: large enough for group commit, small enough that the event loop (PUSH_ACKs,
        # downlinks due within a second) is never held for long
        self.max_batch = 256
        self.dedup = Deduplicator(net)
        self.messages = MessageBuilder(codec_lookup or compiled_codec, rules)
        self.data = DataPath(store, self.messages)
        self.joins = JoinServer(store, net, self.messages, rng or random.SystemRandom())

    @property
    def rules(self) -> RuleClassifier | None:
        """The relay's configured rules, which may raise a record's priority (None without a relay)."""
        return self.messages.rules

    @rules.setter
    def rules(self, rules: RuleClassifier | None) -> None:
        self.messages.rules = rules

    # ----------------------------------------------------------------------------------------- intake
    def receive(self, copy: Reception, mono: float) -> Outcome | None:
        """Take one copy; returns an Outcome at once only when it is rejected before grouping."""
        return self.dedup.receive(copy, mono)

    def next_deadline(self) -> float | None:
        """Monotonic time of the earliest group to flush (None when nothing waits)."""
        return self.dedup.next_deadline()

    @property
    def pending(self) -> int:
        """Frames waiting in the dedup window."""
        return len(self.dedup.pending)

    # ---------------------------------------------------------------------------------------- process
    def flush(
        self,
        mono: float,
        now: datetime,
        *,
        force: bool = False,
        after_store: Callable[[Outcome], None] | None = None,
    ) -> list[Outcome]:
        """Process every group whose window closed (all with ``force``), in one transaction.

        ``after_store(outcome)`` runs inside that transaction for accepted and joined frames (the downlink
        scheduler writes its counter and queue changes there, so they commit with the uplink)."""
        dedup = self.dedup
        due = dedup.take_due(mono, self.max_batch, force)
        if not due:
            return []
        self.store.refresh()
        outcomes: list[Outcome] = []
        records: list[Row] = []  # the batch's outbox records, as the rows that store them
        # counters accepted earlier in this batch per (DevEUI, session epoch): the cache is updated at commit
        fcnt_seen: dict[tuple[int, int], int] = {}
        nonces_seen: set[tuple[int, int]] = set()
        joined_now: set[int] = set()  # DevEUIs whose join this batch recorded
        uplink = self.data.uplink
        joined, refused = Status.JOINED, Status.REJECTED  # looked up once per batch, not per frame
        try:
            with self.store.transaction():
                if self.journal is not None:  # stored frames leave the intake journal in the same commit
                    self.journal.forget([c.journal_id for _, g in due for c in g.copies if c.journal_id])
                for key, g in due:
                    # one copy (one concentrator heard it) is the usual case: nothing to sort
                    copies = g.copies
                    if len(copies) > 1:
                        copies = sorted(copies, key=signal_key, reverse=True)
                    frame = g.frame
                    # Each frame is checked completely before anything is written, so a bad frame leaves
                    # nothing behind and needs no savepoint; a storage error fails the whole batch.
                    try:
                        if isinstance(frame, phy.JoinRequest):
                            out = self.joins.join(frame, copies, nonces_seen, records, after_store)
                        elif g.again:
                            assert isinstance(frame, phy.DataFrame)
                            out = self.data.sent_again(frame, copies)
                            # an old session's frame sent again after its device joined in this batch:
                            # no ACK with the keys of a session the join replaced
                            out.superseded = out.device is not None and out.device.dev_eui in joined_now
                        else:
                            assert isinstance(frame, phy.DataFrame)
                            out = uplink(frame, copies, fcnt_seen, records)
                    except StorageError:
                        raise
                    except HavelError as exc:
                        log.error("uplink processing failed: %s", exc)
                        out = rejected(Reason.FRAME, str(exc), copies)
                    status = out.status
                    if status == joined and out.device is not None:
                        joined_now.add(out.device.dev_eui)
                    if status != refused:
                        dedup.processed(key, g, out, mono)
                        if after_store is not None and not out.superseded and status != joined:
                            try:
                                after_store(out)
                            except StorageError:
                                raise
                            except HavelError as exc:
                                log.error("downlink scheduling after an uplink failed: %s", exc)
                    outcomes.append(out)
                if records:  # the batch's records in one statement (per-device FCnt order kept)
                    self.outbox.put_rows(records)
        except HavelError as exc:  # the commit failed (disk full, locked): nothing of the batch is stored
            log.error("storing %d uplinks failed: %s (they stay in the intake journal)", len(due), exc)
            self.storage_failed(outcomes, str(exc))
            for _, g in due[len(outcomes) :]:  # the frame that failed and those after it: one outcome each
                copies = sorted(g.copies, key=signal_key, reverse=True)
                outcomes.append(rejected(Reason.STORAGE, str(exc), copies))
        return outcomes

    def storage_failed(self, outcomes: list[Outcome], detail: str) -> None:
        """The transaction that stored these outcomes failed (flush's own, or the caller's it ran in as a
        savepoint): what they accepted is not stored after all (the frames stay in the intake journal,
        replayed at the next start) and a later copy of them must not count as a duplicate."""
        for out in outcomes:
            if out.status != Status.REJECTED:
                self.dedup.forget(out)
                out.status, out.reason, out.detail = Status.REJECTED, Reason.STORAGE, detail
