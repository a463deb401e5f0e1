"""The durable outbox on a real SQLite file: order, per-sink acknowledgement, quota policy, bad input."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from havel.errors import InputError, StorageError
from havel.gateway import db
from havel.gateway.outbox import Outbox
from havel.gateway.outbox_records import ROW_OVERHEAD
from havel.gateway.outbox_sinks import discard_sink, pending_by_sink

EUI_A = "70B3D57ED0000001"
EUI_B = "70B3D57ED0000002"


def rec(
    eui: str, fcnt: int, priority: str = "background", kind: str = "up", **payload: Any
) -> dict[str, Any]:
    return {
        "id": f"{eui}-{fcnt}",
        "kind": kind,
        "dev_eui": eui,
        "fcnt32": fcnt,
        "priority": priority,
        "received_at": f"2026-11-26T09:{fcnt // 60 % 60:02d}:{fcnt % 60:02d}.000Z",
        "payload": {"dev_eui": eui, "fcnt": fcnt, "data": {"t": fcnt}, **payload},
    }


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    c = db.open_db(tmp_path / "havel.db")
    yield c
    c.close()


def drain(outbox: Outbox, sink: str, limit: int = 1000) -> list[str]:
    ids = [r.id for r in outbox.fetch(sink, limit)]
    outbox.ack(sink, ids)
    return ids


def test_open_db_is_durable(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.isolation_level is None  # autocommit: transactions are explicit


def test_put_fetch_ack_in_order(conn: sqlite3.Connection) -> None:
    ob = Outbox(conn)
    # interleaved devices: each device's records come out in FCnt order, overall in arrival order
    order = [(EUI_A, 1), (EUI_B, 7), (EUI_A, 2), (EUI_B, 8), (EUI_A, 3)]
    for eui, f in order:
        assert ob.put(rec(eui, f)) is True
    got = ob.fetch("primary", 10)
    assert [r.id for r in got] == [f"{e}-{f}" for e, f in order]
    assert got[0].payload == {"id": f"{EUI_A}-1", "dev_eui": EUI_A, "fcnt": 1, "data": {"t": 1}}
    assert got[0].received_at == "2026-11-26T09:00:01.000Z"
    # fetching does not consume: a crash before the ack means the records come again
    assert [r.id for r in ob.fetch("primary", 10)] == [r.id for r in got]
    assert [r.id for r in ob.fetch("primary", 2, after_seq=got[1].seq)] == [got[2].id, got[3].id]
    assert ob.ack("primary", [got[0].id, got[2].id]) == 2
    assert ob.ids() == [got[1].id, got[3].id, got[4].id]
    assert ob.depth() == 3


def test_stable_id_and_duplicates(conn: sqlite3.Connection) -> None:
    ob = Outbox(conn)
    r = rec(EUI_A, 5, buffered=True, id="something else")
    assert ob.put(r)
    assert ob.put(rec(EUI_A, 5)) is False  # same id again: stored once
    (got,) = ob.fetch("primary")
    assert got.payload["id"] == f"{EUI_A}-5"  # the record's id wins
    assert "buffered" not in got.payload  # decided at publish time


def test_id_collision_is_logged(conn: sqlite3.Connection, caplog: pytest.LogCaptureFixture) -> None:
    ob = Outbox(conn)
    ob.put(rec(EUI_A, 5))
    other = rec(EUI_A, 5)
    other["received_at"] = "2026-11-27T10:00:00.000Z"  # a rejoin restarted the counter
    caplog.set_level(logging.WARNING, logger="havel.gateway.outbox")
    assert ob.put(other) is False
    assert "collision" in caplog.text and f"{EUI_A}-5" in caplog.text


def test_deleted_only_after_every_sink_acked(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    ob = Outbox(conn, sinks=("platform", "file"))
    for f in range(1, 4):
        ob.put(rec(EUI_A, f))
    assert drain(ob, "platform") == [f"{EUI_A}-{f}" for f in (1, 2, 3)]
    assert ob.depth() == 3 and ob.depth("platform") == 0 and ob.depth("file") == 3
    assert ob.fetch("platform") == []
    ob.ack("file", [f"{EUI_A}-2"])
    assert ob.ids() == [f"{EUI_A}-1", f"{EUI_A}-3"]
    conn.close()

    # reopened: acknowledgements are durable; a sink removed from the config keeps its share until an
    # operator discards it
    conn = db.open_db(tmp_path / "havel.db")
    ob = Outbox(conn, sinks=("platform",))
    assert ob.depth() == 2 and ob.retired == {"file": 1}
    assert pending_by_sink(conn) == {"platform": 0, "file": 2}
    assert discard_sink(conn, "file") == (2, 2)
    assert ob.depth() == 0 and pending_by_sink(conn) == {"platform": 0}
    ob = Outbox(conn, sinks=("platform",))
    ob.put(rec(EUI_A, 9))
    ob2 = Outbox(conn, sinks=("platform", "backup"))  # a new sink only gets records from now on
    ob2.put(rec(EUI_A, 10))
    assert [r.id for r in ob2.fetch("backup")] == [f"{EUI_A}-10"]
    assert [r.id for r in ob2.fetch("platform")] == [f"{EUI_A}-9", f"{EUI_A}-10"]
    conn.close()


def test_put_joins_the_callers_transaction(conn: sqlite3.Connection) -> None:
    ob = Outbox(conn)
    conn.execute("CREATE TABLE counters (dev TEXT PRIMARY KEY, fcnt INTEGER)")
    with pytest.raises(RuntimeError), db.unit_of_work(conn):
        conn.execute("INSERT INTO counters VALUES (?, ?)", (EUI_A, 1))
        ob.put(rec(EUI_A, 1))
        raise RuntimeError("the uplink failed later")
    assert ob.depth() == 0 and conn.execute("SELECT count(*) FROM counters").fetchone()[0] == 0
    with db.unit_of_work(conn):
        conn.execute("INSERT INTO counters VALUES (?, ?)", (EUI_A, 1))
        ob.put(rec(EUI_A, 1))
    assert ob.depth() == 1 and conn.execute("SELECT count(*) FROM counters").fetchone()[0] == 1
    # group commit: many records, one transaction
    assert ob.put_many([rec(EUI_B, f) for f in range(100)]) == 100
    assert ob.depth() == 101


def test_nested_transaction_is_a_savepoint(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE t (x INTEGER)")
    with db.unit_of_work(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ValueError), db.unit_of_work(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            raise ValueError
        conn.execute("INSERT INTO t VALUES (3)")
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [1, 3]


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"id": ""}, "id"),
        ({"id": None}, "id"),
        ({"kind": "uplink"}, "kind"),
        ({"priority": "urgent"}, "priority"),
        ({"received_at": 12}, "received_at"),
        ({"fcnt32": -1}, "fcnt32"),
        ({"fcnt32": "7"}, "fcnt32"),
        ({"payload": "text"}, "payload"),
        ({"payload": {"x": float("nan")}}, "JSON"),
        ({"payload": {"x": object()}}, "JSON"),
        ({"dev_eui": 1.5}, "dev_eui"),
    ],
)
def test_bad_records_are_refused_and_nothing_is_stored(
    conn: sqlite3.Connection, change: dict[str, Any], what: str
) -> None:
    ob = Outbox(conn)
    ob.put(rec(EUI_A, 1))
    with pytest.raises(InputError) as info:
        ob.put_many([rec(EUI_A, 2), {**rec(EUI_A, 3), **change}])
    assert what in str(info.value)
    assert ob.ids() == [f"{EUI_A}-1"]  # the good record of the same batch was not stored either


def test_bad_arguments(conn: sqlite3.Connection) -> None:
    with pytest.raises(InputError):
        Outbox(conn, sinks=())
    with pytest.raises(InputError):
        Outbox(conn, quota_bytes=0)
    ob = Outbox(conn)
    with pytest.raises(InputError):
        ob.fetch("nonexistent")
    with pytest.raises(InputError):
        ob.fetch("primary", priorities=["urgent"])
    with pytest.raises(InputError):
        ob.put("not a dict")  # type: ignore[arg-type]


def test_int_dev_eui_is_written_as_hex(conn: sqlite3.Connection) -> None:
    ob = Outbox(conn)
    r = rec(EUI_A, 1)
    r["dev_eui"] = 0x70B3D57ED0000001
    ob.put(r)
    assert ob.fetch("primary")[0].dev_eui == EUI_A


def test_priority_is_a_first_class_column(conn: sqlite3.Connection) -> None:
    ob = Outbox(conn)
    ob.put(rec(EUI_A, 1, "background"))
    ob.put(rec(EUI_A, 2, "alarm"))
    ob.put(rec(EUI_B, 1, "state"))
    ob.put(rec(EUI_A, 3, "alarm"))
    assert [r.id for r in ob.fetch("primary", priorities=["alarm"])] == [f"{EUI_A}-2", f"{EUI_A}-3"]
    assert [r.priority for r in ob.fetch("primary")] == ["background", "alarm", "state", "alarm"]


def _size(r: dict[str, Any], conn: sqlite3.Connection) -> int:
    ob = Outbox(conn, sinks=("probe",))
    ob.put(r)
    size = ob.size_bytes()
    ob.ack("probe", [r["id"]])
    return size


def test_quota_drops_oldest_background_then_state_never_alarms(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    one = _size(rec(EUI_A, 10), conn)  # every record below has the same size
    assert one > ROW_OVERHEAD
    conn.close()
    (tmp_path / "havel.db").unlink()
    db.marker_path(tmp_path / "havel.db").unlink()  # a new database on purpose
    conn = db.open_db(tmp_path / "havel.db")
    ob = Outbox(conn, quota_bytes=6 * one)
    plan = [
        ("alarm", 10),
        ("background", 11),
        ("state", 12),
        ("background", 13),
        ("alarm", 14),
        ("state", 15),
    ]
    for prio, f in plan:
        assert ob.put(rec(EUI_A, f, prio))
    assert ob.size_bytes() == 6 * one
    caplog.set_level(logging.WARNING, logger="havel.gateway.outbox")

    assert ob.put(rec(EUI_A, 16, "alarm"))  # full: the oldest background goes
    assert f"{EUI_A}-11" not in ob.ids()
    assert ob.put(rec(EUI_A, 17, "background"))  # the other background goes
    assert f"{EUI_A}-13" not in ob.ids()
    assert ob.put(rec(EUI_A, 18, "state"))  # the new background (the oldest left) goes
    assert f"{EUI_A}-17" not in ob.ids()
    assert ob.put(rec(EUI_A, 19, "alarm"))  # no background left: the oldest state goes
    assert f"{EUI_A}-12" not in ob.ids()
    assert ob.put(rec(EUI_A, 20, "background")) is False  # only state/alarm older: the newcomer is dropped
    assert ob.dropped() == {"background": 4, "state": 1}
    assert ob.size_bytes() <= 6 * one

    # only alarms left after two more: alarms are never dropped, the quota is exceeded instead
    ob.put(rec(EUI_A, 21, "alarm"))
    ob.put(rec(EUI_A, 22, "alarm"))
    assert ob.put(rec(EUI_A, 23, "alarm"))
    assert ob.put(rec(EUI_A, 24, "state")) is False
    assert {r.priority for r in ob.fetch("primary", 100)} == {"alarm"}
    assert [r.id for r in ob.fetch("primary", 100)] == [f"{EUI_A}-{f}" for f in (10, 14, 16, 19, 21, 22, 23)]
    assert ob.size_bytes() > 6 * one
    assert ob.dropped() == {"background": 4, "state": 4}

    # every drop was logged with its id
    logged = " ".join(r.getMessage() for r in caplog.records)
    for f in (11, 13, 17, 20, 12, 15, 18, 24):
        assert f"{EUI_A}-{f}" in logged
    assert "never dropped" in logged
    conn.close()

    # the counts survive a restart
    conn = db.open_db(tmp_path / "havel.db")
    assert Outbox(conn, quota_bytes=6 * one).dropped() == {"background": 4, "state": 4}
    conn.close()


def test_quota_counts_exactly_after_rollback(conn: sqlite3.Connection) -> None:
    ob = Outbox(conn, quota_bytes=10_000)
    with pytest.raises(RuntimeError), db.unit_of_work(conn):
        ob.put_many([rec(EUI_A, f) for f in range(40)])
        raise RuntimeError
    assert ob.size_bytes() == 0
    # the rolled-back bytes do not count: all 40 fit, nothing is dropped
    assert ob.put_many([rec(EUI_A, f) for f in range(40)]) == 40
    assert ob.dropped() == {"background": 0, "state": 0}
    assert 0 < ob.size_bytes() <= 10_000


def test_full_database_is_a_storage_error_and_keeps_what_was_committed(tmp_path: Path) -> None:
    path = tmp_path / "havel.db"
    conn = db.open_db(path)
    ob = Outbox(conn)
    ob.put_many([rec(EUI_A, f) for f in range(50)])
    # SQLite's own size limit gives exactly the SQLITE_FULL a full disk gives
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    big = "x" * 3000
    with pytest.raises(StorageError) as info:
        for f in range(50, 200):
            ob.put(rec(EUI_A, f, blob=big))
    assert "full" in str(info.value)
    stored = ob.ids()
    assert stored[:50] == [f"{EUI_A}-{f}" for f in range(50)]
    # a group commit that hits the limit stores none of its records
    with pytest.raises(StorageError):
        ob.put_many([rec(EUI_B, f, blob=big) for f in range(20)])
    assert ob.ids() == stored
    # acknowledging (deleting) still works on a full database; with room again, puts work again
    ob.ack("primary", stored[:40])
    conn.execute("PRAGMA max_page_count = 1000000")
    assert ob.put(rec(EUI_B, 1, blob=big))
    conn.close()
    conn = db.open_db(path)
    assert Outbox(conn).ids() == [*stored[40:], f"{EUI_B}-1"]
    conn.close()


def test_unusable_database_is_a_storage_error(tmp_path: Path) -> None:
    bad = tmp_path / "havel.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError):
        Outbox(db.open_db(bad))
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError):
        db.open_db(tmp_path / "file" / "sub" / "havel.db")


def test_drop_order_is_configurable(conn: sqlite3.Connection) -> None:
    one = _size(rec(EUI_A, 10), conn)
    ob = Outbox(conn, quota_bytes=3 * one, drop_order=("background",))
    for f, prio in ((10, "state"), (11, "state"), (12, "background")):
        ob.put(rec(EUI_A, f, prio))
    assert ob.put(rec(EUI_A, 13, "state"))  # the background one goes
    assert ob.put(rec(EUI_A, 14, "state"))  # state is kept now: stored above the quota
    assert ob.ids() == [f"{EUI_A}-{f}" for f in (10, 11, 13, 14)]
    assert ob.dropped() == {"background": 1, "state": 0}
    for bad in (("alarm",), ("state", "state"), ("sometimes",)):
        with pytest.raises(InputError):
            Outbox(conn, drop_order=bad)


def _totals(conn: sqlite3.Connection) -> tuple[int, int]:
    rows, size = conn.execute("SELECT rows, bytes FROM outbox_totals").fetchone()
    return int(rows), int(size)


def _counted(conn: sqlite3.Connection) -> tuple[int, int]:
    rows, size = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM outbox").fetchone()
    return int(rows), int(size)


def test_totals_follow_every_insert_and_delete_path(tmp_path: Path) -> None:
    """The stored totals (depth, quota) equal a count of the rows after puts, batch puts, duplicates,
    acknowledgements by id and by seq, multi-sink acknowledgement, quota drops and a removed sink."""
    conn = db.open_db(tmp_path / "havel.db")
    ob = Outbox(conn, sinks=["a", "b"])
    ob.put(rec(EUI_A, 1))
    assert ob.put_many([rec(EUI_A, 2), rec(EUI_A, 3), rec(EUI_A, 2), rec(EUI_B, 1, "alarm")]) == 3
    assert ob.put(rec(EUI_A, 3)) is False  # a duplicate changes nothing
    assert _totals(conn) == _counted(conn) and _totals(conn)[0] == 4
    ob.ack("a", [r.id for r in ob.fetch("a", 2)])
    assert _totals(conn) == _counted(conn) and _totals(conn)[0] == 4  # b still owes them
    ob.ack_seqs("b", [r.seq for r in ob.fetch("b", 1)])
    assert _totals(conn) == _counted(conn) and _totals(conn)[0] == 3
    conn.close()
    conn = db.open_db(tmp_path / "havel.db")
    ob = Outbox(conn, sinks=["a"])  # b is gone: its share stays until discarded
    assert _totals(conn) == _counted(conn)
    discard_sink(conn, "b")  # released: rows only a still needs stay
    assert _totals(conn) == _counted(conn)
    size = _counted(conn)[1]
    quota = Outbox(conn, sinks=["a"], quota_bytes=size + 10)
    quota.put(rec(EUI_B, 9))  # over the quota: the oldest background record goes
    assert quota.dropped()["background"] >= 1
    assert _totals(conn) == _counted(conn)
    assert quota.depth() == _counted(conn)[0]
    conn.close()


def test_old_databases_lose_the_per_row_triggers_and_keep_exact_totals(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    ob = Outbox(conn)
    ob.put_many([rec(EUI_A, f) for f in range(1, 6)])
    # as an earlier release left it: per-row triggers, totals that a crash of that release cannot skew, no
    # schema version
    conn.executescript(
        """
        CREATE TRIGGER outbox_totals_ins AFTER INSERT ON outbox BEGIN
            UPDATE outbox_totals SET rows = rows + 1, bytes = bytes + NEW.size WHERE one = 1;
        END;
        CREATE TRIGGER outbox_totals_del AFTER DELETE ON outbox BEGIN
            UPDATE outbox_totals SET rows = rows - 1, bytes = bytes - OLD.size WHERE one = 1;
        END;
        UPDATE outbox_totals SET rows = 999, bytes = 999;
        PRAGMA user_version = 0;
        """
    )
    conn.close()
    conn = db.open_db(tmp_path / "havel.db")
    ob = Outbox(conn)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0] == 0
    assert _totals(conn) == _counted(conn) and _totals(conn)[0] == 5
    ob.put(rec(EUI_A, 6))  # counted once, not twice
    drain(ob, "primary", 3)
    assert _totals(conn) == _counted(conn) and _totals(conn)[0] == 3
    conn.close()


def test_payload_text_given_by_the_producer_must_be_that_payload(conn: sqlite3.Connection) -> None:
    """The network server hands over the JSON text it already encoded; text that is not the record's own
    (another id first, or with `buffered`) is refused and nothing is stored."""
    import json

    ob = Outbox(conn)
    good = rec(EUI_A, 1)
    payload = {"id": good["id"], **good["payload"]}
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    assert ob.put(good | {"payload": payload, "payload_json": text}) is True
    assert ob.fetch("primary", 1)[0].payload == payload
    other = rec(EUI_A, 2)
    with pytest.raises(InputError):
        ob.put(other | {"payload": {"id": other["id"], **other["payload"]}, "payload_json": text})
    with pytest.raises(InputError):
        ob.put(other | {"payload": {"id": other["id"], "buffered": True}, "payload_json": '{"id":"x"}'})
    assert ob.ids() == [good["id"]]


def test_delivered_counts_records_every_owing_sink_holds_an_ack_for(conn: sqlite3.Connection) -> None:
    ob = Outbox(conn, sinks=("platform", "file"))
    ob.put_many([rec(EUI_A, f) for f in (1, 2, 3)])
    s1, s2, s3 = (r.seq for r in ob.fetch("platform", 10))
    ob.ack_seqs("file", [s1])  # committed for one sink: only "platform" still owes it
    assert ob.delivered({}) == 0
    # acknowledged in memory: 1 by platform (file's is committed), 2 by both, 3 by platform only
    held = {"platform": {s1, s2, s3}, "file": {s2}}
    assert ob.delivered(held) == 2
    assert ob.delivered({"platform": {s1}}) == 1 and ob.delivered({"file": {s2}}) == 0
    assert ob.depth() == 3  # still stored: delivered is what the depth holds beyond what waits


def test_delivered_over_runs_and_scattered_seqs_as_the_forwarder_holds_them(conn: sqlite3.Connection) -> None:
    """The forwarder holds its acknowledged seqs in lists of up to ack_batch: one run (counted over a seq
    range) or scattered (looked up one by one); rows in the range that no sink holds do not count."""
    ob = Outbox(conn, sinks=("platform", "file"))
    ob.put_many([rec(EUI_A, f) for f in range(1, 301)])
    seqs = [r.seq for r in ob.fetch("platform", 300)]
    ob.ack_seqs("file", seqs)  # only platform owes them now
    assert ob.delivered({"platform": seqs[:200]}) == 200  # a run
    assert ob.delivered({"platform": seqs[::2]}) == 150  # every other one: the range holds unheld rows
    assert ob.delivered({"platform": seqs[::50]}) == 6  # scattered: looked up one by one
    assert ob.delivered({"file": seqs}) == 0  # file's are committed already: platform still owes them
