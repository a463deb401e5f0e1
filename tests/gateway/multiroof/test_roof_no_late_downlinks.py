"""A roof sends no downlink for a frame whose receive windows have passed: a frame from the intake journal
after a restart, and a forced flush (the daemon's stop); the device's queued command stays queued and a
join in such a flush is not stored."""

from __future__ import annotations

from pathlib import Path

from support.redis import RedisServer

from .helpers import NOW, RoofUnderTest, abp_node, copy

GW = 0xAA00000000000001


def test_a_frame_from_the_journal_gets_no_downlink_and_keeps_the_command(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    roof = RoofUnderTest("roof-a", redis_server.url, tmp_path)
    node = abp_node(90)
    roof.shared.put_device(node.device())
    roof.shared.queue_command(node.dev_eui, {"fport": 5, "data": "aa"})
    c = copy(GW, node.uplink(confirmed=True), snr=3.0)
    c.replayed = True
    roof.roof.receive(c, roof.mono)
    (out,) = roof.flush()
    assert str(out.status) == "accepted" and len(roof.records()) == 1
    assert roof.sent == []  # neither the ACK nor the command
    assert roof.shared.queued_commands(node.dev_eui) == ['{"fport": 5, "data": "aa"}']
    # a live frame afterwards gets its downlink as usual
    roof.shared.queue_command(node.dev_eui, {"fport": 5, "data": "bb"})
    roof.hear(GW, node.uplink(), snr=3.0)
    roof.flush()
    assert [d["kind"] for d in roof.sent] == ["command"]


def test_a_forced_flush_without_sending_stores_uplinks_and_answers_no_join(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    roof = RoofUnderTest("roof-a", redis_server.url, tmp_path)
    node, joiner = abp_node(91), abp_node(92)
    joiner.otaa = True
    for n in (node, joiner):
        roof.shared.put_device(n.device())
    roof.shared.queue_command(node.dev_eui, {"fport": 5, "data": "aa"})
    roof.hear(GW, node.uplink(), snr=3.0)
    roof.hear(GW, joiner.join_request(), snr=3.0)
    outs = roof.roof.flush(roof.mono, NOW, force=True, send=False)
    assert sorted(str(o.status) for o in outs) == ["accepted", "rejected"]
    assert roof.sent == [] and len(roof.records()) == 1
    assert roof.shared.device(joiner.dev_eui).session is None  # type: ignore[union-attr]
    assert roof.shared.queued_commands(node.dev_eui) == ['{"fport": 5, "data": "aa"}']
