"""The edge network server: uplinks from the concentrators to outbox records, and the OTAA join server.

Pure-ish: no sockets and no clocks of its own (``now`` is passed in); storage goes through a
:class:`~havel.gateway.network.sessions.SessionStore` and the outbox. The pipeline per frame:

1. :meth:`NetworkServer.receive` takes one copy (one concentrator's reception). Copies of the same
   PHYPayload are grouped for ``dedup_window_ms`` so that all receivers are listed and the best signal
   kept; a copy arriving after its group was processed (within ``duplicate_ttl_s``) is a ``duplicate``,
   except a frame the device sent again once its receive windows had passed (LoRaWAN 1.0.x keeps the
   FCnt): a confirmed one whose ACK it missed, which gets an ACK again, or an unconfirmed one repeated
   NbTrans times as ADR asked. Nothing is stored twice (outcome ``retransmission``).
2. :meth:`NetworkServer.flush` processes the groups whose window closed, all in ONE transaction (group
   commit): find sessions by DevAddr (the MIC decides between devices sharing one), reconstruct FCnt32,
   verify the MIC, reject replays, decrypt, decode with the device's codec, then write the new counter and
   the outbox record. Join-requests: MIC, DevNonce reuse, DevAddr allocation, session keys, join-accept.

Every frame ends as an :class:`Outcome` (accepted, joined, retransmission, or rejected with a reason that is a
metric label).
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from havel.codecs.lorawan import crypto, eu868, fcnt, maccmds, phy
from havel.codecs.lorawan.ids import eui_hex
from havel.errors import CodecError, FrameError, HavelError, InputError, StorageError
from havel.gateway.config import NetworkConfig
from havel.gateway.gwmp import TMST_MODULO, RxPacket, format_time
from havel.gateway.jsontext import encode_json
from havel.gateway.network.priority import classify, higher
from havel.gateway.network.sessions import Device, Session, SessionStore

log = logging.getLogger("havel.gateway.netserver")

# Reasons an uplink is rejected (metric labels, stable).
REJECT_REASONS = (
    "crc",
    "frame",
    "not_uplink",
    "unknown_dev_addr",
    "mic",
    "fcnt_gap",
    "replay",
    "duplicate",
    "unknown_device",
    "dev_nonce_reused",
    "join_unanswered",
    "storage",
    "no_dev_addr",
)
# EU868 CFList sent in join-accepts: the five common extra channels (867.1 .. 867.9 MHz).
CFLIST_HZ = [867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000]
_TEST_PORT = 224
MAX_RECENT = 200_000  # frames remembered for duplicate detection (~30 MB at most)
# retransmissions of one frame recognised at most (the firmware sends a confirmed one up to 1 + 7 times, an
# unconfirmed one NbTrans <= 3 times)
MAX_ACKS_AGAIN = 8
_UNCONFIRMED_UP = 0b010  # MType of an unconfirmed data uplink (MHDR bits 7..5)
_CONFIRMED_UP = 0b100  # ... and of a confirmed one


class NotAnswered(HavelError):
    """Raised by ``after_store`` for a join whose join-accept cannot be sent: the join is not recorded."""


class OutboxLike(Protocol):
    """What the network server needs of D2's Outbox."""

    def put(self, record: dict[str, Any]) -> bool: ...

    def put_many(self, records: Iterable[dict[str, Any]]) -> int: ...


class RuleClassifier(Protocol):
    """What the network server needs of the relay's rule classifier (havel.gateway.relay.priority)."""

    def classify(self, payload: dict[str, Any]) -> Any:
        """An object whose ``cls`` is "alarm", "state" or "background"."""


class JournalLike(Protocol):
    """What the network server needs of the intake journal."""

    def forget(self, seqs: Iterable[int]) -> None: ...


_EUI_TEXT: dict[int, str] = {}  # concentrator EUI -> its hex text (a roof has a few concentrators)


