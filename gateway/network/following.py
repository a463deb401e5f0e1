"""Passive session following: the sessions of devices another network server serves, derived from the
frames this gateway relays, so that their uplinks are verified, decrypted and decoded here as well.

For a followed OTAA device (its AppKey is in the registry) the session comes from the join it makes through
the upstream server: the DevNonce from the join-request, and JoinNonce, NetID, DevAddr and DLSettings from
the join-accept the server sends down, decrypted with the AppKey (a MIC that verifies is the proof that
the accept answers this device's request). ABP sessions (and sessions exported from the network server)
are imported. Counters follow the uplinks seen; nothing is ever sent to the device from here.

The id of a reading is derived from the frame and its session only, so every roof that hears the frame
(and follows the same join) gives it the same id. It keeps the form of every uplink id,
``<DevEUI>-<SessionEpoch>-<FCnt32>``, with a session epoch taken from the session instead of counted on one
roof: :data:`JOIN_EPOCH_BASE` + DevNonce for a session that began with a join, :data:`IMPORT_EPOCH_BASE` +
a number from DevAddr and NwkSKey for an imported one. Both ranges lie far above the join counts of
locally served devices. See docs/mqtt.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from havel.codecs.lorawan import crypto, fcnt, phy
from havel.errors import HavelError, InputError
from havel.gateway.jsontext import encode_json
from havel.gateway.metrics import Metrics
from havel.gateway.network.messages import MessageBuilder
from havel.gateway.network.outcome import Outcome, Status
from havel.gateway.network.reception import Reception
from havel.gateway.network.sessions import Device, Session

log = logging.getLogger("havel.gateway.following")

JOIN_EPOCH_BASE = 1_000_000  # + DevNonce (16 bits): 1,000,000 .. 1,065,535
IMPORT_EPOCH_BASE = 2_000_000_000  # + (32 bits of SHA-256 over DevAddr and NwkSKey) mod 10^9
JOIN_PENDING_S = 10.0  # a join-accept comes 5 or 6 s after its request (JOIN_ACCEPT_DELAY1/2)
JOIN_ACCEPT_DELAYS_US = (5_000_000, 6_000_000)  # JOIN_ACCEPT_DELAY1/2 on the concentrator's counter
TMST_SLACK_US = 1_000  # a server may round its schedule a little; another frame is not that close
MAX_PENDING_JOINS = 256  # join-requests waiting for their accept (the oldest is forgotten first)


@dataclass
class Followed:
    """One followed session. ``epoch`` is the session part of the message id (module docstring)."""

    dev_eui: int
    dev_addr: int
    nwk_s_key: bytes = field(repr=False)
    app_s_key: bytes = field(repr=False)
    epoch: int
    fcnt_up: int | None = None
    source: str = "join"  # "join" (derived from a relayed join) or "import"

    def to_json(self) -> dict[str, Any]:
        return {
            "dev_eui": f"{self.dev_eui:016X}",
            "dev_addr": f"{self.dev_addr:08X}",
            "nwk_s_key": self.nwk_s_key.hex(),
            "app_s_key": self.app_s_key.hex(),
            "epoch": self.epoch,
            "fcnt_up": self.fcnt_up,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Followed:
        if not isinstance(obj, dict):
            raise InputError("a followed session must be an object")
        try:
            return cls(
                dev_eui=int(obj["dev_eui"], 16),
                dev_addr=int(obj["dev_addr"], 16),
                nwk_s_key=bytes.fromhex(obj["nwk_s_key"]),
                app_s_key=bytes.fromhex(obj["app_s_key"]),
                epoch=int(obj["epoch"]),
                fcnt_up=None if obj.get("fcnt_up") is None else int(obj["fcnt_up"]),
                source=str(obj.get("source", "join")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"a followed session is malformed: {exc}") from None


def import_epoch(dev_addr: int, nwk_s_key: bytes) -> int:
    """The session epoch of an imported (ABP or exported) session: the same on every roof."""
    digest = hashlib.sha256(dev_addr.to_bytes(4, "little") + nwk_s_key).digest()
    return IMPORT_EPOCH_BASE + int.from_bytes(digest[:4], "big") % 1_000_000_000


def join_epoch(dev_nonce: int) -> int:
    """The session epoch of a session derived from a join: from its DevNonce."""
    return JOIN_EPOCH_BASE + dev_nonce


@dataclass
class _PendingJoin:
    dev: Device
    dev_nonce: int
    at: float
    heard: tuple[int, int] | None = None  # (concentrator EUI, its tmst) of the request

    def answered_by(self, gateway_eui: int | None, tmst: int | None) -> bool:
        """Whether a downlink at ``tmst`` on that concentrator is timed as this request's join-accept."""
        if self.heard is None or gateway_eui != self.heard[0] or tmst is None:
            return False
        delay = (tmst - self.heard[1]) & 0xFFFFFFFF  # the counter wraps at 32 bits
        return any(abs(delay - d) <= TMST_SLACK_US for d in JOIN_ACCEPT_DELAYS_US)


