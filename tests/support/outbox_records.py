"""Outbox records as the network server (D1) writes them, and a small async harness around the real
outbox, sinks and forwarder, for the gateway's northbound tests (and the relay's)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from havel.gateway import db
from havel.gateway.delivery import Delivery
from havel.gateway.outbox import Outbox
from havel.gateway.sink_status import SinkStatus
from havel.gateway.sinks import make_sinks

__all__ = ["Harness", "harness", "uplink"]


def uplink(
    dev: int, fcnt: int, *, priority: str = "background", data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A json-scheme uplink record of device number ``dev`` (DevEUI 70B3D57ED0000000 + dev)."""
    eui = f"{0x70B3D57ED0000000 + dev:016X}"
    received = (
        (dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=fcnt))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
    rid = f"{eui}-{fcnt}"
    return {
        "id": rid,
        "kind": "up",
        "dev_eui": eui,
        "fcnt32": fcnt,
        "priority": priority,
        "received_at": received,
        "payload": {
            "id": rid,
            "device": f"node-{dev}",
            "dev_eui": eui,
            "dev_addr": f"{0x26000000 + dev:08X}",
            "fcnt": fcnt,
            "fport": 2,
            "confirmed": False,
            "received_at": received,
            "rx": [
                {
                    "gateway": "AA555A0000000001",
                    "rssi": -87,
                    "snr": 7.5,
                    "freq": 868100000,
                    "datr": "SF7BW125",
                    "chan": 0,
                }
            ],
            "codec": "water",
            "data": data if data is not None else {"water_level_cm": 100 + fcnt % 50},
            "units": {"water_level_cm": "cm"},
            "warnings": [],
            "errors": [],
            "raw": "0064",
        },
    }


class Harness:
    """A database, an outbox, sinks and a forwarder with test-friendly timings; states are recorded."""

    def __init__(
        self,
        folder: Path,
        sink_cfgs: Sequence[dict[str, Any]],
        *,
        gateway_id: str = "gw1",
        quota_bytes: int | None = None,
        **fwd: Any,
    ) -> None:
        self.conn = db.open_db(folder / "havel.db")
        self.sinks = make_sinks(list(sink_cfgs), gateway_id=gateway_id)
        self.outbox = Outbox(self.conn, quota_bytes=quota_bytes, sinks=[s.name for s in self.sinks])
        # (acknowledgements committed within 30 ms rather than the product's 5 s, so that tests need not wait)
        opts = {
            "poll_s": 0.05,
            "down_after_s": 0.5,
            "up_after_s": 0.3,
            "retry_s": 0.5,
            "ack_interval_s": 0.03,
            **fwd,
        }
        self.forwarder = Delivery(self.outbox, self.sinks, **opts)
        self.states: list[SinkStatus] = []
        self.depth_at_stop: int | None = None
        self.forwarder.add_listener(self.states.append)

    def put(self, records: Sequence[dict[str, Any]]) -> int:
        n = self.outbox.put_many(records)
        self.forwarder.wake()
        return n


@contextlib.asynccontextmanager
async def harness(folder: Path, sink_cfgs: Sequence[dict[str, Any]], **kw: Any) -> AsyncIterator[Harness]:
    h = Harness(folder, sink_cfgs, **kw)
    await h.forwarder.start()
    try:
        yield h
    finally:
        await h.forwarder.stop(5.0)
        h.depth_at_stop = h.outbox.depth()
        h.conn.close()
