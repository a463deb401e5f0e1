"""What the sinks delivered, recorded in the outbox: a sink's bit is cleared in ``pending`` and a row is
deleted when no bit is left (with one sink, at once).

Acknowledgements are recorded now (:meth:`Acknowledgements.ack`, one transaction) or held back
(:meth:`Acknowledgements.hold`) and recorded with the next records stored or on their own
(:meth:`Acknowledgements.commit`). Commits that only record acknowledgements are not fsynced (the next
intake commit or checkpoint is): lost to a power cut, the records are only sent again, as after a crash
before the commit; at a city's pace that saves a flash write.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from havel.gateway import db
from havel.gateway.outbox_records import DELETE_DONE, DELETE_IDS, DELETE_SEQS, delete_counted
from havel.gateway.outbox_sinks import SinkBits

__all__ = ["Acknowledgements"]


class Acknowledgements:
    """The acknowledgements of the sinks in ``sinks`` on ``conn`` (one thread)."""

    def __init__(self, conn: sqlite3.Connection, sinks: SinkBits) -> None:
        self.conn = conn
        self.sinks = sinks
        self.held: dict[str, list[int]] = {}  # sink -> seqs it delivered, not yet recorded
        # held seqs recorded in a transaction not yet known to have committed: (sink, seqs)
        self.recorded: list[tuple[str, list[int]]] = []

    def ack(self, sink: str, column: str, keys: list[Any]) -> int:
        """Record now that ``sink`` delivered the records with these ``column`` ("id" or "seq") values;
        returns the rows deleted. Unknown keys (already deleted, dropped) are ignored."""
        self.sinks.mask(sink)  # unknown sink -> InputError
        if not keys:
            return 0
        seq = column == "seq"
        try:
            with db.deferred_sync(self.conn), db.unit_of_work(self.conn):
                if self.sinks.one_sink:
                    # one sink: its acknowledgement is the last one, delete straight away (the keys as one
                    # JSON array: one statement, and the deleted sizes come back for the totals)
                    return delete_counted(self.conn, DELETE_SEQS if seq else DELETE_IDS, (json.dumps(keys),))
                keep = ~self.sinks.mask(sink)
                sql = (
                    "UPDATE outbox SET pending = pending & ? WHERE seq = ?"
                    if seq
                    else "UPDATE outbox SET pending = pending & ? WHERE id = ?"
                )
                self.conn.executemany(sql, [(keep, k) for k in keys])
                return delete_counted(self.conn, DELETE_DONE)
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "acknowledging outbox records") from None

    def hold(self, sink: str, seqs: Iterable[int]) -> None:
        """Hold back the acknowledgement of ``seqs`` by ``sink`` (see :meth:`.outbox.Outbox.hold_acks`)."""
        self.sinks.mask(sink)  # unknown sink -> InputError
        self.settle()
        self.held.setdefault(sink, []).extend(seqs)

    def commit(self) -> int:
        """Record every held acknowledgement in one transaction; returns the rows deleted."""
        self.settle()
        if not self.held:
            return 0
        own = not self.conn.in_transaction
        try:
            with db.deferred_sync(self.conn), db.unit_of_work(self.conn):
                deleted = self.record_held()
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "acknowledging outbox records") from None
        if own:
            self.committed()
        return deleted

    def record_held(self) -> int:
        """Inside a transaction: the held acknowledgements into the table; returns the rows deleted."""
        held, self.held = self.held, {}
        self.recorded.extend(held.items())
        deleted = 0
        one_sink = self.sinks.one_sink
        for sink, seqs in held.items():
            if one_sink:
                deleted += delete_counted(self.conn, DELETE_SEQS, (json.dumps(seqs),))
            else:
                keep = ~self.sinks.mask(sink)
                self.conn.executemany(
                    "UPDATE outbox SET pending = pending & ? WHERE seq = ?", [(keep, k) for k in seqs]
                )
        if not one_sink:
            deleted += delete_counted(self.conn, DELETE_DONE)
        return deleted

    def recorded_count(self) -> int:
        """Acknowledgements recorded in a transaction not yet known to have committed (kept in memory until
        then)."""
        return sum(len(seqs) for _, seqs in self.recorded)

    def committed(self) -> None:
        """The transaction that recorded the held acknowledgements committed."""
        self.recorded.clear()

    def settle(self) -> None:
        """Acknowledgements recorded in a transaction that may have rolled back (a put inside the network
        server's transaction, whose commit failed): those whose records still wait are held again. Only
        between transactions (inside one, its own changes would look committed); when the database cannot
        be read, later."""
        if not self.recorded or self.conn.in_transaction:
            return
        recorded, self.recorded = self.recorded, []
        for sink, seqs in recorded:
            if sink not in self.sinks.bits:
                continue
            try:
                rows = self.conn.execute(
                    "SELECT seq FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) AND pending & ?",
                    (json.dumps(seqs), self.sinks.mask(sink)),
                ).fetchall()
            except sqlite3.Error:  # (looked at again next time; a reader of held counts must not fail)
                self.recorded = recorded
                return
            if rows:
                self.held.setdefault(sink, []).extend(r[0] for r in rows)

    def delivered(self, held: Mapping[str, Collection[int]]) -> int:
        """How many stored records every sink still owing them holds an acknowledgement for (``held``: sink
        -> seqs acknowledged, not yet committed): delivered everywhere, only their deletion is pending."""
        # as sets: up to ack_batch (1,000) seqs per sink (a list here made each /status call 1,000 x 1,000
        # comparisons: 15 ms)
        acked = [(set(seqs), self.sinks.mask(sink)) for sink, seqs in held.items()]
        seqs = set().union(*(s for s, _ in acked))
        if not seqs:
            return 0
        low, high = min(seqs), max(seqs)
        try:
            if high - low < 4 * len(seqs):  # the usual case: acknowledged in order, one run of seqs
                sql = "SELECT seq, pending FROM outbox WHERE seq BETWEEN ? AND ?"
                rows = self.conn.execute(sql, (low, high)).fetchall()
            else:
                sql = "SELECT seq, pending FROM outbox WHERE seq IN (SELECT value FROM json_each(?))"
                rows = self.conn.execute(sql, (json.dumps(sorted(seqs)),)).fetchall()
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "counting delivered records") from None
        done = 0
        for seq, pending in rows:
            if seq not in seqs:
                continue  # (in the range, held by no sink)
            for held_seqs, bit in acked:
                if seq in held_seqs:
                    pending &= ~bit
            done += pending == 0
        return done
