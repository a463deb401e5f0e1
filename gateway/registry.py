"""The device registry and the session/counter store, in the gateway's one SQLite database.

Devices (name, DevEUI, JoinEUI, codec, activation, keys), their session (DevAddr, session keys, frame
counters), the DevNonces they used and their RX settings live in tables next to the outbox, so that a new
frame counter and the outbox record are written in one transaction.

The network server talks to a :class:`~havel.gateway.network.sessions.SessionStore` (a small Protocol)
rather than to SQLite, so that another store (one shared by several gateways) can take its place.
:class:`Registry` is the SQLite one. It keeps every device in memory (a roof serves hundreds, not
millions) and writes through; changes made inside :meth:`Registry.transaction` reach the cache only when
the transaction commits, so a rolled-back uplink never advances a counter. A registry version in the
``meta`` table, bumped by every CLI change, tells a running daemon to reload.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from havel.codecs.lorawan.ids import eui_hex, parse_id_hex, parse_key
from havel.errors import InputError, StorageError
from havel.gateway import db, schema
from havel.gateway.network.sessions import Device, Session

log = logging.getLogger("havel.gateway.registry")

ACTIVATIONS = ("otaa", "abp")
EXPORT_FIELDS = (
    "name",
    "dev_eui",
    "join_eui",
    "app_key",
    "codec",
    "activation",
    "dev_addr",
    "nwk_s_key",
    "app_s_key",
)


class Registry:
    """The SQLite session store and device registry (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        schema.migrate(conn)
        _private(conn)
        self._devices: dict[int, Device] = {}
        self._by_addr: dict[int, list[Device]] = {}
        self._version = -1
        self._pending: list[Callable[[], None]] | None = None
        # counters to write at COMMIT: DevEUI -> (FCnt, seen at, session epoch they belong to)
        self._fcnt_writes: dict[int, tuple[int, float, int]] = {}
        self._activated: dict[int, int] = {}  # devices joined in the open transaction -> their new epoch
        self.refresh(force=True)

    # ---------------------------------------------------------------------------------- cache and txns
    def refresh(self, force: bool = False) -> None:
        """Reload the cache when the registry version changed (or always with ``force``)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'registry_version'").fetchone()
        version = int(row[0]) if row else 0
        if not force and version == self._version:
            return
        self._version = version
        self._devices = {d.dev_eui: d for d in self._load_all()}
        self._reindex()

    def _reindex(self) -> None:
        by_addr: dict[int, list[Device]] = {}
        for d in self._devices.values():
            if d.session is not None:
                by_addr.setdefault(d.session.dev_addr, []).append(d)
        self._by_addr = by_addr

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit; cache changes made inside apply only after COMMIT."""
        if self._pending is not None:  # nested: a SAVEPOINT; its cache changes go if it rolls back
            mark = len(self._pending)
            writes = dict(self._fcnt_writes)
            activated = dict(self._activated)
            try:
                with db.unit_of_work(self.conn):
                    yield self.conn
            except BaseException:
                del self._pending[mark:]
                self._fcnt_writes = writes
                self._activated = activated
                raise
            return
        self._pending = []
        self._fcnt_writes = {}
        self._activated = {}
        try:
            with db.unit_of_work(self.conn):
                yield self.conn
                if self._fcnt_writes:  # the counters of a whole batch in one statement, just before COMMIT
                    # only onto the session they belong to: a session replaced meanwhile (a join, a device
                    # added again by the CLI) starts without a counter
                    self.conn.executemany(
                        "UPDATE devices SET fcnt_up = ?, last_seen = ? "
                        "WHERE dev_eui = ? AND session_epoch = ?",
                        [(f, seen, eui_hex(eui), ep) for eui, (f, seen, ep) in self._fcnt_writes.items()],
                    )
            pending, writes = self._pending, self._fcnt_writes
        finally:
            self._pending = None
            self._fcnt_writes = {}
            self._activated = {}
        for apply in pending:
            apply()
        self._apply_fcnt(writes)

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
            raise StorageError(
                "registry change outside a transaction",
                hint="wrap the call in 'with registry.transaction():'",
            )
        self._pending.append(fn)

    def _update(self, dev_eui: int, reindex: bool = False, **changes: Any) -> None:
        def apply() -> None:
            dev = self._devices.get(dev_eui)
            if dev is None:
                return
            sess_changes = {k[5:]: v for k, v in changes.items() if k.startswith("sess_")}
            dev_changes = {k: v for k, v in changes.items() if not k.startswith("sess_")}
            if sess_changes and dev.session is not None:
                dev_changes["session"] = _with(dev.session, sess_changes)
            new = _with(dev, dev_changes)
            if reindex:  # a new session (join): the DevAddr index changes
                self._devices[dev_eui] = new
                self._reindex()
            else:
                self._replace_cached(new)

        self._later(apply)

    def _bump_version(self) -> None:
        self.conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'registry_version'")

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
        # written with the batch's other counters just before the transaction commits, and into the cache
        # after it did (see transaction()): per uplink only this dict entry
        if self._pending is None:
            self._later(lambda: None)  # raises: a counter is only ever written inside a transaction
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
            session=_with(session, {"epoch": epoch}),
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

    # ------------------------------------------------------------------------------- registry (CLI)
    def devices(self) -> list[Device]:
        """Every device, by name."""
        return sorted(self._devices.values(), key=lambda d: d.name)

    def count(self) -> int:
        """How many devices are registered (without sorting them: /status asks often)."""
        return len(self._devices)

    def find(self, ident: str) -> Device:
        """A device by name or DevEUI hex; InputError if none."""
        for d in self._devices.values():
            if d.name == ident:
                return d
        try:
            eui = parse_id_hex(ident, what="DevEUI", size=8)
        except InputError:
            eui = None
        if eui is not None and eui in self._devices:
            return self._devices[eui]
        raise InputError(f"no device named or with DevEUI {ident!r}", hint="see 'havel device list'")

    def add(self, dev: Device) -> None:
        """Register a device (InputError when the name, DevEUI or ABP DevAddr+keys clash or are invalid)."""
        self.import_devices([dev])

    def import_devices(self, devices: list[Device], *, replace: bool = False) -> tuple[int, int]:
        """Register many devices in one transaction (all or none); returns (added, replaced).

        Every device is checked first (InputError naming the first problem). A DevEUI already registered
        is an error unless ``replace``: then that device is removed (as :meth:`remove` does) and the new one
        added. One commit and one cache rebuild for the whole list: 10,000 devices take a second or two,
        where one transaction each (an fsync and an index rebuild per device) took most of a minute."""
        for dev in devices:
            _validate(dev)
        new_euis: set[int] = set()
        for dev in devices:
            if dev.dev_eui in new_euis:
                raise InputError(f"DevEUI {dev.eui_hex} appears twice", hint="list each device once")
            new_euis.add(dev.dev_eui)
        clash = [d for d in devices if d.dev_eui in self._devices]
        if clash and not replace:
            dev = clash[0]
            raise InputError(
                f"DevEUI {dev.eui_hex} is already registered (as {self._devices[dev.dev_eui].name!r})",
                hint="remove it first or pick another DevEUI",
            )
        names = {d.name for eui, d in self._devices.items() if eui not in new_euis}
        for dev in devices:
            if dev.name in names:
                raise InputError(f"a device named {dev.name!r} already exists", hint="names must be unique")
            names.add(dev.name)
        added: list[Device] = []
        with self.transaction():
            for dev in clash:
                self._delete_row(dev.dev_eui)
            for dev in devices:
                added.append(self._insert_row(dev))
            self._bump_version()

            def apply() -> None:
                for dev in added:
                    self._devices[dev.dev_eui] = dev
                self._reindex()

            self._later(apply)
        return len(devices) - len(clash), len(clash)

    def _insert_row(self, dev: Device) -> Device:
        """INSERT one checked device inside the open transaction; returns it as stored (session epoch)."""
        # a DevEUI registered before: continue above its last session epoch (message ids stay unique)
        row = self.conn.execute(
            "SELECT epoch + 1 FROM retired_epochs WHERE dev_eui = ?", (dev.eui_hex,)
        ).fetchone()
        epoch = int(row[0]) if row else 0
        if epoch and dev.session is not None:
            dev = _with(dev, {"session": _with(dev.session, {"epoch": epoch})})
        s = dev.session
        self.conn.execute(
            "INSERT INTO devices (dev_eui, name, join_eui, codec, activation, app_key, dev_addr, "
            "nwk_s_key, app_s_key, fcnt_up, fcnt_down, rx1_delay, rx1_dr_offset, rx2_dr, rx2_freq_hz, "
            "session_epoch, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                dev.eui_hex,
                dev.name,
                eui_hex(dev.join_eui) if dev.join_eui is not None else None,
                dev.codec,
                dev.activation,
                dev.app_key,
                s.dev_addr if s else None,
                s.nwk_s_key if s else None,
                s.app_s_key if s else None,
                s.fcnt_up if s else None,
                s.fcnt_down if s else 0,
                dev.rx1_delay,
                dev.rx1_dr_offset,
                dev.rx2_dr,
                dev.rx2_freq_hz,
                epoch,
                time.time(),
            ),
        )
        return dev

    def remove(self, dev_eui: int) -> None:
        """Forget a device and its session. Its session epoch is kept (see add()) and so are the DevNonces
        it used: a recorded join-request must not open a session again after the device is added back
        (ChirpStack and The Things Stack keep them too); :meth:`forget_dev_nonces` clears them."""
        with self.transaction():
            self._delete_row(dev_eui)
            self._bump_version()

            def apply() -> None:
                self._devices.pop(dev_eui, None)
                self._reindex()

            self._later(apply)

    def _delete_row(self, dev_eui: int) -> None:
        """DELETE one device inside the open transaction, keeping its epoch and its queued commands aside."""
        self.conn.execute(
            "INSERT OR REPLACE INTO retired_epochs SELECT dev_eui, session_epoch FROM devices "
            "WHERE dev_eui = ?",
            (eui_hex(dev_eui),),
        )
        # its queued commands go aside (the daemon publishes their "failed" result): a device added
        # again under this DevEUI is another device and must not get them
        self.conn.execute(
            "INSERT INTO downlinks_removed (dev_eui, id, seq, device, request, fcnt_down) "
            "SELECT q.dev_eui, q.id, q.seq, d.name, q.request, q.fcnt_down FROM downlinks q "
            "LEFT JOIN devices d ON d.dev_eui = q.dev_eui WHERE q.dev_eui = ? ORDER BY q.created_at",
            (eui_hex(dev_eui),),
        )
        self.conn.execute("DELETE FROM downlinks WHERE dev_eui = ?", (eui_hex(dev_eui),))
        self.conn.execute("DELETE FROM devices WHERE dev_eui = ?", (eui_hex(dev_eui),))

    def dev_nonce_count(self, dev_eui: int) -> int:
        """How many DevNonces are recorded as used for this DevEUI (registered or not)."""
        row = self.conn.execute("SELECT count(*) FROM dev_nonces WHERE dev_eui = ?", (eui_hex(dev_eui),))
        return int(row.fetchone()[0])

    def forget_dev_nonces(self, dev_eui: int) -> int:
        """Clear the used-DevNonce history of a DevEUI (registered or removed); returns how many were
        cleared. Afterwards any recorded join-request of the device is accepted again, so this is only for
        a device whose AppKey was replaced (old recordings no longer verify) or that was reflashed with a
        DevNonce counter starting at 0. Logged as a warning."""
        with self.transaction():
            n = self.conn.execute("DELETE FROM dev_nonces WHERE dev_eui = ?", (eui_hex(dev_eui),)).rowcount
        log.warning(
            "cleared %d used DevNonce(s) of %s: its earlier join-requests would be accepted again",
            n,
            eui_hex(dev_eui),
        )
        return int(n)

    def _load_all(self) -> list[Device]:
        rows = self.conn.execute(
            "SELECT name, dev_eui, codec, activation, join_eui, app_key, dev_addr, nwk_s_key, app_s_key, "
            "fcnt_up, fcnt_down, rx1_delay, rx1_dr_offset, rx2_dr, rx2_freq_hz, battery, battery_at, "
            "last_seen, session_epoch "
            "FROM devices"
        ).fetchall()
        out = []
        for r in rows:
            session = None
            if r[6] is not None and r[7] is not None and r[8] is not None:
                session = Session(int(r[6]), bytes(r[7]), bytes(r[8]), r[9], int(r[10]), int(r[18]))
            out.append(
                Device(
                    name=r[0],
                    dev_eui=int(r[1], 16),
                    codec=r[2],
                    activation=r[3],
                    join_eui=int(r[4], 16) if r[4] else None,
                    app_key=bytes(r[5]) if r[5] is not None else None,
                    session=session,
                    rx1_delay=r[11],
                    rx1_dr_offset=r[12],
                    rx2_dr=r[13],
                    rx2_freq_hz=r[14],
                    battery=r[15],
                    battery_at=r[16],
                    last_seen=r[17],
                )
            )
        return out


