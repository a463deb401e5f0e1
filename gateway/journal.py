"""The intake journal: every received rxpk is in SQLite before its PUSH_ACK goes out.

Packet forwarders never retransmit, and an uplink waits up to the dedup window in memory before the network
server processes it. So that a crash (SIGKILL, power cut) in that time loses nothing that was acknowledged,
the daemon writes the rxpk here first (one group commit every few ms, then the PUSH_ACKs), and deletes
it in the same transaction that stores the processed frame (counter + outbox record). At start the daemon
feeds what is left back into the network server with the original receive time; such frames never trigger
downlinks (their receive windows are gone).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from havel.gateway import gwmp
from havel.gateway.gwmp import RxPacket

SCHEMA = """
CREATE TABLE IF NOT EXISTS intake (
    seq         INTEGER PRIMARY KEY,
    gateway_eui TEXT NOT NULL,
    data        BLOB NOT NULL,   -- the PHYPayload
    tmst        INTEGER NOT NULL,
    freq_hz     INTEGER NOT NULL,
    datr        TEXT NOT NULL,
    chan        INTEGER NOT NULL,
    rssi        REAL NOT NULL,
    lsnr        REAL,
    rx_time     TEXT,            -- the forwarder's time (RFC 3339) and GPS ms, when it sent them
    tmms        INTEGER,
    received_at REAL NOT NULL,   -- unix time this machine received it
    time_source TEXT NOT NULL
);
"""

@dataclass(frozen=True)
class Entry:
    """One journaled reception."""

    seq: int
    gateway_eui: int
    rx: RxPacket
    received_at: datetime
    time_source: str


class Journal:
    """See the module docstring. Use it only inside the caller's transaction (one thread)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.executescript(SCHEMA)
        row = conn.execute("SELECT max(seq) FROM intake").fetchone()
        self._next = int(row[0] or 0) + 1

    def add_many(self, items: list[tuple[int, RxPacket, datetime, str]]) -> list[int]:
        """Journal receptions (gateway EUI, rxpk, receive time, time source); returns their numbers."""
        first = self._next
        self._next += len(items)
        rows = []
        seq = first
        eui_text: dict[int, str] = {}  # a batch comes from a few concentrators at a few receive times
        stamps: dict[datetime, float] = {}
        for eui, rx, at, src in items:
            e = eui_text.get(eui)
            if e is None:
                e = eui_text[eui] = f"{eui:016X}"
            ts = stamps.get(at)
            if ts is None:
                ts = stamps[at] = at.timestamp()
            rows.append((seq, e, rx.data, rx.tmst, rx.freq_hz, rx.datr, rx.chan, rx.rssi, rx.lsnr,
                         gwmp.format_time(rx.time) if rx.time else None, rx.tmms, ts, src))
            seq += 1
        self.conn.executemany("INSERT INTO intake VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return list(range(first, seq))

    def add(self, gateway_eui: int, rx: RxPacket, received_at: datetime, time_source: str) -> int:
        """Journal one reception; returns its sequence number."""
        return self.add_many([(gateway_eui, rx, received_at, time_source)])[0]

    def forget(self, seqs: Iterable[int]) -> None:
        """Drop processed receptions."""
        # as runs of consecutive numbers: frames are mostly processed in the order they came in, so a
        # batch is one or a few ranges, each one statement on the primary key
        runs: list[tuple[int, int]] = []
        for seq in sorted(seqs):
            if runs and seq <= runs[-1][1] + 1:
                if seq > runs[-1][1]:
                    runs[-1] = (runs[-1][0], seq)
            else:
                runs.append((seq, seq))
        self.conn.executemany("DELETE FROM intake WHERE seq BETWEEN ? AND ?", runs)

    def pending(self) -> list[Entry]:
        """What a previous run received but did not process, oldest first."""
        out = []
        for seq, eui, data, tmst, freq, datr, chan, rssi, lsnr, rx_time, tmms, at, src in self.conn.execute(
                "SELECT * FROM intake ORDER BY seq"):
            rx = RxPacket(data=bytes(data), tmst=int(tmst), freq_hz=int(freq), datr=str(datr), chan=int(chan),
                          rssi=float(rssi), lsnr=lsnr, time=gwmp.parse_time(rx_time) if rx_time else None,
                          tmms=tmms)
            out.append(Entry(int(seq), int(eui, 16), rx, datetime.fromtimestamp(at, UTC), str(src)))
        return out

    def depth(self) -> int:
        """Receptions waiting."""
        return int(self.conn.execute("SELECT count(*) FROM intake").fetchone()[0])