@dataclass
class Reception:
    """One copy of a frame as one concentrator heard it, with its receive time and where that came from."""

    gateway_eui: int
    rx: RxPacket
    received_at: datetime
    time_source: str  # "gps" (rxpk time from a GPS-synced forwarder) or "local" (this machine's clock)
    journal_id: int | None = None  # its row in the intake journal (deleted when the frame is stored)
    replayed: bool = False  # taken from the journal after a restart: its receive windows are gone
    # the PUSH_DATA it came in, its index in that datagram's rxpk list, and this machine's receive time
    # (unix): what the daemon journals (one row per datagram)
    origin: tuple[bytes, int, float] | None = None

    def rx_info(self) -> dict[str, Any]:
        """The entry of the message's ``rx`` list."""
        r = self.rx
        gateway = _EUI_TEXT.get(self.gateway_eui)
        if gateway is None:
            gateway = f"{self.gateway_eui:016X}"
            if len(_EUI_TEXT) < 10_000:
                _EUI_TEXT[self.gateway_eui] = gateway
        return {
            "gateway": gateway,
            "rssi": r.rssi,
            "snr": r.lsnr,
            "freq": r.freq_hz / 1e6,
            "datr": r.datr,
            "chan": r.chan,
            "tmst": r.tmst,
        }


def reception(gateway_eui: int, rx: RxPacket, now: datetime) -> Reception:
    """Pick the receive time: the rxpk ``time`` when the forwarder has GPS time (it sends ``tmms`` only
    with a GPS fix), else ``now`` from the local clock."""
    if rx.time is not None and rx.tmms is not None:
        return Reception(gateway_eui, rx, rx.time, "gps")
    return Reception(gateway_eui, rx, now, "local")


def _signal_key(c: Reception) -> tuple[float, float]:
    return (c.rx.lsnr if c.rx.lsnr is not None else -99.0, c.rx.rssi)


@dataclass
class Outcome:
    """What became of one frame (all its copies)."""

    # "accepted", "joined", "retransmission" (a confirmed frame sent again: only ACKed) or "rejected"
    status: str
    reason: str | None = None  # for rejected: one of REJECT_REASONS
    detail: str = ""
    device: Device | None = None
    fcnt32: int | None = None
    frame: phy.DataFrame | None = None
    best: Reception | None = None
    copies: list[Reception] = field(default_factory=list)
    mac_up: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] | None = None
    # for joins: the ready txpk choices (RX1 then RX2 fallback) as (phy, freq_hz, datr, tmst)
    join_accept: bytes | None = None
    downlink_plan: list[tuple[int, str, int]] = field(default_factory=list)
    # an uplink of a session that a join in the same batch replaced: stored, but nothing is sent down in its
    # windows (the device is moving to the new session) and its counter stays with the old session
    superseded: bool = False


@dataclass
class _Group:
    deadline: float
    copies: list[Reception]
    frame: phy.Frame
    again: bool = False  # a confirmed frame already stored, sent again for its ACK


