"""The durable outbox: every record the gateway must deliver northbound, until every sink acknowledged it.

Rules:

- **Durable**: rows live in the gateway's SQLite database (WAL, ``synchronous=FULL``, see :mod:`.db`).
  :meth:`Outbox.put` writes inside the caller's transaction, so the network server commits the new frame
  counter and the record together; :meth:`Outbox.put_many` and :meth:`Outbox.ack` group many records into one
  commit (group commit: one fsync for a batch).
- **At-least-once, per sink**: each configured sink has a bit in ``pending`` (:mod:`.outbox_sinks`); an
  acknowledgement clears it and a row is deleted only when no bit is left (:mod:`.outbox_acks`). A record
  fetched but never acknowledged (crash, broker outage) is fetched again after a restart; receivers
  deduplicate on the stable ``id``. A sink that leaves the config keeps its backlog until an operator
  releases it (:func:`.outbox_sinks.discard_sink`). Commands that only look (``havel gateway status``) open
  the database read-only and build the outbox with :meth:`Outbox.reader`.
- **Order**: rows come out in insertion order (``seq``). The network server accepts a device's frames only
  with a rising FCnt32, so for each device this is FCnt order. A seq is never given out twice: the highest
  given out is kept in the totals row (which every insert writes anyway).
- **Bounded**: with ``quota_bytes`` set, the quota policy (:mod:`.outbox_quota`) drops the oldest routine
  records first, alarms never. A dropped incoming record makes ``put`` return False.
- ``priority`` is a first-class column ("alarm" | "state" | "background") so the disaster relay can pick
  alarms out of the backlog (:meth:`fetch` with ``priorities``).

What a record is and how its size counts: :mod:`.outbox_records`. The database file grows to about the
quota (plus registry and WAL) and stays there: SQLite reuses the pages of deleted rows.

Readers that are not sinks (the disaster relay) call :meth:`fetch` with their own ``after_seq`` cursor and
``priorities``, and never acknowledge: the primary's backlog stays until the primary itself delivered it.
The delivery acknowledges by ``seq`` (:meth:`ack_seqs`, :meth:`hold_acks`), the faster key.

Usage (the network server)::

    conn = db.open_db(cfg.db_path)
    outbox = Outbox(conn, quota_bytes=int(cfg.outbox.quota_mb * 1e6), sinks=[s["name"] for s in cfg.sinks])
    with db.unit_of_work(conn):
        registry.set_fcnt_up(...)
        outbox.put({"id": "70B3D57ED0000001-3-42", "kind": "up", "dev_eui": "70B3D57ED0000001", "fcnt32": 42,
                    "priority": "background", "received_at": "2026-11-26T09:00:00.123Z", "payload": {...}})

Thread use: one thread at a time (the gateway's event loop).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from havel.errors import InputError
from havel.gateway import db, schema
from havel.gateway.outbox_acks import Acknowledgements
from havel.gateway.outbox_quota import DROP_ORDER, Quota
from havel.gateway.outbox_records import (
    ADD_TOTALS_SEQ,
    ID,
    INSERT,
    LAST_SEQ,
    PRIORITIES,
    RECEIVED_AT,
    SEQ_OF,
    SIZE,
    OutboxRecord,
    Row,
    record_row,
)
from havel.gateway.outbox_sinks import MAX_SINKS, SinkBits

__all__ = ["Outbox"]

log = logging.getLogger("havel.gateway.outbox")


class Outbox:
    """The outbox on an open connection (see the module docstring). ``sinks`` names every sink that must
    acknowledge a record before it is deleted; sinks that were configured before but are gone now keep their
    share of the backlog (``retired``, logged with what to do), sinks added now only get records put from
    now on."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        quota_bytes: int | None = None,
        sinks: Sequence[str] = ("primary",),
        drop_order: Sequence[str] = DROP_ORDER,
    ) -> None:
        quota = Quota(conn, quota_bytes, drop_order)
        names = list(dict.fromkeys(sinks))
        if not names:
            raise InputError("the outbox needs at least one sink")
        if len(names) > MAX_SINKS:
            raise InputError(f"at most {MAX_SINKS} sinks, got {len(names)}")
        try:
            with db.unit_of_work(conn):
                schema.migrate(conn)
                bits = SinkBits.assign(conn, names)
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "creating the outbox tables") from None
        self._setup(conn, quota, bits)

    @classmethod
    def reader(cls, conn: sqlite3.Connection) -> Outbox:
        """The outbox of a database opened read-only (:func:`db.open_db_readonly`): nothing is created or
        changed; every sink it knows (configured or not) is one of ``sinks``. For inspection only."""
        self = cls.__new__(cls)
        self._setup(conn, Quota(conn, None, DROP_ORDER), SinkBits.read(conn))
        return self

    def _setup(self, conn: sqlite3.Connection, quota: Quota, bits: SinkBits) -> None:
        self.conn = conn
        self.quota = quota
        self.bits = bits
        self.sinks = bits.names
        self.retired = bits.retired  # sinks no longer configured that still hold records: name -> bit
        self.acks = Acknowledgements(conn, bits)
        quota.exact_bytes()

    @property
    def quota_bytes(self) -> int | None:
        return self.quota.limit

    @property
    def drop_order(self) -> tuple[str, ...]:
        return self.quota.drop_order

    # ------------------------------------------------------------------------------------ put

    def put(self, record: dict[str, Any]) -> bool:
        """Store one record inside the caller's transaction (its own one if none is open).

        Returns True when stored; False when a record with this id is already in the outbox (a duplicate)
        or when the quota policy dropped this very record. Raises InputError for a malformed record and
        StorageError when the database cannot take it (nothing of it is then stored).
        """
        return self.put_many([record]) == 1

    def put_many(self, records: Iterable[dict[str, Any]]) -> int:
        """Store several records in one transaction (group commit); returns how many were stored.

        Acknowledgements held back with :meth:`hold_acks` are recorded in the same transaction: the new
        records go into the pages the delivered ones leave, one write for both."""
        return self.put_rows([record_row(r) for r in records])

    def put_rows(self, rows: list[Row]) -> int:
        """:meth:`put_many` of records already turned into rows (:func:`.outbox_records.record_row`, or
        :func:`.outbox_records.stored_row` by a producer that builds its records itself)."""
        if not rows:
            return 0
        acks = self.acks
        acks.settle()
        own = not self.conn.in_transaction
        try:
            with db.unit_of_work(self.conn):
                if acks.held:
                    acks.record_held()
                last = int(self.conn.execute(LAST_SEQ).fetchone()[0])
                if self.quota.fits(sum(r[SIZE] for r in rows)):
                    stored = self._insert_batch(rows, last)
                else:
                    stored = self._insert_each(rows, last)
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "storing outbox records") from None
        if own:  # committed: what it recorded of the held acknowledgements is done
            acks.committed()
        return stored

    def _insert_batch(self, rows: list[Row], last: int) -> int:
        """The fast path (no quota pressure): one ``executemany`` of ``INSERT OR IGNORE``, seqs from
        ``last + 1``.

        The first record with an id wins (one already stored, or the first in this batch), later ones are
        logged as duplicates; insertion order (``seq``, hence per-device FCnt order) is the order of
        ``rows``. Duplicates are rare (a journal replay after a restart), so they are looked for only when
        fewer rows went in than were given.
        """
        mask = self.bits.all_mask
        stored = self.conn.executemany(
            INSERT, [(*row, mask, seq) for seq, row in enumerate(rows, last + 1)]
        ).rowcount
        if stored == len(rows):
            size = sum(r[SIZE] for r in rows)
            dups: list[Row] = []
        else:
            size, dups = self._which_went_in(rows, last)
        self.conn.execute(ADD_TOTALS_SEQ, (stored, size, last + len(rows)))
        self.quota.estimate += size
        for row in dups:
            self._duplicate(row)
        return stored

    def _which_went_in(self, rows: list[Row], last: int) -> tuple[int, list[Row]]:
        """After a batch insert of ``rows`` with seqs from ``last + 1``: the bytes stored, and the rows that
        were not (their id held before, or earlier in the batch): a row went in when its id has its seq."""
        seq_of = dict(self.conn.execute(SEQ_OF, (json.dumps([r[ID] for r in rows]),)).fetchall())
        size, dups = 0, []
        for seq, row in enumerate(rows, last + 1):
            if seq_of.get(row[ID]) == seq:
                size += row[SIZE]
            else:
                dups.append(row)
        return size, dups

    def _insert_each(self, rows: list[Row], last: int | None = None) -> int:
        """Row by row, applying the quota policy before each one (the quota may be reached); seqs from
        ``last + 1`` (default: after the highest given out)."""
        if last is None:
            last = int(self.conn.execute(LAST_SEQ).fetchone()[0])
        stored = 0
        for row in rows:
            if not self.quota.make_room(row):
                continue
            cur = self.conn.execute(INSERT, (*row, self.bits.all_mask, last + 1))
            if cur.rowcount == 1:
                last += 1
                stored += 1
                # (counted at once: the quota check of the next row reads the totals)
                self.conn.execute(ADD_TOTALS_SEQ, (1, row[SIZE], last))
                self.quota.estimate += row[SIZE]
            else:
                self._duplicate(row)
        return stored

    def _duplicate(self, row: Row) -> None:
        held = self.conn.execute("SELECT received_at FROM outbox WHERE id = ?", (row[ID],)).fetchone()
        if held is not None and held[0] != row[RECEIVED_AT]:
            # same id, another reading: ids carry the session epoch (which a device removed and added again
            # continues), so the network server never gives two readings one id; a producer that did is
            # named here
            log.warning(
                "outbox id collision: %s is already stored with receive time %s; the record received at %s "
                "was not stored",
                row[ID],
                held[0],
                row[RECEIVED_AT],
            )
        else:
            log.info("outbox already holds %s: duplicate not stored", row[ID])

    # ------------------------------------------------------------------------------------ fetch / ack

    def fetch(
        self, sink: str, limit: int = 100, *, after_seq: int = 0, priorities: Sequence[str] | None = None
    ) -> list[OutboxRecord]:
        """Up to ``limit`` records ``sink`` has not acknowledged, in order, with ``seq`` > ``after_seq``.

        ``priorities`` restricts the classes (e.g. ``("alarm",)`` for a relay picking alarms out of a
        backlog). Fetching does not reserve anything: a record is fetched again until it is acknowledged.
        """
        bit = self.bits.mask(sink)
        sql = (
            "SELECT seq, id, kind, dev_eui, fcnt32, priority, received_at, payload FROM outbox "
            "WHERE seq > ? AND pending & ?"
        )
        args: list[Any] = [after_seq, bit]
        if priorities is not None:
            bad = [p for p in priorities if p not in PRIORITIES]
            if bad:
                raise InputError(f"unknown priority {bad[0]!r}", hint=f"one of {', '.join(PRIORITIES)}")
            sql += f" AND priority IN ({','.join('?' * len(priorities))})"
            if "background" not in priorities:
                # (the condition of the index of alarm and state records, which lets SQLite use it)
                sql += " AND priority != 'background'"
            args += list(priorities)
        sql += " ORDER BY seq LIMIT ?"
        args.append(int(limit))
        try:
            rows = self.conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "reading the outbox") from None
        return [OutboxRecord(*row) for row in rows]

    def ack(self, sink: str, ids: Iterable[str]) -> int:
        """Record that ``sink`` delivered ``ids`` (one transaction); delete rows every sink has delivered.

        Unknown ids (already deleted, dropped) are ignored. Returns the number of rows deleted.
        """
        return self.acks.ack(sink, "id", list(ids))

    def ack_seqs(self, sink: str, seqs: Iterable[int]) -> int:
        """:meth:`ack` by ``seq`` (what the delivery holds; the integer key is the faster lookup)."""
        return self.acks.ack(sink, "seq", list(seqs))

    def hold_acks(self, sink: str, seqs: Iterable[int]) -> None:
        """Record that ``sink`` delivered ``seqs``, later: in the transaction of the next :meth:`put_many`
        (its commit writes the outbox's pages anyway: at a city's pace the record delivered a moment ago
        shares a page with the one stored now) or at :meth:`commit_acks`, whichever comes first. Until then
        they count as waiting; lost to a crash, they are only sent again. One recorded in a transaction that
        rolls back is held again."""
        self.acks.hold(sink, seqs)

    def held(self) -> dict[str, list[int]]:
        """The acknowledgements held back, per sink (a copy)."""
        self.acks.settle()
        return {sink: list(seqs) for sink, seqs in self.acks.held.items() if seqs}

    def held_count(self, sink: str) -> int:
        """How many of ``sink``'s acknowledgements are held back."""
        self.acks.settle()
        return len(self.acks.held.get(sink, ()))

    def commit_acks(self) -> int:
        """Record every held acknowledgement in one transaction (not fsynced); returns the rows deleted."""
        return self.acks.commit()

    # ------------------------------------------------------------------------------------ inspection

    def depth(self, sink: str | None = None) -> int:
        """Records waiting (for ``sink``, or for any sink)."""
        try:
            if sink is None:
                return int(self.conn.execute("SELECT rows FROM outbox_totals WHERE one = 1").fetchone()[0])
            return int(
                self.conn.execute(
                    "SELECT count(*) FROM outbox WHERE pending & ?", (self.bits.mask(sink),)
                ).fetchone()[0]
            )
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "counting the outbox") from None

    def delivered(self, held: Mapping[str, Collection[int]]) -> int:
        """How many stored records every sink still owing them holds an acknowledgement for (``held``: sink
        -> seqs acknowledged, not yet committed): delivered everywhere, only their deletion is pending."""
        return self.acks.delivered(held)

    def size_bytes(self) -> int:
        """Bytes counted against the quota."""
        return self.quota.exact_bytes()

    def max_seq(self) -> int:
        """The highest ``seq`` ever given out (0 for a new outbox); later records get higher ones."""
        try:
            return int(self.conn.execute(LAST_SEQ).fetchone()[0])
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "reading the outbox") from None

    def oldest_received_at(self) -> str | None:
        """``received_at`` of the oldest waiting record (for the outbox-age metric)."""
        row = self.conn.execute("SELECT received_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return str(row[0]) if row else None

    def dropped(self) -> dict[str, int]:
        """How many records the quota policy dropped, per priority, over the database's life."""
        return self.quota.dropped()

    def ids(self) -> list[str]:
        """Every stored id in order (for tests and `havel gateway status`)."""
        return [r[0] for r in self.conn.execute("SELECT id FROM outbox ORDER BY seq")]
