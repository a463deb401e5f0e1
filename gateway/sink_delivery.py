"""The delivery to one sink: fetch what it has not acknowledged, hand it over in order, take its results,
hold acknowledgements in the outbox, retry refusals, and keep the sink's state with hysteresis. The rules
are in :mod:`.delivery`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from havel.errors import HavelError, StorageError
from havel.gateway.outbox_records import OutboxRecord
from havel.gateway.sink_status import SinkStatus, iso
from havel.gateway.sinks.base import Sink

if TYPE_CHECKING:
    from havel.gateway.delivery import Delivery

__all__ = ["SinkDelivery"]

log = logging.getLogger("havel.gateway.delivery")


class SinkDelivery:
    """The loop of one sink (see :mod:`.delivery`)."""

    def __init__(self, fwd: Delivery, sink: Sink) -> None:
        self.fwd = fwd
        self.sink = sink
        self.outbox = fwd.outbox
        self.event = asyncio.Event()
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.cursor = 0
        self.inflight: dict[str, OutboxRecord] = {}  # record id -> record awaiting its result
        self.retry: list[tuple[float, OutboxRecord]] = []
        # delivered records are held in the outbox (Outbox.hold_acks) until recorded; since when the oldest
        # of this sink's waits (monotonic)
        self.unacked_since = 0.0
        self.stopping = False
        now_wall, now = time.time(), time.monotonic()
        self.started_mono = now
        self.status = SinkStatus(
            sink.name, "starting", now_wall, False, None, None, None, None, 0, 0, 0, 0, 0, 0
        )
        self.healthy_since: float | None = None
        self.unhealthy_since: float | None = None
        self.last_ok_mono = now
        self.inflight_since = now
        self.buffered_upto = self.outbox.max_seq()  # everything stored before we started waited for us
        self.seen_connects = 0  # the sink's connection count when last looked at (a change: a reconnect)
        self.ack_error: str | None = None  # the last failure to record acknowledgements (logged once)

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        self.sink.bind(asyncio.get_running_loop(), self.event.set)
        try:
            await self.sink.start()
        except HavelError as exc:
            log.error("sink %s cannot start: %s", self.sink.name, exc)
            self._set(last_error=str(exc))
            self._change("down")
            return
        deadline: float | None = None
        while True:
            self.event.clear()
            try:
                self._collect()
                self._update_state()
            except Exception:  # a bug must not end delivery for good: log it, breathe, go on
                log.exception("sink %s: delivery round failed", self.sink.name)
                await asyncio.sleep(1.0)
                continue
            if self.stopping:
                # flush: keep sending what is stored while the sink is connected, until the deadline
                if deadline is None:
                    deadline = time.monotonic() + self.fwd.stop_timeout
                if time.monotonic() >= deadline or not self.sink.connected:
                    break
            if self.sink.connected:
                try:
                    if not self.stopping:
                        self._send_due_retries()
                    fetched = self._fill()
                    if self.stopping and not fetched and not self.inflight:
                        break  # everything stored has been delivered
                    if fetched >= self.fwd.batch:
                        await asyncio.sleep(0)  # more is waiting: let others run, then go on at once
                        continue
                except StorageError as exc:
                    log.error("sink %s: %s", self.sink.name, exc)
                    self._set(last_error=str(exc))
                    await asyncio.sleep(1.0)
                    continue
                except Exception:
                    log.exception("sink %s: delivery round failed", self.sink.name)
                    await asyncio.sleep(1.0)
                    continue
            # (asyncio.timeout, not wait_for: no task per wait, and this runs once per PUBACK burst)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._wait_s()):
                    await self.event.wait()
        self._collect(flush=True)
        if self.inflight:
            log.warning(
                "sink %s: stopping with %d records unacknowledged (they stay in the outbox)",
                self.sink.name,
                len(self.inflight),
            )
        await self.sink.stop()

    def _fill(self) -> int:
        room = min(self.fwd.window, self.sink.window()) - len(self.inflight)
        if room <= 0:
            return 0
        records = self.outbox.fetch(self.sink.name, min(self.fwd.batch, room), after_seq=self.cursor)
        now = time.monotonic()
        if records and not self.inflight:
            self.inflight_since = now
        inflight = self.inflight
        upto, down = self.buffered_upto, self.status.state == "down"
        # received before this second (RFC 3339 UTC texts compare in time order, to the second here)
        late = iso(time.time() - self.fwd.buffered_after_s)[:19]  # type: ignore[index]
        batch = []
        flags = []
        for rec in records:
            if rec.id in inflight:
                continue
            inflight[rec.id] = rec
            batch.append(rec)
            flags.append(down or rec.seq <= upto or rec.received_at < late)
        if records:
            self.cursor = records[-1].seq
        if batch:
            self.sink.send_many(batch, flags)  # in order: per-device FCnt order
        sent, buffered_sent = len(batch), sum(flags)
        if sent:
            self._set(
                sent=self.status.sent + sent,
                buffered_sent=self.status.buffered_sent + buffered_sent,
                inflight=len(self.inflight),
            )
        return len(records)

    def _send_due_retries(self) -> None:
        if not self.retry:
            return
        now = time.monotonic()
        due = [r for t, r in self.retry if t <= now]
        if not due:
            return
        self.retry = [(t, r) for t, r in self.retry if t > now]
        if not self.inflight:
            self.inflight_since = now
        for rec in due:
            if rec.id not in self.inflight:
                self.inflight[rec.id] = rec
                self.sink.send(rec, True)

    def _wait_s(self) -> float:
        """How long to sleep for: ``poll_s``, or less when grouped acknowledgements fall due sooner."""
        if not self.outbox.held_count(self.sink.name):
            return self.fwd.poll_s
        due = self.unacked_since + self.fwd.ack_interval_s - time.monotonic()
        return max(0.0, min(self.fwd.poll_s, due))

    def _collect(self, *, flush: bool = False) -> None:
        """Take the sink's results; commit the acknowledgements gathered so far when they are due
        (``ack_interval_s`` since the oldest, or ``ack_batch`` of them) or ``flush`` is set."""
        delivered, failed = self.sink.take_delivered()
        outbox, name = self.outbox, self.sink.name
        if delivered or failed:
            now = time.monotonic()
            inflight = self.inflight
            seqs = []
            for rid in delivered:
                pending = inflight.pop(rid, None)
                if pending is not None:
                    seqs.append(pending.seq)
            for res in failed:
                pending = inflight.pop(res.record_id, None)
                log.warning(
                    "sink %s refused %s: %s (kept, retry in %.0f s)",
                    name,
                    res.record_id,
                    res.reason,
                    self.fwd.retry_s,
                )
                if pending is not None:
                    self.retry.append((now + self.fwd.retry_s, pending))
            if seqs:
                if not outbox.held_count(name):
                    self.unacked_since = now
                outbox.hold_acks(name, seqs)
            if delivered:
                self.last_ok_mono = now
            self._set(
                acked=self.status.acked + len(delivered),
                refused=self.status.refused + len(failed),
                inflight=len(inflight),
                last_ack_at=time.time() if delivered else self.status.last_ack_at,
            )
        held = outbox.held_count(name)
        if held and (
            flush
            or held >= self.fwd.ack_batch
            or time.monotonic() - self.unacked_since >= self.fwd.ack_interval_s
        ):
            try:
                outbox.commit_acks()
                self.ack_error = None
            except StorageError as exc:  # still held; tried again after ack_interval_s (not every round)
                self.unacked_since = time.monotonic()
                level = logging.DEBUG if str(exc) == self.ack_error else logging.ERROR
                self.ack_error = str(exc)
                log.log(level, "sink %s: cannot record acknowledgements: %s", name, exc)

    # ------------------------------------------------------------------ state

    def _update_state(self) -> None:
        now = time.monotonic()
        st = self.status
        connects = self.sink.connects
        if connects != self.seen_connects:
            if self.seen_connects:  # a reconnect: everything stored until now waited for the connection
                self.buffered_upto = max(self.buffered_upto, self.outbox.max_seq())
            self.seen_connects = connects
        stalled = (
            bool(self.inflight) and now - max(self.last_ok_mono, self.inflight_since) >= self.fwd.down_after_s
        )
        healthy = self.sink.connected and not stalled
        if healthy:
            self.unhealthy_since = None
            if self.healthy_since is None:
                self.healthy_since = now
        else:
            self.healthy_since = None
            if self.unhealthy_since is None:
                self.unhealthy_since = now
        if st.connected != self.sink.connected or st.last_error != self.sink.last_error:
            self._set(connected=self.sink.connected, last_error=self.sink.last_error)
        if st.state == "starting":
            if healthy:
                self._change("up")
            elif now - self.started_mono >= self.fwd.down_after_s:
                self._change("down")
        elif st.state == "up":
            if self.unhealthy_since is not None and now - self.unhealthy_since >= self.fwd.down_after_s:
                self._change("down")
        elif (
            st.state == "down"
            and self.healthy_since is not None
            and now - self.healthy_since >= self.fwd.up_after_s
        ):
            # everything stored until now waited through the outage
            self.buffered_upto = max(self.buffered_upto, self.outbox.max_seq())
            self._change("up")

    def _set(self, **changes: Any) -> None:
        # a new snapshot (listeners keep the old ones); dataclasses.replace is slower (several per round)
        self.status = SinkStatus(**{**self.status.__dict__, **changes})

    def _change(self, state: str) -> None:
        now = time.time()
        old = self.status.state
        extra = {"last_up_at": now} if state == "up" else {"last_down_at": now}
        self._set(state=state, since=now, changes=self.status.changes + 1, **extra)
        level = logging.WARNING if state == "down" else logging.INFO
        log.log(
            level,
            "sink %s: %s -> %s%s",
            self.sink.name,
            old,
            state,
            f" ({self.status.last_error})" if state == "down" and self.status.last_error else "",
        )
        self.changed.set()
        self.changed = asyncio.Event()
        for listener in list(self.fwd.listeners):
            try:
                listener(self.status)
            except Exception:
                log.exception("sink state listener failed")
