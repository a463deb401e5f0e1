"""Durable-append strategies for ``bench/storage_floor.py``: each makes its files (not counted), then
appends a record durably (on the device when the call returns) per call."""

from __future__ import annotations

import mmap
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

FS_PAGE = 4096  # page cache page and ext4 block
SECTOR = 512
RECORD = 200  # bytes of one buffered append (a stored uplink's frame and metadata)


class Strategy:
    """Files made in ``setup`` (not counted); ``append(i)`` is one durable append."""

    def __init__(self, where: Path, appends: int) -> None:
        self.where, self.appends = where, appends

    def setup(self) -> None: ...

    def append(self, i: int) -> None:
        raise NotImplementedError

    def close(self) -> None: ...


def written_file(path: Path, size: int) -> None:
    """A file of ``size`` zero bytes, written and fsynced (its extents allocated and written)."""
    with path.open("wb") as f:
        f.write(bytes(size))
        f.flush()
        os.fsync(f.fileno())


class SqliteCommit(Strategy):
    exclusive = False

    def __init__(self, where: Path, appends: int, pages: int = 1, sync: str = "FULL", page_size: int = 1024):
        super().__init__(where, appends)
        self.pages, self.sync, self.page_size = pages, sync, page_size

    def setup(self) -> None:
        self.conn = sqlite3.connect(self.where / "floor.db", isolation_level=None)
        c = self.conn
        c.execute(f"PRAGMA page_size={self.page_size}")
        if self.exclusive:  # before WAL mode: the WAL index then lives in memory, no -shm file
            c.execute("PRAGMA locking_mode=EXCLUSIVE")
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA wal_autocheckpoint=0")
        c.execute(f"PRAGMA synchronous={self.sync}")
        for t in range(self.pages):  # one table per page: a commit updating k tables writes k pages
            c.execute(f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, v BLOB)")
            c.execute(f"INSERT INTO t{t} VALUES (1, ?)", (os.urandom(RECORD),))
        for i in range(self.appends + 10):  # the WAL grown past the window's size ...
            self.append(i)
        c.execute("PRAGMA wal_checkpoint(RESTART)")  # ... and the next commit writes it from its start

    def append(self, i: int) -> None:
        c = self.conn
        c.execute("BEGIN")
        for t in range(self.pages):
            c.execute(f"UPDATE t{t} SET v = ? WHERE id = 1", (os.urandom(RECORD),))
        c.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class SqliteExclusive(SqliteCommit):
    exclusive = True


class BufferedAppend(Strategy):
    def setup(self) -> None:
        self.fd = os.open(self.where / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, i: int) -> None:
        os.write(self.fd, os.urandom(RECORD))
        os.fdatasync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class BufferedPrealloc(BufferedAppend):
    def setup(self) -> None:
        path = self.where / "log"
        written_file(path, (self.appends + 1) * RECORD + FS_PAGE)
        self.fd = os.open(path, os.O_WRONLY)

    def append(self, i: int) -> None:
        os.pwrite(self.fd, os.urandom(RECORD), i * RECORD)
        os.fdatasync(self.fd)


class DirectSectors(Strategy):
    written = True

    def setup(self) -> None:
        path = self.where / "log"
        size = (self.appends + 8) * SECTOR
        if self.written:
            written_file(path, size)
        else:
            with path.open("wb") as f:
                os.posix_fallocate(f.fileno(), 0, size)
                os.fsync(f.fileno())
        self.buf = mmap.mmap(-1, SECTOR)  # page-aligned, as O_DIRECT asks
        self.fd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC)

    def append(self, i: int) -> None:
        self.buf[:RECORD] = os.urandom(RECORD)
        os.pwrite(self.fd, self.buf, i * SECTOR)

    def close(self) -> None:
        os.close(self.fd)
        self.buf.close()


class DirectSectorsUnwritten(DirectSectors):
    written = False


class RawSectors(DirectSectors):
    """512-byte ``O_DIRECT|O_DSYNC`` writes straight to a block device (``where``): no file system."""

    def setup(self) -> None:
        self.buf = mmap.mmap(-1, SECTOR)
        self.fd = os.open(self.where, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC)


def make_strategy(spec: dict[str, object], where: Path, appends: int) -> Strategy:
    name = spec["strategy"]
    if name == "sqlite":
        return SqliteCommit(where, appends, int(spec["pages"]), str(spec["sync"]), int(spec["page_size"]))  # type: ignore[call-overload]
    kinds: dict[object, Callable[[Path, int], Strategy]] = {
        "sqlite-full": SqliteCommit,
        "sqlite-full-exclusive": SqliteExclusive,
        "append-fdatasync": BufferedAppend,
        "prealloc-fdatasync": BufferedPrealloc,
        "direct-dsync": DirectSectors,
        "direct-dsync-unwritten": DirectSectorsUnwritten,
        "direct-dsync-raw": RawSectors,
    }
    return kinds[name](where, appends)
