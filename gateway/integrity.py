"""The daemon's check for a damaged database: a sound part at start, the whole file right after.

A damaged database must never start a gateway silently (``PRAGMA quick_check``,
:func:`.db_backup.check_integrity`).
The whole check reads every page, and a district's backlog (a million waiting records, a gigabyte) takes
seconds of it; so at start the daemon checks only what it needs before its first PUSH_ACK
(:func:`check_at_start`): every table and index but the outbox's, that is the device registry with its keys
and counters, the intake journal a PUSH_ACK promises, the downlink queue. The whole database, the outbox
included, is checked next in a thread of its own on a read-only connection (:class:`FullCheck`), while the
daemon runs; it does not hold the event loop (SQLite works without Python's lock). Damage it finds stops the
daemon with the same error as a damaged table at start: the outbox is only read by the delivery and
written by appending and deleting, so a damaged page there is found within seconds of the start, before it
can matter more than a failed read or write would (each of those is a storage error already).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from havel.gateway import db, db_backup

__all__ = ["FullCheck", "check_at_start"]

log = logging.getLogger("havel.gateway")

# checked in the background: the bulk of the file, appended to and deleted from only
BACKGROUND_TABLES = ("outbox",)


def check_at_start(conn: sqlite3.Connection) -> list[str]:
    """``PRAGMA quick_check`` of every table (with its indexes) but :data:`BACKGROUND_TABLES`: the problems
    found (empty when they are sound)."""
    try:
        tables = [
            str(r[0])
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            if r[0] not in BACKGROUND_TABLES
        ]
        problems: list[str] = []
        for table in tables:
            # (a table name cannot be a bound parameter of a PRAGMA; these come from sqlite_master)
            rows = [str(r[0]) for r in conn.execute(f'PRAGMA quick_check("{table}")')]
            if rows != ["ok"]:
                problems += rows
        return problems[:20]
    except sqlite3.Error as exc:
        return [str(exc)]


class FullCheck:
    """``PRAGMA quick_check`` of the whole database at ``path``, in a thread, on a read-only connection of
    its own; ``done(problems)`` is called in ``loop`` when it finishes (an empty list: sound)."""

    def __init__(
        self, path: Path, loop: asyncio.AbstractEventLoop, done: Callable[[list[str]], None]
    ) -> None:
        self.path = path
        self.loop = loop
        self.done = done
        self.problems: list[str] | None = None  # None while it runs
        self.thread = threading.Thread(target=self._run, name="integrity-check", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            conn = db.open_db_readonly(self.path)
        except Exception as exc:  # (the daemon has it open: it exists; a failure here is the answer)
            problems = [str(exc)]
        else:
            try:
                # it reads every page once: a small page cache does, and the daemon's memory (this thread's
                # allocations stay with the process) does not grow by SQLite's default 2 MB
                conn.execute("PRAGMA cache_size=-64")
                problems = db_backup.check_integrity(conn)
            finally:
                conn.close()
        self.problems = problems
        with contextlib.suppress(RuntimeError):  # (the loop closed: the daemon stopped meanwhile)
            self.loop.call_soon_threadsafe(self.done, problems)

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)
