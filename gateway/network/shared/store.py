"""Shared network-server state on Redis, and a :class:`SessionStore` on it that falls back to a local cache.

Key layout (prefix ``havel:``; one Redis server or a primary with replicas, not Redis Cluster, because the
scripts below touch keys they compute):

- ``dev:<DevEUI>`` hash: the device (name, codec, activation, JoinEUI, AppKey) and its session (DevAddr, keys,
  ``fcnt_up``, ``fcnt_down``, ``epoch`` = joins accepted, RX settings, battery, last seen)
- ``addr:<DevAddr>`` set of DevEUIs, ``nonces:<DevEUI>`` set of used DevNonces, ``join_nonce`` counter
- ``lock:<frame>`` the roof that processes a frame (``SET NX PX``), ``copies:<frame>`` every roof's copy
- ``dlq:<DevEUI>`` the device's queued commands, ``tx:<roof>`` downlinks handed to a roof,
  ``dc:<gateway>`` set while that gateway waits for its duty cycle

Every write a batch of uplinks makes goes to Redis at the end of its transaction in ONE Lua script, which
first checks every join's DevNonce and session epoch and writes nothing if one fails (atomic on the server).
"""

from __future__ import annotations

import contextlib
import json
import logging
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from havel.codecs.lorawan.ids import eui_hex
from havel.errors import ConfigError, StorageError
from havel.gateway.network.outcome import NotAnswered
from havel.gateway.network.sessions import Device, Session

log = logging.getLogger("havel.gateway.shared")

PREFIX = "havel:"
# what a cut connection raises: the roof falls back instead of failing
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


class DamagedEntry(StorageError):
    """An entry in the shared store that cannot be read (wrong type, missing or malformed field)."""


@dataclass(frozen=True)
class StoreSettings:
    """Where the shared store is: ``url`` ``redis://host:port/db`` or ``rediss://`` (TLS, verified against
    ``ca_file`` or the system's CAs); the password only from ``password_file`` (mode 0600)."""

    url: str
    password_file: str | None = None
    ca_file: str | None = None
    timeout_s: float = 1.0


def read_password(path: str) -> str:
    """The password in ``path``; refused when others may read the file (a password never goes in argv)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"network.password_file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"network.password_file {path} may be read by others (mode {stat.S_IMODE(mode):04o})",
            hint=f"chmod 600 {path}",
        )
    return text.strip()


def connect(settings: StoreSettings) -> redis.Redis:
    """A client for the shared store (nothing is sent yet). The URL must not carry a password."""
    parts = urlsplit(settings.url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(
            f"network.store {parts.scheme}:// is not a Redis URL", hint="redis://host:6379/0 or rediss://..."
        )
    if parts.password:
        raise ConfigError(
            "network.store carries a password: it would show in configs and logs",
            hint="put it in a file with mode 0600 and name it as network.password_file",
        )
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.timeout_s,
        "socket_connect_timeout": settings.timeout_s,
        "decode_responses": True,
        "health_check_interval": 0,
        # one immediate retry (a pooled connection Redis closed on restart), no backoff: an unreachable
        # store must send the roof to its fallback within the timeout, not after seconds of retries
        "retry": Retry(NoBackoff(), 1),
    }
    if settings.password_file:
        kwargs["password"] = read_password(settings.password_file)
    if parts.scheme == "rediss":
        kwargs["ssl_cert_reqs"] = "required"
        kwargs["ssl_check_hostname"] = True
        if settings.ca_file:
            kwargs["ssl_ca_certs"] = settings.ca_file
    return redis.Redis.from_url(settings.url, **kwargs)


def redacted(url: str) -> str:
    """The URL as logs show it (no user name or password)."""
    p = urlsplit(url)
    host = p.hostname or ""
    return f"{p.scheme}://{host}{f':{p.port}' if p.port else ''}{p.path}"


# The claim of one copy: append it to the frame's copies, take the lock if nobody has it.
# 1: this roof took the lock; 2: this roof had it already; 0: another roof has it.
_CLAIM = """
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 2 end
return 0
"""

# A roof that handed a frame to another roof takes it over when no roof marked it done in time (the lock's
# holder died, e.g. SIGKILL, with the frame in its dedup window): 1 taken over, 0 it was processed or another
# roof took it over first (a lock taken over is marked with a leading '>').
_TAKE_OVER = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 1) == '>' then return 0 end
redis.call('SET', KEYS[1], '>' .. ARGV[1], 'PX', ARGV[2])
return 1
"""

