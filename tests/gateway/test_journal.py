"""The intake journal: datagram rows with a mask of waiting rxpk, single rows, what a restart gets back."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from havel.gateway import db
from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.backends.semtech_udp.rxpk import RxPacket, rxpk_to_json
from havel.gateway.journal import MASK_BITS, Journal

GW = 0xAA555A0000000001  # above 2**63: stored as text, not as an SQLite integer
T0 = datetime(2026, 11, 26, 3, 0, 0, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return db.open_db(tmp_path / "havel.db")


def rx(k: int, **extra: object) -> RxPacket:
    return RxPacket(
        data=bytes([0x40, k]), tmst=k, freq_hz=868_100_000, datr="SF7BW125", lsnr=5.0, rssi=-90, **extra
    )


def datagram(n: int, first: int = 0) -> bytes:
    return gwmp.encode_push_data(2, 1, GW, rxpk=[rxpk_to_json(rx(first + k)) for k in range(n)])


def add(journal: Journal, conn: sqlite3.Connection, n: int, wanted: int, at: float, first: int = 0) -> int:
    with db.unit_of_work(conn):
        [seq] = journal.add_datagrams([(GW, datagram(n, first), at, wanted)])
    return seq


def tmsts(journal: Journal) -> list[int]:
    return [e.rx.tmst for e in journal.pending()]


def test_a_datagram_gives_back_the_rxpk_of_its_mask_in_order(conn: sqlite3.Connection) -> None:
    journal = Journal(conn)
    seq = add(journal, conn, 4, 0b1101, T0.timestamp())
    entries = Journal(conn).pending()  # (as after a restart)
    assert [e.rx.tmst for e in entries] == [0, 2, 3]
    assert [e.seq for e in entries] == [Journal.datagram_id(seq, i) for i in (0, 2, 3)]
    assert all(e.seq < 0 and e.gateway_eui == GW for e in entries)
    assert {(e.received_at, e.time_source) for e in entries} == {(T0, "local")}
    assert journal.depth() == 3


def test_gps_time_is_the_receive_time_as_the_daemon_chose_it(conn: sqlite3.Connection) -> None:
    journal = Journal(conn)
    gps_time = datetime(2026, 11, 26, 2, 59, 59, 500000, tzinfo=UTC)
    dg = gwmp.encode_push_data(2, 1, GW, rxpk=[rxpk_to_json(rx(1, time=gps_time, tmms=1_000_000))])
    with db.unit_of_work(conn):
        journal.add_datagrams([(GW, dg, T0.timestamp(), 0b1)])
    [e] = journal.pending()
    assert (e.received_at, e.time_source) == (gps_time, "gps")


def rows(conn: sqlite3.Connection) -> tuple[int, int]:
    return (
        conn.execute("SELECT count(*) FROM intake").fetchone()[0],
        conn.execute("SELECT count(*) FROM intake_datagrams").fetchone()[0],
    )


def test_a_whole_datagram_stored_in_one_batch_leaves_no_row(conn: sqlite3.Connection) -> None:
    journal = Journal(conn)
    seq = add(journal, conn, 3, 0b111, T0.timestamp())
    with db.unit_of_work(conn):
        journal.forget([Journal.datagram_id(seq, i) for i in (2, 0, 1)])
    assert journal.pending() == [] and journal.depth() == 0
    assert rows(conn) == (0, 1)  # marked done: deleted with the next journal commit
    journal.settle()
    assert rows(conn) == (0, 0)


def test_what_was_stored_leaves_the_journal_with_its_next_commit(conn: sqlite3.Connection) -> None:
    """The commit that stores a frame only marks its journal row (in memory); the next journal commit,
    which writes the journal's page anyway, deletes it: one page write per uplink instead of two."""
    journal = Journal(conn)
    with db.unit_of_work(conn):
        first = journal.add(GW, rx(1), T0, "local")
    with db.unit_of_work(conn):
        journal.forget([first])
    assert rows(conn) == (1, 0) and journal.pending() == [] and journal.depth() == 0
    with db.unit_of_work(conn):
        second = journal.add(GW, rx(2), T0, "local")
    assert conn.execute("SELECT seq FROM intake").fetchall() == [(second,)]
    assert tmsts(journal) == [2]


def test_a_mark_not_yet_applied_is_lost_with_the_process_the_frame_comes_back(tmp_path: Path) -> None:
    """After a crash between the store and the next journal commit the frame is still journaled: it is
    replayed at start (and the network server refuses its counter as a replay: nothing twice)."""
    conn = db.open_db(tmp_path / "havel.db")
    journal = Journal(conn)
    with db.unit_of_work(conn):
        seq = journal.add(GW, rx(7), T0, "local")
    with db.unit_of_work(conn):
        journal.forget([seq])
    assert journal.pending() == []
    conn.close()  # (the TEMP table of marks goes with the connection)
    again = db.open_db(tmp_path / "havel.db")
    assert [e.rx.tmst for e in Journal(again).pending()] == [7]
    again.close()


