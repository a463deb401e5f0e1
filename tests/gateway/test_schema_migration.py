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
    # step 3: the totals row holds the highest seq given out (the outbox's one record has seq 1)
    assert [r[-1] for r in out["outbox_totals"]] == [1]
    out["outbox_totals"] = [r[:-1] for r in out["outbox_totals"]]
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


def _version_2_database(path: Path) -> None:
    """A database as the release with schema version 2 made it (steps 1 and 2 of the ladder)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for step in schema.STEPS[:2]:
        step(conn)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("COMMIT")
    conn.close()


def test_version_2_outbox_becomes_lean_with_its_rows_seqs_and_totals(tmp_path: Path) -> None:
    """Step 3: the outbox without AUTOINCREMENT and with only alarm and state records indexed by priority;
    rows, totals and the highest seq ever given out are kept, so a new record never gets an old seq."""
    path = tmp_path / "havel.db"
    _version_2_database(path)
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("INSERT INTO outbox_sinks VALUES ('primary', 0)")
    for seq, prio in ((1, "background"), (2, "alarm"), (3, "background"), (4, "state")):
        raw.execute(
            "INSERT INTO outbox (id, kind, dev_eui, fcnt32, priority, received_at, payload, size, pending) "
            "VALUES (?, 'up', '70B3D57ED0000001', ?, ?, '2026-12-01T10:00:00Z', ?, 100, 1)",
            (f"70B3D57ED0000001-0-{seq}", seq, prio, f'{{"id":"70B3D57ED0000001-0-{seq}"}}'),
        )
    raw.execute("DELETE FROM outbox WHERE seq IN (3, 4)")  # delivered: seqs 3 and 4 were given out
    raw.execute("UPDATE outbox_totals SET rows = 2, bytes = 200")
    assert raw.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone() == (4,)
    before = raw.execute("SELECT * FROM outbox ORDER BY seq").fetchall()
    raw.close()

    conn = db.open_db(path)
    assert schema.version(conn) == schema.VERSION == 3
    assert conn.execute("SELECT * FROM outbox ORDER BY seq").fetchall() == before
    assert conn.execute("SELECT rows, bytes, seq FROM outbox_totals").fetchone() == (2, 200, 4)
    sql = str(conn.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox'").fetchone()[0])
    assert "AUTOINCREMENT" not in sql
    indexes = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "outbox_priority" not in indexes and {"outbox_urgent", "outbox_done"} <= indexes
    # only the alarm record is in the priority index
    assert conn.execute(
        "SELECT count(*) FROM outbox INDEXED BY outbox_urgent WHERE priority != 'background'"
    ).fetchone() == (1,)

    ob = Outbox(conn, sinks=("primary",))
    assert ob.max_seq() == 4
    rec = {
        "id": "70B3D57ED0000001-0-5",
        "kind": "up",
        "dev_eui": "70B3D57ED0000001",
        "fcnt32": 5,
        "received_at": "2026-12-01T10:00:05Z",
        "payload": {"t": 1},
    }
    assert ob.put(rec)
    assert [r.seq for r in ob.fetch("primary")] == [1, 2, 5]  # not 3 (the highest seq given out was 4)
    assert [r.id for r in ob.fetch("primary", priorities=("alarm",))] == ["70B3D57ED0000001-0-2"]
    assert ob.depth() == 3
    # seqs keep rising after the outbox was emptied
    ob.ack_seqs("primary", [1, 2, 5])
    assert ob.depth() == 0
    rec2 = {**rec, "id": "70B3D57ED0000001-0-6", "fcnt32": 6}
    assert ob.put(rec2) and [r.seq for r in ob.fetch("primary")] == [6]
    conn.close()
