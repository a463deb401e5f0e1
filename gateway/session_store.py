"""The session and counter store on SQLite: what the network server reads and writes per frame.

The network server talks to a :class:`~havel.gateway.network.sessions.SessionStore` (a small Protocol)
rather than to SQLite, so that another store (one shared by several gateways) can take its place.
:class:`SqliteSessionStore` is the SQLite one (the :class:`~havel.gateway.registry.Registry` adds the
device commands to it). It keeps every device in memory (a roof serves hundreds, not millions) and writes
through. Its writes belong to the unit of work open on its connection (:func:`havel.gateway.db.unit_of_work`,
which it joins at its first write); its cache changes apply only when that unit commits, so a rolled-back
uplink never advances a counter. A registry version in the ``meta`` table, bumped by every CLI change,
tells a running daemon to reload.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from havel.codecs.lorawan.ids import eui_hex
from havel.errors import StorageError
from havel.gateway import db, schema
from havel.gateway.device_rows import keep_private, load_devices, replaced
from havel.gateway.network.sessions import Device, Session


class SqliteSessionStore:
    """The SQLite session store (see the module docstring); a participant of the unit of work."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        schema.migrate(conn)
        keep_private(conn)
        self._devices: dict[int, Device] = {}
        self._by_addr: dict[int, list[Device]] = {}
        self._version = -1
        # cache changes to apply at COMMIT; None while the store takes part in no open unit of work
        self._pending: list[Callable[[], None]] | None = None
        # counters to write at COMMIT: DevEUI -> (FCnt, seen at, session epoch they belong to)
        self._fcnt_writes: dict[int, tuple[int, float, int]] = {}
        self._activated: dict[int, int] = {}  # devices joined in the open unit of work -> their new epoch
        self.refresh(force=True)

    # ---------------------------------------------------------------------------------- cache and txns
    def refresh(self, force: bool = False) -> None:
        """Reload the cache when the registry version changed (or always with ``force``)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'registry_version'").fetchone()
        version = int(row[0]) if row else 0
        if not force and version == self._version:
            return
        self._version = version
        self._devices = {d.dev_eui: d for d in load_devices(self.conn)}
        self._reindex()

    def _reindex(self) -> None:
        by_addr: dict[int, list[Device]] = {}
        for d in self._devices.values():
            if d.session is not None:
                by_addr.setdefault(d.session.dev_addr, []).append(d)
        self._by_addr = by_addr

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One unit of work on the store's connection (:func:`havel.gateway.db.unit_of_work`; nested: a
        savepoint whose cache changes go if it rolls back); cache changes made inside apply after COMMIT."""
        with db.unit_of_work(self.conn):
            yield self.conn

    def _join(self) -> None:
        """Take part in the unit of work open on the connection (StorageError when there is none)."""
        unit = db.current_unit(self.conn)
        if unit is None:
            raise StorageError(
                "registry change outside a transaction",
                hint="wrap the call in 'with db.unit_of_work(conn):' (or 'with registry.transaction():')",
            )
        self._pending = []
        self._fcnt_writes = {}
        self._activated = {}
        unit.join(self)

    # the unit of work's Participant protocol
    def savepoint(self) -> object:
        assert self._pending is not None
        return len(self._pending), dict(self._fcnt_writes), dict(self._activated)

    def rollback_to(self, mark: Any) -> None:
        assert self._pending is not None
        n: int = mark[0]
        writes: dict[int, tuple[int, float, int]] = mark[1]
        activated: dict[int, int] = mark[2]
        del self._pending[n:]
        self._fcnt_writes = writes
        self._activated = activated

    def before_commit(self) -> None:
        if self._fcnt_writes:  # the counters of a whole batch in one statement, just before COMMIT
            # only onto the session they belong to: a session replaced meanwhile (a join, a device
            # added again by the CLI) starts without a counter
            devices = self._devices  # (their DevEUI texts are made already: one per uplink otherwise)
            self.conn.executemany(
                "UPDATE devices SET fcnt_up = ?, last_seen = ? WHERE dev_eui = ? AND session_epoch = ?",
                [
                    (f, seen, dev.eui_hex if (dev := devices.get(eui)) is not None else eui_hex(eui), ep)
                    for eui, (f, seen, ep) in self._fcnt_writes.items()
                ],
            )

    def committed(self) -> None:
        pending, writes = self._pending or [], self._fcnt_writes
        self.aborted()
        for apply in pending:
            apply()
        self._apply_fcnt(writes)

    def aborted(self) -> None:
        """(Also once a commit is done: the store takes part in no unit of work any more.)"""
        self._pending = None
        self._fcnt_writes = {}
        self._activated = {}

    def _apply_fcnt(self, writes: dict[int, tuple[int, float, int]]) -> None:
        """The committed counters into the cache, in place.

        The one change made to cached Device and Session objects instead of replacing them: it comes with
        every uplink, and a copy of both per uplink (plus the DevAddr index swap) was about a tenth of the
        network server's flush. The frame counter only ever grows, and only once its commit is done, so a
        holder of an older object (an Outcome, a status listing) sees the committed counter, never one that
        could still roll back."""
        devices, put = self._devices, object.__setattr__  # (frozen dataclasses refuse plain setattr)
        for eui, (fcnt_up, seen, epoch) in writes.items():
            dev = devices.get(eui)
            if dev is None or dev.session is None or dev.session.epoch != epoch:
                continue
            put(dev.session, "fcnt_up", fcnt_up)
            put(dev, "last_seen", seen)

    def _replace_cached(self, new: Device) -> None:
        """A device's new cached copy, its session (if any) on the same DevAddr as before: swapped into the
        DevAddr index in place, O(devices sharing it)."""
        self._devices[new.dev_eui] = new
        if new.session is not None:
            peers = self._by_addr.get(new.session.dev_addr)
            if peers is not None:
                for i, d in enumerate(peers):
                    if d.dev_eui == new.dev_eui:
                        peers[i] = new

    def _later(self, fn: Callable[[], None]) -> None:
        if self._pending is None:
            self._join()
        assert self._pending is not None
        self._pending.append(fn)

    def _update(self, dev_eui: int, reindex: bool = False, **changes: Any) -> None:
        def apply() -> None:
            dev = self._devices.get(dev_eui)
            if dev is None:
                return
            sess_changes = {k[5:]: v for k, v in changes.items() if k.startswith("sess_")}
            dev_changes = {k: v for k, v in changes.items() if not k.startswith("sess_")}
            if sess_changes and dev.session is not None:
                dev_changes["session"] = replaced(dev.session, sess_changes)
            new = replaced(dev, dev_changes)
            if reindex:  # a new session (join): the DevAddr index changes
                self._devices[dev_eui] = new
                self._reindex()
            else:
                self._replace_cached(new)

        self._later(apply)

    # ----------------------------------------------------------------------------------- SessionStore
    def by_dev_addr(self, dev_addr: int) -> list[Device]:
        return self._by_addr.get(dev_addr, [])

    def get(self, dev_eui: int) -> Device | None:
        return self._devices.get(dev_eui)

    def by_join(self, join_eui: int, dev_eui: int) -> Device | None:
        dev = self._devices.get(dev_eui)
        if dev is None or dev.activation != "otaa" or dev.join_eui != join_eui:
            return None
        return dev

    def set_fcnt_up(self, dev_eui: int, fcnt32: int, seen_at: float, *, epoch: int | None = None) -> bool:
        # written with the batch's other counters just before the unit of work commits, and into the cache
        # after it did (see before_commit() and committed()): per uplink only this dict entry
        if self._pending is None:
            self._join()  # raises: a counter is only ever written inside a unit of work
        if epoch is None:
            dev = self._devices.get(dev_eui)
            epoch = dev.session.epoch if dev is not None and dev.session is not None else 0
        joined = self._activated.get(dev_eui)
        if joined is not None and joined != epoch:
            # a frame of the session a join earlier in this transaction replaced (batch order is arrival
            # order, not the order the device sent in): its counter is not the new session's
            return False
        earlier = self._fcnt_writes.get(dev_eui)
        if earlier is not None and earlier[2] == epoch and earlier[0] >= fcnt32:
            # the cache is updated at COMMIT: a caller checked this frame against a counter from before an
            # earlier write of the same transaction (a replay would pass). Refuse rather than go backwards.
            raise StorageError(
                f"frame counter {fcnt32} of {eui_hex(dev_eui)} is not above {earlier[0]} written earlier in "
                "this transaction",
                hint="process one batch of uplinks per transaction",
            )
        self._fcnt_writes[dev_eui] = (fcnt32, seen_at, epoch)
        return True

    def take_fcnt_down(self, dev_eui: int) -> int:
        row = self.conn.execute(
            "UPDATE devices SET fcnt_down = fcnt_down + 1 WHERE dev_eui = ? RETURNING fcnt_down - 1",
            (eui_hex(dev_eui),),
        ).fetchone()
        if row is None:
            raise StorageError(f"device {eui_hex(dev_eui)} is not registered")
        fcnt = int(row[0])
        self._update(dev_eui, sess_fcnt_down=fcnt + 1)
        return fcnt

    def dev_nonce_used(self, dev_eui: int, dev_nonce: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM dev_nonces WHERE dev_eui = ? AND dev_nonce = ?", (eui_hex(dev_eui), dev_nonce)
        ).fetchone()
        return row is not None

    def activate(
        self,
        dev_eui: int,
        session: Session,
        dev_nonce: int,
        *,
        rx1_delay: int,
        rx1_dr_offset: int,
        rx2_dr: int,
    ) -> int:
        if self._pending is None:
            self._join()  # (its counter bookkeeping below belongs to the open unit of work)
        now = time.time()
        row = self.conn.execute(
            "UPDATE devices SET dev_addr = ?, nwk_s_key = ?, app_s_key = ?, fcnt_up = NULL, fcnt_down = 0, "
            "session_epoch = session_epoch + 1, rx1_delay = ?, rx1_dr_offset = ?, rx2_dr = ?, last_seen = ? "
            "WHERE dev_eui = ? RETURNING session_epoch",
            (
                session.dev_addr,
                session.nwk_s_key,
                session.app_s_key,
                rx1_delay,
                rx1_dr_offset,
                rx2_dr,
                now,
                eui_hex(dev_eui),
            ),
        ).fetchone()
        if row is None:
            raise StorageError(f"device {eui_hex(dev_eui)} is not registered")
        epoch = int(row[0])
        # an uplink of the old session in this batch, before or after this join, must not write its
        # counter over the new session's (the batched counter writes run just before COMMIT)
        self._fcnt_writes.pop(dev_eui, None)
        self._activated[dev_eui] = epoch
        self.conn.execute(
            "INSERT OR REPLACE INTO dev_nonces VALUES (?, ?, ?)", (eui_hex(dev_eui), dev_nonce, now)
        )
        self._update(
            dev_eui,
            reindex=True,
            session=replaced(session, {"epoch": epoch}),
            rx1_delay=rx1_delay,
            rx1_dr_offset=rx1_dr_offset,
            rx2_dr=rx2_dr,
            last_seen=now,
        )
        return epoch

    def next_join_nonce(self) -> int:
        row = self.conn.execute(
            "UPDATE meta SET value = (value + 1) % 16777216 WHERE key = 'join_nonce' RETURNING value"
        ).fetchone()
        return int(row[0])

    def dev_addr_in_use(self, dev_addr: int) -> bool:
        return dev_addr in self._by_addr

    def set_battery(self, dev_eui: int, battery: int, at: float) -> None:
        self.conn.execute(
            "UPDATE devices SET battery = ?, battery_at = ? WHERE dev_eui = ?",
            (battery, at, eui_hex(dev_eui)),
        )
        self._update(dev_eui, battery=battery, battery_at=at)