def _private(conn: sqlite3.Connection) -> None:
    """The database holds keys: make its files readable by their owner only (SQLite gives the -wal and
    -shm files the database file's permissions)."""
    row = next((r for r in conn.execute("PRAGMA database_list") if r[1] == "main"), None)
    if row is None or not row[2]:
        return  # in-memory
    for suffix in ("", "-wal", "-shm"):
        path = row[2] + suffix
        with contextlib.suppress(OSError):
            if os.path.exists(path) and os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)


def _with(obj: Any, changes: dict[str, Any]) -> Any:
    """A copy of a frozen dataclass with some fields changed: what dataclasses.replace does, without its
    per-call field introspection (this runs for every uplink)."""
    new = object.__new__(type(obj))
    state = new.__dict__  # a frozen dataclass refuses setattr, not a write to its __dict__
    state.update(obj.__dict__)
    state.update(changes)
    return new


def _validate(dev: Device) -> None:
    if not dev.name or len(dev.name) > 64:
        raise InputError("device name must have 1 to 64 characters")
    if dev.activation not in ACTIVATIONS:
        raise InputError(f"activation {dev.activation!r} is not otaa or abp")
    from havel.codecs.payload import get_codec  # deferred: the codec package is B's, imported on use

    get_codec(dev.codec)  # CodecError names the unknown codec
    if dev.activation == "otaa":
        if dev.join_eui is None or dev.app_key is None:
            raise InputError(f"OTAA device {dev.name!r} needs join_eui and app_key")
    elif dev.session is None:
        raise InputError(f"ABP device {dev.name!r} needs dev_addr, nwk_s_key and app_s_key")


