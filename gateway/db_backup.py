"""Checking, copying and restoring the gateway's database file beside (or without) the daemon: SQLite's
``quick_check``, its online backup, and putting a backup in place with the file's identity marker."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from havel.errors import StorageError
from havel.gateway import db

__all__ = ["backup", "check_integrity", "restore"]


def check_integrity(conn: sqlite3.Connection) -> list[str]:
    """``PRAGMA quick_check``: the problems found (empty when the database is sound)."""
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(20)")]
    except sqlite3.Error as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


def backup(conn: sqlite3.Connection, dest: str | Path) -> Path:
    """Copy the database on ``conn`` to ``dest`` (a new file, 0600) with SQLite's online backup, which is
    consistent while the daemon keeps writing. Returns the path."""
    d = Path(dest)
    if d.exists():
        raise StorageError(f"{d} exists already", hint="choose a new file name")
    d.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(d, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        target = sqlite3.connect(str(d))
        try:
            conn.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
    except sqlite3.Error as exc:
        with contextlib.suppress(OSError):
            d.unlink()
        raise db.storage_error(exc, f"writing the backup {d}") from None
    return d


def restore(source: str | Path, path: str | Path) -> Path | None:
    """Put the backup ``source`` in place of the database at ``path`` (the daemon must not run).

    The backup is checked first (``quick_check``, registry present). The database it replaces, if any, is
    moved aside to ``<path>.replaced-<UTC time>`` (with its -wal and -shm), never deleted; that path is
    returned. The marker is set to the backup's id."""
    src_path, p = Path(source), Path(path)
    src = db.open_db_readonly(src_path)
    try:
        problems = check_integrity(src)
        if problems:
            raise StorageError(f"backup {src_path} is damaged: {problems[0]}", hint="use another backup")
        tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "devices" not in tables:
            raise StorageError(f"{src_path} is not a gateway database (no device registry)")
        row = src.execute("SELECT db_id FROM db_identity").fetchone() if "db_identity" in tables else None
        moved: Path | None = None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for suffix in ("", "-wal", "-shm"):
            f = p.with_name(p.name + suffix)
            if f.exists():
                aside = p.with_name(f"{p.name}.replaced-{stamp}{suffix}")
                os.replace(f, aside)
                if suffix == "":
                    moved = aside
        p.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        target = sqlite3.connect(str(p))
        try:
            src.backup(target)
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise db.storage_error(exc, f"restoring {src_path}") from None
    finally:
        src.close()
    marker = db.marker_path(p)
    if row is not None:
        db.write_marker(marker, str(row[0]))
    else:  # a backup from before databases had ids: it gets one at its next open
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
    return moved
