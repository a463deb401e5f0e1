"""Grouped acknowledgements: the delivery records PUBACKed records in one transaction per interval or per
``ack_batch`` records, not one per round, and commits what it still holds when it stops.

Real Mosquitto on loopback, the real outbox on a durable SQLite file; commits are counted with SQLite's own
statement trace (every transaction of :func:`havel.gateway.db.unit_of_work` ends in one ``COMMIT``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support.mosquitto import Mosquitto
from support.outbox_records import Harness, harness, uplink

pytestmark = pytest.mark.timeout(60)


def plain(broker: Mosquitto) -> dict[str, Any]:
    return {
        "type": "mqtt",
        "name": "primary",
        "host": "127.0.0.1",
        "port": broker.port,
        "tls": False,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.4,
    }


def count_commits(h: Harness) -> list[str]:
    """From now on, every COMMIT on the harness's connection is appended to the returned list."""
    commits: list[str] = []
    h.conn.set_trace_callback(lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return commits


async def wait_acked(h: Harness, n: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while h.forwarder.status("primary").acked < n:
            await asyncio.sleep(0.005)


def test_acks_are_grouped_by_count(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """2,000 PUBACKs with ack_batch 500 and an interval that never falls due: at most 4 commits while
    running (each holds >= 500 acks) plus one on stop. Acknowledging per round takes hundreds."""
    n = 2000

    async def run() -> tuple[Harness, int, int]:
        async with harness(
            tmp_path, [plain(mosquitto)], batch=200, window=400, ack_interval_s=60.0, ack_batch=500
        ) as h:
            h.outbox.put_many([uplink(d, f) for f in range(1, n // 10 + 1) for d in range(10)])
            commits = count_commits(h)
            h.forwarder.wake()
            await wait_acked(h, n, 30)
            running = len(commits)
        return h, running, len(commits)

    h, running, total = asyncio.run(run())
    assert running <= n // 500 + 1  # groups of >= 500 (the remainder is committed on stop)
    assert total <= n // 500 + 1
    assert h.depth_at_stop == 0  # every delivered record was recorded by the time it stopped


def test_a_quiet_sinks_acks_wait_for_the_interval_then_commit_once(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Few acks (far below ack_batch) on a sink that then falls idle are held for ``ack_interval_s`` and
    committed in one transaction: on a quiet gateway each commit would otherwise write its pages to the
    SD card for every uplink."""

    async def run() -> None:
        async with harness(tmp_path, [plain(mosquitto)], ack_interval_s=3.0, ack_batch=10_000) as h:
            h.outbox.put_many([uplink(d, 1) for d in range(20)])
            commits = count_commits(h)
            h.forwarder.wake()
            await wait_acked(h, 20, 10)
            assert h.outbox.depth() == 20 and not commits  # delivered, the acknowledgements held
            assert h.forwarder.delivered_unrecorded() == 20  # (what /status subtracts from the depth)
            async with asyncio.timeout(10):
                while h.outbox.depth() != 0:
                    await asyncio.sleep(0.05)
            assert 1 <= len(commits) <= 2  # one group (two if the PUBACKs came in two rounds)
            assert h.forwarder.delivered_unrecorded() == 0

    asyncio.run(run())


def test_pending_acks_are_flushed_on_stop(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Acks held back (long interval, large batch, records still in flight when the broker goes away) are
    committed in one transaction when the forwarder stops."""
    n = 20_000

    async def run() -> tuple[Harness, list[str], int, int]:
        async with harness(
            tmp_path, [plain(mosquitto)], batch=50, window=100, ack_interval_s=60.0, ack_batch=10**6
        ) as h:
            for k in range(0, n, 2000):
                h.outbox.put_many([uplink(i % 100, 1 + i // 100) for i in range(k, k + 2000)])
            commits = count_commits(h)
            h.forwarder.wake()
            await wait_acked(h, 300, 20)
            mosquitto.stop()
            async with asyncio.timeout(10):
                while h.sinks[0].connected:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            acked = h.forwarder.status("primary").acked
            held = h.outbox.depth()  # PUBACKed ones are not yet committed
            assert commits == []
        return h, commits, held, acked

    h, commits, held, acked = asyncio.run(run())
    assert held == n and 300 <= acked < n
    assert len(commits) == 1  # the flush on stop
    assert h.depth_at_stop is not None and h.depth_at_stop <= n - acked
