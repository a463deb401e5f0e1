"""The forwarder: moves outbox records to every sink, in order, and acknowledges them on delivery.

One asyncio task per sink: fetch the next records the sink has not acknowledged (in ``seq`` order, i.e. FCnt
order per device), hand them to the sink in that order (one ``send_many`` per fetch) with at most
``window`` awaiting acknowledgement, and acknowledge delivered ones in the outbox in groups (group commit):
acknowledgements are held in the outbox (:meth:`~.outbox.Outbox.hold_acks`) and recorded with the next
records stored (the same commit, mostly the same pages) or after ``ack_interval_s`` or ``ack_batch`` of
them, whichever comes first. An acknowledgement not yet committed when the process dies
only means the record is sent again under the same id (at-least-once); pending ones are committed on stop.
A quiet gateway waits the whole interval too, on purpose: each commit writes a few database pages to the
Pi's SD card (and forces them out), and a card wears out by its writes. Committing each acknowledgement at
once wrote about 50 kB per uplink at 0.5 uplinks/s (500 nodes every 15 minutes), grouping them for 5 s
about 39 kB (``bench/storage_writes.py``). The cost: the outbox depth shows delivered records for up to
``ack_interval_s`` longer, and a crash sends those again. The interval stays well under the disaster
relay's outage hysteresis (``down_after_s``, 30 s), so records already delivered are committed as such
before an outage could put them on the radio.

Results come from the sinks through a thread-safe hand-off (:mod:`.sinks.base`). A refused record (e.g.
MQTT reason code 135) stays in the outbox and is tried again after ``retry_s``. Nothing is deleted before
every sink acknowledged it.

``buffered``: a record is published with ``buffered: true`` whenever it was not delivered within seconds of
its reception, whatever the cause. Exactly, it is ``true`` when any of these holds at publication:

- it was received more than ``buffered_after_s`` (10 s) before (its ``received_at``, second resolution,
  against this machine's clock): a backlog, a slow broker, a long outage;
- it was stored before this sink's connection came back after being lost, however short the loss (the
  sink's connection count changed), or before the sink's last down -> up transition;
- it was stored before this forwarder started (it waited while the gateway was down; frames replayed from
  the intake journal after a crash are stored before the forwarder starts);
- it is sent while the sink is considered down, or sent again after the sink refused it.

Its ``received_at`` is untouched.

Sink state (for metrics, the status topic and the disaster relay's outage detection), with hysteresis:

- ``starting`` -> ``up`` on the first successful connection; -> ``down`` after ``down_after_s`` without one.
- ``up`` -> ``down`` after ``down_after_s`` without a connection, or with records awaiting acknowledgement
  and no successful acknowledgement for ``down_after_s`` (a broker that accepts but never acknowledges).
- ``down`` -> ``up`` after ``up_after_s`` of a healthy connection (not on the first reconnect of a flapping
  link).

Observe it with :meth:`Forwarder.add_listener` (called in the event loop on every change with a
:class:`SinkStatus`), :meth:`Forwarder.status`, or ``await`` :meth:`Forwarder.wait_state`.

Usage (the daemon)::

    outbox = Outbox(conn, quota_bytes=..., sinks=[s.name for s in sinks])
    fwd = Forwarder.from_config(outbox, make_sinks(cfg.sinks, gateway_id=cfg.gateway_id),
                                cfg.components.get("forwarder", {}))
    await fwd.start()
    ...; fwd.wake()        # after committing new records (otherwise they are seen within poll_s)
    await fwd.stop()       # on SIGTERM: flushes what is stored while the sink is up, for up to `timeout`

Config keys (all optional): ``batch`` (500), ``window`` (2000), ``poll_s`` (0.1), ``down_after_s`` (30),
``up_after_s`` (10), ``retry_s`` (5), ``ack_interval_s`` (5), ``ack_batch`` (1000), ``buffered_after_s`` (10).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from havel.errors import ConfigError, HavelError, StorageError

from .outbox import Outbox, OutboxRecord
from .sinks.base import Sink

__all__ = ["SINK_STATES", "Forwarder", "SinkStatus"]

log = logging.getLogger("havel.gateway.forwarder")

SINK_STATES = ("starting", "up", "down")
_DEFAULTS: dict[str, float] = {
    "batch": 500,
    "window": 2000,
    "poll_s": 0.1,
    "down_after_s": 30.0,
    "up_after_s": 10.0,
    "retry_s": 5.0,
    "ack_interval_s": 5.0,
    "ack_batch": 1000,
    "buffered_after_s": 10.0,
}


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class SinkStatus:
    """A snapshot of one sink's state. Times are ``time.time()`` seconds (``*_iso`` for RFC 3339)."""

    name: str
    state: str  # starting | up | down
    since: float  # when this state began
    connected: bool  # the transport right now (no hysteresis)
    last_error: str | None
    last_ack_at: float | None
    last_up_at: float | None
    last_down_at: float | None
    inflight: int
    sent: int
    acked: int
    refused: int
    buffered_sent: int
    changes: int

    @property
    def since_iso(self) -> str | None:
        return _iso(self.since)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("since", "last_ack_at", "last_up_at", "last_down_at"):
            d[key] = _iso(d[key])
        return d


