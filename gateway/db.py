"""The gateway's one SQLite database: opened durable, with explicit transactions.

Registry, sessions and the outbox share one file (``<data_dir>/havel.db``) so that a new frame counter and
the outbox record it produced are committed together. The connection is opened in autocommit mode
(``isolation_level=None``): nothing is written unless :func:`transaction` (or a single statement) says so,
which keeps transaction boundaries visible in the code instead of hidden in the sqlite3 module.

Durability: WAL journal with ``synchronous=FULL``: a committed transaction survives a power cut (measured
here at 10-13 k commits/s; a Raspberry Pi SD card is far slower per fsync, so callers group several records
into one transaction). Every sqlite3 failure that reaches a caller is a :class:`havel.errors.StorageError`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from havel.errors import StorageError

__all__ = ["open_db", "storage_error", "transaction"]

_savepoints = itertools.count(1)


def storage_error(exc: sqlite3.Error, doing: str) -> StorageError:
    """Turn a sqlite3 error into a StorageError that says what failed and what to do about it."""
    text = str(exc)
    low = text.lower()
    if "full" in low:
        hint = "the disk or the database size limit is full: free space or lower the outbox quota"
    elif "locked" in low or "busy" in low:
        hint = "another process holds the database: is a second gateway running on this data directory?"
    elif "readonly" in low or "read-only" in low:
        hint = "the data directory is read-only: check its permissions and the mount"
    elif "malformed" in low or "not a database" in low:
        hint = "the database file is damaged: move it aside and restore from backup"
    elif "disk i/o" in low:
        hint = "the device refused a write (full, size limit, or failing): check free space and the SD card"
    else:
        hint = None
    return StorageError(f"database error while {doing}: {text}", hint=hint)


def open_db(path: str | Path, *, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """Open (creating if needed) the gateway database at ``path``: WAL, synchronous=FULL, autocommit mode.

    The connection may be handed between threads (``check_same_thread=False``) but must be used by one
    thread at a time. Raises StorageError when the file cannot be opened or is not a database.
    """
    p = Path(path)
    try:
        if str(p) != ":memory:":
            p.parent.mkdir(parents=True, exist_ok=True)
            # The database holds device keys: create it owner-only before SQLite does (SQLite gives the
            # -wal and -shm files the main file's mode), so there is no moment it is world-readable.
            os.close(os.open(p, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(
            str(p), isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
        )
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(
            f"cannot open database {p}: {exc}", hint="check that the data directory exists and is writable"
        ) from None
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(p) != ":memory:" and str(mode).lower() != "wal":
            raise StorageError(
                f"database {p} refused WAL mode (got {mode})",
                hint="put the data directory on a local file system, not a network share",
            )
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # Savepoint and statement journals (the network server's flush is a savepoint of the intake commit)
        # in memory, not as temporary files: they only undo a statement or savepoint inside a live
        # transaction (crash recovery is the WAL's), and as files they cost an open, writes and an unlink
        # every few uplinks, on the SD card's /var/tmp.
        conn.execute("PRAGMA temp_store=MEMORY")
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(exc, f"opening {p}") from None
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises.

    Nested use inside an open transaction becomes a SAVEPOINT, so a helper that needs atomicity can open
    its own transaction whether or not its caller already did. sqlite3 errors (disk full, I/O error, busy)
    are raised as StorageError; after one, everything committed before is still there.
    """
    if conn.in_transaction:
        name = f"havel_sp{next(_savepoints)}"
        try:
            conn.execute(f"SAVEPOINT {name}")
        except sqlite3.Error as exc:
            raise storage_error(exc, "opening a savepoint") from None
        try:
            yield conn
        except BaseException:
            try:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            except sqlite3.Error:
                pass  # the outer transaction is already gone; the outer level reports it
            raise
        try:
            conn.execute(f"RELEASE {name}")
        except sqlite3.Error as exc:
            raise storage_error(exc, "releasing a savepoint") from None
        return

    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise storage_error(exc, "starting a transaction") from None
    try:
        yield conn
    except BaseException as exc:
        _rollback(conn)
        if isinstance(exc, sqlite3.Error):
            raise storage_error(exc, "writing") from exc
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        raise storage_error(exc, "committing") from None


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # SQLite may already have rolled back (e.g. after SQLITE_FULL); nothing more to undo then
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
