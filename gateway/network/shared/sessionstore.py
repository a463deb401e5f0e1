"""The network server's :class:`~havel.gateway.network.sessions.SessionStore` on the shared store, with a
local cache to fall back on when Redis cannot be reached."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from havel.codecs.lorawan.ids import eui_hex
from havel.errors import StorageError
from havel.gateway.network.outcome import NotAnswered
from havel.gateway.network.sessions import Device, Session
from havel.gateway.network.shared.connection import UNREACHABLE
from havel.gateway.network.shared.state import SharedState

log = logging.getLogger("havel.gateway.shared")


class RedisSessionStore:
    """The :class:`~havel.gateway.network.sessions.SessionStore` on the shared store.

    Reads go to Redis (another roof may have moved a counter since) and refresh a local cache of the
    devices; writes are collected during the transaction and sent as one script at its end. When Redis
    cannot be reached the store is ``online = False``: reads come from the cache, accepted counters are kept
    locally (and sent as maxima by :meth:`reconcile`), and joins and downlink counters are refused
    (:class:`NotAnswered`), so that nothing a device must never see twice is handed out.

    ``conn`` (the roof's SQLite database, holding its outbox) is committed together with each transaction:
    if the shared store refuses the batch, the outbox records roll back with it."""

    def __init__(self, shared: SharedState, conn: Any = None) -> None:
        self.shared = shared
        self.conn = conn
        self.online = True
        self._cache: dict[int, Device] = {}
        self._ops: list[dict[str, Any]] | None = None
        self._activated: dict[int, int] = {}
        # counters accepted while offline: DevEUI -> (fcnt32, seen, epoch), sent as maxima when back
        self.offline_fcnt: dict[int, tuple[int, float, int]] = {}
        self.went_offline_at: float | None = None
        # for the status: since when (wall clock) the store is reachable or not, when the counters accepted
        # offline were last sent, when the fallback cache was last loaded
        self.since = time.time()
        self.reconciled_at: float | None = None
        self.warmed_wall: float | None = None
        # frames of a batch that raised their counters in Redis but never reached this or another roof's
        # database (see ``scripts.COMMIT``), processed late: DevEUI -> (epoch, the counter before them)
        self.rewind: dict[int, tuple[int, int]] = {}
        # (a test hook: die between the Redis commit and the SQLite commit of a batch with uplinks)
        self._die_after_redis = os.environ.get("HAVEL_TEST_KILL_AFTER_SHARED_COMMIT") == "1"

    # ------------------------------------------------------------------------------ availability
    def offline(self, exc: BaseException) -> None:
        if self.online:
            log.error("shared store unreachable (%s): receiving on, no joins and no downlinks", exc)
            self.online = False
            self.went_offline_at = time.monotonic()
            self.since = time.time()

    def try_online(self) -> bool:
        """Back online when Redis answers; the counters accepted meanwhile are reconciled first."""
        if self.online:
            return True
        try:
            self.shared.r.ping()
            self.reconcile()
        except UNREACHABLE:
            return False
        log.warning("shared store reachable again: %d device counter(s) reconciled", len(self.offline_fcnt))
        self.offline_fcnt.clear()
        self.online = True
        self.went_offline_at = None
        self.since = self.reconciled_at = time.time()
        self.warm()
        return self.online

    def reconcile(self) -> None:
        """Send the counters accepted offline as maxima (a counter another roof moved further stays)."""
        ops = [
            {"op": "fcnt", "eui": f"{e:016X}", "f": f, "seen": seen, "epoch": ep}
            for e, (f, seen, ep) in self.offline_fcnt.items()
        ]
        self.shared.commit(ops, mark=False)  # (no frame to save: these are stored already)

    def warm(self) -> int:
        """Load every device into the cache, so that a roof cut off later still knows the sessions of
        devices other roofs processed until then; returns how many (0 when Redis cannot be reached)."""
        try:
            devs = self.shared.all_devices()
        except UNREACHABLE as exc:
            self.offline(exc)
            return 0
        for d in devs:
            self._remember(self._with_local(d))
        self.warmed_at = time.monotonic()
        self.warmed_wall = time.time()
        return len(devs)

    warmed_at: float | None = None

    def cached(self) -> int:
        """Devices in the fallback cache."""
        return len(self._cache)

    # ----------------------------------------------------------------------------------- reads
    def _remember(self, dev: Device) -> Device:
        self._cache[dev.dev_eui] = dev
        return dev

    def by_dev_addr(self, dev_addr: int) -> list[Device]:
        if self.online:
            try:
                devs = self.shared.devices_at(dev_addr)
                for d in devs:
                    self._remember(self._with_local(d))
                if self.rewind:
                    return [self._rewound(self._cache[d.dev_eui]) for d in devs]
                return [self._cache[d.dev_eui] for d in devs]
            except UNREACHABLE as exc:
                self.offline(exc)
        return [d for d in self._cache.values() if d.session is not None and d.session.dev_addr == dev_addr]

    def _rewound(self, dev: Device) -> Device:
        """A device whose counter a batch raised without being stored anywhere, as it was before that batch
        (only for this roof's late frames: the commit raises counters only, so nothing moves back)."""
        r = self.rewind.get(dev.dev_eui)
        s = dev.session
        if r is None or s is None or s.epoch != r[0] or s.fcnt_up is None or s.fcnt_up < r[1]:
            return dev
        return replace(dev, session=replace(s, fcnt_up=None if r[1] < 0 else r[1]))

    def _with_local(self, dev: Device) -> Device:
        """A device read from Redis, its counter raised to one this roof accepted offline and not yet sent."""
        local = self.offline_fcnt.get(dev.dev_eui)
        s = dev.session
        if local is None or s is None or s.epoch != local[2]:
            return dev
        if s.fcnt_up is not None and s.fcnt_up >= local[0]:
            return dev
        return replace(dev, session=replace(s, fcnt_up=local[0]))

    def get(self, dev_eui: int) -> Device | None:
        if self.online:
            try:
                dev = self.shared.device(dev_eui)
                return self._remember(dev) if dev is not None else None
            except UNREACHABLE as exc:
                self.offline(exc)
        return self._cache.get(dev_eui)

    def by_join(self, join_eui: int, dev_eui: int) -> Device | None:
        if not self.online:
            raise NotAnswered("the shared store is unreachable: joins are answered by roofs that reach it")
        dev = self.get(dev_eui)
        if not self.online:
            raise NotAnswered("the shared store is unreachable: joins are answered by roofs that reach it")
        if dev is None or dev.activation != "otaa" or dev.join_eui != join_eui:
            return None
        return dev

    def dev_nonce_used(self, dev_eui: int, dev_nonce: int) -> bool:
        try:
            return self.shared.nonce_used(dev_eui, dev_nonce)
        except UNREACHABLE as exc:
            self.offline(exc)
            raise NotAnswered("the shared store is unreachable: DevNonce cannot be checked") from None

    def dev_addr_in_use(self, dev_addr: int) -> bool:
        try:
            return self.shared.addr_in_use(dev_addr)
        except UNREACHABLE as exc:
            self.offline(exc)
            raise NotAnswered("the shared store is unreachable") from None

    def next_join_nonce(self) -> int:
        try:
            return self.shared.next_join_nonce()
        except UNREACHABLE as exc:
            self.offline(exc)
            raise NotAnswered("the shared store is unreachable") from None

    def take_fcnt_down(self, dev_eui: int) -> int:
        if not self.online:
            raise NotAnswered("the shared store is unreachable: no downlink counter can be taken")
        try:
            return self.shared.take_fcnt_down(dev_eui)
        except UNREACHABLE as exc:
            self.offline(exc)
            raise NotAnswered("the shared store is unreachable: no downlink counter can be taken") from None

    def refresh(self) -> None:
        """Nothing to pick up: reads go to Redis. (A roof that is offline is brought back by its tick.)"""

    # ---------------------------------------------------------------------------------- writes
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self._ops is not None:  # nested: a savepoint of the batch's writes
            mark, activated = len(self._ops), dict(self._activated)
            try:
                if self.conn is not None:
                    from havel.gateway import db

                    with db.unit_of_work(self.conn):
                        yield
                else:
                    yield
            except BaseException:
                del self._ops[mark:]
                self._activated = activated
                raise
            return
        self._ops, self._activated = [], {}
        try:
            if self.conn is not None:
                from havel.gateway import db

                with db.unit_of_work(self.conn):
                    yield
                    self._commit(self._ops)
                    if self._die_after_redis and any(op["op"] == "fcnt" for op in self._ops):
                        os.kill(os.getpid(), signal.SIGKILL)
            else:
                yield
                self._commit(self._ops)
        finally:
            self._ops, self._activated = None, {}

    def _commit(self, ops: list[dict[str, Any]]) -> None:
        if self.online:
            try:
                self.shared.commit(ops)
                return
            except UNREACHABLE as exc:
                # the script may or may not have run: keep the counters locally, they are sent again as
                # maxima (which a second run cannot move backwards)
                self.offline(exc)
        if any(op["op"] == "activate" for op in ops):
            raise StorageError("the shared store became unreachable while a join was stored")
        for op in ops:
            if op["op"] == "fcnt":
                eui = int(op["eui"], 16)
                old = self.offline_fcnt.get(eui)
                if old is None or old[2] != op["epoch"] or old[0] < op["f"]:
                    self.offline_fcnt[eui] = (op["f"], op["seen"], op["epoch"])
        self._apply_cache(ops)

    def _apply_cache(self, ops: list[dict[str, Any]]) -> None:
        for op in ops:
            if op["op"] != "fcnt":
                continue
            dev = self._cache.get(int(op["eui"], 16))
            s = dev.session if dev is not None else None
            if dev is None or s is None or s.epoch != op["epoch"]:
                continue
            if s.fcnt_up is None or s.fcnt_up < op["f"]:
                self._cache[dev.dev_eui] = replace(dev, session=replace(s, fcnt_up=op["f"]))

    def _need_txn(self) -> list[dict[str, Any]]:
        if self._ops is None:
            raise StorageError(
                "shared store change outside a transaction", hint="use 'with store.transaction():'"
            )
        return self._ops

    def set_fcnt_up(self, dev_eui: int, fcnt32: int, seen_at: float, *, epoch: int | None = None) -> bool:
        ops = self._need_txn()
        if epoch is None:
            dev = self._cache.get(dev_eui)
            epoch = dev.session.epoch if dev is not None and dev.session is not None else 0
        joined = self._activated.get(dev_eui)
        if joined is not None and joined != epoch:
            return False
        ops.append({"op": "fcnt", "eui": f"{dev_eui:016X}", "f": fcnt32, "seen": seen_at, "epoch": epoch})
        return True

    def set_battery(self, dev_eui: int, battery: int, at: float) -> None:
        self._need_txn().append({"op": "battery", "eui": f"{dev_eui:016X}", "b": battery, "at": at})

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
        ops = self._need_txn()
        if not self.online:
            raise NotAnswered("the shared store is unreachable: joins are answered by roofs that reach it")
        dev = self.get(dev_eui)
        if dev is None:
            raise StorageError(f"device {eui_hex(dev_eui)} is not registered")
        epoch = (dev.session.epoch if dev.session is not None else 0) + 1
        ops.append(
            {
                "op": "activate",
                "eui": f"{dev_eui:016X}",
                "nonce": str(dev_nonce),
                "epoch": epoch,
                "addr": f"{session.dev_addr:08X}",
                "nwk": session.nwk_s_key.hex(),
                "app": session.app_s_key.hex(),
                "rx1_delay": rx1_delay,
                "rx1_dr_offset": rx1_dr_offset,
                "rx2_dr": rx2_dr,
                "now": time.time(),
            }
        )
        self._activated[dev_eui] = epoch
        return epoch