# A batch's writes (ARGV[1] prefix, ARGV[2] JSON list of operations), all or nothing: every join is checked
# (device there, DevNonce unused, session not changed since it was read) before anything is written.
_COMMIT = """
local p = ARGV[1]
local ops = cjson.decode(ARGV[2])
for i, op in ipairs(ops) do
  if op.op == 'activate' then
    local k = p .. 'dev:' .. op.eui
    if redis.call('EXISTS', k) == 0 then return redis.error_reply('NODEV ' .. op.eui) end
    if redis.call('SISMEMBER', p .. 'nonces:' .. op.eui, op.nonce) == 1 then
      return redis.error_reply('NONCE ' .. op.eui .. ' ' .. op.nonce)
    end
    local ep = tonumber(redis.call('HGET', k, 'epoch') or '0') or 0
    if ep + 1 ~= op.epoch then return redis.error_reply('EPOCH ' .. op.eui) end
  end
end
local out = {}
for i, op in ipairs(ops) do
  local k = p .. 'dev:' .. op.eui
  if op.op == 'fcnt' then
    local done = 0
    if redis.call('HGET', k, 'epoch') == tostring(op.epoch) then
      local cur = tonumber(redis.call('HGET', k, 'fcnt_up') or '')
      if cur == nil or op.f > cur then
        redis.call('HSET', k, 'fcnt_up', string.format('%d', op.f), 'last_seen', tostring(op.seen))
        done = 1
      end
    end
    out[i] = done
  elseif op.op == 'battery' then
    redis.call('HSET', k, 'battery', op.b, 'battery_at', tostring(op.at))
    out[i] = 1
  elseif op.op == 'activate' then
    local old = redis.call('HGET', k, 'dev_addr')
    if old and old ~= '' then redis.call('SREM', p .. 'addr:' .. old, op.eui) end
    redis.call('SADD', p .. 'nonces:' .. op.eui, op.nonce)
    redis.call('HSET', k, 'dev_addr', op.addr, 'nwk_s_key', op.nwk, 'app_s_key', op.app, 'fcnt_up', '',
      'fcnt_down', '0', 'epoch', op.epoch, 'rx1_delay', op.rx1_delay, 'rx1_dr_offset', op.rx1_dr_offset,
      'rx2_dr', op.rx2_dr, 'last_seen', tostring(op.now))
    redis.call('SADD', p .. 'addr:' .. op.addr, op.eui)
    out[i] = op.epoch
  end
end
return out
"""

# The devices of one DevAddr: [DevEUI, HGETALL as a flat list (or an error text), ...], one round trip.
_AT_ADDR = """
local out = {}
for _, e in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local h = redis.pcall('HGETALL', ARGV[1] .. 'dev:' .. e)
  out[#out + 1] = e
  if type(h) == 'table' and h.err then out[#out + 1] = h.err else out[#out + 1] = h end
end
return out
"""

