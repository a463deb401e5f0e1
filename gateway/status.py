"""The gateway's status (``/status``, ``havel gateway status``, the retained MQTT status) and the metrics
that describe the daemon's parts, read from the running :class:`~havel.gateway.daemon.Gateway`."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from havel import __version__
from havel.errors import HavelError
from havel.gateway.network.outcome import REJECT_REASONS
from havel.gateway.outbox_sinks import pending_by_sink

if TYPE_CHECKING:
    from havel.gateway.daemon import Gateway


class StatusReport:
    """Builds the status of ``gw`` and registers the gauges that read it."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._describe_metrics()

    def status(self) -> dict[str, Any]:
        """Everything a person on the roof wants to know, JSON-ready."""
        gw = self.gw
        m = gw.metrics
        sinks = gw.northbound.health() if gw.northbound is not None else {}
        forwarders = gw.udp.health() if gw.udp is not None else []
        opened = gw.conn is not None  # the database and the parts on it (registry, downlinks) exist
        try:
            outbox = self.outbox()
        except (HavelError, sqlite3.Error) as exc:  # (a damaged page): say so, keep answering
            gw.health.failed("reading the outbox", exc)
            outbox = {"error": str(exc)}
        try:
            downlinks = {
                "queued": gw.downlinks.depth() if opened else 0,
                **(gw.downlinks.counters if opened else {}),
                "adr": dict(gw.downlinks.adr.counters) if opened else {},
            }
        except (HavelError, sqlite3.Error) as exc:
            gw.health.failed("reading the downlink queue", exc)
            downlinks = {"error": str(exc)}
        fault = gw.health.fault
        comps = gw.components
        shared = gw.shared  # the network server's shared store ([network] store)
        storage: dict[str, Any] = {"ok": fault is None}
        if fault is not None:
            storage.update(doing=fault.doing, error=fault.error, since=round(fault.since, 3))
        with contextlib.suppress(OSError):  # the space left where the database lives
            disk = shutil.disk_usage(gw.cfg.data_dir)
            storage["disk"] = {"free_bytes": disk.free, "total_bytes": disk.total}
        degraded = (
            fault is not None
            or any(f["silent"] for f in forwarders)
            or any(isinstance(v, dict) and v.get("state") == "down" for v in sinks.values())
            or (shared is not None and not shared.store.online)  # a roof cut off from the shared store
        )
        return {
            "gateway_id": gw.cfg.gateway_id,
            "version": __version__,
            "state": "degraded" if degraded else "ok",
            "uptime_s": round(time.time() - gw.stats.started, 1),
            "udp": f"{gw.udp_addr[0]}:{gw.udp_addr[1]}" if gw.udp_addr else None,
            "forwarders": forwarders,
            "devices": gw.registry.count() if opened else 0,
            "uplinks": {
                "received": m.total("uplinks_received_total"),
                "accepted": m.total("uplinks_accepted_total"),
                # sent again after their receive windows (a missed ACK, NbTrans): stored once, not rejected
                "retransmitted": m.total("uplinks_retransmitted_total"),
                "rejected": {
                    r: m.get("uplinks_rejected_total", reason=r)
                    for r in REJECT_REASONS
                    if m.get("uplinks_rejected_total", reason=r)
                },
                "last_at": gw.intake.last_uplink if gw.intake is not None else None,
            },
            "joins": m.total("joins_total"),
            "storage": storage,
            "outbox": outbox,
            "sinks": sinks,
            "downlinks": downlinks,
            # a roof of a shared network: its store (URL without credentials, reachable since when)
            **({"shared_store": shared.health()} if shared is not None else {}),
            "components": sorted(name for name, _ in comps.in_order()) if comps is not None else [],
            # what the optional components report: the forwarder watchdog, the UPS, the relay, upstream
            **(comps.health() if comps is not None else {}),
        }

    def outbox(self) -> dict[str, Any]:
        """Depth, size, age of the oldest record and drops of the outbox."""
        gw = self.gw
        if gw.conn is None:
            return {}
        oldest = gw.outbox.oldest_received_at()
        age = None
        if oldest:
            with contextlib.suppress(ValueError):
                age = round(
                    time.time() - datetime.fromisoformat(oldest.replace("Z", "+00:00")).timestamp(), 1
                )
        return {
            "depth": gw.outbox.depth(),
            # of those, delivered to every sink, their deletion due with the next group commit (<= 5 s)
            "delivered": gw.northbound.delivered_unrecorded() if gw.northbound is not None else 0,
            "bytes": gw.outbox.size_bytes(),
            "oldest_age_s": age,
            "dropped": gw.outbox.dropped(),
            "waiting_per_sink": pending_by_sink(gw.conn),  # records each sink has yet to acknowledge
        }

    def _describe_metrics(self) -> None:
        gw = self.gw
        m = gw.metrics
        m.describe("uplinks_received_total", "counter", "uplink copies received from the concentrators")
        m.describe("uplinks_accepted_total", "counter", "uplinks accepted and stored in the outbox")
        m.describe("uplinks_rejected_total", "counter", "uplinks rejected, by reason")
        m.describe("joins_total", "counter", "OTAA joins accepted")
        m.describe(
            "uplinks_retransmitted_total",
            "counter",
            "uplinks a device sent again after their receive windows (a confirmed one missing its ACK is "
            "ACKed again; unconfirmed ones repeated for NbTrans), stored once",
        )
        m.describe("downlinks_total", "counter", "downlinks scheduled, by kind and window")
        m.describe("downlinks_failed_total", "counter", "downlinks the forwarder could not send, by error")
        m.describe("downlink_commands_total", "counter", "downlink commands received, by state")
        m.describe(
            "uplinks_not_stored_total",
            "counter",
            "uplink copies dropped unacknowledged because the database refused to journal them",
        )
        m.describe(
            "push_acks_withheld_total",
            "counter",
            "PUSH_ACKs not sent because the received frames could not be stored",
        )

        def outbox_gauges() -> dict[Any, float]:
            if gw.conn is None:
                return {}
            s = self.outbox()
            return {
                (("what", "depth"),): float(s["depth"]),
                (("what", "delivered"),): float(s["delivered"]),
                (("what", "bytes"),): float(s["bytes"]),
                (("what", "oldest_age_s"),): float(s["oldest_age_s"] or 0),
            }

        def sink_gauges() -> dict[Any, float]:
            health = gw.northbound.health() if gw.northbound is not None else {}
            out: dict[Any, float] = {}
            for name, h in health.items() if isinstance(health, dict) else []:
                if isinstance(h, dict) and "state" in h:
                    out[(("sink", str(name)),)] = 1.0 if h.get("state") == "up" else 0.0
            return out

        def dl_queue() -> float:
            return float(gw.downlinks.depth()) if gw.conn is not None else 0.0

        def adr_counts() -> dict[Any, float]:
            return {(("outcome", k),): float(v) for k, v in gw.downlinks.adr.counters.items()}

        m.gauge_fn("adr_requests_total", adr_counts)
        m.describe(
            "adr_requests_total",
            "counter",
            "LinkADRReq sent (outcome requested) and what became of them: accepted, refused, lost",
        )
        m.gauge_fn("outbox", outbox_gauges)
        m.gauge_fn("sink_up", sink_gauges)
        m.gauge_fn("downlink_queue", dl_queue)
        m.describe(
            "outbox",
            "gauge",
            "outbox depth (records; 'delivered' of them only wait for their deletion to be committed), size "
            "(bytes) and age of the oldest record (s)",
        )
        m.describe("sink_up", "gauge", "1 when the sink is connected")
        m.describe("downlink_queue", "gauge", "application downlinks waiting for their device")
