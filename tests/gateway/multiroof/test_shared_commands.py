"""Downlink commands taken by a roof of a shared network (`SharedNetwork.submit`, what the daemon calls
for a command from MQTT): queued in the device's queue in Redis, or rejected with a reason; a damaged
device entry or an unreachable store rejects the command instead of failing the roof's storage."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from support.gateway_run import write_config
from support.redis import Gate, RedisServer

from havel.codecs.lorawan import phy
from havel.gateway import config, db
from havel.gateway.backends.base import DownlinkFrame
from havel.gateway.metrics import Metrics
from havel.gateway.network.shared.daemon import SharedNetwork
from havel.gateway.outbox import Outbox

from .helpers import NOW, abp_node, copy


def network(tmp: Path, url: str, roof: str = "roof-a", **net: Any) -> SharedNetwork:
    folder = tmp / roof
    folder.mkdir(exist_ok=True)
    cfg = config.load(
        write_config(
            folder,
            network={"store": url, "roof": roof, "store_timeout_s": 0.5, "dedup_window_ms": 50, **net},
        )
    )
    conn = db.open_db(folder / "roof.db")
    return SharedNetwork(cfg, conn, Outbox(conn, sinks=["primary"]), Metrics())


def test_commands_are_queued_in_redis_or_rejected_by_reason(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    node = abp_node(60)
    with Gate(redis_server.port) as gate:
        net = network(tmp_path, gate.url)
        net.shared.put_device(node.device())
        eui = node.dev_eui

        def submit(body: object, dev_eui: int = eui) -> tuple[str, str]:
            p = net.submit(dev_eui, body)["payload"]
            return p["state"], p["detail"]

        assert submit({"fport": 7, "raw": "0102", "confirmed": True, "id": "c-1"}) == ("queued", "")
        (queued,) = net.shared.queued_commands(eui)
        stored = json.loads(queued)
        assert {k: stored[k] for k in ("fport", "data", "confirmed", "id", "eui", "name")} == {
            "fport": 7,
            "data": "0102",
            "confirmed": True,
            "id": "c-1",
            "eui": f"{eui:016X}",
            "name": node.name,
        }
        # it expires after the network's downlink_ttl_s (3600 s by default)
        assert 3590 < stored["exp"] - time.time() <= 3600
        # decoded data goes through the device's codec (temperature has no downlink on port 7)
        state, detail = submit({"fport": 7, "data": {"x": 1}})
        assert state == "rejected" and detail.startswith("bad_field")
        bads = ([1], {"fport": 0, "raw": "01"}, {"fport": 7}, {"fport": 7, "raw": "zz"}, {"fport": 7, "x": 1})
        for bad in bads:
            state, detail = submit(bad)
            assert state == "rejected" and detail.startswith("bad_field"), (bad, detail)
        state, detail = submit({"fport": 7, "raw": "01"}, eui + 1)
        assert state == "rejected" and detail.startswith("unknown_device")
        assert len(net.shared.queued_commands(eui)) == 1  # nothing rejected was queued
        # the same command again (an MQTT QoS 1 re-delivery, on this roof or another): its first result, the
        # same record, and queued once
        before = len(net.shared.queued_commands(eui))
        a, b = (net.submit(eui, {"fport": 7, "raw": "01", "id": "same"}) for _ in range(2))
        again = network(tmp_path, gate.url, "roof-b").submit(eui, {"fport": 7, "raw": "01", "id": "same"})
        assert a == b == again and a["id"].endswith("-queued")
        assert len(net.shared.queued_commands(eui)) == before + 1
        # the same id with another request is another command: a result id of its own (submission number)
        c = net.submit(eui, {"fport": 7, "raw": "02", "id": "same"})
        assert c["payload"]["state"] == "queued" and c["id"] != a["id"]
        # a damaged entry: rejected, named
        redis_server.client().set(f"havel:dev:{eui + 5:016X}", "not a hash")
        state, detail = submit({"fport": 7, "raw": "01"}, eui + 5)
        assert state == "rejected" and detail.startswith("damaged"), detail
        # the store cut off: rejected (a command kept only here could go out twice)
        gate.cut()
        state, detail = submit({"fport": 7, "raw": "01"})
        assert state == "rejected" and detail.startswith("storage"), detail


class Radio:
    """The gateway backend's face a roof sends through (``transmit``), keeping what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, DownlinkFrame]] = []
        self.fallbacks: list[DownlinkFrame | None] = []  # the RX2 frame of each, sent on a TX_ACK error

    def transmit(
        self, gateway: int, frame: DownlinkFrame, *, window: str, fallback: DownlinkFrame | None = None
    ) -> bool:
        self.sent.append((gateway, frame))
        self.fallbacks.append(fallback)
        return True

    def frames(self) -> list[phy.DataFrame]:
        out = []
        for _, f in self.sent:
            d = phy.parse(f.data)
            assert isinstance(d, phy.DataFrame)
            out.append(d)
        return out


