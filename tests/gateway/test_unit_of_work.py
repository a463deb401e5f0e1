"""The database's one unit of work (db.unit_of_work) on a real SQLite file: the registry's session writes
and the outbox's records of one unit are committed together or not at all, nested units roll back alone,
and the registry's in-memory cache follows what was committed, never what was rolled back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from havel.errors import StorageError
from havel.gateway import db
from havel.gateway.network.sessions import Device, Session
from havel.gateway.outbox import Outbox
from havel.gateway.registry import Registry

EUI = 0x70B3D57ED0000001
ADDR = 0x26000001


def record(fcnt: int) -> dict[str, Any]:
    eui = f"{EUI:016X}"
    return {
        "id": f"{eui}-{fcnt}",
        "kind": "up",
        "dev_eui": eui,
        "fcnt32": fcnt,
        "priority": "background",
        "received_at": "2026-11-26T09:00:00.000Z",
        "payload": {"dev_eui": eui, "fcnt": fcnt, "data": {"t": fcnt}},
    }


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = db.open_db(tmp_path / "havel.db")
    yield c
    c.close()


@pytest.fixture
def reg(conn: sqlite3.Connection) -> Registry:
    r = Registry(conn)
    session = Session(ADDR, bytes(range(16)), bytes(range(16, 32)))
    r.add(Device(name="pegel-1", dev_eui=EUI, codec="water", activation="abp", session=session))
    return r


def stored(conn: sqlite3.Connection) -> tuple[Any, ...]:
    """What the database holds of the device's session and of the outbox."""
    fcnt_up, fcnt_down, dev_addr = conn.execute(
        "SELECT fcnt_up, fcnt_down, dev_addr FROM devices WHERE dev_eui = ?", (f"{EUI:016X}",)
    ).fetchone()
    nonces = conn.execute("SELECT count(*) FROM dev_nonces").fetchone()[0]
    return fcnt_up, fcnt_down, dev_addr, nonces, Outbox(conn).depth()


def cached(reg: Registry) -> tuple[Any, ...]:
    dev = reg.get(EUI)
    assert dev is not None and dev.session is not None
    return (
        dev.session.fcnt_up,
        dev.session.fcnt_down,
        dev.session.dev_addr,
        [d.name for d in reg.by_dev_addr(ADDR)],
    )


def test_a_failure_inside_a_unit_rolls_back_every_write_of_it(
    conn: sqlite3.Connection, reg: Registry
) -> None:
    outbox = Outbox(conn)
    with db.unit_of_work(conn):
        assert reg.set_fcnt_up(EUI, 1, 1000.0)
        outbox.put(record(1))
    before_db, before_cache = stored(conn), cached(reg)
    assert before_db == (1, 0, ADDR, 0, 1) and before_cache == (1, 0, ADDR, ["pegel-1"])

    with pytest.raises(RuntimeError, match="power cut"), db.unit_of_work(conn):
        assert reg.set_fcnt_up(EUI, 2, 1002.0)  # session counter
        assert reg.take_fcnt_down(EUI) == 0  # downlink counter
        outbox.put(record(2))  # outbox record
        with db.unit_of_work(conn):  # a writer's own unit inside: part of this one
            reg.activate(
                EUI, Session(0x26000002, bytes(16), bytes(16)), 7, rx1_delay=1, rx1_dr_offset=0, rx2_dr=0
            )
        raise RuntimeError("power cut")

    assert stored(conn) == before_db  # no write of that unit is in the database
    assert cached(reg) == before_cache  # nor in the registry's cache: a rolled-back uplink advances nothing
    assert reg.by_dev_addr(0x26000002) == []


def test_a_failed_nested_unit_rolls_back_alone(conn: sqlite3.Connection, reg: Registry) -> None:
    outbox = Outbox(conn)
    with db.unit_of_work(conn):
        assert reg.set_fcnt_up(EUI, 5, 1000.0)
        outbox.put(record(5))
        with pytest.raises(RuntimeError), db.unit_of_work(conn):
            assert reg.take_fcnt_down(EUI) == 0
            outbox.put(record(6))
            reg.activate(
                EUI, Session(0x26000002, bytes(16), bytes(16)), 7, rx1_delay=1, rx1_dr_offset=0, rx2_dr=0
            )
            raise RuntimeError("the downlink could not be scheduled")
        # the counter written before the nested unit still stands, with the session it belongs to
        assert reg.take_fcnt_down(EUI) == 0
    assert stored(conn) == (5, 1, ADDR, 0, 1)
    assert cached(reg) == (5, 1, ADDR, ["pegel-1"])


def test_the_registry_joins_a_unit_opened_by_another_writer(conn: sqlite3.Connection, reg: Registry) -> None:
    """The registry does not own the transaction: a unit the intake (or any writer) opens on the
    connection takes the registry's writes, and its cache changes apply when that unit commits."""
    with db.unit_of_work(conn):
        epoch = reg.activate(
            EUI, Session(0x26000003, bytes(16), bytes(16)), 9, rx1_delay=1, rx1_dr_offset=0, rx2_dr=0
        )
        assert reg.by_dev_addr(0x26000003) == []  # not before COMMIT
        assert not reg.set_fcnt_up(EUI, 8, 999.0)  # a frame of the session the join replaced: refused
        assert reg.set_fcnt_up(EUI, 1, 1000.0, epoch=epoch)
    dev = reg.get(EUI)
    assert dev is not None and dev.session is not None
    assert (dev.session.dev_addr, dev.session.fcnt_up) == (0x26000003, 1)
    assert [d.name for d in reg.by_dev_addr(0x26000003)] == ["pegel-1"]
    assert stored(conn) == (1, 0, 0x26000003, 1, 0)


def test_registry_writes_outside_a_unit_are_refused(conn: sqlite3.Connection, reg: Registry) -> None:
    with pytest.raises(StorageError, match="outside a transaction"):
        reg.set_fcnt_up(EUI, 1, 1000.0)
    assert db.current_unit(conn) is None
    with db.unit_of_work(conn) as unit:
        assert db.current_unit(conn) is unit
        with db.unit_of_work(conn) as inner:
            assert db.current_unit(conn) is inner and inner.root is unit
        assert db.current_unit(conn) is unit
    assert db.current_unit(conn) is None
