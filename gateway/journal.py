"""The intake journal: every received rxpk is in SQLite before its PUSH_ACK goes out.

Packet forwarders never retransmit, and an uplink waits up to the dedup window in memory before the network
server processes it. So that a crash (SIGKILL, power cut) in that time loses nothing that was acknowledged,
the daemon writes the rxpk here first (one group commit every few ms, then the PUSH_ACKs). The transaction
that stores the processed frame (counter + outbox record) marks it done (:meth:`Journal.forget`), and the
next journal commit deletes it: that commit writes the journal's page anyway (at a city's pace the new row
and the done one share it), where deleting it at once wrote the page a second time per uplink, on an SD
card. The mark is a row of a TEMP table (in memory, part of the same transaction: a rolled-back store leaves
no mark). At start the daemon feeds what is left back into the network server with the original receive
time; such frames never trigger downlinks (their receive windows are gone). One stored just before a crash
whose deletion had not come yet is then refused as a replay of its counter: nothing is stored twice.

Two tables, one meaning. ``intake_datagrams`` is the fast path the daemon uses under load: one row per
PUSH_DATA datagram with several rxpk waiting, stored as it came, with a bit mask of those rxpk (a packet
forwarder under load sends up to 8 or 16 per datagram, so one INSERT and one DELETE per datagram, not per
rxpk: a few us of the gateway's cost per uplink). The row goes when its last waiting rxpk is stored; a
batch that stores only some of them clears their bits (the rest are replayed after a crash, the stored
ones are not). ``intake`` holds single receptions, one compact row each: a datagram with one rxpk waiting
(the usual case at a city's pace, where the datagram as sent, JSON and base64, would be three times the
bytes written to the SD card), :meth:`Journal.add`, and an rxpk beyond the mask's 62 bits. Row numbers of
both tables come from one counter: their order is the order things came in.

Journal ids: positive for an ``intake`` row (its seq), negative for an rxpk of a datagram row
(``-(seq << 6 | index)``), so :meth:`Journal.forget` takes both.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from havel.gateway import db, schema
from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.backends.semtech_udp.gwmp import GwmpError
from havel.gateway.backends.semtech_udp.rxpk import RxPacket, parse_rxpk, parse_time
from havel.gateway.network.reception import format_wire_time

log = logging.getLogger(__name__)

MASK_BITS = 62  # rxpk indexes a datagram row can hold (SQLite integers are signed 64-bit)
_INDEX_BITS = 6

# a mark of processed receptions (see Journal.forget): NULL bits (a whole row) wins over bits
_MARK = (
    "INSERT INTO temp.intake_done (seq, bits) VALUES (?, ?) ON CONFLICT(seq) DO UPDATE SET bits = "
    "CASE WHEN bits IS NULL OR excluded.bits IS NULL THEN NULL ELSE bits | excluded.bits END"
)
# deleting what is marked: whole rows, then the marked rxpk of datagram rows (a row with none left goes)
_SETTLE = (
    "DELETE FROM intake WHERE seq IN (SELECT seq FROM temp.intake_done WHERE bits IS NULL)",
    "DELETE FROM intake_datagrams WHERE seq IN (SELECT seq FROM temp.intake_done WHERE bits IS NULL)",
    "UPDATE intake_datagrams SET wanted = wanted & ~(SELECT bits FROM temp.intake_done d "
    "WHERE d.seq = intake_datagrams.seq) WHERE seq IN (SELECT seq FROM temp.intake_done WHERE bits NOT NULL)",
    "DELETE FROM intake_datagrams WHERE wanted = 0 "
    "AND seq IN (SELECT seq FROM temp.intake_done WHERE bits NOT NULL)",
    "DELETE FROM temp.intake_done",
)
# what waits, marks taken off (a datagram row's mask without its marked rxpk)
_PENDING_SINGLES = (
    "SELECT * FROM intake WHERE seq NOT IN (SELECT seq FROM temp.intake_done WHERE bits IS NULL) ORDER BY seq"
)
_PENDING_DATAGRAMS = (
    "SELECT seq, gateway_eui, received_at, wanted & "
    "~coalesce((SELECT bits FROM temp.intake_done d WHERE d.seq = intake_datagrams.seq), 0), datagram "
    "FROM intake_datagrams WHERE seq NOT IN (SELECT seq FROM temp.intake_done WHERE bits IS NULL) "
    "ORDER BY seq"
)
_COUNT_SINGLES = (
    "SELECT count(*) FROM intake WHERE seq NOT IN (SELECT seq FROM temp.intake_done WHERE bits IS NULL)"
)


@dataclass(frozen=True)
class Entry:
    """One journaled reception."""

    seq: int  # its journal id
    gateway_eui: int
    rx: RxPacket
    received_at: datetime
    time_source: str
    order: int = 0  # arrival order across both tables (row numbers share one counter; not a clock)


class Journal:
    """See the module docstring. Use it only inside the caller's transaction (one thread)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        schema.migrate(conn)
        # one counter for the rows of both tables, so that their numbers say the order things came in (a Pi
        # without a real-time clock may step its clock back: receive times cannot)
        row = conn.execute(
            "SELECT max(coalesce((SELECT max(seq) FROM intake), 0), "
            "coalesce((SELECT max(seq) FROM intake_datagrams), 0))"
        ).fetchone()
        self._next = int(row[0] or 0) + 1
        # the mask each datagram row was written with: a batch that stores all of them deletes the row
        # outright. Only a hint (never what decides that other rxpk are done): after a failed commit it can
        # be stale, so anything short of the whole original mask goes through the table itself.
        self._wanted: dict[int, int] = {}
        # what was processed, deleted by the next journal commit: seq -> NULL (the whole row, of either
        # table) or the bits of a datagram row's rxpk processed
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS intake_done (seq INTEGER PRIMARY KEY, bits INTEGER)")
        self._owed = False  # marks may wait (a hint: a rolled-back mark is gone from the table itself)

    @staticmethod
    def datagram_id(seq: int, index: int) -> int:
        """The journal id of rxpk ``index`` of datagram row ``seq``."""
        return -((seq << _INDEX_BITS) | index)

    def add_in_order(self, items: Sequence[tuple[int, Any, Any, Any]]) -> list[int]:
        """Journal datagrams ``(gateway EUI, the PUSH_DATA bytes, unix receive time, mask of the rxpk indexes
        that wait, each below MASK_BITS)`` and single receptions ``(gateway EUI, RxPacket, receive time,
        time source)``, mixed; returns their row numbers in the order given, which is the replay order
        (a datagram's rxpk: see :meth:`datagram_id`)."""
        if self._owed:
            self.settle()
        first = self._next
        self._next += len(items)
        datagrams: list[tuple[int, int, bytes, float, int]] = []
        singles: list[tuple[int, int, RxPacket, datetime, str]] = []
        for seq, (eui, what, at, extra) in enumerate(items, first):
            if isinstance(what, bytes):
                datagrams.append((seq, eui, what, at, extra))
            else:
                singles.append((seq, eui, what, at, extra))
        if datagrams:
            self._insert_datagrams(datagrams)
        if singles:
            self._insert_singles(singles)
        return list(range(first, first + len(items)))

    def add_datagrams(self, items: list[tuple[int, bytes, float, int]]) -> list[int]:
        """:meth:`add_in_order` for datagrams only."""
        return self.add_in_order(items)

    def add_many(self, items: list[tuple[int, RxPacket, datetime, str]]) -> list[int]:
        """:meth:`add_in_order` for single receptions only (gateway EUI, rxpk, receive time, time
        source)."""
        return self.add_in_order(items)

    def _insert_datagrams(self, items: list[tuple[int, int, bytes, float, int]]) -> None:
        rows = [(seq, f"{eui:016X}", at, wanted, data) for seq, eui, data, at, wanted in items]
        self.conn.executemany("INSERT INTO intake_datagrams VALUES (?, ?, ?, ?, ?)", rows)
        wanted_of = self._wanted
        for seq, _, _, wanted, _ in rows:
            wanted_of[seq] = wanted

    def _insert_singles(self, items: list[tuple[int, int, RxPacket, datetime, str]]) -> None:
        rows = []
        eui_text: dict[int, str] = {}  # a batch comes from a few concentrators at a few receive times
        stamps: dict[datetime, float] = {}
        for seq, eui, rx, at, src in items:
            e = eui_text.get(eui)
            if e is None:
                e = eui_text[eui] = f"{eui:016X}"
            ts = stamps.get(at)
            if ts is None:
                ts = stamps[at] = at.timestamp()
            rows.append(
                (
                    seq,
                    e,
                    rx.data,
                    rx.tmst,
                    rx.freq_hz,
                    rx.datr,
                    rx.chan,
                    rx.rssi,
                    rx.lsnr,
                    format_wire_time(rx.time) if rx.time else None,
                    rx.tmms,
                    ts,
                    src,
                )
            )
        self.conn.executemany("INSERT INTO intake VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def add(self, gateway_eui: int, rx: RxPacket, received_at: datetime, time_source: str) -> int:
        """Journal one reception; returns its sequence number."""
        return self.add_many([(gateway_eui, rx, received_at, time_source)])[0]

    def forget(self, ids: Iterable[int]) -> None:
        """Mark processed receptions done (their journal ids, of either table), inside the transaction that
        stored them; the next journal commit (or :meth:`settle`) deletes them."""
        marks: list[tuple[int, int | None]] = []
        cleared: dict[int, int] = {}  # datagram row -> bits of its rxpk processed now
        for i in ids:
            if i > 0:
                marks.append((i, None))
            elif i < 0:
                seq, index = divmod(-i, 1 << _INDEX_BITS)
                cleared[seq] = cleared.get(seq, 0) | (1 << index)
        wanted_of = self._wanted
        for seq, bits in cleared.items():
            # every rxpk it was written with: the whole row; part of it (or the rest of one an earlier batch
            # began): its bits, and the table decides
            marks.append((seq, None if wanted_of.pop(seq, None) == bits else bits))
        if marks:
            self.conn.executemany(_MARK, marks)
            self._owed = True

    def settle(self) -> None:
        """Delete what :meth:`forget` marked (inside the caller's transaction, or one of its own)."""
        conn = self.conn
        if conn.execute("SELECT 1 FROM temp.intake_done LIMIT 1").fetchone() is None:
            self._owed = False
            return
        with db.unit_of_work(conn):
            for statement in _SETTLE:
                conn.execute(statement)
        self._owed = False

    def pending(self) -> list[Entry]:
        """What a previous run received but did not process, in the order it came."""
        out = []
        for seq, eui, data, tmst, freq, datr, chan, rssi, lsnr, rx_time, tmms, at, src in self.conn.execute(
            _PENDING_SINGLES
        ):
            rx = RxPacket(
                data=bytes(data),
                tmst=int(tmst),
                freq_hz=int(freq),
                datr=str(datr),
                chan=int(chan),
                rssi=float(rssi),
                lsnr=lsnr,
                time=parse_time(rx_time) if rx_time else None,
                tmms=tmms,
            )
            out.append(
                Entry(
                    int(seq),
                    int(eui, 16),
                    rx,
                    datetime.fromtimestamp(at, UTC),
                    str(src),
                    int(seq) << _INDEX_BITS,
                )
            )
        for seq, eui, at, wanted, datagram in self.conn.execute(_PENDING_DATAGRAMS):
            out.extend(
                self._datagram_entries(int(seq), int(eui, 16), float(at), int(wanted), bytes(datagram))
            )
        # both tables in arrival order (they both hold rows when a datagram had more rxpk than a mask holds,
        # or after an upgrade from a version with only the one-row-each table)
        out.sort(key=lambda e: e.order)
        return out

    def _datagram_entries(self, seq: int, eui: int, at: float, wanted: int, datagram: bytes) -> list[Entry]:
        return datagram_entries(seq, eui, at, wanted, datagram)

    def depth(self) -> int:
        """Receptions waiting."""
        rows = int(self.conn.execute(_COUNT_SINGLES).fetchone()[0])
        masks = self.conn.execute(_PENDING_DATAGRAMS).fetchall()
        return rows + sum(bin(int(m[3])).count("1") for m in masks)


def datagram_entries(seq: int, eui: int, at: float, wanted: int, datagram: bytes) -> list[Entry]:
    """The entries of the rxpk of a journaled datagram whose bits are set in ``wanted`` (ids as
    :meth:`Journal.datagram_id`); an unreadable datagram or rxpk is logged and left out."""
    try:
        rxpks = gwmp.parse(datagram).payload["rxpk"]
    except (GwmpError, KeyError, TypeError) as exc:  # it parsed when it came: damaged storage
        log.error("intake journal: datagram %d is unreadable (%s); its frames are lost", seq, exc)
        return []
    local = datetime.fromtimestamp(at, UTC)
    out = []
    for index in range(min(len(rxpks), MASK_BITS)):
        if not wanted >> index & 1:
            continue
        try:
            rx = parse_rxpk(rxpks[index])
        except GwmpError as exc:
            log.error("intake journal: rxpk %d of datagram %d is unreadable: %s", index, seq, exc)
            continue
        # the receive time and its source as the daemon chose them (network.reception.reception)
        gps = rx.time is not None and rx.tmms is not None
        out.append(
            Entry(
                Journal.datagram_id(seq, index),
                eui,
                rx,
                rx.time if gps and rx.time else local,
                "gps" if gps else "local",
                seq << _INDEX_BITS | index,
            )
        )
    return out
