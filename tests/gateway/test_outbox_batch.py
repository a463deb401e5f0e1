"""put_many's batch path (one executemany; duplicates looked up only when rows did not go in) against
row-by-row puts: the same rows, the same order, the same return values and the same log lines, on a real
SQLite file."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from havel.gateway import db
from havel.gateway.outbox import Outbox
from havel.gateway.outbox_records import record_row

EUI_A = "70B3D57ED0000001"
EUI_B = "70B3D57ED0000002"


def rec(eui: str, fcnt: int, received: str | None = None, **payload: Any) -> dict[str, Any]:
    return {
        "id": f"{eui}-{fcnt}",
        "kind": "up",
        "dev_eui": eui,
        "fcnt32": fcnt,
        "priority": "background",
        "received_at": received or f"2026-11-26T09:00:{fcnt % 60:02d}.000Z",
        "payload": {"dev_eui": eui, "fcnt": fcnt, "data": {"t": fcnt}, **payload},
    }


def stored(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, kind, dev_eui, fcnt32, priority, received_at, payload, size, pending FROM outbox "
        "ORDER BY seq"
    ).fetchall()


# already stored, then a batch with: a copy of a stored one, an id collision (another receive time),
# the same id twice inside the batch, and new records of two devices interleaved
BEFORE = [rec(EUI_A, 1), rec(EUI_B, 5)]
BATCH = [
    rec(EUI_A, 2),
    rec(EUI_A, 1),
    rec(EUI_B, 6),
    rec(EUI_B, 5, received="2026-11-26T10:00:00.000Z"),
    rec(EUI_A, 3),
    rec(EUI_A, 3, received="2026-11-26T10:00:03.000Z"),
    rec(EUI_B, 7, buffered=True, id="ignored"),
]


@pytest.mark.parametrize("quota", [None, 10**9])
def test_batch_put_is_the_same_as_one_by_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, quota: int | None
) -> None:
    caplog.set_level(logging.INFO, logger="havel.gateway.outbox")
    batch_conn = db.open_db(tmp_path / "batch.db")
    single_conn = db.open_db(tmp_path / "single.db")
    batch = Outbox(batch_conn, quota_bytes=quota, sinks=["a", "b"])
    single = Outbox(single_conn, quota_bytes=quota, sinks=["a", "b"])
    assert batch.put_many(BEFORE) == 2 and single.put_many(BEFORE) == 2
    caplog.clear()
    with db.unit_of_work(batch_conn):  # inside the caller's transaction, as the network server does
        n = batch.put_many(BATCH)
    batch_logs = [r.getMessage() for r in caplog.records]
    caplog.clear()
    results = [single.put(r) for r in BATCH]
    single_logs = [r.getMessage() for r in caplog.records]

    assert n == sum(results) == 4
    assert results == [True, False, True, False, True, False, True]
    assert stored(batch_conn) == stored(single_conn)
    assert [r[0] for r in stored(batch_conn)] == [
        f"{EUI_A}-1",
        f"{EUI_B}-5",
        f"{EUI_A}-2",
        f"{EUI_B}-6",
        f"{EUI_A}-3",
        f"{EUI_B}-7",
    ]
    assert batch_logs == single_logs
    assert sum("id collision" in m for m in batch_logs) == 2  # B-5 and the second A-3
    assert sum("duplicate not stored" in m for m in batch_logs) == 1
    assert batch.size_bytes() == single.size_bytes() == sum(r[7] for r in stored(batch_conn))
    assert batch.depth() == 6

    # and the same as the row-by-row INSERT OR IGNORE path the quota policy uses (the reference)
    ref_conn = db.open_db(tmp_path / "reference.db")
    ref = Outbox(ref_conn, quota_bytes=quota, sinks=["a", "b"])
    ref.put_many(BEFORE)
    caplog.clear()
    with db.unit_of_work(ref_conn):
        assert ref._insert_each([record_row(r) for r in BATCH]) == 4
    assert [r.getMessage() for r in caplog.records] == batch_logs
    assert stored(ref_conn) == stored(batch_conn)
    ref_conn.close()
    # the stored message carries its id first and never `buffered`
    assert stored(batch_conn)[-1][6].startswith('{"id":"70B3D57ED0000002-7",')
    assert '"buffered"' not in stored(batch_conn)[-1][6]
    batch_conn.close()
    single_conn.close()


def test_failed_batch_stores_nothing(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    ob = Outbox(conn)
    ob.put(rec(EUI_A, 1))
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON outbox WHEN NEW.fcnt32 = 4 BEGIN "
        "SELECT RAISE(ABORT, 'refused'); END"
    )
    with pytest.raises(Exception, match="refused"):
        ob.put_many([rec(EUI_A, 2), rec(EUI_A, 3), rec(EUI_A, 4)])
    assert ob.ids() == [f"{EUI_A}-1"]
    assert ob.depth() == 1
    conn.close()