def test_a_rolled_back_store_leaves_no_mark(conn: sqlite3.Connection) -> None:
    journal = Journal(conn)
    with db.unit_of_work(conn):
        seq = journal.add(GW, rx(3), T0, "local")
    with pytest.raises(RuntimeError), db.unit_of_work(conn):
        journal.forget([seq])
        raise RuntimeError("disk full at COMMIT")
    assert tmsts(journal) == [3]
    with db.unit_of_work(conn):
        journal.add(GW, rx(4), T0, "local")
    assert tmsts(journal) == [3, 4] and rows(conn) == (2, 0)


def test_a_datagram_stored_over_two_batches(conn: sqlite3.Connection) -> None:
    journal = Journal(conn)
    seq = add(journal, conn, 3, 0b111, T0.timestamp())
    with db.unit_of_work(conn):
        journal.forget([Journal.datagram_id(seq, 1)])
    assert tmsts(Journal(conn)) == [0, 2]
    with db.unit_of_work(conn):
        journal.forget([Journal.datagram_id(seq, 0), Journal.datagram_id(seq, 2)])
    assert journal.pending() == [] and journal.depth() == 0


def test_a_batch_that_failed_to_commit_leaves_its_rxpk_waiting(conn: sqlite3.Connection) -> None:
    """The in-memory mask is a hint only: after a rolled-back batch, finishing the rest of the datagram
    must not delete the row while the rolled-back rxpk still wait in it."""
    journal = Journal(conn)
    seq = add(journal, conn, 3, 0b111, T0.timestamp())
    with pytest.raises(RuntimeError), db.unit_of_work(conn):
        journal.forget([Journal.datagram_id(seq, 0), Journal.datagram_id(seq, 1)])
        raise RuntimeError("disk full at COMMIT")
    with db.unit_of_work(conn):
        journal.forget([Journal.datagram_id(seq, 2)])
    assert tmsts(journal) == [0, 1]
    # and a whole datagram's batch rolled back keeps the whole row
    seq2 = add(journal, conn, 2, 0b11, T0.timestamp() + 1, first=10)
    with pytest.raises(RuntimeError), db.unit_of_work(conn):
        journal.forget([Journal.datagram_id(seq2, 0), Journal.datagram_id(seq2, 1)])
        raise RuntimeError("power cut")
    assert tmsts(journal) == [0, 1, 10, 11]


def test_single_rows_and_datagram_rows_come_back_in_arrival_order(conn: sqlite3.Connection) -> None:
    journal = Journal(conn)
    with db.unit_of_work(conn):
        first = journal.add(GW, rx(100), T0, "local")
    add(journal, conn, 2, 0b11, T0.timestamp() + 1)
    with db.unit_of_work(conn):
        journal.add(GW, rx(200), datetime.fromtimestamp(T0.timestamp() + 2, UTC), "local")
    assert tmsts(journal) == [100, 0, 1, 200]
    assert first > 0  # single rows keep positive ids, datagram rxpk negative ones: forget takes both
    with db.unit_of_work(conn):
        journal.forget([e.seq for e in journal.pending()])
    assert journal.depth() == 0


def test_the_order_is_arrival_even_when_the_clock_stepped_back(conn: sqlite3.Connection) -> None:
    """A Pi without a real-time clock may set its clock back (NTP after boot): frames of one device must
    still come back in the order they came, or the earlier counter would be refused as a replay."""
    journal = Journal(conn)
    add(journal, conn, 1, 0b1, T0.timestamp() + 3600, first=1)
    with db.unit_of_work(conn):
        journal.add(GW, rx(2), T0, "local")
    add(journal, conn, 1, 0b1, T0.timestamp(), first=3)
    assert tmsts(Journal(conn)) == [1, 2, 3]  # (and after a restart: the counter continues)
    assert add(Journal(conn), conn, 1, 0b1, T0.timestamp(), first=4) == 4


def test_datagrams_and_single_receptions_in_one_call_keep_their_order(conn: sqlite3.Connection) -> None:
    journal = Journal(conn)
    with db.unit_of_work(conn):
        seqs = journal.add_in_order(
            [
                (GW, datagram(2, first=10), T0.timestamp(), 0b11),
                (GW, rx(20), T0, "local"),
                (GW, datagram(1, first=30), T0.timestamp(), 0b1),
            ]
        )
    assert seqs == [1, 2, 3]
    assert tmsts(Journal(conn)) == [10, 11, 20, 30]
    with db.unit_of_work(conn):
        journal.forget([Journal.datagram_id(1, 0), Journal.datagram_id(1, 1), 2, Journal.datagram_id(3, 0)])
    assert journal.depth() == 0


def test_an_unreadable_datagram_row_is_reported_not_fatal(
    conn: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(conn)
    add(journal, conn, 1, 0b1, T0.timestamp())
    row = (f"{GW:016X}", T0.timestamp(), b"junk")
    conn.execute("INSERT INTO intake_datagrams VALUES (99, ?, ?, 1, ?)", row)
    assert tmsts(journal) == [0]
    assert "datagram 99 is unreadable" in caplog.text


def test_the_mask_holds_62_rxpk() -> None:
    assert MASK_BITS == 62 and Journal.datagram_id(1, MASK_BITS - 1) == -(1 << 6 | 61)