def results(net: SharedNetwork) -> list[dict[str, Any]]:
    """The command results in the roof's outbox, in order."""
    rows = net.store.conn.execute("SELECT payload FROM outbox ORDER BY seq").fetchall()
    payloads = [json.loads(r[0]) for r in rows]
    return [p for p in payloads if p.get("state") and "command_id" in p]


def states(net: SharedNetwork) -> list[tuple[str, str]]:
    return [(p["command_id"], p["state"]) for p in results(net)]


class Mono:
    """A monotonic clock for the roofs under test: each uplink lands after the last one's window."""

    def __init__(self) -> None:
        self.t = 0.0

    def next(self) -> float:
        self.t += 10.0
        return self.t


def hear(net: SharedNetwork, gw: int, data: bytes, snr: float, at: float) -> None:
    net.roof.receive(copy(gw, data, snr=snr), at)


def test_ttl_and_queue_limit_apply_to_the_queue_in_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    net = network(tmp_path, redis_server.url, downlink_queue_max=2)
    other = network(tmp_path, redis_server.url, "roof-b")
    node, late = abp_node(61), abp_node(62)
    for n in (node, late):
        net.shared.put_device(n.device())

    def submit(body: object, eui: int = node.dev_eui) -> tuple[str, str]:
        p = net.submit(eui, body)["payload"]
        return p["state"], p["detail"]

    assert submit({"fport": 7, "raw": "01", "id": "q-1"}) == ("queued", "")
    assert submit({"fport": 7, "raw": "02", "id": "q-2"}) == ("queued", "")
    state, detail = submit({"fport": 7, "raw": "03", "id": "q-3"})
    assert state == "rejected" and detail.startswith("queue_full: 2 commands already wait"), detail
    assert len(net.shared.queued_commands(node.dev_eui)) == 2
    for ttl in (0, -5, "x", True, 10**400, float("nan"), 31 * 86_400):
        state, detail = submit({"fport": 7, "raw": "01", "ttl_s": ttl}, late.dev_eui)
        assert state == "rejected" and detail.startswith("bad_ttl"), (ttl, detail)

    # a command whose ttl_s runs out is reported expired once, by one roof, and leaves the queue
    queued = net.submit(late.dev_eui, {"fport": 7, "raw": "0a", "ttl_s": 0.3, "id": "short"})["payload"]
    assert queued["state"] == "queued"
    assert submit({"fport": 7, "raw": "0b", "ttl_s": 600, "id": "long"}, late.dev_eui) == ("queued", "")
    time.sleep(0.5)
    assert net.expire_commands() == 1
    assert other.expire_commands() == 0 and net.expire_commands() == 0
    assert states(net)[-1] == ("short", "expired") and states(other) == []
    (left,) = net.shared.queued_commands(late.dev_eui)
    assert json.loads(left)["id"] == "long"
    expired = results(net)[-1]
    assert expired["detail"] == "ttl_s ran out"
    assert expired["request"] == {"fport": 7, "raw": "0a", "ttl_s": 0.3}
    # the same submission: its result ids differ only in the state
    assert expired["id"] == queued["id"].replace("-queued", "-expired")


