"""The gateway database holds device keys: it and its WAL must be owner-only from the first byte."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from havel.gateway.db import open_db, unit_of_work


def test_database_and_wal_are_created_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a typical umask that would make new files world-readable
    try:
        path = tmp_path / "data" / "havel.db"
        conn = open_db(path)
        with unit_of_work(conn):
            conn.execute("CREATE TABLE k (key BLOB)")
            conn.execute("INSERT INTO k VALUES (?)", (os.urandom(16),))
        for f in (path, Path(str(path) + "-wal")):
            assert f.exists(), f
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f, oct(f.stat().st_mode))
        conn.close()
    finally:
        os.umask(old)