Store = Callable[[list[dict[str, Any]]], int]  # puts records into the outbox, returns how many went in


class Follower:
    """Follows the sessions of ``devices`` (registry devices served upstream, by DevEUI). ``store`` puts
    records into the outbox in one transaction; ``path`` keeps the sessions (0600, keys inside)."""

    def __init__(
        self,
        devices: Callable[[int], Device | None],
        messages: MessageBuilder,
        store: Store,
        metrics: Metrics,
        path: Path,
        *,
        listeners: Iterable[Callable[[Outcome], None]] = (),
    ) -> None:
        self.devices = devices
        self.messages = messages
        self.store = store
        self.metrics = metrics
        self.path = path
        self.listeners = list(listeners)
        self.sessions: dict[int, Followed] = {}  # by DevEUI
        self._by_addr: dict[int, list[Followed]] = {}
        self._pending: list[_PendingJoin] = []
        self._dirty = False
        metrics.describe("followed_total", "counter", "frames of followed devices, by what became of them")
        metrics.describe("followed_sessions", "gauge", "sessions followed passively")
        metrics.gauge_fn("followed_sessions", lambda: float(len(self.sessions)))

    # ------------------------------------------------------------------------------------- sessions
    def load(self) -> None:
        """Read the sessions kept by an earlier run (a damaged file is an error naming it)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        try:
            raw = json.loads(text)
            if not isinstance(raw, list):
                raise InputError("not a list")
            for obj in raw:
                self._put(Followed.from_json(obj))
        except (ValueError, InputError) as exc:
            raise InputError(f"{self.path}: followed sessions unreadable: {exc}") from None
        self._dirty = False

    def save(self) -> None:
        """Write the sessions (and counters) if they changed: 0600, replaced atomically."""
        if not self._dirty:
            return
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump([s.to_json() for s in self.sessions.values()], f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._dirty = False

    def import_session(self, dev_eui: int, dev_addr: int, nwk_s_key: bytes, app_s_key: bytes) -> Followed:
        """Follow an ABP session or one exported from the network server."""
        s = Followed(
            dev_eui, dev_addr, nwk_s_key, app_s_key, import_epoch(dev_addr, nwk_s_key), None, "import"
        )
        self._put(s)
        return s

    def _put(self, s: Followed) -> None:
        old = self.sessions.get(s.dev_eui)
        if old is not None:
            self._by_addr[old.dev_addr] = [x for x in self._by_addr.get(old.dev_addr, []) if x is not old]
        self.sessions[s.dev_eui] = s
        self._by_addr.setdefault(s.dev_addr, []).append(s)
        self._dirty = True

    def follows_addr(self, dev_addr: int) -> bool:
        """Whether a session followed here holds this DevAddr."""
        return bool(self._by_addr.get(dev_addr))

    # ----------------------------------------------------------------------------------------- joins
    def on_join_request(
        self,
        dev: Device,
        jr: phy.JoinRequest,
        at: float | None = None,
        heard: tuple[int, int] | None = None,
    ) -> bool:
        """A followed device's join-request relayed upstream: remembered until its accept comes down.
        ``heard`` is (concentrator EUI, tmst) of the reception, to tie a join-accept to it by its timing.
        Returns False (counted) when its MIC does not verify with the device's AppKey."""
        if dev.app_key is None:
            return False
        if not crypto.verify_mic(crypto.join_request_mic(dev.app_key, jr.msg), jr.mic):
            self.metrics.inc("followed_total", what="join_request_mic")
            return False
        now = time.monotonic() if at is None else at
        self._pending = [p for p in self._pending if now - p.at < JOIN_PENDING_S][-MAX_PENDING_JOINS + 1 :]
        self._pending.append(_PendingJoin(dev, jr.dev_nonce, now, heard))
        self.metrics.inc("followed_total", what="join_request")
        return True

    def on_downlink(
        self,
        data: bytes,
        at: float | None = None,
        gateway_eui: int | None = None,
        tmst: int | None = None,
    ) -> Followed | None:
        """A frame the upstream server sends down (to concentrator ``gateway_eui`` at its ``tmst``): when it
        is the join-accept of a pending join-request, the session it starts is followed from now on.

        A join-accept that verifies with no pending device's AppKey is most often another device's. When it
        is timed as the answer to a followed device's request (same concentrator, JOIN_ACCEPT_DELAY1 or 2
        after it), the registry's AppKey of that device is most likely wrong: counted and logged."""
        if len(data) not in (17, 33) or data[0] >> 5 != 0b001:
            return None
        now = time.monotonic() if at is None else at
        s = self._follow_accept(data, now)
        if s is None:
            self._unverified_accept(now, gateway_eui, tmst)
        return s

    def _unverified_accept(self, now: float, gateway_eui: int | None, tmst: int | None) -> None:
        for p in reversed(self._pending):
            if now - p.at < JOIN_PENDING_S and p.answered_by(gateway_eui, tmst):
                self.metrics.inc("followed_total", what="join_accept_mic")
                log.warning(
                    "the join-accept for %s (%s, DevNonce %04X) does not verify with the registry's AppKey:"
                    " its session is not followed; check the device's AppKey",
                    p.dev.name,
                    p.dev.eui_hex,
                    p.dev_nonce,
                )
                return

    def _follow_accept(self, data: bytes, now: float) -> Followed | None:
        for p in reversed(self._pending):
            if now - p.at >= JOIN_PENDING_S:
                continue
            key = p.dev.app_key
            assert key is not None
            plain = crypto.decrypt_join_accept(key, data)
            if not crypto.verify_mic(crypto.join_accept_mic(key, plain[:-4]), plain[-4:]):
                continue
            ja = phy.parse_join_accept(plain)
            nwk, app = crypto.derive_session_keys(key, ja.join_nonce, ja.net_id, p.dev_nonce)
            s = Followed(p.dev.dev_eui, ja.dev_addr, nwk, app, join_epoch(p.dev_nonce), None, "join")
            self._put(s)
            self._pending.remove(p)
            self.metrics.inc("followed_total", what="joined")
            log.info(
                "following %s (%s) through its join: DevAddr %08X, DevNonce %04X",
                p.dev.name,
                p.dev.eui_hex,
                ja.dev_addr,
                p.dev_nonce,
            )
            with contextlib.suppress(OSError):
                self.save()
            return s
        return None

    # --------------------------------------------------------------------------------------- uplinks
    def on_uplinks(self, frames: list[tuple[phy.DataFrame, Reception]]) -> int:
        """Data frames of followed sessions: verified, decrypted, decoded and stored in one transaction
        (readings only: nothing goes to the device). Returns how many readings were stored."""
        records: list[dict[str, Any]] = []
        outcomes: list[Outcome] = []
        for frame, copy in frames:
            got = self._accept(frame, copy)
            if got is not None:
                records.append(got[0])
                outcomes.append(got[1])
        if not records:
            return 0
        try:
            stored = self.store(records)
        except HavelError as exc:
            self.metrics.inc("followed_total", len(records), what="storage")
            log.error("followed readings not stored: %s", exc)
            return 0
        self.metrics.inc("followed_total", len(records), what="accepted")
        for out in outcomes:
            for listener in self.listeners:
                try:
                    listener(out)
                except Exception:
                    log.exception("outcome listener failed")
        return stored

    def _accept(self, frame: phy.DataFrame, copy: Reception) -> tuple[dict[str, Any], Outcome] | None:
        for s in self._by_addr.get(frame.dev_addr, ()):
            fcnt32 = fcnt.reconstruct(s.fcnt_up, frame.fcnt16)
            if not crypto.verify_mic(
                crypto.data_mic(s.nwk_s_key, True, frame.dev_addr, fcnt32, frame.msg), frame.mic
            ):
                continue
            if s.fcnt_up is not None and fcnt32 <= s.fcnt_up:
                # another copy (a second concentrator) or a replay: the first copy was taken
                self.metrics.inc("followed_total", what="duplicate")
                return None
            dev = self.devices(s.dev_eui)
            if dev is None:
                self.metrics.inc("followed_total", what="unknown_device")
                return None
            s.fcnt_up = fcnt32
            self._dirty = True
            if frame.fport is None or not frame.frm_payload:
                payload = b""
            else:
                key = s.nwk_s_key if frame.fport == 0 else s.app_s_key
                payload = crypto.crypt_frm_payload(key, True, frame.dev_addr, fcnt32, frame.frm_payload)
            session = Session(s.dev_addr, s.nwk_s_key, s.app_s_key, fcnt32, epoch=s.epoch)
            dev = replace(dev, session=session)
            record = self.messages.uplink(dev, frame, fcnt32, payload, [copy])
            message = record["payload"]
            message["served_by"] = "upstream"  # (the network server answers it; this roof only listens)
            record["payload_json"] = encode_json(message)
            out = Outcome(
                Status.ACCEPTED,
                device=dev,
                fcnt32=fcnt32,
                frame=frame,
                best=copy,
                copies=[copy],
                record=record,
            )
            return record, out
        self.metrics.inc("followed_total", what="mic")
        return None
