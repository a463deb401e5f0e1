"""The daemon's northbound component: the outbox drain (:mod:`.forwarder`) and sinks, the downlink-command
subscription, and the gateway status (retained on ``<prefix>/<gateway_id>/status``) and events
(``.../events``).

- Sinks come from the config's ``[[sink]]`` tables (:func:`havel.gateway.sinks.make_sinks`), the delivery
  from ``[forwarder]`` (:class:`havel.gateway.sections.DeliverySection`).
- The one ``mqtt`` sink with ``commands = true`` (``Config.command_sink``) also gets a
  :class:`~havel.gateway.commands.CommandSubscriber` for downlink commands; the others only publish, so a
  sink feeding another party's broker (FROST, FIWARE) never takes commands from it.
- Gateway events (a packet forwarder falls silent or comes back, a sink goes down or up) become outbox
  records of kind ``event``: durable, published in order on ``.../events``, and logged.
- Every 30 s and on every event the status (forwarder health, uplink counts, outbox depth) is handed to the
  mqtt sinks' retained status message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from havel.gateway import db
from havel.gateway.commands import CommandSubscriber
from havel.gateway.delivery import Delivery
from havel.gateway.downlink_queue import format_time_now
from havel.gateway.sink_status import SinkStatus
from havel.gateway.sinks import make_sinks

if TYPE_CHECKING:
    from havel.gateway.components import DaemonContext
    from havel.gateway.sections import DeliverySection

log = logging.getLogger("havel.gateway.northbound")
STATUS_EVERY_S = 30.0


class Northbound:
    """See the module docstring."""

    def __init__(self, ctx: DaemonContext, settings: DeliverySection) -> None:
        self.ctx = ctx
        cfg = ctx.config
        self.sinks = make_sinks(cfg.sinks, gateway_id=cfg.gateway_id)
        self.forwarder = Delivery.from_config(ctx.outbox, self.sinks, settings)
        self.forwarder.add_listener(self._on_sink_state)
        self.subscribers: list[CommandSubscriber] = []
        for sink, scfg in zip(self.sinks, cfg.sinks, strict=True):
            if getattr(sink, "type", "") == "mqtt" and scfg.get("name") == cfg.command_sink:
                self.subscribers.append(
                    CommandSubscriber(
                        sink,
                        prefix=str(scfg.get("prefix", "havel")),
                        gateway_id=cfg.gateway_id,
                        on_command=ctx.gateway.submit_downlink_threadsafe,
                    )
                )
        ctx.gateway.event_listeners.append(self._on_event)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.forwarder.start()
        for s in self.subscribers:
            await s.start()
        self._task = asyncio.create_task(self._status_loop(), name="status")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for s in self.subscribers:
            await s.stop()
        await self.forwarder.stop()

    def poke(self) -> None:
        """New records were committed."""
        self.forwarder.wake()

    def delivered_unrecorded(self) -> int:
        """See :meth:`Delivery.delivered_unrecorded`."""
        return self.forwarder.delivered_unrecorded()

    def health(self) -> dict[str, Any]:
        """Per sink: state (starting/up/down) and counters."""
        out: dict[str, Any] = {}
        for name, st in self.forwarder.statuses().items():
            d = st.as_dict()
            out[name] = {
                k: d[k]
                for k in (
                    "state",
                    "since",
                    "connected",
                    "last_error",
                    "inflight",
                    "sent",
                    "acked",
                    "refused",
                    "buffered_sent",
                )
            }
        for s in self.subscribers:
            out["commands"] = {
                "connected": s.connected,
                "subscribed": s.subscribed,
                "received": s.received,
                "refused": dict(s.refused),  # messages no command could be read from, by reason
            }
        return out

    # ------------------------------------------------------------------------------------ events
    def _on_sink_state(self, st: SinkStatus) -> None:
        level = logging.WARNING if st.state == "down" else logging.INFO
        log.log(level, "sink %s is %s%s", st.name, st.state, f" ({st.last_error})" if st.last_error else "")
        self.ctx.gateway.emit_event(f"sink_{st.state}", {"sink": st.name, "error": st.last_error})

    def _on_event(self, event: str, details: dict[str, Any]) -> None:
        rid = f"{self.ctx.config.gateway_id}-event-{uuid.uuid4().hex[:12]}"
        now = format_time_now(time.time())
        alarm = event in (
            "forwarder_silent",
            "forwarder_restart_gave_up",
            "power_on_battery",
            "power_low_battery",
        )
        record = {
            "id": rid,
            "kind": "event",
            "dev_eui": None,
            "fcnt32": None,
            "priority": "alarm" if alarm else "state",
            "received_at": now,
            "payload": {
                "id": rid,
                "event": event,
                "gateway_id": self.ctx.config.gateway_id,
                "at": now,
                **details,
            },
        }
        try:
            with db.unit_of_work(self.ctx.conn):
                self.ctx.outbox.put(record)
        except Exception:
            log.exception("could not store event %s", event)
        self.forwarder.wake()
        self._publish_status()

    def _publish_status(self) -> None:
        st = self.ctx.gateway.status()
        fields = {
            "health": st["state"],
            "forwarders": st["forwarders"],
            "uplinks": st["uplinks"],
            "outbox_depth": st["outbox"].get("depth"),
            "version": st["version"],
        }
        if "power" in st:  # the UPS: on battery, the runtime left (gateway/power)
            fields["power"] = st["power"]
        for sink in self.sinks:
            publish = getattr(sink, "publish_status", None)
            if callable(publish):
                publish(fields)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            try:
                self._publish_status()
            except Exception:
                log.exception("status publication failed")
