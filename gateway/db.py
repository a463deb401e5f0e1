"""The gateway's one SQLite database: opened durable, with explicit transactions.

Registry, sessions and the outbox share one file (``<data_dir>/havel.db``) so that a new frame counter and
the outbox record it produced are committed together. The connection is opened in autocommit mode
(``isolation_level=None``): nothing is written unless :func:`unit_of_work` (or a single statement) says so,
which keeps transaction boundaries visible in the code instead of hidden in the sqlite3 module.

Durability: WAL journal with ``synchronous=FULL``: a committed transaction survives a power cut (measured
here at 10-13 k commits/s; a Raspberry Pi SD card is far slower per fsync, so callers group several records
into one transaction). Every sqlite3 failure that reaches a caller is a :class:`havel.errors.StorageError`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sqlite3
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from havel.errors import StorageError
from havel.gateway import schema

__all__ = [
    "Participant",
    "UnitOfWork",
    "current_unit",
    "deferred_sync",
    "marker_path",
    "open_db",
    "open_db_readonly",
    "storage_error",
    "sync_wal",
    "unit_of_work",
    "write_marker",
]

_savepoints = itertools.count(1)

log = logging.getLogger("havel.gateway.db")

PAGE_SIZE = 1024  # bytes per database page of a new database (see open_db)
WAL_CHECKPOINT_PAGES = 10_000  # the write-ahead log's size (pages) that starts a checkpoint (see open_db)


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
    """Open (creating if needed) the gateway database at ``path``: WAL, synchronous=FULL, autocommit mode,
    every table of :mod:`havel.gateway.schema` at its current version (an earlier database is migrated).

    The connection may be handed between threads (``check_same_thread=False``) but must be used by one
    thread at a time. Raises StorageError when the file cannot be opened or is not a database.
    """
    p = Path(path)
    memory = str(p) == ":memory:"
    if not memory:
        _refuse_lost(p)
    try:
        if not memory:
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
        # A new database gets 1 KiB pages (SQLite's default is 4 KiB): every commit writes each page it
        # touched into the WAL whole, and a stored uplink touches a handful (journal, counter, outbox and
        # its index), so smaller pages are fewer bytes on the SD card per uplink. Only takes effect before
        # the first table exists; an existing database keeps its page size.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
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
        # A checkpoint copies every page the log holds into the database file once; the fewer checkpoints,
        # the fewer copies of the pages written again and again (the devices' counters, the outbox's last
        # page). SQLite's default (1,000 pages) made one every 200 uplinks at a city's pace.
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        if not memory:
            _identify(conn, p)
        schema.migrate(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(exc, f"opening {p}") from None
    except StorageError:
        conn.close()
        raise
    return conn


class Participant(Protocol):
    """Something that keeps state of its own about the writes of a unit of work (the registry's cache):
    told where each nested unit starts, what was rolled back, and when the whole unit commits or fails."""

    def savepoint(self) -> object:
        """A mark of the state now (a nested unit starts, or the participant joins inside one)."""

    def rollback_to(self, mark: object) -> None:
        """The nested unit that started at ``mark`` rolled back: forget what came after it."""

    def before_commit(self) -> None:
        """Last writes inside the transaction, just before COMMIT (a raise rolls the unit back)."""

    def committed(self) -> None:
        """The unit committed."""

    def aborted(self) -> None:
        """The unit rolled back."""


class UnitOfWork:
    """One open unit of work on a connection (see :func:`unit_of_work`)."""

    __slots__ = ("conn", "marks", "parent", "participants", "root")

    def __init__(self, conn: sqlite3.Connection, parent: UnitOfWork | None) -> None:
        self.conn = conn
        self.parent = parent
        self.root: UnitOfWork = self if parent is None else parent.root
        self.participants: list[Participant] = []  # (the root's list is the one used)
        # where each participant stood when this nested unit started
        self.marks = [(p, p.savepoint()) for p in self.root.participants] if parent is not None else []

    def join(self, participant: Participant) -> None:
        """Take part in the whole unit (its root), from now on: told of every commit and rollback."""
        self.root.participants.append(participant)
        unit: UnitOfWork | None = self
        while unit is not None and unit.parent is not None:  # the nested units open now started without it
            unit.marks.append((participant, participant.savepoint()))
            unit = unit.parent


_units: dict[int, UnitOfWork] = {}  # id(connection) -> its innermost open unit of work


def current_unit(conn: sqlite3.Connection) -> UnitOfWork | None:
    """The innermost unit of work open on ``conn``, or None."""
    return _units.get(id(conn))


@contextmanager
def unit_of_work(conn: sqlite3.Connection) -> Iterator[UnitOfWork]:
    """One unit of work: every write inside it (registry, session counters, outbox, journal ...) is
    committed together or not at all: ``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block
    raises. Every writer opens one; state kept outside SQLite (the registry's cache) joins it
    (:meth:`UnitOfWork.join`) and changes only when the whole unit commits.

    Nested use inside an open unit becomes a SAVEPOINT, so a helper that needs atomicity can open its own
    unit whether or not its caller already did; when the nested block raises, its writes and its
    participants' changes are undone, and the outer unit goes on. sqlite3 errors (disk full, I/O error,
    busy) are raised as StorageError; after one, everything committed before is still there.
    """
    key = id(conn)
    parent = _units.get(key)
    unit = UnitOfWork(conn, parent)
    _units[key] = unit
    try:
        if conn.in_transaction:  # nested (or inside a transaction begun without a unit): a savepoint
            with _savepoint(conn, unit):
                yield unit
                if parent is None:
                    for p in unit.participants:
                        p.before_commit()
        else:
            with _transaction(conn, unit):
                yield unit
                for p in unit.participants:
                    p.before_commit()
    finally:
        if parent is None:
            _units.pop(key, None)
        else:
            _units[key] = parent
    if parent is None:
        for p in unit.participants:
            p.committed()


@contextmanager
def _transaction(conn: sqlite3.Connection, unit: UnitOfWork) -> Iterator[None]:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise storage_error(exc, "starting a transaction") from None
    try:
        yield
    except BaseException as exc:
        _rollback(conn)
        _aborted(unit)
        if isinstance(exc, sqlite3.Error):
            raise storage_error(exc, "writing") from exc
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        _aborted(unit)
        raise storage_error(exc, "committing") from None


@contextmanager
def _savepoint(conn: sqlite3.Connection, unit: UnitOfWork) -> Iterator[None]:
    name = f"havel_sp{next(_savepoints)}"
    try:
        conn.execute(f"SAVEPOINT {name}")
    except sqlite3.Error as exc:
        raise storage_error(exc, "opening a savepoint") from None
    try:
        yield
    except BaseException:
        try:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
        except sqlite3.Error:
            pass  # the outer transaction is already gone; the outer level reports it
        if unit.parent is None:
            _aborted(unit)
        for p, mark in reversed(unit.marks):
            p.rollback_to(mark)
        raise
    try:
        conn.execute(f"RELEASE {name}")
    except sqlite3.Error as exc:
        if unit.parent is None:
            _aborted(unit)
        raise storage_error(exc, "releasing a savepoint") from None


def _aborted(unit: UnitOfWork) -> None:
    for p in unit.participants:
        try:
            p.aborted()
        except Exception:  # (the rollback's cause is what the caller must see)
            log.exception("a participant of a rolled-back unit of work failed")


@contextmanager
def deferred_sync(conn: sqlite3.Connection) -> Iterator[None]:
    """Commits inside the block are written to the WAL but not fsynced (``synchronous=NORMAL``); the next
    commit outside one (every intake journal commit before its PUSH_ACKs) or the next checkpoint fsyncs
    them with it. A power cut before that rolls the database back to the last fsynced commit, whole
    transactions only.

    Only for commits whose loss is repaired by what is fsynced: storing a batch of uplinks (its frames stay
    in the intake journal until that commit and are replayed, with the same message ids) and recording
    delivered outbox records (sent again). Each fsync is a flash page written on an SD card, and at a city's
    pace every commit would be one. A commit whose effect leaves the machine before the next fsync (a
    downlink sent with a frame counter) must call :func:`sync_wal` first. Inside an open transaction it
    changes nothing: the outer commit decides."""
    if conn.in_transaction:
        yield
        return
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA synchronous=FULL")


def sync_wal(conn: sqlite3.Connection) -> None:
    """Make every commit so far durable (commits made under :func:`deferred_sync` included): fsync the
    write-ahead log, as a ``synchronous=FULL`` commit would. fsync flushes the file, whichever descriptor
    wrote it. A no-op for an in-memory database; StorageError when the disk refuses."""
    row = conn.execute("PRAGMA database_list").fetchone()
    path = str(row[2]) if row is not None else ""
    if not path:
        return
    try:
        fd = os.open(path + "-wal", os.O_RDONLY)
    except FileNotFoundError:  # no WAL: nothing written since the last checkpoint removed it
        return
    except OSError as exc:
        raise StorageError(f"cannot open the write-ahead log of {path}: {exc}") from None
    try:
        os.fdatasync(fd)
    except OSError as exc:
        raise StorageError(f"fsync of the write-ahead log of {path} failed: {exc}") from None
    finally:
        os.close(fd)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # SQLite may already have rolled back (e.g. after SQLITE_FULL); nothing more to undo then
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


# ------------------------------------------------------------------------------ identity and integrity
#
# A database that silently became empty (a zero-length file after a crash of the file system, a file deleted
# or replaced) must not start a gateway with no devices and no word. Each database gets a random id at its
# creation, kept in the database and in a marker file next to it (``havel.db.id``). Rule at every open:
#
# - file missing or without any table, marker present: the database this folder had is gone -> refused;
# - file of zero bytes with no write-ahead log holding its pages: damaged -> refused;
# - id in the database differs from the marker: another database was put in place -> refused;
# - no id yet (a new database, or one made before ids existed): an id is given and the marker written.
#
# Every refusal says how to go on: restore a backup (db_backup.restore), or delete the marker on purpose.

_RESTORE_HINT = (
    "restore a backup with `havel gateway restore --from BACKUP` (see docs/gateway.md); to start a new, "
    "empty database on purpose, delete {marker}"
)


def marker_path(path: str | Path) -> Path:
    """The marker file that remembers which database belongs at ``path``."""
    p = Path(path)
    return p.with_name(p.name + ".id")


def _refuse_lost(p: Path) -> None:
    marker = marker_path(p)
    hint = _RESTORE_HINT.format(marker=marker)
    if not p.exists():
        if marker.exists():
            raise StorageError(f"database {p} is missing, but {marker} shows this folder had one", hint=hint)
        return
    if p.stat().st_size == 0:
        wal = p.with_name(p.name + "-wal")
        if not (wal.exists() and wal.stat().st_size > 0):  # (a new database's pages may all be in the WAL)
            raise StorageError(
                f"database {p} is an empty file (0 bytes): its devices and outbox are gone",
                hint=_RESTORE_HINT.format(marker=marker) + " and the empty file",
            )


def _identify(conn: sqlite3.Connection, p: Path) -> None:
    marker = marker_path(p)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    known = marker.read_text().strip() if marker.exists() else None
    # (the table may exist without its row: made by the schema on a connection not opened here)
    row = conn.execute("SELECT db_id FROM db_identity").fetchone() if "db_identity" in tables else None
    if row is not None:
        db_id = str(row[0])
        if known is not None and known != db_id:
            raise StorageError(
                f"database {p} (id {db_id}) is not the one this folder had (id {known}, in {marker})",
                hint=_RESTORE_HINT.format(marker=marker),
            )
    elif known is not None:
        lost = not tables - {"db_identity"}
        what = "lost every table" if lost else "has no identity (a database from elsewhere?)"
        raise StorageError(
            f"database {p} {what}; {marker} shows it had been used", hint=_RESTORE_HINT.format(marker=marker)
        )
    else:
        with unit_of_work(conn):  # (another process may give the id at the same moment: the first wins)
            conn.execute(schema.DB_IDENTITY)
            conn.execute("INSERT OR IGNORE INTO db_identity (one, db_id) VALUES (1, ?)", (uuid.uuid4().hex,))
            db_id = str(conn.execute("SELECT db_id FROM db_identity").fetchone()[0])
    if known is None:
        write_marker(marker, db_id)


def write_marker(marker: Path, db_id: str) -> None:
    tmp = marker.with_name(marker.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (db_id + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, marker)


def open_db_readonly(path: str | Path, *, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """Open an existing database for reading only (``mode=ro``): nothing is created, migrated or written,
    whether or not the daemon is using it. StorageError when it is missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        raise StorageError(f"no database at {p}", hint="check --data-dir / the config's data_dir")
    # Without a write-ahead log (no daemon has it open, the last one closed cleanly) the file is complete:
    # ``immutable`` reads it without creating the -wal and -shm files that a ``mode=ro`` open of a WAL
    # database would leave behind. With one, ``mode=ro`` reads through it (and writes no page).
    wal = p.with_name(p.name + "-wal")
    mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    uri = f"file:{urllib.parse.quote(str(p.resolve()))}?{mode}"
    try:
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
        )
        conn.execute("PRAGMA query_only=ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise storage_error(exc, f"opening {p} read-only") from None
    return conn