class NetworkServer:
    """See the module docstring. ``codec_lookup(name)`` returns a codec with ``decode(data, fport)``."""

    def __init__(
        self,
        store: SessionStore,
        outbox: OutboxLike,
        net: NetworkConfig,
        *,
        codec_lookup: Callable[[str], Any] | None = None,
        rng: random.Random | None = None,
        journal: JournalLike | None = None,
        rules: RuleClassifier | None = None,
    ) -> None:
        self.journal = journal
        # the relay's configured rules ([relay] rules): a record gets the higher of their class and
        # classify()'s, so alarms the rules define are stored as alarms (never dropped at the quota)
        self.rules = rules
        # frames per transaction: large enough for group commit, small enough that the event loop (PUSH_ACKs,
        # downlinks due within a second) is never held for long
        self.max_batch = 256
        self._records: list[dict[str, Any]] = []  # outbox records of the batch being processed
        self.store = store
        self.outbox = outbox
        self.net = net
        self.codec_lookup = codec_lookup or _compiled_codec
        self.rng = rng or random.SystemRandom()
        # arrival order, first out first: an OrderedDict, because a plain dict emptied from the front makes
        # next(iter()) skip every deleted slot (measured 3.5 against 0.8 us per flushed frame at 2,000)
        self._pending: OrderedDict[bytes, _Group] = OrderedDict()
        self._recent: OrderedDict[bytes, float] = OrderedDict()  # dedup key -> expiry (monotonic)
        self._acked_again: dict[bytes, int] = {}  # dedup key -> retransmissions answered (keys in _recent)
        # confirmed frames stored: dedup key -> {concentrator EUI: tmst of its copy} (keys in _recent)
        self._heard_at: dict[bytes, dict[int, int]] = {}
        self._time_text: tuple[datetime | None, str] = (None, "")  # last receive time and its text

    # ----------------------------------------------------------------------------------------- intake
    def receive(self, copy: Reception, mono: float) -> Outcome | None:
        """Take one copy; returns an Outcome at once only when it is rejected before grouping."""
        rx = copy.rx
        if not rx.crc_ok:
            return Outcome("rejected", "crc", "CRC not OK", best=copy, copies=[copy])
        key = _frame_key(rx.data)
        group = self._pending.get(key)
        if group is not None:
            group.copies.append(copy)
            return None
        expiry = self._recent.get(key)
        if expiry is not None and expiry > mono:
            mtype = rx.data[0] >> 5
            if mtype in (_CONFIRMED_UP, _UNCONFIRMED_UP) and self._sent_again(
                key, expiry, mono, copy, mtype == _CONFIRMED_UP
            ):
                try:
                    frame = phy.parse(rx.data)  # (it parsed when it came first)
                except FrameError as exc:
                    return Outcome("rejected", "frame", str(exc), best=copy, copies=[copy])
                self._pending[key] = _Group(mono + self.net.dedup_window_ms / 1000, [copy], frame, again=True)
                return None
            return Outcome(
                "rejected",
                "duplicate",
                "copy arrived after its frame was processed",
                best=copy,
                copies=[copy],
            )
        try:
            frame = phy.parse(rx.data)
        except FrameError as exc:
            return Outcome("rejected", "frame", str(exc), best=copy, copies=[copy])
        if not isinstance(frame, phy.DataFrame | phy.JoinRequest) or (
            isinstance(frame, phy.DataFrame) and not frame.uplink
        ):
            return Outcome(
                "rejected", "not_uplink", f"{type(frame).__name__} is not an uplink", best=copy, copies=[copy]
            )
        self._pending[key] = _Group(mono + self.net.dedup_window_ms / 1000, [copy], frame)
        return None

    def _sent_again(self, key: bytes, expiry: float, mono: float, copy: Reception, confirmed: bool) -> bool:
        """Whether a copy of an already processed data frame is the device sending it again (a confirmed
        frame whose ACK did not reach it, an unconfirmed one repeated for NbTrans) rather than a late copy
        from another concentrator: it was sent after the frame's RX2 window, and not more often than
        MAX_ACKS_AGAIN."""
        if self._acked_again.get(key, 0) >= MAX_ACKS_AGAIN:
            return False
        windows_s = self.net.rx1_delay_s + 1.0
        processed_ago = mono - (expiry - self.net.duplicate_ttl_s)
        if confirmed:
            before = self._heard_at.get(key, {}).get(copy.gateway_eui)
            if before is not None:
                # this concentrator heard it before: its own microsecond counter says when each was sent,
                # whatever the backhaul delayed
                return (copy.rx.tmst - before) % TMST_MODULO >= windows_s * 1_000_000
            # else since it was processed: a late copy wrongly taken for a retransmission costs a downlink
            return processed_ago >= windows_s
        # Unconfirmed: nothing is sent either way, and the concentrators' clocks are not kept for these (to
        # save memory), so time it from the first copy's arrival, a dedup window before it was processed:
        # a repeat on a channel of another sub-band (no duty-cycle wait) may come right after RX2 closed.
        return processed_ago + self.net.dedup_window_ms / 1000 >= windows_s

    def next_deadline(self) -> float | None:
        """Monotonic time of the earliest group to flush (None when nothing waits)."""
        if not self._pending:
            return None
        # groups are kept in arrival order, and every window has the same length: the first closes first
        return next(iter(self._pending.values())).deadline

    @property
    def pending(self) -> int:
        """Frames waiting in the dedup window."""
        return len(self._pending)

    # ---------------------------------------------------------------------------------------- process
    def flush(
        self,
        mono: float,
        now: datetime,
        *,
        force: bool = False,
        after_store: Callable[[Outcome], None] | None = None,
    ) -> list[Outcome]:
        """Process every group whose window closed (all with ``force``), in one transaction.

        ``after_store(outcome)`` runs inside that transaction for accepted and joined frames (the downlink
        scheduler writes its counter and queue changes there, so they commit with the uplink)."""
        due: list[tuple[bytes, _Group]] = []
        pending = self._pending
        while pending and (force or len(due) < self.max_batch):
            key = next(iter(pending))
            if not force and pending[key].deadline > mono:
                break
            due.append(pending.popitem(last=False))
        if not due:
            return []
        self._expire(mono)
        self.store.refresh()
        outcomes: list[Outcome] = []
        self._records = []
        # counters accepted earlier in this batch per (DevEUI, session epoch): the cache is updated at commit
        fcnt_seen: dict[tuple[int, int], int] = {}
        nonces_seen: set[tuple[int, int]] = set()
        joined_now: set[int] = set()  # DevEUIs whose join this batch recorded
        try:
            with self.store.transaction():
                if self.journal is not None:  # stored frames leave the intake journal in the same commit
                    self.journal.forget([c.journal_id for _, g in due for c in g.copies if c.journal_id])
                for key, g in due:
                    copies = sorted(g.copies, key=_signal_key, reverse=True)
                    # Each frame is checked completely before anything is written, so a bad frame leaves
                    # nothing behind and needs no savepoint; a storage error fails the whole batch.
                    try:
                        if isinstance(g.frame, phy.JoinRequest):
                            out = self._answered_join(g.frame, copies, now, nonces_seen, after_store)
                        elif g.again:
                            assert isinstance(g.frame, phy.DataFrame)
                            out = self._sent_again_outcome(g.frame, copies)
                            # an old session's frame sent again after its device joined in this batch:
                            # no ACK with the keys of a session the join replaced
                            out.superseded = out.device is not None and out.device.dev_eui in joined_now
                            if out.status == "retransmission":
                                self._acked_again[key] = self._acked_again.get(key, 0) + 1
                                self._recent.move_to_end(key)  # its expiry is renewed below: keep the order
                        else:
                            assert isinstance(g.frame, phy.DataFrame)
                            out = self._uplink(g.frame, copies, fcnt_seen)
                    except StorageError:
                        raise
                    except HavelError as exc:
                        log.error("uplink processing failed: %s", exc)
                        out = Outcome("rejected", "frame", str(exc), best=copies[0], copies=copies)
                    if out.status == "joined" and out.device is not None:
                        joined_now.add(out.device.dev_eui)
                    if out.status != "rejected":
                        self._recent[key] = mono + self.net.duplicate_ttl_s
                        if isinstance(g.frame, phy.DataFrame) and g.frame.confirmed:
                            self._heard_at[key] = {c.gateway_eui: c.rx.tmst for c in copies}
                        if after_store is not None and not out.superseded and out.status != "joined":
                            try:
                                after_store(out)
                            except StorageError:
                                raise
                            except HavelError as exc:
                                log.error("downlink scheduling after an uplink failed: %s", exc)
                    outcomes.append(out)
                if self._records:  # the batch's records in one statement (per-device FCnt order kept)
                    self.outbox.put_many(self._records)
        except HavelError as exc:  # the commit failed (disk full, locked): nothing of the batch is stored
            log.error("storing %d uplinks failed: %s (they stay in the intake journal)", len(due), exc)
            self.storage_failed(outcomes, str(exc))
            for _, g in due[len(outcomes) :]:  # the frame that failed and those after it: one outcome each
                copies = sorted(g.copies, key=_signal_key, reverse=True)
                outcomes.append(Outcome("rejected", "storage", str(exc), best=copies[0], copies=copies))
        return outcomes

    def storage_failed(self, outcomes: list[Outcome], detail: str) -> None:
        """The transaction that stored these outcomes failed (flush's own, or the caller's it ran in as a
        savepoint): what they accepted is not stored after all (the frames stay in the intake journal,
        replayed at the next start) and a later copy of them must not count as a duplicate."""
        for out in outcomes:
            if out.status != "rejected":
                if out.best is not None:
                    key = _frame_key(out.best.rx.data)
                    self._recent.pop(key, None)
                    self._heard_at.pop(key, None)
                out.status, out.reason, out.detail = "rejected", "storage", detail

    def _expire(self, mono: float) -> None:
        recent = self._recent
        while recent:
            exp = next(iter(recent.values()))
            if exp > mono and len(recent) <= MAX_RECENT:
                break
            key, _ = recent.popitem(last=False)  # expired, or memory bound reached (a later copy: replay)
            self._acked_again.pop(key, None)
            self._heard_at.pop(key, None)

    # ------------------------------------------------------------------------------------------ data
    def _sent_again_outcome(self, frame: phy.DataFrame, copies: list[Reception]) -> Outcome:
        """A frame stored before, sent again: if it is the last accepted frame of a device (same FCnt, MIC
        verified), a retransmission (a confirmed one gets an ACK again); nothing is stored. Anything else
        stays a duplicate."""
        best = copies[0]
        for dev in self.store.by_dev_addr(frame.dev_addr):
            s = dev.session
            if s is None or s.fcnt_up is None or fcnt.reconstruct(s.fcnt_up, frame.fcnt16) != s.fcnt_up:
                continue
            mic = crypto.data_mic(s.nwk_s_key, True, frame.dev_addr, s.fcnt_up, frame.msg)
            if crypto.verify_mic(mic, frame.mic):
                return Outcome(
                    "retransmission", device=dev, fcnt32=s.fcnt_up, frame=frame, best=best, copies=copies
                )
        return Outcome(
            "rejected",
            "duplicate",
            "copy arrived after its frame was processed",
            frame=frame,
            best=best,
            copies=copies,
        )

    # ------------------------------------------------------------------------------------------ data
    def _uplink(
        self, frame: phy.DataFrame, copies: list[Reception], fcnt_seen: dict[tuple[int, int], int]
    ) -> Outcome:
        best = copies[0]
        candidates = self.store.by_dev_addr(frame.dev_addr)
        if not candidates:
            return Outcome(
                "rejected",
                "unknown_dev_addr",
                f"no session with DevAddr {frame.dev_addr:08X}",
                frame=frame,
                best=best,
                copies=copies,
            )
        match: tuple[Device, Session, int] | None = None
        for dev in candidates:
            s = dev.session
            assert s is not None
            last = fcnt_seen.get((dev.dev_eui, s.epoch), s.fcnt_up)
            fcnt32 = fcnt.reconstruct(last, frame.fcnt16)
            mic = crypto.data_mic(s.nwk_s_key, True, frame.dev_addr, fcnt32, frame.msg)
            if crypto.verify_mic(mic, frame.mic):
                match = (dev, s, fcnt32)
                break
        if match is None:
            gap = self._counter_gap(frame, candidates, fcnt_seen)
            if gap is not None:
                dev, last, ahead = gap
                return Outcome(
                    "rejected",
                    "fcnt_gap",
                    f"the MIC verifies with FCnt {ahead}, {ahead - last} frames after the last accepted "
                    f"{last}: the device's counter jumped (keys are fine); reset its counter or rejoin it",
                    device=dev,
                    fcnt32=ahead,
                    frame=frame,
                    best=best,
                    copies=copies,
                )
            return Outcome(
                "rejected",
                "mic",
                f"MIC does not verify for any of {len(candidates)} session(s) "
                f"with DevAddr {frame.dev_addr:08X}",
                frame=frame,
                best=best,
                copies=copies,
            )
        dev, s, fcnt32 = match
        last = fcnt_seen.get((dev.dev_eui, s.epoch), s.fcnt_up)
        if last is not None and fcnt32 <= last:
            return Outcome(
                "rejected",
                "replay",
                f"FCnt {fcnt32} is not above the last accepted {last}",
                device=dev,
                fcnt32=fcnt32,
                frame=frame,
                best=best,
                copies=copies,
            )
        payload = b""
        mac_raw = frame.fopts
        if frame.fport is not None and frame.frm_payload:
            key = s.nwk_s_key if frame.fport == 0 else s.app_s_key
            payload = crypto.crypt_frm_payload(key, True, frame.dev_addr, fcnt32, frame.frm_payload)
            if frame.fport == 0:
                mac_raw = payload
        mac_up = maccmds.decode(mac_raw, True) if mac_raw else []
        record = self._record(dev, frame, fcnt32, payload, copies)
        current = self.store.set_fcnt_up(dev.dev_eui, fcnt32, best.received_at.timestamp(), epoch=s.epoch)
        if current:
            for cmd in mac_up:
                if cmd.get("name") == "DevStatusAns" and isinstance(cmd.get("battery"), int):
                    self.store.set_battery(dev.dev_eui, int(cmd["battery"]), best.received_at.timestamp())
        self._records.append(record)
        fcnt_seen[(dev.dev_eui, s.epoch)] = fcnt32
        return Outcome(
            "accepted",
            device=dev,
            fcnt32=fcnt32,
            frame=frame,
            best=best,
            copies=copies,
            mac_up=mac_up,
            record=record,
            superseded=not current,
        )

    def _counter_gap(
        self, frame: phy.DataFrame, candidates: list[Device], fcnt_seen: dict[tuple[int, int], int]
    ) -> tuple[Device, int, int] | None:
        """After a MIC failure: whether the frame verifies with a counter one or two 16-bit rounds further
        than the reconstructed one (the device's counter jumped by 49,152 or more, which the 16 bits on air
        cannot tell from an old counter). Costs two more MICs per session, on failures only."""
        for dev in candidates:
            s = dev.session
            if s is None or s.fcnt_up is None:
                continue
            last = fcnt_seen.get((dev.dev_eui, s.epoch), s.fcnt_up)
            base = fcnt.reconstruct(last, frame.fcnt16)
            for ahead in (base + (1 << 16), base + (2 << 16)):
                if ahead > 0xFFFFFFFF:
                    break
                mic = crypto.data_mic(s.nwk_s_key, True, frame.dev_addr, ahead, frame.msg)
                if crypto.verify_mic(mic, frame.mic):
                    return dev, last, ahead
        return None

    def _record(
        self, dev: Device, frame: phy.DataFrame, fcnt32: int, payload: bytes, copies: list[Reception]
    ) -> dict[str, Any]:
        best = copies[0]
        fport = frame.fport
        codec, data, units, warnings, errors = dev.codec, None, {}, [], []
        if fport is not None and 0 < fport < _TEST_PORT:
            try:
                res = self.codec_lookup(codec).decode(payload, fport)
                codec = res.get("codec", codec)
                data = res.get("data")
                units = res.get("units", {})
                warnings = list(res.get("warnings", ()))
                errors = list(res.get("errors", ()))
            except (CodecError, InputError) as exc:  # stored anyway: the raw bytes are kept for later
                errors = [str(exc)]
        epoch = dev.session.epoch if dev.session is not None else 0
        eui = dev.eui_hex
        msg_id = f"{eui}-{epoch}-{fcnt32}"  # message_id(); inline on the hot path
        at = best.received_at
        if at is self._time_text[0]:  # the frames of one datagram share their receive time
            received_at = self._time_text[1]
        else:
            received_at = format_time(at)
            self._time_text = (at, received_at)
        message = {
            "id": msg_id,
            "device": dev.name,
            "dev_eui": eui,
            "dev_addr": f"{frame.dev_addr:08X}",
            "session_epoch": epoch,
            "fcnt": fcnt32,
            "fport": fport,
            "confirmed": frame.confirmed,
            "received_at": received_at,
            "time_source": best.time_source,
            "rx": [c.rx_info() for c in copies],
            "codec": codec,
            "data": data,
            "units": units,
            "warnings": warnings,
            "errors": errors,
            "raw": payload.hex(),
        }
        priority = classify(dev.codec, data, fport)
        if self.rules is not None and priority != "alarm":
            priority = higher(priority, str(self.rules.classify(message).cls))
        return {
            "id": msg_id,
            "kind": "up",
            "dev_eui": eui,
            "fcnt32": fcnt32,
            "priority": priority,
            "received_at": received_at,
            "payload": message,
            "payload_json": self._message_json(message),
        }

    def _message_json(self, message: dict[str, Any]) -> str:
        """The message's JSON text for the outbox (written here, so that a value JSON cannot hold costs this
        frame its decoded data, not the whole batch its commit)."""
        try:
            return encode_json(message)
        except (ValueError, TypeError) as exc:
            # a decoded value JSON cannot hold (a codec bug): keep the frame with its raw bytes, say why
            log.error("uplink %s: decoded data is not JSON: %s (stored without it)", message["id"], exc)
            message["data"] = None
            message["errors"] = [*message["errors"], f"decoded data is not JSON: {exc}"]
            return encode_json(message)

    # ------------------------------------------------------------------------------------------ join
    def _answered_join(
        self,
        jr: phy.JoinRequest,
        copies: list[Reception],
        now: datetime,
        nonces_seen: set[tuple[int, int]],
        after_store: Callable[[Outcome], None] | None,
    ) -> Outcome:
        """A join is recorded only together with its join-accept: ``after_store`` schedules it inside a
        savepoint with the join's writes, and when it raises :class:`NotAnswered` (no forwarder to send
        through, the duty cycle) they are rolled back and the join-request is rejected as
        ``join_unanswered``; the device asks again with a new DevNonce. A join-request replayed from the
        journal after a restart cannot be answered at all (its windows are gone)."""
        best = copies[0]
        if best.replayed:
            return Outcome(
                "rejected",
                "join_unanswered",
                "join-request from before a restart: its join-accept windows have passed",
                best=best,
                copies=copies,
            )
        records = len(self._records)
        try:
            with self.store.transaction():  # a savepoint of flush's transaction
                out = self._join(jr, copies, now, nonces_seen)
                if out.status == "joined" and after_store is not None:
                    after_store(out)
        except NotAnswered as exc:
            del self._records[records:]
            nonces_seen.discard((jr.dev_eui, jr.dev_nonce))
            log.warning("join-request of %s not answered: %s", eui_hex(jr.dev_eui), exc)
            return Outcome("rejected", "join_unanswered", str(exc), best=best, copies=copies)
        except BaseException:
            del self._records[records:]  # rolled back with the savepoint
            nonces_seen.discard((jr.dev_eui, jr.dev_nonce))
            raise
        return out

    def _join(
        self, jr: phy.JoinRequest, copies: list[Reception], now: datetime, nonces_seen: set[tuple[int, int]]
    ) -> Outcome:
        best = copies[0]
        dev = self.store.by_join(jr.join_eui, jr.dev_eui)
        if dev is None or dev.app_key is None:
            return Outcome(
                "rejected",
                "unknown_device",
                f"no OTAA device with DevEUI {eui_hex(jr.dev_eui)} and JoinEUI {eui_hex(jr.join_eui)}",
                best=best,
                copies=copies,
            )
        if not crypto.verify_mic(crypto.join_request_mic(dev.app_key, jr.msg), jr.mic):
            return Outcome(
                "rejected", "mic", "join-request MIC does not verify", device=dev, best=best, copies=copies
            )
        if (dev.dev_eui, jr.dev_nonce) in nonces_seen or self.store.dev_nonce_used(dev.dev_eui, jr.dev_nonce):
            return Outcome(
                "rejected",
                "dev_nonce_reused",
                f"DevNonce {jr.dev_nonce} was used before",
                device=dev,
                best=best,
                copies=copies,
            )
        nonces_seen.add((dev.dev_eui, jr.dev_nonce))
        dev_addr = self._allocate_dev_addr(dev)
        join_nonce = self.store.next_join_nonce()
        nwk, app = crypto.derive_session_keys(dev.app_key, join_nonce, self.net.net_id, jr.dev_nonce)
        epoch = self.store.activate(
            dev.dev_eui,
            Session(dev_addr, nwk, app, None, 0),
            jr.dev_nonce,
            rx1_delay=self.net.rx1_delay_s,
            rx1_dr_offset=self.net.rx1_dr_offset,
            rx2_dr=self.net.rx2_dr,
        )
        accept = phy.build_join_accept(
            app_key=dev.app_key,
            join_nonce=join_nonce,
            net_id=self.net.net_id,
            dev_addr=dev_addr,
            rx1_dr_offset=self.net.rx1_dr_offset,
            rx2_dr=self.net.rx2_dr,
            rx_delay=self.net.rx1_delay_s,
            cflist_hz=CFLIST_HZ,
        )
        received_at = format_time(best.received_at)
        msg_id = f"{dev.eui_hex}-join-{jr.dev_nonce}"
        record = {
            "id": msg_id,
            "kind": "join",
            "dev_eui": dev.eui_hex,
            "fcnt32": None,
            "priority": "state",
            "received_at": received_at,
            "payload": {
                "id": msg_id,
                "device": dev.name,
                "dev_eui": dev.eui_hex,
                "join_eui": eui_hex(jr.join_eui),
                "dev_addr": f"{dev_addr:08X}",
                "dev_nonce": jr.dev_nonce,
                "session_epoch": epoch,
                "received_at": received_at,
                "time_source": best.time_source,
                "rx": [c.rx_info() for c in copies],
            },
        }
        self._records.append(record)
        rx = best.rx
        plan = [
            (rx.freq_hz, rx.datr, (rx.tmst + eu868.JOIN_ACCEPT_DELAY1_S * 1_000_000) % (1 << 32)),
            # the device has not seen our DLSettings yet: its join RX2 is the region's default (DR0)
            (
                eu868.RX2_FREQ_HZ,
                eu868.datr(eu868.RX2_DR),
                (rx.tmst + eu868.JOIN_ACCEPT_DELAY2_S * 1_000_000) % (1 << 32),
            ),
        ]
        joined = Outcome(
            "joined",
            device=dev,
            best=best,
            copies=copies,
            record=record,
            join_accept=accept,
            downlink_plan=plan,
        )
        log.info("join accepted: %s DevAddr %08X", dev.name, dev_addr)
        return joined

    def _allocate_dev_addr(self, dev: Device) -> int:
        """A random free DevAddr under the configured prefix (re-joining devices get a new one)."""
        plen = self.net.dev_addr_prefix_len
        host_bits = 32 - plen
        for _ in range(1000):
            addr = self.net.dev_addr_prefix | self.rng.getrandbits(host_bits)
            current = dev.session.dev_addr if dev.session else None
            if addr != current and not self.store.dev_addr_in_use(addr):
                return addr
        raise HavelError(
            "no free DevAddr left under the configured prefix", hint="widen network.dev_addr_prefix"
        )


