"""The json scheme keeps nothing per device while a backlog drains.

A district's backlog comes from 10,000 devices; a formatter that remembered each device's topic held about
3 MB of topics and keys for the rest of the daemon's life (most of what the drain added to its resident
memory). Measured with tracemalloc, so the bound is exact, not timed.
"""

from __future__ import annotations

import gc
import json
import tracemalloc

from havel.gateway.formats import make_formatter
from havel.gateway.outbox_records import OutboxRecord

DEVICES = 5000


def records(n: int) -> list[OutboxRecord]:
    return [
        OutboxRecord(
            i + 1,
            f"{0x70B3D57ED0000000 + i:016X}-0-1",
            "up",
            f"{0x70B3D57ED0000000 + i:016X}",
            1,
            "background",
            "2026-11-26T09:00:00.123Z",
            json.dumps({"id": f"m{i}", "t": 21.5}),
        )
        for i in range(n)
    ]


def test_json_scheme_keeps_nothing_per_device() -> None:
    fmt = make_formatter({"format": "json", "gateway_id": "gw1"})
    backlog = records(DEVICES)
    first = fmt(backlog[0], False)  # whatever a first call sets up once is not per device
    assert first[0].topic == "havel/gw1/devices/70B3D57ED0000000/up"
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for rec in backlog:
            (msg,) = fmt(rec, True)
            assert msg.topic.endswith(f"/devices/{rec.dev_eui}/up")
        del msg
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # a topic and key per device were about 290 bytes each (1.4 MB here); allow a few kB of noise
    assert kept < 64 * 1024, f"the formatter kept {kept} bytes after {DEVICES} devices"