# --------------------------------------------------------------------------------------- import/export


def device_from_record(rec: dict[str, Any], *, where: str = "record") -> Device:
    """A :class:`Device` from one import record (keys of :data:`EXPORT_FIELDS`); InputError naming the
    field and the record."""

    def text(key: str) -> str | None:
        v = rec.get(key)
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        return str(v).strip()

    def need(key: str) -> str:
        v = text(key)
        if v is None:
            raise InputError(f"{where}: field '{key}' is missing")
        return v

    try:
        activation = need("activation").lower()
        name = need("name")
        dev_eui = parse_id_hex(need("dev_eui"), what=f"{where} dev_eui", size=8)
        codec = need("codec")
        if activation == "otaa":
            return Device(
                name=name,
                dev_eui=dev_eui,
                codec=codec,
                activation="otaa",
                join_eui=parse_id_hex(need("join_eui"), what=f"{where} join_eui", size=8),
                app_key=parse_key(need("app_key"), f"{where} app_key"),
            )
        if activation == "abp":
            session = Session(
                dev_addr=parse_id_hex(need("dev_addr"), what=f"{where} dev_addr", size=4),
                nwk_s_key=parse_key(need("nwk_s_key"), f"{where} nwk_s_key"),
                app_s_key=parse_key(need("app_s_key"), f"{where} app_s_key"),
            )
            join = text("join_eui")
            return Device(
                name=name,
                dev_eui=dev_eui,
                codec=codec,
                activation="abp",
                session=session,
                join_eui=parse_id_hex(join, what=f"{where} join_eui", size=8) if join else None,
            )
    except InputError:
        raise
    raise InputError(f"{where}: activation {rec.get('activation')!r} is not otaa or abp")


