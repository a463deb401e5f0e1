"""The outbox's quota policy: with ``quota_bytes`` set, a record that would exceed it first makes room by
dropping the oldest ``background`` records, then the oldest ``state`` records (``drop_order``, configurable:
``("background",)`` keeps state records too); ``alarm`` records are never dropped (kept even above the
quota, with a warning). Every drop is logged with its id and counted per priority in the database
(:meth:`Quota.dropped`). The incoming record itself is dropped when it is the newest of a class that must
go.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from havel.errors import InputError
from havel.gateway import db
from havel.gateway.outbox_records import ID, PRIORITY, SIZE, Row, add_totals

__all__ = ["DROP_ORDER", "Quota"]

log = logging.getLogger("havel.gateway.outbox")

# Drop order under quota pressure: routine readings first, then superseded state; alarms never.
DROP_ORDER = ("background", "state")

# The oldest records of a priority: state ones through the index of alarm and state records (naming the
# index's condition lets SQLite use it), routine readings in seq order (nearly every record is one)
_OLDEST = {
    "background": "SELECT seq, id, size FROM outbox WHERE priority = ? ORDER BY seq LIMIT 64",
    "state": "SELECT seq, id, size FROM outbox WHERE priority = ? AND priority != 'background' "
    "ORDER BY seq LIMIT 64",
}


class Quota:
    """The policy for one outbox on ``conn``; ``limit`` None: no quota (only the size is tracked).

    ``estimate`` is an upper bound of the stored bytes: exact after :meth:`exact_bytes`, only ever too high
    otherwise (a rolled-back put is still counted), so the exact total is read only when the quota may be
    reached."""

    def __init__(self, conn: sqlite3.Connection, limit: int | None, drop_order: Sequence[str]) -> None:
        if limit is not None and limit <= 0:
            raise InputError(f"outbox quota must be positive, got {limit}")
        if len(set(drop_order)) != len(drop_order) or not set(drop_order) <= set(DROP_ORDER):
            raise InputError(
                f"outbox drop_order {list(drop_order)!r} is not valid",
                hint="a sequence of 'background' and 'state' (alarms are never dropped)",
            )
        self.conn = conn
        self.limit = limit
        self.drop_order = tuple(drop_order)
        self.estimate = 0

    def exact_bytes(self) -> int:
        """The stored bytes (the totals row); the estimate becomes exact."""
        try:
            self.estimate = int(
                self.conn.execute("SELECT bytes FROM outbox_totals WHERE one = 1").fetchone()[0]
            )
        except sqlite3.Error as exc:
            raise db.storage_error(exc, "reading the outbox size") from None
        return self.estimate

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes surely fit (no quota, or under it by the estimate)."""
        return self.limit is None or self.estimate + size <= self.limit

    def make_room(self, row: Row) -> bool:
        """Apply the policy before inserting ``row`` (inside the caller's transaction); False when ``row``
        itself is dropped."""
        if self.limit is None:
            return True
        need = row[SIZE]
        if self.estimate + need <= self.limit:
            return True
        over = self.exact_bytes() + need - self.limit
        if over <= 0:
            return True
        priority = row[PRIORITY]
        for level in self.drop_order:
            over = self._drop_oldest(level, over)
            if over <= 0:
                return True
            if priority == level:
                # the incoming record is the newest of its class: it goes next
                self.count_drop(level, 1)
                log.warning(
                    "outbox quota %d bytes reached: dropped incoming %s record %s", self.limit, level, row[ID]
                )
                return False
        log.warning(
            "outbox quota %d bytes exceeded by %d bytes: %s records are never dropped, storing %s anyway",
            self.limit,
            over,
            priority,
            row[ID],
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
                self.estimate -= size
            self.conn.executemany("DELETE FROM outbox WHERE seq = ?", batch)
            add_totals(self.conn, -len(batch), -sum(size for _, _, size in rows[: len(batch)]))
        if dropped:
            self.count_drop(priority, len(dropped))
            for _, rid in dropped:
                log.warning("outbox quota %d bytes reached: dropped %s record %s", self.limit, priority, rid)
        return over

    def count_drop(self, priority: str, n: int) -> None:
        self.conn.execute(
            "INSERT INTO outbox_dropped (priority, count) VALUES (?, ?) "
            "ON CONFLICT(priority) DO UPDATE SET count = count + excluded.count",
            (priority, n),
        )

    def dropped(self) -> dict[str, int]:
        """How many records the policy dropped, per priority, over the database's life."""
        counts = dict.fromkeys(DROP_ORDER, 0)
        counts.update({p: int(n) for p, n in self.conn.execute("SELECT priority, count FROM outbox_dropped")})
        return counts
