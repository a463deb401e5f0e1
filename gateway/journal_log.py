"""The intake journal in the sector log: every received frame is on the device before its PUSH_ACK goes out,
one 512-byte direct write per group, and SQLite is written only in batches (:mod:`.write_batch`).

Each journal row of :mod:`.journal` is one record of :class:`~havel.gateway.intake_log.IntakeLog` here: a
PUSH_DATA datagram as it came with the mask of its rxpk that wait (a packed header and the datagram's
bytes), or a single reception (its fields packed, then its PHYPayload). Journal ids are the same as the
SQLite journal's: the record's sequence number for a single reception, ``-(seq << 6 | index)`` for rxpk
``index`` of a datagram record.

What is processed is kept in memory: :meth:`LogJournal.forget` marks ids done inside the caller's unit of
work and writes the log's MARK (every sequence number up to it is applied) and the log's id into the
``meta`` table in that unit, so the mark is committed together with what it covers. Once the transaction
that holds it is durable (:meth:`LogJournal.durable`), the log may overwrite those sectors. A frame after
the mark that a committed batch stored (the mark waits for an older frame still in its dedup window) is
processed again after a crash and refused as a replay of its counter: nothing is stored twice; one whose
batch never committed is new to the database and is stored.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from havel.errors import StorageError
from havel.gateway import db, schema
from havel.gateway.backends.semtech_udp.rxpk import RxPacket
from havel.gateway.intake_log import IntakeLog, LogFull
from havel.gateway.journal import Entry, Journal, datagram_entries

__all__ = ["LogJournal", "decode", "encode_datagram", "encode_single"]

log = logging.getLogger(__name__)

_INDEX_BITS = 6
_DATAGRAM = struct.Struct("<BQdQ")  # kind 1, gateway EUI, unix receive time, mask of waiting rxpk
# kind 2, gateway EUI, received at (us), tmst, frequency, channel, RF chain, CRC status, RSSI, SNR, flags
# (1: SNR given, 2: time given, 4: tmms given), time (us), tmms, lengths of datr and time source
_SINGLE = struct.Struct("<BQqqIHBbddBqqBB")
_DATAGRAM_KIND, _SINGLE_KIND = 1, 2
_KEY_MARK, _KEY_ID = "intake_log_mark", "intake_log_id"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(t: datetime) -> int:
    d = t - _EPOCH if t.tzinfo is not None else t - _EPOCH.replace(tzinfo=None)
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def _from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def encode_datagram(eui: int, datagram: bytes, at: float, mask: int) -> bytes:
    return _DATAGRAM.pack(_DATAGRAM_KIND, eui, at, mask) + datagram


def encode_single(eui: int, rx: RxPacket, received_at: datetime, time_source: str) -> bytes:
    datr, src = rx.datr.encode(), time_source.encode()
    flags = (rx.lsnr is not None) | (rx.time is not None) << 1 | (rx.tmms is not None) << 2
    head = _SINGLE.pack(
        _SINGLE_KIND,
        eui,
        _us(received_at),
        rx.tmst,
        rx.freq_hz,
        rx.chan,
        rx.rfch,
        rx.stat,
        rx.rssi,
        rx.lsnr if rx.lsnr is not None else 0.0,
        flags,
        _us(rx.time) if rx.time is not None else 0,
        rx.tmms if rx.tmms is not None else 0,
        len(datr),
        len(src),
    )
    return head + datr + src + rx.data


def decode(seq: int, payload: bytes, wanted: int) -> list[Entry]:
    """The entries of record ``seq`` whose bits are in ``wanted`` (a single reception: bit 0)."""
    kind = payload[0]
    if kind == _DATAGRAM_KIND:
        _, eui, at, _mask = _DATAGRAM.unpack_from(payload)
        return datagram_entries(seq, eui, at, wanted, payload[_DATAGRAM.size :])
    if kind != _SINGLE_KIND:
        log.error("intake log: record %d has an unknown kind %d; skipped", seq, kind)
        return []
    (_, eui, at, tmst, freq, chan, rfch, stat, rssi, lsnr, flags, t, tmms, n_datr, n_src) = (
        _SINGLE.unpack_from(payload)
    )
    off = _SINGLE.size
    datr = payload[off : off + n_datr].decode()
    src = payload[off + n_datr : off + n_datr + n_src].decode()
    rx = RxPacket(
        data=payload[off + n_datr + n_src :],
        tmst=tmst,
        freq_hz=freq,
        datr=datr,
        chan=chan,
        rfch=rfch,
        stat=stat,
        rssi=rssi,
        lsnr=lsnr if flags & 1 else None,
        time=_from_us(t) if flags & 2 else None,
        tmms=tmms if flags & 4 else None,
    )
    return [Entry(seq, eui, rx, _from_us(at), src, seq << _INDEX_BITS)]


def _bits(payload: bytes) -> int:
    return int(_DATAGRAM.unpack_from(payload)[3]) if payload[0] == _DATAGRAM_KIND else 1


def _id_number(log_id: bytes) -> int:
    """The log's id as a meta value (an integer column): its first 8 bytes, signed."""
    return int.from_bytes(log_id[:8], "little", signed=True)