def parse_import(content: bytes | str, filename: str) -> list[Device]:
    """Devices from JSON (a list of objects) or CSV (header of the same names), every record checked
    before any is stored. The file is UTF-8 (a byte-order mark is allowed); a file that is not, JSON nested
    too deep to read, or CSV that cannot be read is an InputError, never a traceback."""
    if isinstance(content, bytes):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{filename}: not UTF-8 text (byte {exc.start} is {content[exc.start : exc.start + 1]!r})",
                hint="save the file as UTF-8 (havel device export writes UTF-8)",
            ) from None
    else:
        text = content
    stripped = text.lstrip()
    records: list[dict[str, Any]]
    if filename.lower().endswith(".json") or stripped.startswith("["):
        try:
            data = json.loads(text)
        except RecursionError:
            raise InputError(f"{filename}: not valid JSON (nested too deep)") from None
        except ValueError as exc:
            raise InputError(f"{filename}: not valid JSON ({exc})") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InputError(f"{filename}: expected a JSON list of device objects")
        records = data
    else:
        try:
            reader = csv.DictReader(io.StringIO(text))
            if not reader.fieldnames or "dev_eui" not in reader.fieldnames:
                raise InputError(f"{filename}: CSV needs a header line with {', '.join(EXPORT_FIELDS)}")
            records = list(reader)
        except csv.Error as exc:  # a NUL byte, a field beyond the csv module's size limit
            raise InputError(f"{filename}: not readable CSV (line {reader.line_num}: {exc})") from None
    devices = [device_from_record(r, where=f"{filename} record {i + 1}") for i, r in enumerate(records)]
    seen: set[int] = set()
    for d in devices:
        if d.dev_eui in seen:
            raise InputError(f"{filename}: DevEUI {d.eui_hex} appears twice")
        seen.add(d.dev_eui)
    return devices


def format_export(devices: list[Device], fmt: str, *, show_keys: bool) -> str:
    """JSON or CSV text of the devices in the import format."""
    rows = [d.export(show_keys=show_keys) for d in devices]
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(EXPORT_FIELDS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def device_dict(dev: Device) -> dict[str, Any]:
    """A JSON-ready view without keys (for status output)."""
    d = asdict(dev)
    d.pop("app_key", None)
    s = d.pop("session", None)
    d["dev_eui"] = dev.eui_hex
    d["join_eui"] = eui_hex(dev.join_eui) if dev.join_eui is not None else None
    d["dev_addr"] = f"{s['dev_addr']:08X}" if s else None
    d["fcnt_up"] = s["fcnt_up"] if s else None
    d["fcnt_down"] = s["fcnt_down"] if s else None
    return d
