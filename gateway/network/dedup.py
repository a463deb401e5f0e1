"""Deduplication: copies of one frame from several concentrators become one group; later copies are
duplicates, unless the device sent the frame again once its receive windows had passed.

Copies of the same PHYPayload are grouped for ``dedup_window_ms`` so that all receivers are listed and the
best signal kept. A copy arriving after its group was processed (within ``duplicate_ttl_s``) is a duplicate,
except a frame the device sent again (LoRaWAN 1.0.x keeps the FCnt): a confirmed one whose ACK it missed,
or an unconfirmed one repeated NbTrans times as ADR asked. Such a group is marked ``again``."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from havel.codecs.lorawan import phy
from havel.errors import FrameError
from havel.gateway.config import NetworkConfig
from havel.gateway.network.outcome import Outcome, Reason, Status
from havel.gateway.network.reception import COUNTER_MODULO, Reception

MAX_RECENT = 200_000  # frames remembered for duplicate detection (~30 MB at most)
# retransmissions of one frame recognised at most (the firmware sends a confirmed one up to 1 + 7 times, an
# unconfirmed one NbTrans <= 3 times)
MAX_ACKS_AGAIN = 8
_UNCONFIRMED_UP = 0b010  # MType of an unconfirmed data uplink (MHDR bits 7..5)
_CONFIRMED_UP = 0b100  # ... and of a confirmed one


@dataclass
class Group:
    """The copies of one frame waiting for their dedup window to close."""

    deadline: float  # monotonic
    copies: list[Reception]
    frame: phy.Frame
    again: bool = False  # a frame already stored, sent again by the device


_blake2b = hashlib.blake2b
_UPLINK_FRAMES = (phy.DataFrame, phy.JoinRequest)  # (a tuple: an ``A | B`` union is built at every call)


def frame_key(data: bytes) -> bytes:
    """What copies of one PHYPayload share (the dedup key)."""
    return _blake2b(data, digest_size=16).digest()


def signal_key(c: Reception) -> tuple[float, float]:
    """Sort key of copies: best signal first (with ``reverse=True``)."""
    return (c.rx.lsnr if c.rx.lsnr is not None else -99.0, c.rx.rssi)


def _rejected(reason: Reason, detail: str, copy: Reception) -> Outcome:
    return Outcome(Status.REJECTED, reason, detail, best=copy, copies=[copy])


class Deduplicator:
    """Groups waiting in their window (arrival order) and the frames processed recently."""

    def __init__(self, net: NetworkConfig) -> None:
        self.net = net
        # arrival order, first out first: an OrderedDict, because a plain dict emptied from the front makes
        # next(iter()) skip every deleted slot (measured 3.5 against 0.8 us per flushed frame at 2,000)
        self.pending: OrderedDict[bytes, Group] = OrderedDict()
        self._recent: OrderedDict[bytes, float] = OrderedDict()  # dedup key -> expiry (monotonic)
        self._acked_again: dict[bytes, int] = {}  # dedup key -> retransmissions answered (keys in _recent)
        # confirmed frames stored: dedup key -> {concentrator EUI: tmst of its copy} (keys in _recent)
        self._heard_at: dict[bytes, dict[int, int]] = {}

    def receive(self, copy: Reception, mono: float) -> Outcome | None:
        """Take one copy; returns an Outcome at once only when it is rejected before grouping."""
        rx = copy.rx
        if not rx.crc_ok:
            return _rejected(Reason.CRC, "CRC not OK", copy)
        key = _blake2b(rx.data, digest_size=16).digest()  # frame_key(), inline: once per copy
        group = self.pending.get(key)
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
                    return _rejected(Reason.FRAME, str(exc), copy)
                self.pending[key] = Group(mono + self.net.dedup_window_ms / 1000, [copy], frame, again=True)
                return None
            return _rejected(Reason.DUPLICATE, "copy arrived after its frame was processed", copy)
        try:
            frame = phy.parse(rx.data)
        except FrameError as exc:
            return _rejected(Reason.FRAME, str(exc), copy)
        if not isinstance(frame, _UPLINK_FRAMES) or (isinstance(frame, phy.DataFrame) and not frame.uplink):
            return _rejected(Reason.NOT_UPLINK, f"{type(frame).__name__} is not an uplink", copy)
        self.pending[key] = Group(mono + self.net.dedup_window_ms / 1000, [copy], frame)
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
                return (copy.rx.tmst - before) % COUNTER_MODULO >= windows_s * 1_000_000
            # else since it was processed: a late copy wrongly taken for a retransmission costs a downlink
            return processed_ago >= windows_s
        # Unconfirmed: nothing is sent either way, and the concentrators' clocks are not kept for these (to
        # save memory), so time it from the first copy's arrival, a dedup window before it was processed:
        # a repeat on a channel of another sub-band (no duty-cycle wait) may come right after RX2 closed.
        return processed_ago + self.net.dedup_window_ms / 1000 >= windows_s

    def next_deadline(self) -> float | None:
        """Monotonic time of the earliest group to flush (None when nothing waits)."""
        if not self.pending:
            return None
        # groups are kept in arrival order, and every window has the same length: the first closes first
        return next(iter(self.pending.values())).deadline

    def take_due(self, mono: float, limit: int, force: bool) -> list[tuple[bytes, Group]]:
        """The groups whose window closed (all with ``force``, else at most ``limit``), oldest first; the
        memory of processed frames is trimmed on the way."""
        due: list[tuple[bytes, Group]] = []
        pending = self.pending
        while pending and (force or len(due) < limit):
            key = next(iter(pending))
            if not force and pending[key].deadline > mono:
                break
            due.append(pending.popitem(last=False))
        if due:
            self._expire(mono)
        return due

    def processed(self, key: bytes, group: Group, out: Outcome, mono: float) -> None:
        """Remember a frame that was stored or answered: later copies are duplicates or retransmissions."""
        if group.again and out.status == Status.RETRANSMISSION:
            self._acked_again[key] = self._acked_again.get(key, 0) + 1
            self._recent.move_to_end(key)  # its expiry is renewed below: keep the order
        self._recent[key] = mono + self.net.duplicate_ttl_s
        frame = group.frame
        if isinstance(frame, phy.DataFrame) and frame.confirmed:
            self._heard_at[key] = {c.gateway_eui: c.rx.tmst for c in out.copies}

    def forget(self, out: Outcome) -> None:
        """The frame was not stored after all (its transaction failed): a later copy is no duplicate."""
        if out.best is not None:
            key = frame_key(out.best.rx.data)
            self._recent.pop(key, None)
            self._heard_at.pop(key, None)

    def forget_all(self) -> None:
        """Forget every processed frame, as a restart does (copies waiting in their window stay)."""
        self._recent.clear()
        self._acked_again.clear()
        self._heard_at.clear()

    def _expire(self, mono: float) -> None:
        recent = self._recent
        while recent:
            exp = next(iter(recent.values()))
            if exp > mono and len(recent) <= MAX_RECENT:
                break
            key, _ = recent.popitem(last=False)  # expired, or memory bound reached (a later copy: replay)
            self._acked_again.pop(key, None)
            self._heard_at.pop(key, None)
