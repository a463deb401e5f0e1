"""The outbox's sinks: each configured sink has a bit in a record's ``pending`` mask, kept in
``outbox_sinks``; what waits for each sink; and the operator's release of a sink that is gone.

A sink that leaves the config keeps its backlog (a renamed sink, a config without it, a command that opened
the database with default settings): its bit stays set on the records it has not acknowledged, so they stay
stored, and come out for it again when it is configured again. Only an operator releases them, with
:func:`discard_sink` (``havel gateway outbox discard --sink NAME``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from havel.errors import InputError
from havel.gateway import db
from havel.gateway.outbox_records import DELETE_DONE, delete_counted

__all__ = ["MAX_SINKS", "SinkBits", "discard_sink", "pending_by_sink"]

log = logging.getLogger("havel.gateway.outbox")

MAX_SINKS = 62


class SinkBits:
    """The bit of each sink: ``bits`` for the configured ones (``names``, in order), ``retired`` for sinks
    no longer configured that still hold records."""

    def __init__(self, names: Sequence[str], bits: dict[str, int], retired: dict[str, int]) -> None:
        self.names = tuple(names)
        self.bits = bits
        self.retired = retired
        self.all_mask = 0
        for bit in bits.values():
            self.all_mask |= 1 << bit

    @classmethod
    def assign(cls, conn: sqlite3.Connection, names: list[str]) -> SinkBits:
        """Bits for ``names`` (inside the caller's transaction): the ones they had, a free one for a new
        sink; a sink that is gone frees its bit when nothing waits for it, else it is retired (logged)."""
        rows = dict(conn.execute("SELECT name, bit FROM outbox_sinks").fetchall())
        retired: dict[str, int] = {}
        for gone in [n for n in rows if n not in names]:
            bit = rows.pop(gone)
            n = conn.execute("SELECT count(*) FROM outbox WHERE pending & ?", (1 << bit,)).fetchone()[0]
            if n == 0:  # nothing waits for it: its bit is free again
                conn.execute("DELETE FROM outbox_sinks WHERE name = ?", (gone,))
                continue
            # its records stay until it is configured again or an operator discards them
            retired[gone] = bit
            log.warning(
                "sink %r is no longer configured: its %d outbox records are kept (configure it again to "
                "deliver them, or drop them with `havel gateway outbox discard --sink %s`)",
                gone,
                n,
                gone,
            )
        used = set(rows.values()) | set(retired.values())
        for name in names:
            if name not in rows:
                bit = next((b for b in range(MAX_SINKS) if b not in used), None)
                if bit is None:
                    raise InputError(
                        f"no room for sink {name!r}: {len(retired)} sinks no longer configured still "
                        "hold records",
                        hint="discard their records: havel gateway outbox discard --sink NAME",
                    )
                used.add(bit)
                rows[name] = bit
                conn.execute("INSERT INTO outbox_sinks (name, bit) VALUES (?, ?)", (name, bit))
        return cls(names, {n: rows[n] for n in names}, retired)

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> SinkBits:
        """Every sink the outbox knows, configured or not (read-only)."""
        try:
            rows = conn.execute("SELECT name, bit FROM outbox_sinks ORDER BY bit").fetchall()
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "reading the outbox (has the gateway ever run here?)") from None
        return cls([str(n) for n, _ in rows], {str(n): int(b) for n, b in rows}, {})

    @property
    def one_sink(self) -> bool:
        """One sink and no retired one: its acknowledgement is a record's last, it can be deleted at once."""
        return len(self.bits) == 1 and not self.retired

    def mask(self, sink: str) -> int:
        """The bit of configured sink ``sink`` as a mask; InputError for another name."""
        try:
            return 1 << self.bits[sink]
        except KeyError:
            raise InputError(
                f"unknown sink {sink!r}", hint=f"configured sinks: {', '.join(self.names)}"
            ) from None


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
            deleted = delete_counted(conn, DELETE_DONE)
            conn.execute("DELETE FROM outbox_sinks WHERE name = ?", (sink,))
    except sqlite3.Error as exc:
        raise db.storage_error(exc, f"discarding the records of sink {sink!r}") from None
    log.warning("sink %r discarded: %d records released, %d deleted", sink, waiting, deleted)
    return waiting, deleted
