"""One roof's part in a network of roofs sharing their state on Redis: each frame processed once, each
downlink sent by one roof.

Per copy a concentrator of this roof hears, :meth:`Roof.receive` appends it to the frame's copy list in Redis
and tries the frame's lock (``SET NX PX``, one script). The roof that gets the lock keeps the frame in its
network server's dedup window; when the window closes it adds every other roof's copy from the list, the
network server processes the frame once (counters and joins go to Redis in one script at commit) and the
message goes to THIS roof's outbox. Other roofs drop their copy. A downlink (join-accept, ACK, a queued
command) goes through the gateway with the best SNR among those whose duty cycle allows: this roof sends it,
or hands it to the roof that has that gateway (``tx:<roof>`` list, polled by :meth:`Roof.poll`).

When Redis cannot be reached, the roof processes every copy it hears itself from its cached sessions (into
its own outbox, delivered as usual: the forwarder marks late ones ``buffered``); it answers no join and
sends no downlink. :meth:`Roof.tick` brings it back
(counters reconciled as maxima). See docs/multiroof.md."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from havel.codecs.lorawan import eu868, phy
from havel.errors import InputError
from havel.gateway.downlinks import airtime_s
from havel.gateway.network.dedup import Group, frame_key
from havel.gateway.network.outcome import NotAnswered, Outcome, Status
from havel.gateway.network.reception import COUNTER_MODULO, Reception
from havel.gateway.network.server import NetworkServer
from havel.gateway.network.shared.answers import UplinkAnswers
from havel.gateway.network.shared.connection import UNREACHABLE
from havel.gateway.network.shared.copies import decode_copy, encode_copy
from havel.gateway.network.shared.results import command_result
from havel.gateway.network.shared.sessionstore import RedisSessionStore
from havel.gateway.network.shared.state import SharedState

log = logging.getLogger("havel.gateway.shared")

# one downlink handed to a roof: what it needs to send it
Downlink = dict[str, Any]


class Roof:
    """See the module docstring. ``transmit(downlink)`` sends one downlink through this roof's gateway
    ``downlink["gateway"]`` (a hex EUI) at ``downlink["tmst"]``; ``duty`` is the sub-band's duty cycle used
    to keep a gateway from sending again too soon."""

    def __init__(
        self,
        roof_id: str,
        shared: SharedState,
        store: RedisSessionStore,
        ns: NetworkServer,
        transmit: Callable[[Downlink], None],
        *,
        duty: float = 0.01,
    ) -> None:
        self.id = roof_id
        self.shared = shared
        self.store = store
        self.ns = ns
        self.transmit = transmit
        self.duty = duty
        net = ns.net
        self.window_ms = net.dedup_window_ms
        # the lock lives until the frame's RX2 window closed: later copies of the frame are this roof's
        self.lock_ms = int((net.rx1_delay_s + 1) * 1000) + self.window_ms
        self.counts: Counter[str] = Counter()
        self._mine: set[bytes] = set()  # frames this roof holds the lock of, whose copies are not merged yet
        self._owner: dict[int, str] = {}  # gateway EUI -> the roof it belongs to
        self._joins: dict[int, Downlink] = {}  # id(outcome) -> its join-accept, chosen inside the transaction
        self.cache_refresh_s = 60.0
        # frames handed to another roof: key -> (this roof's copy, when to take it over if not done by then)
        self._watch: dict[bytes, tuple[Reception, float]] = {}
        self.take_over_s = self.window_ms / 1000 + 1.0
        self._late: set[bytes] = set()  # frames taken over: their receive windows have passed, no downlink
        self.results: list[dict[str, Any]] = []  # command results to store (see store_results)
        self.on_results: Callable[[], None] | None = None  # called when results were stored
        self.answers = UplinkAnswers(self)

    # -------------------------------------------------------------------------------- intake
    def receive(self, copy: Reception, mono: float) -> Outcome | None:
        """Take one copy heard by this roof (see the module docstring)."""
        self._owner[copy.gateway_eui] = self.id
        if copy.rx.crc_ok and self.store.online:
            key = frame_key(copy.rx.data)
            try:
                won = self.shared.claim(
                    key, self.id, encode_copy(self.id, copy), self.lock_ms, self.lock_ms + self.window_ms
                )
            except UNREACHABLE as exc:
                self.store.offline(exc)
                won = 1
            if won == 0:
                self.counts["other_roof"] += 1
                if key not in self._watch and len(self._watch) < 100_000:
                    self._watch[key] = (copy, mono + self.take_over_s)
                return None
            self._mine.add(key)
        if copy.replayed and copy.rx.crc_ok:  # (from an intake journal after a restart: its windows passed)
            self._late.add(frame_key(copy.rx.data))
        return self.ns.receive(copy, mono)

    def _merge(self, due: list[tuple[bytes, Group]]) -> None:
        """Add the other roofs' copies of these frames to their groups, read in one round trip (the best
        signal is sorted out by the server)."""
        for key, _ in due:
            self._mine.discard(key)
        try:
            lists = self.shared.copies_of([k for k, _ in due])
        except UNREACHABLE as exc:
            self.store.offline(exc)
            return
        for (_, g), entries in zip(due, lists, strict=True):
            self._merge_one(g, entries)

    def _merge_one(self, g: Group, entries: list[str]) -> None:
        data = g.copies[0].rx.data
        for text in entries:
            try:
                roof, c = decode_copy(text, data)
            except InputError as exc:
                self.counts["damaged_copy"] += 1
                log.error("%s (left out)", exc)
                continue
            if roof == self.id:
                continue
            self._owner[c.gateway_eui] = roof
            g.copies.append(c)
            self.counts["copies_merged"] += 1

    # ------------------------------------------------------------------------------- process
    def next_deadline(self) -> float | None:
        """When a frame's window closes or a frame handed to another roof is due to be taken over."""
        at = self.ns.next_deadline()
        if self._watch:
            first = min(t for _, t in self._watch.values())
            at = first if at is None else min(at, first)
        return at

    def _take_over_due(self, mono: float) -> None:
        """Frames another roof took but did not mark done in time (it died): this roof processes them."""
        due = [k for k, (_, at) in self._watch.items() if at <= mono]
        for key in due:
            copy, _ = self._watch.pop(key)
            try:
                taken = self.shared.take_over(key, self.id, self.lock_ms)
            except UNREACHABLE as exc:
                self.store.offline(exc)
                taken = True
            if taken:
                self.counts["taken_over"] += 1
                log.warning("a frame another roof took was not processed in time: this roof processes it")
                self._mine.add(key)
                self._late.add(key)
                self.ns.receive(copy, mono)

    def flush(self, mono: float, now: datetime, *, force: bool = False, send: bool = True) -> list[Outcome]:
        """Process the frames whose window closed, then send or hand over their downlinks (``send=False``:
        none, as for a frame taken over: no join stored, no command taken)."""
        if self._watch:
            self._take_over_due(mono)
        due: list[tuple[bytes, Group]] = []
        for key, g in self.ns.dedup.pending.items():
            if not force and g.deadline > mono:
                break
            if not send:
                self._late.add(key)
            if key in self._mine:
                due.append((key, g))
        if due:
            self._merge(due)
        if self._late:
            self._rewind_late(force, mono)
        self._joins = {}
        try:
            outs = self.ns.flush(mono, now, force=force, after_store=self._after_store)
        finally:
            self.store.rewind = {}
        offline = not self.store.online
        if outs and not offline:
            try:
                self.shared.mark_done(
                    [frame_key(o.best.rx.data) for o in outs if o.best is not None],
                    self.lock_ms + self.window_ms,
                    [
                        (o.frame.dev_addr, o.fcnt32 & 0xFFFF)
                        for o in outs
                        if o.status == Status.ACCEPTED
                        and isinstance(o.frame, phy.DataFrame)
                        and o.fcnt32 is not None
                    ],
                )
            except UNREACHABLE as exc:
                self.store.offline(exc)
        for out in outs:
            self.counts[str(out.status)] += 1
            if offline and out.status == Status.ACCEPTED:
                self.counts["accepted_offline"] += 1
            if out.status == Status.JOINED:
                d = self._joins.get(id(out))
                if d is not None:
                    self.route(d)
        late = self._late
        live = [
            o
            for o in outs
            if o.status in (Status.ACCEPTED, Status.RETRANSMISSION)
            and not o.superseded
            and not (late and o.best is not None and frame_key(o.best.rx.data) in late)
            and o.device is not None
            and o.device.session is not None
            and o.frame is not None
        ]
        if live and self.store.online:
            self.answers.answer(
                [o for o in live if o.status == Status.ACCEPTED],
                [o for o in live if o.status == Status.RETRANSMISSION],
            )
        if late:
            late.difference_update(frame_key(o.best.rx.data) for o in outs if o.best is not None)
        self._joins = {}
        self.store_results()
        return outs

    def store_results(self) -> None:
        """The command results this roof learnt (sent, acked, failed, expired) into its outbox, in one
        transaction of their own (after the batch's: a result is no part of an uplink's unit)."""
        if not self.results:
            return
        records, self.results = self.results, []
        with self.store.transaction():
            self.ns.outbox.put_many(records)
        if self.on_results is not None:
            self.on_results()

    def _rewind_late(self, force: bool, mono: float) -> None:
        """Late frames (from the intake journal, or taken over) whose counters a batch raised in Redis that
        no roof's database holds (its roof was killed between the two commits): the session store presents
        their devices' counters as they were before, so these frames are accepted once instead of refused
        as replays."""
        frames = [
            g.frame
            for key, g in self.ns.dedup.pending.items()
            if (force or g.deadline <= mono) and key in self._late and isinstance(g.frame, phy.DataFrame)
        ]
        if not frames or not self.store.online:
            return
        try:
            marks = self.shared.applied([(f.dev_addr, f.fcnt16) for f in frames])
        except UNREACHABLE as exc:
            self.store.offline(exc)
            return
        for m in marks:
            if m is None:
                continue
            old = self.store.rewind.get(m.dev_eui)
            if old is None or old[0] != m.epoch or m.prev < old[1]:
                self.store.rewind[m.dev_eui] = (m.epoch, m.prev)
            self.counts["replay_resumed"] += 1
            log.warning(
                "device %016X: FCnt %d raised in the shared store but never stored: stored now",
                m.dev_eui,
                m.fcnt,
            )

    def _after_store(self, out: Outcome) -> None:
        """Inside the transaction: a join is stored only when its join-accept has a gateway to go by."""
        if out.status != Status.JOINED:
            return
        if not self.store.online:
            raise NotAnswered("the shared store is unreachable")
        if self._late and out.best is not None and frame_key(out.best.rx.data) in self._late:
            raise NotAnswered("taken over from a roof that died: its join-accept windows have passed")
        copy = self.gateway_for(out.copies)
        if copy is None:
            raise NotAnswered("every gateway that heard the join-request waits for its duty cycle")
        assert out.join_accept is not None
        self._joins[id(out)] = self.downlink(copy, out.join_accept, 5, "join", out)

    def gateway_for(self, copies: list[Reception]) -> Reception | None:
        """The copy (best SNR first) whose gateway may send now; None when all wait or Redis is gone."""
        gws = list(dict.fromkeys(c.gateway_eui for c in copies))
        try:
            waiting = self.shared.gateways_waiting(gws)
        except UNREACHABLE as exc:
            self.store.offline(exc)
            return None
        for c in copies:  # (the server sorted them best signal first)
            if c.gateway_eui not in waiting:
                return c
        return None

    def downlink(self, c: Reception, data: bytes, delay_s: int, kind: str, out: Outcome) -> Downlink:
        """A downlink in the RX1 window of copy ``c`` (``delay_s`` after it, its frequency and data rate),
        with its RX2 window (a second later, the device's RX2 frequency and data rate; the region's for a
        join-accept) for the backend to send instead when the RX1 transmission fails."""
        dev = out.device
        if kind == "join" or dev is None:
            rx2_freq, rx2_dr = eu868.RX2_FREQ_HZ, eu868.RX2_DR
        else:
            rx2_freq, rx2_dr = dev.rx2_freq_hz, dev.rx2_dr
        rx2_tmst = (c.rx.tmst + (delay_s + 1) * 1_000_000) % COUNTER_MODULO
        return {
            "roof": self._owner.get(c.gateway_eui, self.id),
            "gateway": f"{c.gateway_eui:016X}",
            "data": data.hex(),
            "freq_hz": c.rx.freq_hz,
            "datr": c.rx.datr,
            "tmst": (c.rx.tmst + delay_s * 1_000_000) % COUNTER_MODULO,
            "rx2": [rx2_freq, eu868.datr(rx2_dr), rx2_tmst],
            "kind": kind,
            "dev_eui": dev.eui_hex if dev is not None else None,
            "by": self.id,
        }

    # ------------------------------------------------------------------------------ sending
    def route(self, d: Downlink) -> None:
        if d["roof"] == self.id:
            self._send(d)
            return
        try:
            self.shared.hand_over(d["roof"], d)
            self.counts["handed_over"] += 1
        except UNREACHABLE as exc:
            self.store.offline(exc)
            self.counts["downlink_lost"] += 1

    def _send(self, d: Downlink) -> None:
        self.transmit(d)
        self.counts["transmitted"] += 1
        if d.get("command") is not None and d.get("attempt") == 1:  # its first transmission: "sent"
            record = command_result(str(d["command"]), "sent", "RX1", d.get("fcnt_down"))
            if record is not None:
                self.counts["command_sent"] += 1
                self.results.append(record)
        wait = airtime_s(len(d["data"]) // 2, d["datr"]) * (1 / self.duty - 1) if self.duty < 1 else 0.0
        try:
            self.shared.gateway_busy(int(d["gateway"], 16), wait)
        except UNREACHABLE as exc:
            self.store.offline(exc)

    def poll(self) -> int:
        """Send the downlinks other roofs handed to this one; returns how many."""
        if not self.store.online:
            return 0
        try:
            entries = self.shared.handed_to(self.id)
        except UNREACHABLE as exc:
            self.store.offline(exc)
            return 0
        sent = 0
        for text in entries:
            try:
                d = json.loads(text)
                if not isinstance(d, dict):
                    raise TypeError("not an object")
                for k in ("gateway", "data", "freq_hz", "datr", "tmst"):
                    if k not in d:
                        raise KeyError(k)
                bytes.fromhex(d["data"])
                int(d["gateway"], 16)
            except (ValueError, TypeError, KeyError) as exc:
                self.counts["damaged_handoff"] += 1
                log.error("downlink handed to this roof is damaged (%s): dropped", exc)
                continue
            self._send(d)
            sent += 1
        self.store_results()
        return sent

    def tick(self, mono: float | None = None) -> bool:
        """Retry an unreachable store (counters reconciled when it answers); when online, reload the
        fallback cache every ``cache_refresh_s``. True when online."""
        if self.store.online:
            at = self.store.warmed_at
            if mono is not None and (at is None or mono - at >= self.cache_refresh_s):
                self.store.warm()
            return self.store.online
        ok = self.store.try_online()
        if ok:
            self.counts["back_online"] += 1
        return ok
