"""A roof SIGKILLed between its Redis commit and its SQLite commit (the test hook
HAVEL_TEST_KILL_AFTER_SHARED_COMMIT kills it at exactly that point): the counter moved in Redis, but the
frame is stored once, not refused as a replay: by the daemon itself after its restart (the frame is still
in its intake journal), or by another roof that heard it and takes it over."""

from __future__ import annotations

import time
from pathlib import Path

from support.redis import RedisServer

from havel.gateway.network.dedup import frame_key
from havel.gateway.network.shared.connection import StoreSettings, connect
from havel.gateway.network.shared.state import SharedState

from .daemons import DaemonRoof, uplink_ids, wait_for
from .helpers import abp_node, battery_known, read_records
from .roofs import Concentrator, RoofProcess

GW = 0xAA00000000000001


def test_a_roof_killed_between_its_two_commits_stores_the_batch_once_after_restart(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    shared = SharedState(connect(StoreSettings(redis_server.url)))
    node = abp_node(70)
    shared.put_device(node.device())
    roof = DaemonRoof(
        "roof-a",
        redis_server.url,
        tmp_path,
        # (the default window of these tests, 400 ms: the frame is journaled in a commit of its own before
        # its batch is processed; a journal commit that took longer on a loaded machine would carry the
        # batch with it, and the kill would take back the journal row and the PUSH_ACK too)
        env={"HAVEL_TEST_KILL_AFTER_SHARED_COMMIT": "1"},
    )
    conc: Concentrator | None = None
    try:
        roof.proc.start()
        conc = Concentrator(GW, roof.udp_port)
        time.sleep(1.2)  # the concentrator's PULL_DATA reached the daemon
        conc.hear(node.uplink(), 4.0)
        proc = roof.proc.proc
        assert proc is not None
        assert wait_for(lambda: proc.poll() is not None, 30), "the test hook did not kill the daemon"
        # Redis took the batch (the counter moved), the roof's database did not (nothing delivered)
        dev = shared.device(node.dev_eui)
        assert dev is not None and dev.session is not None and dev.session.fcnt_up == 1
        assert uplink_ids({"a": roof}) == {}
        assert redis_server.client().keys("havel:applied:*")

        roof.proc.env.pop("HAVEL_TEST_KILL_AFTER_SHARED_COMMIT")
        roof.proc.start()  # replays its intake journal at start
        first = f"{node.dev_eui:016X}-0-1"
        assert wait_for(lambda: first in uplink_ids({"a": roof}), 30), roof.proc.log.read_text()[-3000:]
        # the next uplink goes on from there, and the frame was stored once
        conc.hear(node.uplink(), 4.0)
        second = f"{node.dev_eui:016X}-0-2"
        assert wait_for(lambda: second in uplink_ids({"a": roof}), 30)
        assert uplink_ids({"a": roof}) == {first: 1, second: 1}
        dev = shared.device(node.dev_eui)
        assert dev is not None and dev.session is not None and dev.session.fcnt_up == 2
        # the marker went once the roof's own database held the frame
        assert wait_for(lambda: redis_server.client().keys("havel:applied:*") == [], 10)
    finally:
        if conc is not None:
            conc.close()
        if roof.proc.proc is not None and roof.proc.proc.poll() is None:
            roof.proc.terminate()


def test_a_frame_whose_roof_died_between_its_two_commits_is_taken_over_and_stored_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Roof A (a roof process, no intake journal) takes the frame and dies after its Redis commit; roof B,
    which heard it too, takes it over when no done mark comes and stores it instead of refusing it."""
    shared = SharedState(connect(StoreSettings(redis_server.url)))
    node = abp_node(71)
    shared.put_device(node.device())
    battery_known(shared, node.dev_eui)
    a = RoofProcess("roof-a", redis_server.url, tmp_path, env={"HAVEL_TEST_KILL_AFTER_SHARED_COMMIT": "1"})
    b = RoofProcess("roof-b", redis_server.url, tmp_path)
    concs: list[Concentrator] = []
    try:
        a.start()
        b.start()
        ca, cb = Concentrator(GW, a.port), Concentrator(0xBB00000000000001, b.port)
        concs += [ca, cb]
        time.sleep(0.7)  # both concentrators' PULL_DATA reached their roofs
        frame = node.uplink()
        lock = f"havel:lock:{frame_key(frame).hex()}"
        client = redis_server.client()
        ca.hear(frame, 8.0)
        assert wait_for(lambda: client.get(lock) == "roof-a", 10)  # A holds the frame ...
        cb.hear(frame, 2.0)  # ... and B's copy goes to A's list
        assert a.proc is not None
        assert wait_for(lambda: a.proc is not None and a.proc.poll() is not None, 20), "A was not killed"
        dev = shared.device(node.dev_eui)
        assert dev is not None and dev.session is not None and dev.session.fcnt_up == 1
        assert read_records(a.db) == []
        # B takes the frame over (no done mark after its window + 1 s) and stores it once
        ids = f"{node.dev_eui:016X}-0-1"
        assert wait_for(lambda: [r["id"] for r in read_records(b.db) if "fcnt" in r] == [ids], 20)
        assert wait_for(lambda: client.keys("havel:applied:*") == [], 10)
        dev = shared.device(node.dev_eui)
        assert dev is not None and dev.session is not None and dev.session.fcnt_up == 1
    finally:
        for c in concs:
            c.close()
        for r in (a, b):
            r.stop()