# The next downlink counter; never one handed out before (also not one a roof took and did not send).
_FCNT_DOWN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NODEV') end
return redis.call('HINCRBY', KEYS[1], 'fcnt_down', 1) - 1
"""


def _num(h: dict[str, str], key: str, field: str, *, optional: bool = False, real: bool = False) -> Any:
    raw = h.get(field)
    if raw is None or raw == "":
        if optional:
            return None
        raise DamagedEntry(f"shared store entry {key}: field {field} is missing")
    try:
        return float(raw) if real else int(raw)
    except ValueError:
        raise DamagedEntry(f"shared store entry {key}: field {field} is not a number: {raw[:40]!r}") from None


def _key16(h: dict[str, str], key: str, field: str, *, optional: bool = False) -> bytes | None:
    raw = h.get(field)
    if raw is None or raw == "":
        if optional:
            return None
        raise DamagedEntry(f"shared store entry {key}: field {field} is missing")
    try:
        b = bytes.fromhex(raw)
    except ValueError:
        b = b""
    if len(b) != 16:
        raise DamagedEntry(f"shared store entry {key}: field {field} is not a 16-byte key in hex")
    return b


def device_from_hash(key: str, dev_eui: int, h: dict[str, str]) -> Device:
    """A device from its hash; DamagedEntry names the key and field (a key's value never shows)."""
    activation = h.get("activation")
    if activation not in ("otaa", "abp"):
        raise DamagedEntry(f"shared store entry {key}: activation is {str(activation)[:20]!r}")
    name, codec = h.get("name"), h.get("codec")
    if not name or not codec:
        raise DamagedEntry(f"shared store entry {key}: name or codec is missing")
    session = None
    addr = h.get("dev_addr", "")
    if addr:
        try:
            dev_addr = int(addr, 16)
        except ValueError:
            raise DamagedEntry(f"shared store entry {key}: dev_addr is not hex: {addr[:20]!r}") from None
        nwk = _key16(h, key, "nwk_s_key")
        app = _key16(h, key, "app_s_key")
        assert nwk is not None and app is not None
        session = Session(
            dev_addr,
            nwk,
            app,
            _num(h, key, "fcnt_up", optional=True),
            _num(h, key, "fcnt_down", optional=True) or 0,
            _num(h, key, "epoch", optional=True) or 0,
        )
    join_eui = h.get("join_eui") or None
    try:
        join = int(join_eui, 16) if join_eui else None
    except ValueError:
        raise DamagedEntry(f"shared store entry {key}: join_eui is not hex") from None
    return Device(
        name=name,
        dev_eui=dev_eui,
        codec=codec,
        activation=activation,
        join_eui=join,
        app_key=_key16(h, key, "app_key", optional=True),
        session=session,
        rx1_delay=_num(h, key, "rx1_delay", optional=True) or 1,
        rx1_dr_offset=_num(h, key, "rx1_dr_offset", optional=True) or 0,
        rx2_dr=_num(h, key, "rx2_dr", optional=True) or 0,
        battery=_num(h, key, "battery", optional=True),
        battery_at=_num(h, key, "battery_at", optional=True, real=True),
        last_seen=_num(h, key, "last_seen", optional=True, real=True),
    )


def device_to_hash(dev: Device) -> dict[str, str]:
    """The hash of a device (keys in hex: the store must be private and its connection TLS, see the docs)."""
    s = dev.session
    return {
        "name": dev.name,
        "codec": dev.codec,
        "activation": dev.activation,
        "join_eui": f"{dev.join_eui:016X}" if dev.join_eui is not None else "",
        "app_key": dev.app_key.hex() if dev.app_key else "",
        "dev_addr": f"{s.dev_addr:08X}" if s else "",
        "nwk_s_key": s.nwk_s_key.hex() if s else "",
        "app_s_key": s.app_s_key.hex() if s else "",
        "fcnt_up": str(s.fcnt_up) if s and s.fcnt_up is not None else "",
        "fcnt_down": str(s.fcnt_down) if s else "0",
        "epoch": str(s.epoch) if s else "0",
        "rx1_delay": str(dev.rx1_delay),
        "rx1_dr_offset": str(dev.rx1_dr_offset),
        "rx2_dr": str(dev.rx2_dr),
    }


def _text(v: Any) -> str:
    """A reply as text (the client decodes replies; the type stubs do not know)."""
    return v.decode() if isinstance(v, bytes) else str(v)


def _texts(h: Any) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in h.items()}


