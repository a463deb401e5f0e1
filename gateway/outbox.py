"""The durable outbox: every record the gateway must deliver northbound, until every sink acknowledged it.

Rules:

- **Durable**: rows live in the gateway's SQLite database (WAL, ``synchronous=FULL``, see :mod:`.db`).
  :meth:`Outbox.put` writes inside the caller's transaction, so the network server commits the new frame
  counter and the record together; :meth:`Outbox.put_many` and :meth:`Outbox.ack` group many records into one
  commit (group commit: one fsync for a batch).
- **At-least-once, per sink**: each configured sink has a bit in ``pending``; :meth:`ack` clears it and a row
  is deleted only when no bit is left. A record fetched but never acknowledged (crash, broker outage) is
  fetched again after a restart; receivers deduplicate on the stable ``id``.
- **A sink that leaves the config keeps its backlog** (a renamed sink, a config without it, a command that
  opened the database with default settings): its bit stays set on the records it has not acknowledged, so
  they stay stored, and come out for it again when it is configured again. Only an operator releases them,
  with :func:`discard_sink` (``havel gateway outbox discard --sink NAME``). Commands that only look
  (``havel gateway status``) open the database read-only and build the outbox with :meth:`Outbox.reader`.
- **Order**: rows come out in insertion order (``seq``). The network server accepts a device's frames only
  with a rising FCnt32, so for each device this is FCnt order.
- **Bounded**: with ``quota_bytes`` set, a put that would exceed it first drops the oldest ``background``
  records, then the oldest ``state`` records (``drop_order``, configurable: ``("background",)`` keeps state
  records too); ``alarm`` records are never dropped (kept even above the quota, with a warning). Every
  drop is logged with its id and counted per priority in the database (:meth:`dropped`). A dropped
  incoming record makes ``put`` return False.
- ``priority`` is a first-class column ("alarm" | "state" | "background") so the disaster relay can pick
  alarms out of the backlog (:meth:`fetch` with ``priorities``).

Size accounting counts the stored JSON payload plus a fixed per-row overhead (:data:`ROW_OVERHEAD`); every
statement that inserts or deletes rows updates the totals row in the same transaction (one UPDATE per
statement, not a trigger per row), so a rolled-back transaction never skews them. The database file grows to
about the quota (plus registry and WAL) and stays there: SQLite reuses the pages of deleted rows.

Readers that are not sinks (the disaster relay) call :meth:`fetch` with their own ``after_seq`` cursor and
``priorities``, and never acknowledge: the primary's backlog stays until the primary itself delivered it.
The forwarder acknowledges by ``seq`` (:meth:`ack_seqs`), the faster key.

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
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from havel.errors import InputError

from . import db, schema
from .jsontext import encode_json

__all__ = ["KINDS", "PRIORITIES", "ROW_OVERHEAD", "Outbox", "OutboxRecord", "discard_sink", "pending_by_sink"]

log = logging.getLogger("havel.gateway.outbox")

KINDS = ("up", "join", "down_result", "event")
PRIORITIES = ("alarm", "state", "background")
# Drop order under quota pressure: routine readings first, then superseded state; alarms never.
DROP_ORDER = ("background", "state")
ROW_OVERHEAD = 96  # bytes counted per row besides the payload (ids, columns, index entries), roughly
MAX_SINKS = 62

_INSERT = (
    "INSERT OR IGNORE INTO outbox (id, kind, dev_eui, fcnt32, priority, received_at, payload, size, pending,"
    " seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SEQ_OF = "SELECT id, seq FROM outbox WHERE id IN (SELECT value FROM json_each(?))"
_LAST_SEQ = "SELECT seq FROM outbox_totals WHERE one = 1"
# Same text as json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False), without
# building an encoder per call
_encode_json = encode_json

_ADD_TOTALS = "UPDATE outbox_totals SET rows = rows + ?, bytes = bytes + ? WHERE one = 1"
_ADD_TOTALS_SEQ = "UPDATE outbox_totals SET rows = rows + ?, bytes = bytes + ?, seq = ? WHERE one = 1"
_DELETE_DONE = "DELETE FROM outbox WHERE pending = 0 RETURNING size"
_DELETE_SEQS = "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) RETURNING size"
_DELETE_IDS = "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?)) RETURNING size"
# The oldest records of a priority: alarm and state ones through their index (the term that names the index's
# condition, _URGENT, lets SQLite use it), routine readings in seq order (nearly every record is one)
_URGENT = "priority != 'background'"
_OLDEST = {
    "background": "SELECT seq, id, size FROM outbox WHERE priority = ? ORDER BY seq LIMIT 64",
    "state": "SELECT seq, id, size FROM outbox WHERE priority = ? AND priority != 'background' "
    "ORDER BY seq LIMIT 64",
}


@dataclass
class OutboxRecord:
    """One stored record as fetched for a sink (treat it as read-only; not frozen only because a frozen
    dataclass is measurably slower to build, and a backlog drain builds one per message).

    ``payload`` is the json-scheme message (with ``id``, without ``buffered``), parsed on first use from
    ``payload_json``, the stored text (the json format splices ``buffered`` into that text directly).
    """

    seq: int
    id: str
    kind: str
    dev_eui: str | None
    fcnt32: int | None
    priority: str
    received_at: str
    payload_json: str

    @cached_property
    def payload(self) -> dict[str, Any]:
        value = json.loads(self.payload_json)
        assert isinstance(value, dict)
        return value


def _dev_eui_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:016X}"
    if isinstance(value, str):
        return value.upper()
    raise InputError(f"outbox record dev_eui must be a hex string or an int, not {type(value).__name__}")


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
        if quota_bytes is not None and quota_bytes <= 0:
            raise InputError(f"outbox quota must be positive, got {quota_bytes}")
        if len(set(drop_order)) != len(drop_order) or not set(drop_order) <= set(DROP_ORDER):
            raise InputError(
                f"outbox drop_order {list(drop_order)!r} is not valid",
                hint="a sequence of 'background' and 'state' (alarms are never dropped)",
            )
        self.drop_order = tuple(drop_order)
        names = list(dict.fromkeys(sinks))
        if not names:
            raise InputError("the outbox needs at least one sink")
        if len(names) > MAX_SINKS:
            raise InputError(f"at most {MAX_SINKS} sinks, got {len(names)}")
        self.conn = conn
        self.quota_bytes = quota_bytes
        self.sinks = tuple(names)
        self.retired: dict[str, int] = {}  # sinks no longer configured that still hold records: name -> bit
        self._held: dict[str, list[int]] = {}  # sink -> seqs it delivered, not yet recorded (hold_acks)
        # held seqs recorded in a transaction not yet known to have committed: (sink, seqs)
        self._recorded: list[tuple[str, list[int]]] = []
        try:
            with db.unit_of_work(conn):
                schema.migrate(conn)
                self._bits = self._assign_bits(names)
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "creating the outbox tables") from None
        self._init_totals()

    @classmethod
    def reader(cls, conn: sqlite3.Connection) -> Outbox:
        """The outbox of a database opened read-only (:func:`db.open_db_readonly`): nothing is created or
        changed; every sink it knows (configured or not) is one of ``sinks``. For inspection only."""
        self = cls.__new__(cls)
        self.conn = conn
        self.quota_bytes = None
        self.drop_order = DROP_ORDER
        self.retired = {}
        self._held = {}
        self._recorded = []
        try:
            rows = conn.execute("SELECT name, bit FROM outbox_sinks ORDER BY bit").fetchall()
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "reading the outbox (has the gateway ever run here?)") from None
        self.sinks = tuple(str(n) for n, _ in rows)
        self._bits = {str(n): int(b) for n, b in rows}
        self._init_totals()
        return self

    def _init_totals(self) -> None:
        self._all_mask = 0
        for bit in self._bits.values():
            self._all_mask |= 1 << bit
        # Upper bound of the stored bytes: exact after _exact_bytes(), only ever too high otherwise (a
        # rolled-back put is still counted), so the exact total is read only when the quota may be reached.
        self._bytes_estimate = self._exact_bytes()

    # ------------------------------------------------------------------------------------ setup

    def _count(self, rows: int, size: int) -> None:
        """Add to the stored totals (inside the caller's transaction)."""
        if rows or size:
            self.conn.execute(_ADD_TOTALS, (rows, size))

    def _delete(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one of the ``_DELETE_*`` statements and take the rows off the totals; returns how many went."""
        sizes = self.conn.execute(sql, args).fetchall()
        if sizes:
            self._count(-len(sizes), -sum(r[0] for r in sizes))
        return len(sizes)

    def _assign_bits(self, names: list[str]) -> dict[str, int]:
        rows = dict(self.conn.execute("SELECT name, bit FROM outbox_sinks").fetchall())
        for gone in [n for n in rows if n not in names]:
            bit = rows.pop(gone)
            n = self.conn.execute("SELECT count(*) FROM outbox WHERE pending & ?", (1 << bit,)).fetchone()[0]
            if n == 0:  # nothing waits for it: its bit is free again
                self.conn.execute("DELETE FROM outbox_sinks WHERE name = ?", (gone,))
                continue
            # its records stay until it is configured again or an operator discards them
            self.retired[gone] = bit
            log.warning(
                "sink %r is no longer configured: its %d outbox records are kept (configure it again to "
                "deliver them, or drop them with `havel gateway outbox discard --sink %s`)",
                gone,
                n,
                gone,
            )
        used = set(rows.values()) | set(self.retired.values())
        for name in names:
            if name not in rows:
                bit = next((b for b in range(MAX_SINKS) if b not in used), None)
                if bit is None:
                    raise InputError(
                        f"no room for sink {name!r}: {len(self.retired)} sinks no longer configured still "
                        "hold records",
                        hint="discard their records: havel gateway outbox discard --sink NAME",
                    )
                used.add(bit)
                rows[name] = bit
                self.conn.execute("INSERT INTO outbox_sinks (name, bit) VALUES (?, ?)", (name, bit))
        return {n: rows[n] for n in names}

    def _bit(self, sink: str) -> int:
        try:
            return 1 << self._bits[sink]
        except KeyError:
            raise InputError(
                f"unknown sink {sink!r}", hint=f"configured sinks: {', '.join(self.sinks)}"
            ) from None

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
        rows = [self._row(r) for r in records]
        if not rows:
            return 0
        self._settle()
        own = not self.conn.in_transaction
        try:
            with db.unit_of_work(self.conn):
                if self._held:
                    self._record_held()
                last = int(self.conn.execute(_LAST_SEQ).fetchone()[0])
                if (
                    self.quota_bytes is None
                    or self._bytes_estimate + sum(r[7] for r in rows) <= self.quota_bytes
                ):
                    stored = self._insert_batch(rows, last)
                else:
                    stored = self._insert_each(rows, last)
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "storing outbox records") from None
        if own:  # committed: what it recorded of the held acknowledgements is done
            self._recorded.clear()
        return stored

    def _insert_batch(self, rows: list[tuple[Any, ...]], last: int) -> int:
        """The fast path (no quota pressure): one ``executemany`` of ``INSERT OR IGNORE``.

        The first record with an id wins (one already stored, or the first in this batch), later ones are
        logged as duplicates; insertion order (``seq``, hence per-device FCnt order) is the order of
        ``rows``. Duplicates are rare (a journal replay after a restart), so they are looked for only when
        fewer rows went in than were given.
        """
        mask = self._all_mask
        stored = self.conn.executemany(
            _INSERT, [(*row, mask, seq) for seq, row in enumerate(rows, last + 1)]
        ).rowcount
        if stored == len(rows):
            size = sum(r[7] for r in rows)
            dups: list[tuple[Any, ...]] = []
        else:
            size, dups = self._which_went_in(rows, last)
        self.conn.execute(_ADD_TOTALS_SEQ, (stored, size, last + len(rows)))
        self._bytes_estimate += size
        for row in dups:
            self._duplicate(row)
        return stored

    def _which_went_in(self, rows: list[tuple[Any, ...]], last: int) -> tuple[int, list[tuple[Any, ...]]]:
        """After a batch insert of ``rows`` with seqs from ``last + 1``: the bytes stored, and the rows that
        were not (their id held before, or earlier in the batch): a row went in when its id has its seq."""
        seq_of = dict(self.conn.execute(_SEQ_OF, (json.dumps([r[0] for r in rows]),)).fetchall())
        size, dups = 0, []
        for seq, row in enumerate(rows, last + 1):
            if seq_of.get(row[0]) == seq:
                size += row[7]
            else:
                dups.append(row)
        return size, dups

    def _insert_each(self, rows: list[tuple[Any, ...]], last: int | None = None) -> int:
        """Row by row, applying the quota policy before each one (the quota may be reached); seqs from
        ``last + 1`` (default: after the highest given out)."""
        if last is None:
            last = int(self.conn.execute(_LAST_SEQ).fetchone()[0])
        stored = 0
        for row in rows:
            if self.quota_bytes is not None and not self._make_room(row):
                continue
            cur = self.conn.execute(_INSERT, (*row, self._all_mask, last + 1))
            if cur.rowcount == 1:
                last += 1
                stored += 1
                # (counted at once: the quota check of the next row reads the totals)
                self.conn.execute(_ADD_TOTALS_SEQ, (1, row[7], last))
                self._bytes_estimate += row[7]
            else:
                self._duplicate(row)
        return stored

    def _duplicate(self, row: tuple[Any, ...]) -> None:
        held = self.conn.execute("SELECT received_at FROM outbox WHERE id = ?", (row[0],)).fetchone()
        if held is not None and held[0] != row[5]:
            # same id, another reading: ids carry the session epoch (which a device removed and added again
            # continues), so the network server never gives two readings one id; a producer that did is
            # named here
            log.warning(
                "outbox id collision: %s is already stored with receive time %s; the record received at %s "
                "was not stored",
                row[0],
                held[0],
                row[5],
            )
        else:
            log.info("outbox already holds %s: duplicate not stored", row[0])

    def _row(self, r: dict[str, Any]) -> tuple[Any, ...]:
        if not isinstance(r, dict):
            raise InputError(f"outbox record must be a dict, not {type(r).__name__}")
        rid = r.get("id")
        if not isinstance(rid, str) or not rid:
            raise InputError(
                "outbox record has no 'id'",
                hint="use <DevEUI>-<SessionEpoch>-<FCnt32> or <DevEUI>-join-<SessionEpoch> (docs/mqtt.md)",
            )
        kind = r.get("kind")
        if kind not in KINDS:
            raise InputError(f"outbox record {rid}: kind {kind!r} is not one of {', '.join(KINDS)}")
        priority = r.get("priority", "background")
        if priority not in PRIORITIES:
            raise InputError(
                f"outbox record {rid}: priority {priority!r} is not one of {', '.join(PRIORITIES)}"
            )
        received_at = r.get("received_at")
        if not isinstance(received_at, str) or not received_at:
            raise InputError(f"outbox record {rid}: 'received_at' must be an RFC 3339 time string")
        fcnt = r.get("fcnt32")
        if fcnt is not None and (not isinstance(fcnt, int) or isinstance(fcnt, bool) or fcnt < 0):
            raise InputError(f"outbox record {rid}: 'fcnt32' must be a non-negative int")
        payload = r.get("payload")
        if not isinstance(payload, dict):
            raise InputError(f"outbox record {rid}: 'payload' must be a dict")
        text = r.get("payload_json")
        if text is not None:
            # the producer encoded the payload itself (the network server does, see _message_json): it
            # must be that payload's text, with its id first and without `buffered`
            if (
                not isinstance(text, str)
                or not text.startswith(f'{{"id":"{rid}"')
                or next(iter(payload), None) != "id"
                or "buffered" in payload
            ):
                raise InputError(f"outbox record {rid}: 'payload_json' is not the text of its payload")
        else:
            # the stored message carries its stable id first; `buffered` is decided at publish time. (A
            # dict keeps the position of its first key when the value is replaced: "id" stays first.)
            payload = {"id": rid, **payload}
            payload["id"] = rid
            payload.pop("buffered", None)
            try:
                text = _encode_json(payload)
            except (TypeError, ValueError) as exc:
                raise InputError(f"outbox record {rid}: payload is not JSON-serialisable: {exc}") from None
        size = (len(text) if text.isascii() else len(text.encode())) + ROW_OVERHEAD
        return (rid, kind, _dev_eui_text(r.get("dev_eui")), fcnt, priority, received_at, text, size)

    def _make_room(self, row: tuple[Any, ...]) -> bool:
        """Apply the quota policy before inserting ``row``; False when ``row`` itself is dropped."""
        assert self.quota_bytes is not None
        need = row[7]
        if self._bytes_estimate + need <= self.quota_bytes:
            return True
        self._bytes_estimate = self._exact_bytes()
        over = self._bytes_estimate + need - self.quota_bytes
        if over <= 0:
            return True
        priority = row[4]
        for level in self.drop_order:
            over = self._drop_oldest(level, over)
            if over <= 0:
                return True
            if priority == level:
                # the incoming record is the newest of its class: it goes next
                self._count_drop(level, 1)
                log.warning(
                    "outbox quota %d bytes reached: dropped incoming %s record %s",
                    self.quota_bytes,
                    level,
                    row[0],
                )
                return False
        log.warning(
            "outbox quota %d bytes exceeded by %d bytes: %s records are never dropped, storing %s anyway",
            self.quota_bytes,
            over,
            priority,
            row[0],
        )
        return True

    def _drop_oldest(self, priority: str, over: int) -> int:
        dropped: list[tuple[int, str]] = []
        while over > 0:
            rows = self.conn.execute(_OLDEST[priority], (priority,)).fetchall()
            if not rows:
                break
            batch = []
            for seq, rid, size in rows:
                if over <= 0:
                    break
                batch.append((seq,))
                dropped.append((seq, rid))
                over -= size
                self._bytes_estimate -= size
            self.conn.executemany("DELETE FROM outbox WHERE seq = ?", batch)
            self._count(-len(batch), -sum(size for _, _, size in rows[: len(batch)]))
        if dropped:
            self._count_drop(priority, len(dropped))
            for _, rid in dropped:
                log.warning(
                    "outbox quota %d bytes reached: dropped %s record %s", self.quota_bytes, priority, rid
                )
        return over

    def _count_drop(self, priority: str, n: int) -> None:
        self.conn.execute(
            "INSERT INTO outbox_dropped (priority, count) VALUES (?, ?) "
            "ON CONFLICT(priority) DO UPDATE SET count = count + excluded.count",
            (priority, n),
        )

    def _exact_bytes(self) -> int:
        try:
            return int(self.conn.execute("SELECT bytes FROM outbox_totals WHERE one = 1").fetchone()[0])
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "reading the outbox size") from None

    # ------------------------------------------------------------------------------------ fetch / ack

    def fetch(
        self, sink: str, limit: int = 100, *, after_seq: int = 0, priorities: Sequence[str] | None = None
    ) -> list[OutboxRecord]:
        """Up to ``limit`` records ``sink`` has not acknowledged, in order, with ``seq`` > ``after_seq``.

        ``priorities`` restricts the classes (e.g. ``("alarm",)`` for a relay picking alarms out of a
        backlog). Fetching does not reserve anything: a record is fetched again until it is acknowledged.
        """
        bit = self._bit(sink)
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
                sql += f" AND {_URGENT}"
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
        return self._ack(sink, "id", list(ids))

    def ack_seqs(self, sink: str, seqs: Iterable[int]) -> int:
        """:meth:`ack` by ``seq`` (what the forwarder holds; the integer key is the faster lookup)."""
        return self._ack(sink, "seq", list(seqs))

    def _ack(self, sink: str, column: str, keys: list[Any]) -> int:
        self._bit(sink)  # unknown sink -> InputError
        if not keys:
            return 0
        seq = column == "seq"
        try:
            # not fsynced (the next intake commit or checkpoint is): lost to a power cut, the records are
            # only sent again, as after a crash before the commit; at a city's pace it saves a flash write
            with db.deferred_sync(self.conn), db.unit_of_work(self.conn):
                if len(self._bits) == 1 and not self.retired:
                    # one sink: its acknowledgement is the last one, delete straight away (the keys as one
                    # JSON array: one statement, and the deleted sizes come back for the totals)
                    deleted = self._delete(_DELETE_SEQS if seq else _DELETE_IDS, (json.dumps(keys),))
                else:
                    keep = ~self._bit(sink)
                    sql = (
                        "UPDATE outbox SET pending = pending & ? WHERE seq = ?"
                        if seq
                        else "UPDATE outbox SET pending = pending & ? WHERE id = ?"
                    )
                    self.conn.executemany(sql, [(keep, k) for k in keys])
                    deleted = self._delete(_DELETE_DONE)
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "acknowledging outbox records") from None
        return deleted

    # ------------------------------------------------------------------------------ held acknowledgements

    def hold_acks(self, sink: str, seqs: Iterable[int]) -> None:
        """Record that ``sink`` delivered ``seqs``, later: in the transaction of the next :meth:`put_many`
        (its commit writes the outbox's pages anyway: at a city's pace the record delivered a moment ago
        shares a page with the one stored now) or at :meth:`commit_acks`, whichever comes first. Until then
        they count as waiting; lost to a crash, they are only sent again."""
        self._bit(sink)  # unknown sink -> InputError
        self._settle()
        self._held.setdefault(sink, []).extend(seqs)

    def held(self) -> dict[str, list[int]]:
        """The acknowledgements held back, per sink (a copy)."""
        self._settle()
        return {sink: list(seqs) for sink, seqs in self._held.items() if seqs}

    def held_count(self, sink: str) -> int:
        """How many of ``sink``'s acknowledgements are held back."""
        self._settle()
        return len(self._held.get(sink, ()))

    def commit_acks(self) -> int:
        """Record every held acknowledgement in one transaction; returns the rows deleted. Not fsynced (the
        next intake commit or checkpoint is): lost to a power cut, the records are only sent again."""
        self._settle()
        if not self._held:
            return 0
        own = not self.conn.in_transaction
        try:
            with db.deferred_sync(self.conn), db.unit_of_work(self.conn):
                deleted = self._record_held()
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "acknowledging outbox records") from None
        if own:  # committed
            self._recorded.clear()
        return deleted

    def _record_held(self) -> int:
        """Inside a transaction: the held acknowledgements into the table."""
        held, self._held = self._held, {}
        self._recorded.extend(held.items())
        deleted = 0
        one_sink = len(self._bits) == 1 and not self.retired
        for sink, seqs in held.items():
            if one_sink:
                deleted += self._delete(_DELETE_SEQS, (json.dumps(seqs),))
            else:
                keep = ~self._bit(sink)
                self.conn.executemany(
                    "UPDATE outbox SET pending = pending & ? WHERE seq = ?", [(keep, k) for k in seqs]
                )
        if not one_sink:
            deleted += self._delete(_DELETE_DONE)
        return deleted

    def _settle(self) -> None:
        """Acknowledgements recorded in a transaction that may have rolled back (a put inside the network
        server's transaction, whose commit failed): those whose records still wait are held again. Only
        between transactions (inside one, its own changes would look committed)."""
        if not self._recorded or self.conn.in_transaction:
            return
        recorded, self._recorded = self._recorded, []
        for sink, seqs in recorded:
            if sink not in self._bits:
                continue
            try:
                rows = self.conn.execute(
                    "SELECT seq FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) AND pending & ?",
                    (json.dumps(seqs), self._bit(sink)),
                ).fetchall()
            except sqlite3.Error as exc:
                self._recorded = recorded
                raise db.storage_error(exc, "reading the outbox") from None
            if rows:
                self._held.setdefault(sink, []).extend(r[0] for r in rows)

    # ------------------------------------------------------------------------------------ inspection

    def depth(self, sink: str | None = None) -> int:
        """Records waiting (for ``sink``, or for any sink)."""
        try:
            if sink is None:
                return int(self.conn.execute("SELECT rows FROM outbox_totals WHERE one = 1").fetchone()[0])
            return int(
                self.conn.execute(
                    "SELECT count(*) FROM outbox WHERE pending & ?", (self._bit(sink),)
                ).fetchone()[0]
            )
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "counting the outbox") from None

    def delivered(self, held: Mapping[str, Collection[int]]) -> int:
        """How many stored records every sink still owing them holds an acknowledgement for (``held``: sink
        -> seqs acknowledged in memory, not yet committed): delivered everywhere, only their deletion is
        pending."""
        # as sets: the forwarder holds its seqs in a list, and up to ack_batch (1,000) of them per sink
        # (a list here made each /status call 1,000 x 1,000 comparisons: 15 ms)
        acked = [(set(seqs), self._bit(sink)) for sink, seqs in held.items()]
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

    def size_bytes(self) -> int:
        """Bytes counted against the quota."""
        self._bytes_estimate = self._exact_bytes()
        return self._bytes_estimate

    def max_seq(self) -> int:
        """The highest ``seq`` ever given out (0 for a new outbox); later records get higher ones."""
        try:
            return int(self.conn.execute(_LAST_SEQ).fetchone()[0])
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "reading the outbox") from None

    def oldest_received_at(self) -> str | None:
        """``received_at`` of the oldest waiting record (for the outbox-age metric)."""
        row = self.conn.execute("SELECT received_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return str(row[0]) if row else None

    def dropped(self) -> dict[str, int]:
        """How many records the quota policy dropped, per priority, over the database's life."""
        counts = dict.fromkeys(DROP_ORDER, 0)
        counts.update({p: int(n) for p, n in self.conn.execute("SELECT priority, count FROM outbox_dropped")})
        return counts

    def ids(self) -> list[str]:
        """Every stored id in order (for tests and `havel gateway status`)."""
        return [r[0] for r in self.conn.execute("SELECT id FROM outbox ORDER BY seq")]


def pending_by_sink(conn: sqlite3.Connection) -> dict[str, int]:
    """Records waiting for each sink the outbox knows, configured or not (read-only; for status and the
    discard command). Empty when the database has no outbox yet."""
    try:
        sinks = conn.execute("SELECT name, bit FROM outbox_sinks ORDER BY bit").fetchall()
        if len(sinks) == 1:
            # one sink: every stored record waits for it (a row no sink waits for is deleted), so the totals
            # row is its count; counting reads every row, a gigabyte after a day's outage, per /status call
            row = conn.execute("SELECT rows FROM outbox_totals WHERE one = 1").fetchone()
            return {str(sinks[0][0]): int(row[0]) if row is not None else 0}
        return {
            str(name): int(
                conn.execute("SELECT count(*) FROM outbox WHERE pending & ?", (1 << int(bit),)).fetchone()[0]
            )
            for name, bit in sinks
        }
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise db.storage_error(exc, "counting the outbox") from None
    except sqlite3.Error as exc:
        raise db.storage_error(exc, "counting the outbox") from None


def discard_sink(conn: sqlite3.Connection, sink: str) -> tuple[int, int]:
    """Forget sink ``sink``: its share of every record is released and records no other sink waits for
    are deleted (one transaction). Returns (records it was waiting for, records deleted). InputError when
    the outbox does not know the sink. Never call it for a sink a running daemon delivers to."""
    try:
        with db.unit_of_work(conn):
            row = conn.execute("SELECT bit FROM outbox_sinks WHERE name = ?", (sink,)).fetchone()
            if row is None:
                known = [str(r[0]) for r in conn.execute("SELECT name FROM outbox_sinks")]
                raise InputError(
                    f"the outbox knows no sink {sink!r}", hint=f"known: {', '.join(known) or 'none'}"
                )
            mask = 1 << int(row[0])
            waiting = int(
                conn.execute("SELECT count(*) FROM outbox WHERE pending & ?", (mask,)).fetchone()[0]
            )
            conn.execute("UPDATE outbox SET pending = pending & ? WHERE pending & ?", (~mask, mask))
            sizes = conn.execute(_DELETE_DONE).fetchall()
            if sizes:
                conn.execute(_ADD_TOTALS, (-len(sizes), -sum(r[0] for r in sizes)))
            conn.execute("DELETE FROM outbox_sinks WHERE name = ?", (sink,))
    except sqlite3.Error as exc:
        raise db.storage_error(exc, f"discarding the records of sink {sink!r}") from None
    log.warning("sink %r discarded: %d records released, %d deleted", sink, waiting, len(sizes))
    return waiting, len(sizes)