def _frame_key(data: bytes) -> bytes:
    """What copies of one PHYPayload share (the dedup key)."""
    return hashlib.blake2b(data, digest_size=16).digest()


_COMPILED: dict[str, Any] = {}


def _compiled_codec(name: str) -> Any:
    """The payload codec, switched once to construct's compiled parsers (several times faster on the hot
    path; codecs without that option are used as they are)."""
    codec = _COMPILED.get(name)
    if codec is None:
        from havel.codecs.payload import get_codec

        codec = get_codec(name)
        compile_ = getattr(codec, "use_compiled", None)
        if callable(compile_):
            try:
                compile_()
            except Exception:  # construct cannot compile every schema; the plain parser still works
                log.debug("codec %s stays uncompiled", name)
        _COMPILED[name] = codec
    return codec


def message_id(dev_eui_hex: str, epoch: int, fcnt32: int) -> str:
    """The stable id of an uplink: ``<DevEUI>-<SessionEpoch>-<FCnt32>``.

    The frame counter restarts at 0 with every OTAA join, so DevEUI and FCnt32 alone would give a new
    reading the id of an old one (dropped as a duplicate by the outbox and the platform). The session
    epoch is the number of joins accepted for the device (0 for ABP, 1 after the first join), persisted
    in the registry with the session."""
    return f"{dev_eui_hex}-{epoch}-{fcnt32}"


def now_utc() -> datetime:
    """The local clock as an aware UTC datetime."""
    return datetime.now(UTC)
