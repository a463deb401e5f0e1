"""The device part of the shared store: devices and their sessions, DevNonces, JoinNonces, the downlink
counter, and the commit of a batch's counters and joins (one script, all or nothing)."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from havel.codecs.lorawan.ids import eui_hex
from havel.errors import StorageError
from havel.gateway.network.sessions import Device
from havel.gateway.network.shared.connection import DamagedEntry, text, texts
from havel.gateway.network.shared.devicehash import device_from_hash, device_to_hash

log = logging.getLogger("havel.gateway.shared")

# how long the marker of a counter raised by a batch whose roof has not yet confirmed its own commit is kept:
# long enough for a roof killed in between to be restarted and replay its intake journal
APPLIED_KEEP_MS = 7 * 24 * 3600 * 1000


class DeviceKeys:
    """Part of :class:`~havel.gateway.network.shared.state.SharedState`: its device operations."""

    r: redis.Redis
    p: str
    _commit: Any
    _fcnt_down: Any
    _at_addr: Any

    # ------------------------------------------------------------------------------------ devices
    def dev_key(self, dev_eui: int) -> str:
        return f"{self.p}dev:{dev_eui:016X}"

    def put_device(self, dev: Device) -> None:
        """Register (or replace) a device and its session, with the DevAddr index."""
        key = self.dev_key(dev.dev_eui)
        eui = f"{dev.dev_eui:016X}"
        old = text(self.r.hget(key, "dev_addr"))
        pipe = self.r.pipeline(transaction=True)
        if old:
            pipe.srem(f"{self.p}addr:{old}", eui)
        pipe.delete(key)
        pipe.hset(key, mapping=dict(device_to_hash(dev)))  # type: ignore[arg-type]
        if dev.session is not None:
            pipe.sadd(f"{self.p}addr:{dev.session.dev_addr:08X}", eui)
        pipe.execute()

    def device(self, dev_eui: int) -> Device | None:
        key = self.dev_key(dev_eui)
        try:
            h = texts(self.r.hgetall(key))
        except redis.ResponseError as exc:  # e.g. the key holds a string, not a hash
            raise DamagedEntry(f"shared store entry {key}: {exc}") from None
        return device_from_hash(key, dev_eui, h) if h else None

    def devices_at(self, dev_addr: int) -> list[Device]:
        """The devices whose session has this DevAddr (one round trip); a damaged one is logged and left
        out (counted in ``damaged``), so that it cannot keep the others' uplinks out."""
        akey = f"{self.p}addr:{dev_addr:08X}"
        try:
            reply = self._at_addr(keys=[akey], args=[self.p])
        except redis.ResponseError as exc:
            raise DamagedEntry(f"shared store entry {akey}: {exc}") from None
        out: list[Device] = []
        for i in range(0, len(reply) - 1, 2):
            e, h = text(reply[i]), reply[i + 1]
            key = f"{self.p}dev:{e}"
            try:
                if not isinstance(h, list):
                    raise DamagedEntry(f"shared store entry {key}: {text(h)}")
                if not h:
                    continue
                fields = {text(h[j]): text(h[j + 1]) for j in range(0, len(h) - 1, 2)}
                dev = device_from_hash(key, int(e, 16), fields)
            except (DamagedEntry, ValueError) as exc:
                self.damaged += 1
                log.error("%s (left out)", exc)
                continue
            if dev.session is not None and dev.session.dev_addr == dev_addr:
                out.append(dev)
        return out

    damaged = 0  # damaged entries met (per process)

    def all_devices(self) -> list[Device]:
        """Every device (for a roof's fallback cache); damaged entries are logged, counted and left out."""
        keys = [text(k) for k in self.r.scan_iter(match=f"{self.p}dev:*", count=1000)]
        out: list[Device] = []
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            pipe = self.r.pipeline(transaction=False)
            for k in chunk:
                pipe.hgetall(k)
            for k, h in zip(chunk, pipe.execute(raise_on_error=False), strict=True):
                try:
                    if isinstance(h, Exception):
                        raise DamagedEntry(f"shared store entry {k}: {h}")
                    if h:
                        out.append(device_from_hash(k, int(k.rsplit(":", 1)[1], 16), texts(h)))
                except (DamagedEntry, ValueError) as exc:
                    self.damaged += 1
                    log.error("%s (left out)", exc)
        return out

    def nonce_used(self, dev_eui: int, dev_nonce: int) -> bool:
        return bool(self.r.sismember(f"{self.p}nonces:{dev_eui:016X}", str(dev_nonce)))

    def addr_in_use(self, dev_addr: int) -> bool:
        return bool(self.r.exists(f"{self.p}addr:{dev_addr:08X}")) and bool(
            self.r.scard(f"{self.p}addr:{dev_addr:08X}")
        )

    def next_join_nonce(self) -> int:
        return int(self.r.incr(f"{self.p}join_nonce")) % (1 << 24)

    def take_fcnt_down(self, dev_eui: int) -> int:
        try:
            return int(self._fcnt_down(keys=[self.dev_key(dev_eui)]))
        except redis.ResponseError as exc:
            raise StorageError(f"device {eui_hex(dev_eui)}: {exc}") from None

    def commit(self, ops: list[dict[str, Any]], *, mark: bool = True) -> list[Any]:
        """Apply a batch's writes at once (see ``scripts.COMMIT``; ``mark``: leave the markers of raised
        counters); StorageError when a join check fails."""
        if not ops:
            return []
        try:
            return list(self._commit(args=[self.p, json.dumps(ops), APPLIED_KEEP_MS if mark else 0]))
        except redis.ResponseError as exc:
            raise StorageError(f"shared store refused the batch: {exc}") from None
