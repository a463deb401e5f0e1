"""The delivery (the outbox drain): moves outbox records to every sink, in order, and acknowledges them.

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
- it was stored before this delivery started (it waited while the gateway was down; frames replayed from
  the intake journal after a crash are stored before the delivery starts);
- it is sent while the sink is considered down, or sent again after the sink refused it.

Its ``received_at`` is untouched.

Sink state (for metrics, the status topic and the disaster relay's outage detection), with hysteresis:

- ``starting`` -> ``up`` on the first successful connection; -> ``down`` after ``down_after_s`` without one.
- ``up`` -> ``down`` after ``down_after_s`` without a connection, or with records awaiting acknowledgement
  and no successful acknowledgement for ``down_after_s`` (a broker that accepts but never acknowledges).
- ``down`` -> ``up`` after ``up_after_s`` of a healthy connection (not on the first reconnect of a flapping
  link).

Observe it with :meth:`Delivery.add_listener` (called in the event loop on every change with a
:class:`~.sink_status.SinkStatus`), :meth:`Delivery.status`, or ``await`` :meth:`Delivery.wait_state`.

Usage (the daemon)::

    outbox = Outbox(conn, quota_bytes=..., sinks=[s.name for s in sinks])
    delivery = Delivery.from_config(outbox, make_sinks(cfg.sinks, gateway_id=cfg.gateway_id), cfg.forwarder)
    await delivery.start()
    ...; delivery.wake()   # after committing new records (otherwise they are seen within poll_s)
    await delivery.stop()  # on SIGTERM: flushes what is stored while the sink is up, for up to `timeout`

Config keys: the config's ``[forwarder]`` section (:class:`havel.gateway.sections.DeliverySection`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import asdict

from havel.errors import ConfigError
from havel.gateway.outbox import Outbox
from havel.gateway.sections import DeliverySection
from havel.gateway.sink_delivery import SinkDelivery
from havel.gateway.sink_status import SINK_STATES, SinkStatus
from havel.gateway.sinks.base import Sink

__all__ = ["Delivery"]


class Delivery:
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
        self._runners: dict[str, SinkDelivery] = {}

    @classmethod
    def from_config(
        cls, outbox: Outbox, sinks: Sequence[Sink], settings: DeliverySection | None = None
    ) -> Delivery:
        """Build with the config's ``[forwarder]`` section (its defaults when None)."""
        return cls(outbox, sinks, **asdict(settings or DeliverySection()))

    async def start(self) -> None:
        """Start one task per sink (connections come up in the background)."""
        for sink in self.sinks:
            if sink.name in self._runners:
                continue
            runner = SinkDelivery(self, sink)
            self._runners[sink.name] = runner
            runner.task = asyncio.create_task(runner.run(), name=f"forward-{sink.name}")

    def rewind(self) -> None:
        """A write batch was rolled back: records stored in it may come back with other seqs. Every sink
        reads the outbox from its start again and forgets what is in flight (a late result must not
        acknowledge a seq another record may hold now); a record sent twice is dropped by its id."""
        for r in self._runners.values():
            r.cursor = 0
            r.inflight.clear()
            r.event.set()

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
