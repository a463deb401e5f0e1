"""SQLite written in batches: one write transaction stays open and is committed (one fsync) every
``[storage] batch_s``, so that an uplink costs the SD card a 512-byte sector of the intake log
(:mod:`.journal_log`) instead of a WAL commit (docs/storage-wear.md).

The batch is begun when the intake first writes after a commit. Every unit of work inside it is a savepoint
(:func:`havel.gateway.db.unit_of_work`), whose participants (the registry's cache, the journal's marks ...)
see ``committed()`` when it ends, so they behave as without batches. The batch is committed, and then the
intake log's durable mark set to what it committed:

- every ``batch_s`` (:meth:`WriteBatch.due`);
- before a downlink or join-accept is handed to the backend (a frame counter, DevNonce or JoinNonce must be
  durable before it leaves the machine), and after a downlink command is queued, before its result goes out;
- when the intake log is less than half free, or full;
- at stop, and when another process asks (SIGUSR1 from the CLI: :func:`havel.gateway.runlock.ask_to_commit`):
  then no new batch is begun for :data:`PAUSE_S`, so the other process gets the write lock.

A COMMIT that fails (disk full, I/O error) rolls the whole batch back; ``on_lost`` rebuilds what ran ahead in
memory from the database and the log. A batch can also be lost inside a savepoint (SQLite rolls back the
whole transaction on some errors): :meth:`WriteBatch.check` sees that and calls ``on_lost`` the same way.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable

from havel.errors import StorageError
from havel.gateway import db

__all__ = ["PAUSE_S", "WriteBatch"]

log = logging.getLogger("havel.gateway")

PAUSE_S = 10.0  # no batch is begun for this long after another process asked for the write lock


class WriteBatch:
    """The open write batch on ``conn`` (one thread: the event loop's)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        interval_s: float,
        *,
        on_commit: Callable[[], None],
        on_lost: Callable[[StorageError], None],
        held: Callable[[], int] = lambda: 0,
        max_held: int = 1_000,
    ) -> None:
        self.conn = conn
        self.interval_s = interval_s
        # what the process keeps in memory until the batch commits (the outbox's acknowledgements recorded in
        # it: during a drain thousands a second), and how much of it makes the batch commit early
        self.held = held
        self.max_held = max_held
        self.on_commit = on_commit  # after each successful COMMIT (the journal's durable mark, ...)
        self.on_lost = on_lost  # after a batch was rolled back
        self.commits = 0
        self.lost = 0
        self._open = False
        self._opened_at = 0.0
        self._paused_until = 0.0
        self._commit_soon = False

    @property
    def open(self) -> bool:
        return self._open

    def begin(self) -> None:
        """Begin a batch unless one is open, a transaction is, or another process asked for the lock."""
        if self._open or self.conn.in_transaction or time.monotonic() < self._paused_until:
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # (busy, full ...): the units open their own transactions and report
            log.debug("no write batch begun: %s", exc)
            return
        self._open = True
        self._opened_at = time.monotonic()

    def check(self) -> bool:
        """False (and the batch handled as lost) when SQLite rolled the open batch back on its own."""
        if self._open and not self.conn.in_transaction:
            self._open = False
            self._lose(StorageError("the database rolled the open write batch back"))
            return False
        return True

    def commit(self, why: str = "") -> bool:
        """COMMIT the open batch (one fsync) and tell ``on_commit``; False when it failed (the batch is lost
        and ``on_lost`` was told) or a unit of work is open (it cannot be committed from inside one)."""
        if db.current_unit(self.conn) is not None:
            return False
        if not self.check():
            return False
        if not self._open:
            return True
        self._commit_soon = False
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._open = False
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            self._lose(db.storage_error(exc, f"committing a write batch ({why or 'due'})"))
            return False
        self._open = False
        self.commits += 1
        self.on_commit()
        return True

    def commit_soon(self) -> None:
        """Commit at the next :meth:`due` (the intake log is filling up)."""
        self._commit_soon = True

    def commit_or_soon(self) -> None:
        """Commit now where that can be (no unit of work open), else at the next :meth:`due`."""
        if not self.commit("the intake log is half full"):
            self._commit_soon = True

    def due(self) -> None:
        """Commit when the batch is ``interval_s`` old, holds ``max_held`` things in memory, or was asked to
        commit soon."""
        if not self._open:
            return
        if self._commit_soon:
            self.commit("the intake log is filling up")
        elif time.monotonic() - self._opened_at >= self.interval_s:
            self.commit("interval")
        elif self.held() >= self.max_held:
            self.commit("memory held until the commit")
        else:
            self.check()

    def pause(self, seconds: float = PAUSE_S) -> None:
        """Another process wants the write lock: commit, and begin no batch for ``seconds``."""
        self._paused_until = time.monotonic() + seconds
        self.commit("another process asked for the database")

    def _lose(self, exc: StorageError) -> None:
        self.lost += 1
        log.error("a write batch was lost: %s (rebuilding from the database and the intake log)", exc)
        self.on_lost(exc)
