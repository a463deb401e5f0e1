"""The schema version ladder: a database made before versions were recorded opens, keeps every row, gets
the current version, and a second open changes nothing; a database from a newer release is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from havel.errors import StorageError
from havel.gateway import db, schema
from havel.gateway.config import NetworkConfig
from havel.gateway.downlinks import DownlinkScheduler
from havel.gateway.journal import Journal
from havel.gateway.outbox import Outbox
from havel.gateway.registry import Registry

FIXTURE = Path(__file__).parent / "fixtures" / "gateway_db_unversioned.sql"


def _old_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text())
    conn.close()


def _contents(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    tables = [
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


def _definitions(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()


Rows = dict[str, list[tuple[object, ...]]]


def _without_later_additions(contents: Rows) -> Rows:
    """The contents as the fixture had them: what the steps after the first added taken out (step 2: the
    commands' numbers, their counter and the table of removed devices' commands, empty here)."""
    out = dict(contents)
    assert out.pop("downlinks_removed") == []
    assert ("downlink_seq", 1) in out["meta"]  # the one queued command got number 1
    out["meta"] = [r for r in out["meta"] if r[0] != "downlink_seq"]
    assert [r[-1] for r in out["downlinks"]] == [1]
    out["downlinks"] = [r[:-1] for r in out["downlinks"]]
    return out


def test_a_database_of_todays_schema_migrates_with_every_row_kept(tmp_path: Path) -> None:
    path = tmp_path / "havel.db"
    _old_database(path)
    raw = sqlite3.connect(path)
    before = _contents(raw)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 0
    raw.close()
    assert len(before) == 13 and all(before[t] for t in before), "the fixture has rows in every table"

    conn = db.open_db(path)
    assert schema.version(conn) == schema.VERSION >= 2
    assert _without_later_additions(_contents(conn)) == before
    # the components find their data where they left it
    reg = Registry(conn)
    dev = reg.get(0x70B3D57ED0010003)
    assert dev is not None and dev.name == "pegel-1" and dev.session is not None
    assert dev.session.fcnt_up == 41 and dev.session.epoch == 2
    dl = DownlinkScheduler(reg, NetworkConfig())
    assert [c.id for c in dl.queue(0x70B3D57ED0010003)] == ["cmd-1"]
    ob = Outbox(conn, sinks=("primary", "archive"))
    assert ob.depth() == 1 and ob.dropped()["background"] == 4
    assert len(Journal(conn).pending()) == 1
    definitions = _definitions(conn)
    conn.close()

    again = db.open_db(path)
    assert schema.migrate(again) == 0  # nothing left to do
    assert schema.version(again) == schema.VERSION
    assert _definitions(again) == definitions
    assert _without_later_additions(_contents(again)) == before
    again.close()


def test_a_new_database_is_created_at_the_current_version(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    assert schema.version(conn) == schema.VERSION
    assert len(_contents(conn)) == 14
    conn.close()


def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "havel.db"
    db.open_db(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    raw.close()
    with pytest.raises(StorageError, match="newer") as err:
        db.open_db(path)
    assert err.value.hint and "release" in err.value.hint
