"""A roof cut off from Redis keeps receiving (cached sessions, messages marked buffered, no joins, no
downlinks) and reconciles when it is back; Redis restarted mid-stream loses nothing (append-only file)."""

from __future__ import annotations

from pathlib import Path

from support.redis import Gate, RedisServer

from havel.codecs.lorawan import phy
from havel.gateway.network.outcome import Reason, Status

from .helpers import RoofUnderTest, abp_node, all_records, settle

GA, GB, GC = 0xAA00000000000001, 0xBB00000000000001, 0xCC00000000000001


def test_a_partitioned_roof_falls_back_and_reconciles(redis_server: RedisServer, tmp_path: Path) -> None:
    with Gate(redis_server.port) as gate:
        a = RoofUnderTest("roof-a", redis_server.url, tmp_path)
        b = RoofUnderTest("roof-b", redis_server.url, tmp_path)
        c = RoofUnderTest("roof-c", gate.url, tmp_path)
        roofs = [a, b, c]
        shared = a.shared
        both, alone, joiner = abp_node(11), abp_node(12), abp_node(13)
        joiner.otaa = True
        for n in (both, alone, joiner):
            shared.put_device(n.device())
        shared.queue_command(alone.dev_eui, {"fport": 5, "data": "aa"})
        # online: C alone hears `alone` (it takes the command), B and C hear `both`
        f = alone.uplink()
        c.hear(GC, f, snr=3.0)
        f2 = both.uplink()
        b.hear(GB, f2, snr=3.0)
        c.hear(GC, f2, snr=1.0)
        settle(roofs)
        assert c.store.warm() == 3  # what a running roof does every minute: every device in its cache
        assert len(c.sent) == 1 and c.sent[0]["kind"] == "command"
        assert shared.device(alone.dev_eui).session.fcnt_down == 1  # type: ignore[union-attr]

        gate.cut()
        shared.queue_command(alone.dev_eui, {"fport": 5, "data": "bb"})
        for _ in range(3):
            f = alone.uplink(confirmed=True)
            c.hear(GC, f, snr=3.0)
            f2 = both.uplink()
            b.hear(GB, f2, snr=3.0)
            c.hear(GC, f2, snr=1.0)
            outs = settle(roofs)
            # (C may also take over the frame it handed to B before the cut: its counter says it is old)
            accepted = [o for o in outs if o.status == Status.ACCEPTED]
            assert len(accepted) == 3, [(o.reason, o.detail) for o in outs]
        assert not c.store.online
        jr = joiner.join_request()
        c.hear(GC, jr, snr=3.0)
        (out,) = c.flush()
        assert out.status == Status.REJECTED and out.reason == Reason.JOIN_UNANSWERED
        assert len(c.sent) == 1  # no ACK, no command, no join-accept while cut off
        # stored from the cached sessions and decoded; `both` was also stored by B, with the same ids
        assert c.roof.counts["accepted_offline"] == 6
        offline = c.records()[-6:]
        assert [r["device"] for r in offline].count("abp-12") == 3
        assert all(r["data"] is not None for r in offline)
        ids_c = {r["id"] for r in offline if r["device"] == "abp-11"}
        ids_b = {r["id"] for r in b.records() if r["device"] == "abp-11"}
        assert len(ids_c) == 3 and ids_c <= ids_b
        # Redis still has the counter from before the cut for `alone`
        assert shared.device(alone.dev_eui).session.fcnt_up == 1  # type: ignore[union-attr]

        gate.restore()
        assert c.roof.tick()
        assert c.store.online and c.roof.counts["back_online"] == 1
        # reconciled as a maximum; `both`'s counter (moved by B) stays
        assert shared.device(alone.dev_eui).session.fcnt_up == 4  # type: ignore[union-attr]
        assert shared.device(both.dev_eui).session.fcnt_up == 4  # type: ignore[union-attr]
        # the next uplink is processed once, and the command queued meanwhile goes with a new FCntDown
        # (once C's gateway may send again: its duty-cycle pause after the first command is over)
        redis_server.client().delete(f"havel:dc:{GC:016X}")
        f = alone.uplink()
        c.hear(GC, f, snr=3.0)
        outs = settle(roofs)
        assert [o.status for o in outs] == [Status.ACCEPTED]
        assert len(c.sent) == 2
        down = phy.parse(bytes.fromhex(c.sent[1]["data"]))
        assert isinstance(down, phy.DataFrame) and down.fcnt16 == 1 and down.fport == 5
        # every message id of `alone` once per roof, in order
        ids = [r["id"] for r in all_records(roofs) if r.get("device") == "abp-12"]
        assert ids == [f"{alone.dev_eui:016X}-0-{n}" for n in range(1, 6)]


def test_redis_restarted_mid_stream_loses_no_counter(redis_server: RedisServer, tmp_path: Path) -> None:
    a = RoofUnderTest("roof-a", redis_server.url, tmp_path)
    b = RoofUnderTest("roof-b", redis_server.url, tmp_path)
    roofs = [a, b]
    node = abp_node(21)
    a.shared.put_device(node.device())
    for r in roofs:  # as a roof process does at start and every minute
        r.store.warm()
    for i in range(10):
        if i == 4:
            redis_server.stop()
        if i == 7:
            redis_server.start()
            for r in roofs:
                r.roof.tick()
        f = node.uplink()
        a.hear(GA, f, snr=2.0)
        b.hear(GB, f, snr=1.0)
        outs = settle(roofs)
        # (a frame handed over just before the store went away is taken over, and refused as old)
        accepted = [o for o in outs if o.status == Status.ACCEPTED]
        assert all(o in accepted or o.reason == Reason.REPLAY for o in outs), [
            (o.reason, o.detail) for o in outs
        ]
        # while Redis is down both roofs store the frame (same id); else one does
        assert len(accepted) == (2 if 4 <= i < 7 else 1)
    assert a.store.online and b.store.online
    assert a.shared.device(node.dev_eui).session.fcnt_up == 10  # type: ignore[union-attr]
    ids = [r["id"] for r in all_records(roofs)]
    assert sorted(set(ids), key=lambda x: int(x.rsplit("-", 1)[1])) == [
        f"{node.dev_eui:016X}-0-{n}" for n in range(1, 11)
    ]
    assert len(ids) == 13  # frames 5..7 by both roofs, with the same ids (the platform keeps one)


def test_a_silent_partition_is_noticed_within_the_store_timeout(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    import time

    with Gate(redis_server.port) as gate:
        c = RoofUnderTest("roof-c", gate.url, tmp_path, timeout_s=0.3)
        node = abp_node(31)
        c.shared.put_device(node.device())
        c.store.warm()
        c.hear(GC, node.uplink(), snr=1.0)
        assert [o.status for o in c.flush()] == [Status.ACCEPTED]
        gate.silent = True  # packets dropped, no reset: only the timeout tells
        t0 = time.monotonic()
        c.hear(GC, node.uplink(), snr=1.0)
        outs = c.flush()
        assert not c.store.online
        assert time.monotonic() - t0 < 10  # a few timeouts of 0.3 s, not a hang
        assert [o.status for o in outs] == [Status.ACCEPTED] and c.roof.counts["accepted_offline"] == 1
        gate.silent = False
        assert c.roof.tick()
        assert c.shared.device(node.dev_eui).session.fcnt_up == 2  # type: ignore[union-attr]