class _Runner:
    """The loop of one sink."""

    def __init__(self, fwd: Forwarder, sink: Sink) -> None:
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
                log.exception("sink %s: forwarder round failed", self.sink.name)
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
                    log.exception("sink %s: forwarder round failed", self.sink.name)
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
        late = _iso(time.time() - self.fwd.buffered_after_s)[:19]  # type: ignore[index]
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


class Forwarder:
    """Drives every sink from one outbox; see the module docstring."""

    def __init__(
        self,
        outbox: Outbox,
        sinks: Sequence[Sink],
        *,
        batch: int = 500,
        window: int = 2000,
        poll_s: float = 0.1,
        down_after_s: float = 30.0,
        up_after_s: float = 10.0,
        retry_s: float = 5.0,
        stop_timeout: float = 5.0,
        ack_interval_s: float = 5.0,
        ack_batch: int = 1000,
        buffered_after_s: float = 10.0,
    ) -> None:
        missing = [s.name for s in sinks if s.name not in outbox.sinks]
        if missing:
            raise ConfigError(
                f"sink {missing[0]!r} is not one of the outbox's sinks",
                hint="create the Outbox with sinks=[s.name for s in sinks]",
            )
        self.outbox = outbox
        self.sinks = list(sinks)
        self.batch = int(batch)
        self.window = max(int(window), self.batch)
        self.poll_s = poll_s
        self.down_after_s = down_after_s
        self.up_after_s = up_after_s
        self.retry_s = retry_s
        self.stop_timeout = stop_timeout
        # acknowledgements are committed in groups: at most this old, at most this many (one fsync each)
        self.ack_interval_s = float(ack_interval_s)
        self.ack_batch = max(int(ack_batch), 1)
        self.buffered_after_s = float(buffered_after_s)
        self.listeners: list[Callable[[SinkStatus], None]] = []
        self._runners: dict[str, _Runner] = {}

    @classmethod
    def from_config(
        cls, outbox: Outbox, sinks: Sequence[Sink], cfg: dict[str, Any] | None = None
    ) -> Forwarder:
        """Build with the optional keys of the module docstring; ConfigError names a bad one."""
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(_DEFAULTS)
        if unknown:
            raise ConfigError(f"forwarder.{sorted(unknown)[0]} is not a known key", hint=", ".join(_DEFAULTS))
        values: dict[str, Any] = {}
        for key, default in _DEFAULTS.items():
            v = cfg.get(key, default)
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                raise ConfigError(f"forwarder.{key} must be a positive number", hint=f"got {v!r}")
            values[key] = int(v) if key in ("batch", "window", "ack_batch") else float(v)
        return cls(outbox, sinks, **values)

    async def start(self) -> None:
        """Start one task per sink (connections come up in the background)."""
        for sink in self.sinks:
            if sink.name in self._runners:
                continue
            runner = _Runner(self, sink)
            self._runners[sink.name] = runner
            runner.task = asyncio.create_task(runner.run(), name=f"forward-{sink.name}")

    async def stop(self, timeout: float | None = None) -> None:
        """Flush, then close the sinks: while a sink is connected, keep sending what is stored until all of it
        is acknowledged or ``timeout`` (default ``stop_timeout``, 5 s) passes; what is left stays stored."""
        if timeout is not None:
            self.stop_timeout = timeout
        for r in self._runners.values():
            r.stopping = True
            r.event.set()
        tasks = [r.task for r in self._runners.values() if r.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._runners.clear()

    def wake(self) -> None:
        """New records were committed: look now instead of at the next poll (event loop thread)."""
        for r in self._runners.values():
            r.event.set()

    def add_listener(self, callback: Callable[[SinkStatus], None]) -> None:
        """Call ``callback(status)`` in the event loop on every state change of any sink."""
        self.listeners.append(callback)

    def status(self, name: str) -> SinkStatus:
        try:
            return self._runners[name].status
        except KeyError:
            raise ConfigError(f"no running sink {name!r}") from None

    def statuses(self) -> dict[str, SinkStatus]:
        return {n: r.status for n, r in self._runners.items()}

    def delivered_unrecorded(self) -> int:
        """Records in the outbox that every sink has acknowledged, their deletion waiting for the next group
        commit (at most ``ack_interval_s``): the outbox depth minus these is what still waits."""
        held = {n: set(seqs) for n, seqs in self.outbox.held().items() if n in self._runners}
        return self.outbox.delivered(held)

    async def wait_state(self, name: str, state: str, timeout: float) -> SinkStatus:
        """Wait until sink ``name`` is in ``state``; TimeoutError otherwise."""
        if state not in SINK_STATES:
            raise ValueError(f"state must be one of {SINK_STATES}")
        async with asyncio.timeout(timeout):
            while True:
                runner = self._runners[name]
                if runner.status.state == state:
                    return runner.status
                await runner.changed.wait()

    async def wait_idle(self, timeout: float, sink: str | None = None) -> None:
        """Wait until the outbox holds nothing for ``sink`` (or any sink) and nothing awaits an ack."""
        async with asyncio.timeout(timeout):
            while True:
                runners = [self._runners[sink]] if sink else list(self._runners.values())
                if (
                    all(not r.inflight and not self.outbox.held_count(r.sink.name) for r in runners)
                    and self.outbox.depth(sink) == 0
                ):
                    return
                await asyncio.sleep(0.02)