class SharedState:
    """The Redis operations of the multi-roof network server (each one atomic on the server)."""

    def __init__(self, client: redis.Redis, prefix: str = PREFIX) -> None:
        self.r = client
        self.p = prefix
        self._claim = client.register_script(_CLAIM)
        self._commit = client.register_script(_COMMIT)
        self._fcnt_down = client.register_script(_FCNT_DOWN)
        self._take_over = client.register_script(_TAKE_OVER)
        self._at_addr = client.register_script(_AT_ADDR)

    # ------------------------------------------------------------------------------------ devices
    def dev_key(self, dev_eui: int) -> str:
        return f"{self.p}dev:{dev_eui:016X}"

    def put_device(self, dev: Device) -> None:
        """Register (or replace) a device and its session, with the DevAddr index."""
        key = self.dev_key(dev.dev_eui)
        eui = f"{dev.dev_eui:016X}"
        old = _text(self.r.hget(key, "dev_addr"))
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
            h = _texts(self.r.hgetall(key))
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
            e, h = _text(reply[i]), reply[i + 1]
            key = f"{self.p}dev:{e}"
            try:
                if not isinstance(h, list):
                    raise DamagedEntry(f"shared store entry {key}: {_text(h)}")
                if not h:
                    continue
                fields = {_text(h[j]): _text(h[j + 1]) for j in range(0, len(h) - 1, 2)}
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
        keys = [_text(k) for k in self.r.scan_iter(match=f"{self.p}dev:*", count=1000)]
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
                        out.append(device_from_hash(k, int(k.rsplit(":", 1)[1], 16), _texts(h)))
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

    def commit(self, ops: list[dict[str, Any]]) -> list[Any]:
        """Apply a batch's writes at once (see ``_COMMIT``); StorageError when a join check fails."""
        if not ops:
            return []
        try:
            return list(self._commit(args=[self.p, json.dumps(ops)]))
        except redis.ResponseError as exc:
            raise StorageError(f"shared store refused the batch: {exc}") from None

    # --------------------------------------------------------------------------- uplink lock, copies
    def claim(self, frame: bytes, roof: str, copy: str, lock_ms: int, keep_ms: int) -> int:
        """Offer one copy of a frame: 1 this roof now processes it, 2 it did already, 0 another roof does."""
        h = frame.hex()
        return int(
            self._claim(
                keys=[f"{self.p}lock:{h}", f"{self.p}copies:{h}"], args=[roof, copy, lock_ms, keep_ms]
            )
        )

    def take_over(self, frame: bytes, roof: str, lock_ms: int) -> bool:
        """Take the lock of a frame that no roof marked done (see ``_TAKE_OVER``)."""
        h = frame.hex()
        return bool(self._take_over(keys=[f"{self.p}lock:{h}", f"{self.p}done:{h}"], args=[roof, lock_ms]))

    def mark_done(self, frames: list[bytes], keep_ms: int) -> None:
        """These frames were processed (or refused): nobody needs to take them over."""
        if frames:
            pipe = self.r.pipeline(transaction=False)
            for f in frames:
                pipe.set(f"{self.p}done:{f.hex()}", "1", px=keep_ms)
            pipe.execute()

    def copies_of(self, frames: list[bytes]) -> list[list[str]]:
        """The copy lists of several frames in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for f in frames:
            pipe.lrange(f"{self.p}copies:{f.hex()}", 0, -1)
        return [[_text(x) for x in v] for v in pipe.execute()]

    def next_commands(self, dev_euis: list[int]) -> list[str | None]:
        """The next queued command of each device (taken from its queue), in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for e in dev_euis:
            pipe.lpop(f"{self.p}dlq:{e:016X}")
        return [_text(v) if v is not None else None for v in pipe.execute()]

    def copies(self, frame: bytes) -> list[str]:
        return [_text(x) for x in self.r.lrange(f"{self.p}copies:{frame.hex()}", 0, -1)]

    # ---------------------------------------------------------------------------------- downlinks
    def queue_command(self, dev_eui: int, command: dict[str, Any]) -> None:
        """A command for the device, sent once (by the roof that processes its next uplink)."""
        self.r.rpush(f"{self.p}dlq:{dev_eui:016X}", json.dumps(command))

    def requeue_command(self, dev_eui: int, raw: str) -> None:
        """Put a command taken but not sent back at the head of the device's queue."""
        self.r.lpush(f"{self.p}dlq:{dev_eui:016X}", raw)

    def next_command_seq(self) -> int:
        """The network's submission number for a downlink command (part of its result ids)."""
        return int(self.r.incr(f"{self.p}cmdseq"))

    def hand_over(self, roof: str, downlink: dict[str, Any]) -> None:
        self.r.rpush(f"{self.p}tx:{roof}", json.dumps(downlink))

    def handed_to(self, roof: str, limit: int = 64) -> list[str]:
        v = self.r.lpop(f"{self.p}tx:{roof}", limit)
        return [_text(x) for x in v] if v else []

    def gateways_waiting(self, gateways: list[int]) -> set[int]:
        """The gateways among these that still wait for their duty cycle."""
        if not gateways:
            return set()
        pipe = self.r.pipeline(transaction=False)
        for g in gateways:
            pipe.exists(f"{self.p}dc:{g:016X}")
        return {g for g, n in zip(gateways, pipe.execute(), strict=True) if n}

    def gateway_busy(self, gateway: int, wait_s: float) -> None:
        if wait_s > 0:
            self.r.set(f"{self.p}dc:{gateway:016X}", "1", px=max(1, int(wait_s * 1000)))


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

    # ------------------------------------------------------------------------------ availability
    def offline(self, exc: BaseException) -> None:
        if self.online:
            log.error("shared store unreachable (%s): receiving on, no joins and no downlinks", exc)
            self.online = False
            self.went_offline_at = time.monotonic()

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
        self.warm()
        return self.online

    def reconcile(self) -> None:
        """Send the counters accepted offline as maxima (a counter another roof moved further stays)."""
        ops = [
            {"op": "fcnt", "eui": f"{e:016X}", "f": f, "seen": seen, "epoch": ep}
            for e, (f, seen, ep) in self.offline_fcnt.items()
        ]
        self.shared.commit(ops)

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
        return len(devs)

    warmed_at: float | None = None

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
                return [self._cache[d.dev_eui] for d in devs]
            except UNREACHABLE as exc:
                self.offline(exc)
        return [d for d in self._cache.values() if d.session is not None and d.session.dev_addr == dev_addr]

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

                    with db.transaction(self.conn):
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

                with db.transaction(self.conn):
                    yield
                    self._commit(self._ops)
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
