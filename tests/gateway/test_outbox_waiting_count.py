"""The status document's records waiting per sink, without reading every row of a large backlog."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from support.outbox_records import uplink

from havel.gateway import db
from havel.gateway.outbox import Outbox
from havel.gateway.outbox_sinks import pending_by_sink


def outbox_reads(conn: sqlite3.Connection) -> tuple[dict[str, int], list[str]]:
    """pending_by_sink and the statements it ran that read the outbox table itself."""
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        counted = pending_by_sink(conn)
    finally:
        conn.set_trace_callback(None)
    return counted, [s for s in seen if re.search(r"FROM outbox\b(?!_)", s)]


def test_one_sink_is_counted_from_the_totals_row(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    ob = Outbox(conn, sinks=["platform"])
    ob.put_many([uplink(i % 7, 1 + i) for i in range(500)])
    ob.ack("platform", [uplink(i % 7, 1 + i)["id"] for i in range(120)])
    counted, statements = outbox_reads(conn)
    assert counted == {"platform": 380} == {"platform": ob.depth()}
    assert statements == []  # no count(*) over the outbox table itself


def test_several_sinks_are_counted_each(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    ob = Outbox(conn, sinks=["platform", "file"])
    ob.put_many([uplink(i % 7, 1 + i) for i in range(50)])
    ob.ack("platform", [uplink(i % 7, 1 + i)["id"] for i in range(20)])
    assert pending_by_sink(conn) == {"platform": 30, "file": 50}