def test_command_results_sent_by_the_transmitting_roof_then_acked_or_failed(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    a = network(tmp_path, redis_server.url, "roof-a", confirmed_retries=2)
    b = network(tmp_path, redis_server.url, "roof-b")
    a.backend, b.backend = radio_a, radio_b = Radio(), Radio()
    node = abp_node(63)
    a.shared.put_device(node.device())
    mono = Mono()
    gws = iter(range(0xAA00000000000100, 0xAA00000000000200))  # A's gateways: one per uplink (duty cycle)
    assert (
        a.submit(node.dev_eui, {"fport": 9, "raw": "c0", "confirmed": True, "id": "conf"})["payload"]["state"]
        == "queued"
    )
    assert b.submit(node.dev_eui, {"fport": 9, "raw": "d0", "id": "plain"})["payload"]["state"] == "queued"

    # heard by A (which processes it) and better by B: the command goes through B's gateway, and B, which
    # transmits it, reports it sent
    t = mono.next()
    frame = node.uplink()
    hear(a, next(gws), frame, 1.0, t)
    hear(b, 0xBB00000000000001, frame, 8.0, t)
    a.roof.flush(t + 1, NOW)
    assert b.roof.poll() == 1 and radio_a.sent == []
    (down,) = radio_b.frames()
    assert down.fport == 9 and down.confirmed and down.fpending  # "plain" waits behind it
    # in RX1 (B's copy's time + 1 s, its frequency), with RX2 as the fallback (one second later, 869.525 MHz
    # at DR0) should B's packet forwarder report an error for RX1
    ((_, rx1),) = radio_b.sent
    (rx2,) = radio_b.fallbacks
    assert rx1.freq_hz == 868_100_000 and rx1.datr == "SF7BW125" and rx1.tmst == 1_000_000 + 1_000_000
    assert rx2 is not None and rx2.data == rx1.data and rx2.tmst == 1_000_000 + 2_000_000
    assert rx2.freq_hz == 869_525_000 and rx2.datr == "SF12BW125"
    assert states(b) == [("conf", "sent")] and results(b)[0]["detail"] == "RX1"
    assert results(b)[0]["fcnt_down"] == 0
    assert states(a) == []

    # the next uplink ACKs it: acked (by A, which processes it), and the next command goes, sent by A
    t = mono.next()
    hear(a, next(gws), node.uplink(ack=True), 1.0, t)
    a.roof.flush(t + 1, NOW)
    assert states(a) == [("conf", "acked"), ("plain", "sent")]
    assert results(a)[0]["fcnt_down"] == 0
    assert radio_a.frames()[-1].fport == 9 and not radio_a.frames()[-1].confirmed

    # a confirmed command that is never ACKed: sent once, sent again, then failed after 2 attempts
    a.submit(node.dev_eui, {"fport": 9, "raw": "e0", "confirmed": True, "id": "lost"})
    for _ in range(3):
        t = mono.next()
        hear(a, next(gws), node.uplink(), 1.0, t)
        a.roof.flush(t + 1, NOW)
    lost = [(c, s) for c, s in states(a) if c == "lost"]
    assert lost == [("lost", "sent"), ("lost", "failed")]
    assert results(a)[-1]["detail"] == "no ACK after 2 attempts"
    sent_lost = [d for d in radio_a.frames() if d.fport == 9 and d.confirmed]
    assert len(sent_lost) == 2 and sent_lost[0].fcnt16 != sent_lost[1].fcnt16
    assert a.shared.queued_commands(node.dev_eui) == []
