"""Acknowledgements held back (Outbox.hold_acks): recorded in the commit of the next records stored, or on
their own (commit_acks); one whose transaction rolled back is held again, never lost; seqs keep rising."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.outbox_records import uplink

from havel.gateway import db
from havel.gateway.outbox import Outbox


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = db.open_db(tmp_path / "havel.db")
    yield c
    c.close()


def wal_frames(conn: sqlite3.Connection) -> int:
    """WAL frames written so far (a checkpoint that has not run leaves them all in the log)."""
    return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


def test_a_held_acknowledgement_is_recorded_with_the_next_put(conn: sqlite3.Connection) -> None:
    ob = Outbox(conn, sinks=["platform"])
    ob.put(uplink(1, 1))
    [first] = ob.fetch("platform")
    ob.hold_acks("platform", [first.seq])
    assert ob.depth() == 1 and ob.held() == {"platform": [first.seq]}
    # the network server's transaction stores the next record: the delivered one goes in the same commit
    with db.unit_of_work(conn):
        ob.put(uplink(1, 2))
    assert ob.held() == {} and ob.depth() == 1
    assert [r.id for r in ob.fetch("platform")] == [uplink(1, 2)["id"]]
    assert ob.size_bytes() == conn.execute("SELECT sum(size) FROM outbox").fetchone()[0]


def test_commit_acks_records_what_no_put_took(conn: sqlite3.Connection) -> None:
    ob = Outbox(conn, sinks=["platform"])
    ob.put_many([uplink(1, f) for f in (1, 2, 3)])
    ob.hold_acks("platform", [r.seq for r in ob.fetch("platform")][:2])
    assert ob.held_count("platform") == 2
    assert ob.commit_acks() == 2
    assert ob.held_count("platform") == 0 and ob.depth() == 1
    assert ob.commit_acks() == 0  # nothing held: no transaction


def test_a_held_acknowledgement_whose_transaction_rolled_back_is_held_again(conn: sqlite3.Connection) -> None:
    ob = Outbox(conn, sinks=["platform"])
    ob.put(uplink(1, 1))
    [first] = ob.fetch("platform")
    ob.hold_acks("platform", [first.seq])
    with pytest.raises(RuntimeError), db.unit_of_work(conn):
        ob.put(uplink(1, 2))  # records the held acknowledgement inside this transaction ...
        raise RuntimeError("disk full at COMMIT")  # ... which does not commit
    assert ob.depth() == 1
    assert ob.held() == {"platform": [first.seq]}  # not lost: recorded again with the next commit
    assert ob.commit_acks() == 1 and ob.depth() == 0


def test_with_two_sinks_a_record_goes_when_both_held_acknowledgements_are_recorded(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    ob = Outbox(conn, sinks=["a", "b"])
    ob.put(uplink(1, 1))
    [r] = ob.fetch("a")
    ob.hold_acks("a", [r.seq])
    ob.put(uplink(1, 2))
    assert ob.depth("a") == 1 and ob.depth("b") == 2
    ob.hold_acks("b", [r.seq])
    assert ob.delivered(ob.held()) == 1  # delivered everywhere, its deletion pending
    ob.commit_acks()
    assert ob.depth() == 1 and ob.depth("b") == 1
    conn.close()


def test_storing_a_record_and_deleting_the_delivered_one_is_one_set_of_pages(
    conn: sqlite3.Connection,
) -> None:
    """At a city's pace the record delivered a moment ago and the new one share the outbox's pages: the
    held acknowledgement adds no page to the put's commit, where a commit of its own wrote them again."""
    ob = Outbox(conn, sinks=["platform"])
    ob.put(uplink(1, 1))
    ob.hold_acks("platform", [r.seq for r in ob.fetch("platform")])
    before = wal_frames(conn)
    ob.put(uplink(1, 2))  # stores 2, deletes 1
    together = wal_frames(conn) - before
    ob.hold_acks("platform", [r.seq for r in ob.fetch("platform")])
    before = wal_frames(conn)
    ob.commit_acks()  # deletes 2 on its own
    ob.put(uplink(1, 3))
    apart = wal_frames(conn) - before
    assert together < apart
    # and seqs never come back, also when the outbox was empty
    assert [r.seq for r in ob.fetch("platform")] == [3]