class LogJournal:
    """The interface of :class:`~havel.gateway.journal.Journal` over an :class:`IntakeLog` (one thread)."""

    def __init__(self, conn: sqlite3.Connection, intake_log: IntakeLog) -> None:
        self.conn = conn
        self.log = intake_log
        schema.migrate(conn)
        # the database's mark, if it belongs to this log (another id: a new log, or a database from
        # elsewhere: every record of the log's last run is replayed; stored ones are refused as replays)
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", (_KEY_MARK, _KEY_ID)))
        if meta.get(_KEY_ID) == _id_number(intake_log.log_id):
            mark = int(meta.get(_KEY_MARK, 0))
        else:
            first = intake_log.last_run_start()
            mark = first - 1 if first is not None else 0
        records = intake_log.records_after(mark)
        self._payloads: dict[int, bytes] = dict(records)  # records after the durable mark, in order
        self._open: dict[int, int] = {s: _bits(p) for s, p in records}  # seq -> bits still waiting
        self._staged: list[tuple[int, int]] = []  # (seq, bits) done in the open unit of work
        self._unit: db.UnitOfWork | None = None  # the root unit the journal takes part in
        self._unit_mark = mark  # the mark written in the open unit
        self.written_mark = mark  # the mark of the last unit that committed (durable or not yet)
        self.on_full: Callable[[], bool] | None = None  # commit the write batch (LogFull): True if it did
        self.on_low: Callable[[], object] | None = None  # commit it soon (less than half the log free)

    @classmethod
    def open(cls, conn: sqlite3.Connection, path: Path, size_bytes: int) -> LogJournal:
        return cls(conn, IntakeLog.open(path, size_bytes))

    def close(self) -> None:
        self.log.close()

    # ---- the Journal interface -----------------------------------------------------------------------

    @staticmethod
    def datagram_id(seq: int, index: int) -> int:
        return Journal.datagram_id(seq, index)

    def add_in_order(self, items: Sequence[tuple[int, Any, Any, Any]]) -> list[int]:
        """Append datagrams ``(EUI, bytes, unix time, mask)`` and single receptions ``(EUI, RxPacket, time,
        time source)`` as records; returns their sequence numbers once they are durable."""
        payloads = [
            encode_datagram(eui, what, at, extra)
            if isinstance(what, bytes)
            else encode_single(eui, what, at, extra)
            for eui, what, at, extra in items
        ]
        try:
            seqs = self.log.append(payloads)
        except LogFull:
            # the batch holds the mark that frees the ring: commit it, then try once more
            if self.on_full is None or not self.on_full():
                raise
            seqs = self.log.append(payloads)
        for seq, p in zip(seqs, payloads, strict=True):
            self._payloads[seq] = p
            self._open[seq] = _bits(p)
        if self.on_low is not None and self.log.free_fraction() < 0.5:
            self.on_low()
        return seqs

    def add_datagrams(self, items: list[tuple[int, bytes, float, int]]) -> list[int]:
        return self.add_in_order(items)

    def add_many(self, items: list[tuple[int, RxPacket, datetime, str]]) -> list[int]:
        return self.add_in_order(items)

    def add(self, gateway_eui: int, rx: RxPacket, received_at: datetime, time_source: str) -> int:
        return self.add_many([(gateway_eui, rx, received_at, time_source)])[0]

    def forget(self, ids: Iterable[int]) -> None:
        """Mark processed receptions done inside the caller's unit of work, and write the mark there."""
        done: list[tuple[int, int]] = []
        for i in ids:
            if i > 0:
                done.append((i, -1))
            elif i < 0:
                seq, index = divmod(-i, 1 << _INDEX_BITS)
                done.append((seq, 1 << index))
        if not done:
            return
        unit = db.current_unit(self.conn)
        if unit is None:  # (no transaction: nothing to write the mark into; it follows the next one)
            self._apply(done)
            return
        if self._unit is not unit.root:
            self._unit = unit.root
            self._staged = []
            self._unit_mark = self.written_mark
            unit.join(self)
        self._staged.extend(done)
        mark = self._mark(self._staged)
        if mark != self._unit_mark:
            self._unit_mark = mark
            try:
                self.conn.executemany(  # (an upsert changes the row in place: not the key's index)
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [(_KEY_MARK, mark), (_KEY_ID, _id_number(self.log.log_id))],
                )
            except sqlite3.Error as exc:
                raise db.storage_error(exc, "writing the intake log's mark") from None

    def _mark(self, staged: list[tuple[int, int]]) -> int:
        """Every record up to the returned sequence number is applied once ``staged`` is."""
        cleared: dict[int, int] = {}
        for seq, bits in staged:
            cleared[seq] = cleared.get(seq, 0) | bits
        for seq, bits in self._open.items():  # (in order: the first one still waiting decides)
            if bits & ~cleared.get(seq, 0):
                return seq - 1
        return self.log.next_seq - 1

    def _apply(self, done: list[tuple[int, int]]) -> None:
        opened = self._open
        for seq, bits in done:
            left = opened.get(seq)
            if left is None:
                continue
            left &= ~bits
            if left:
                opened[seq] = left
            else:
                del opened[seq]

    def settle(self) -> None:
        """Nothing to delete: the log's sectors are freed by the durable mark."""

    def pending(self) -> list[Entry]:
        """The receptions not applied yet, in the order they came."""
        out: list[Entry] = []
        for seq, bits in self._open.items():
            out.extend(decode(seq, self._payloads[seq], bits))
        return out

    def depth(self) -> int:
        return sum(bin(b).count("1") for b in self._open.values())

    # ---- the batch -----------------------------------------------------------------------------------

    def durable(self) -> None:
        """The transaction holding :attr:`written_mark` is on the device: its records may be overwritten."""
        mark = self.written_mark
        self.log.set_durable_mark(mark)
        payloads = self._payloads
        while payloads:
            seq = next(iter(payloads))
            if seq > mark:
                break
            del payloads[seq]

    def reset(self) -> None:
        """A batch was lost (its COMMIT failed): every record after the durable mark waits again."""
        mark = self.log.applied_mark
        self.written_mark = self._unit_mark = mark
        self._staged = []
        self._unit = None
        self._open = {s: _bits(p) for s, p in self._payloads.items() if s > mark}

    # ---- the unit of work's Participant protocol -----------------------------------------------------

    def savepoint(self) -> object:
        return len(self._staged), self._unit_mark

    def rollback_to(self, mark: Any) -> None:
        del self._staged[mark[0] :]
        self._unit_mark = mark[1]

    def before_commit(self) -> None:
        pass

    def committed(self) -> None:
        self._apply(self._staged)
        self._staged = []
        self._unit = None
        self.written_mark = self._unit_mark
        if not self.conn.in_transaction:  # a transaction of its own, not a savepoint of a batch: durable
            try:
                self.durable()
            except (ValueError, StorageError):  # (never expected: the mark is below the next record)
                log.exception("intake log: the durable mark could not be set")

    def aborted(self) -> None:
        self._staged = []
        self._unit = None
        self._unit_mark = self.written_mark
