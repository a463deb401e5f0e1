"""MAC answers and ADR on a shared network: the roof that processes a frame answers the device's MAC
commands (LinkCheckAns counting every roof's gateways, DevStatusReq when its battery is not known, a
downlink for ADRACKReq) and runs ADR, with the device's MAC state in Redis, so that a device heard by one roof
and then by another is continued, not started again: 20 uplinks at SF12 with a good link, heard by two roofs
in turn, bring a LinkADRReq; each roof alone would have seen 10."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support.redis import RedisServer

from havel.codecs.lorawan import maccmds, phy
from havel.gateway.adr_rules import HISTORY
from havel.gateway.backends.semtech_udp.rxpk import RxPacket
from havel.gateway.network.reception import Reception
from havel.gateway.network.shared.daemon import SharedNetwork

from .helpers import NOW, Node, abp_node
from .test_shared_commands import Mono, Radio, network


class Roofs:
    """Roofs A and B on one Redis, each with a radio and a fresh gateway per uplink (the duty cycle of a
    gateway that sent stays out of the way)."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.nets = {"a": network(tmp, url, "roof-a"), "b": network(tmp, url, "roof-b")}
        self.radios = {name: Radio() for name in self.nets}
        for name, net in self.nets.items():
            net.backend = self.radios[name]
        self.gws = {
            "a": iter(range(0xAA << 56, (0xAA << 56) + 10_000)),
            "b": iter(range(0xBB << 56, (0xBB << 56) + 10_000)),
        }
        self.mono = Mono()

    def uplink(self, node: Node, heard: dict[str, float], *, datr: str = "SF7BW125", **flags: Any) -> None:
        """One uplink heard by these roofs (name: SNR), the first to hear it processes it."""
        t = self.mono.next()
        frame = node.uplink(**flags)
        for name, snr in heard.items():
            rx = RxPacket(data=frame, tmst=1_000_000, freq_hz=868_100_000, datr=datr, rssi=-100.0, lsnr=snr)
            self.nets[name].roof.receive(Reception(next(self.gws[name]), rx, NOW, "local"), t)
        for name in heard:
            self.nets[name].roof.flush(t + 1, NOW)
        for net in self.nets.values():
            net.roof.poll()

    def downlinks(self) -> list[tuple[str, list[dict[str, Any]], phy.DataFrame]]:
        """(roof, MAC commands, frame) of every data downlink sent so far."""
        out = []
        for name, radio in self.radios.items():
            for d in radio.frames():
                out.append((name, maccmds.decode(d.fopts, False), d))
        return out

    def net(self, name: str) -> SharedNetwork:
        return self.nets[name]


def names(cmds: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cmds]


def test_mac_answers_come_from_the_roof_that_processes_the_frame(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    roofs = Roofs(tmp_path, redis_server.url)
    node = abp_node(80)
    roofs.net("a").shared.put_device(node.device())
    # LinkCheckReq heard by both roofs: one answer, counting the gateways of both, through the best (B)
    roofs.uplink(node, {"a": 2.0, "b": 8.0}, fopts=maccmds.encode([{"name": "LinkCheckReq"}], True))
    ((roof, cmds, _),) = roofs.downlinks()
    assert roof == "b"
    check = next(c for c in cmds if c["name"] == "LinkCheckAns")
    assert check["gw_cnt"] == 2 and check["margin_db"] == round(8.0 - (-7.5))
    # its battery is not known: asked once (with the first downlink), not again by the other roof
    assert "DevStatusReq" in names(cmds)
    roofs.uplink(node, {"b": 5.0}, fopts=maccmds.encode([{"name": "LinkCheckReq"}], True))
    assert [names(c) for _, c, _ in roofs.downlinks()][1] == ["LinkCheckAns"]
    # the answer, heard by A, is stored in the shared device entry
    ans = maccmds.encode([{"name": "DevStatusAns", "battery": 200, "margin_db": 7}], True)
    roofs.uplink(node, {"a": 5.0}, fopts=ans)
    dev = roofs.net("b").shared.device(node.dev_eui)
    assert dev is not None and dev.battery == 200
    assert len(roofs.downlinks()) == 2  # nothing to answer to that one
    # ADRACKReq: a downlink goes even with nothing to say (else the device backs off towards SF12)
    roofs.uplink(node, {"b": 5.0}, adr=True, adr_ack_req=True)
    assert len(roofs.downlinks()) == 3
    assert roofs.net("b").roof.counts["adr_ack_answered"] == 1


def test_adr_continues_across_roofs_with_its_state_in_redis(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    roofs = Roofs(tmp_path, redis_server.url)
    node = abp_node(81)
    roofs.net("a").shared.put_device(node.device())
    battery = maccmds.encode([{"name": "DevStatusAns", "battery": 254, "margin_db": 10}], True)
    for i in range(HISTORY):
        # at SF12 with 10 dB of SNR: room for DR5 (SF7) and less power; heard by A and B in turn
        roofs.uplink(node, {"ab"[i % 2]: 10.0}, datr="SF12BW125", adr=True, fopts=battery if i == 0 else b"")
    adr = [(roof, c) for roof, cmds, _ in roofs.downlinks() for c in cmds if c["name"] == "LinkADRReq"]
    assert len(adr) == 1, roofs.downlinks()
    roof, req = adr[0]
    assert roof == "b" and req["data_rate"] == 5 and req["tx_power"] > 0
    # the device takes it and says so in its next uplink, heard by the other roof: accepted there
    ok = maccmds.encode(
        [{"name": "LinkADRAns", "channel_mask_ack": True, "data_rate_ack": True, "power_ack": True}], True
    )
    roofs.uplink(node, {"a": 10.0}, datr="SF7BW125", adr=True, fopts=ok)
    assert roofs.net("a").roof.answers.mac.adr.counters["accepted"] == 1
    state = json.loads(redis_server.client().get(f"havel:mac:{node.dev_eui:016X}"))
    assert state["adr"]["tx_power"] == req["tx_power"] and state["adr"]["asked"] is None
    assert len(adr) == 1  # and nothing asked again right away
    assert len([c for _, cmds, _ in roofs.downlinks() for c in cmds if c["name"] == "LinkADRReq"]) == 1


def test_a_damaged_mac_state_or_command_wait_is_counted_and_the_device_goes_on(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    roofs = Roofs(tmp_path, redis_server.url)
    node = abp_node(82)
    a = roofs.net("a")
    a.shared.put_device(node.device())
    client = redis_server.client()
    client.set(f"havel:mac:{node.dev_eui:016X}", "[1, 2")  # not JSON
    client.set(f"havel:awaiting:{node.dev_eui:016X}", "{}")  # a wait without its command
    a.submit(node.dev_eui, {"fport": 9, "raw": "a1", "id": "after"})
    roofs.uplink(node, {"a": 5.0}, fopts=maccmds.encode([{"name": "LinkCheckReq"}], True))
    counts = a.roof.counts
    assert counts["damaged_mac_state"] == 1 and counts["damaged_command"] == 1
    ((_, cmds, down),) = roofs.downlinks()
    assert down.fport == 9 and "LinkCheckAns" in names(cmds) and "DevStatusReq" in names(cmds)
    # the state written back is whole again
    assert json.loads(client.get(f"havel:mac:{node.dev_eui:016X}"))["status_asked"] > 0
    # a wait whose command cannot be read: dropped once, not met again with every uplink
    client.set(f"havel:awaiting:{node.dev_eui:016X}", json.dumps({"raw": "[", "attempts": 1, "fcnt_down": 0}))
    roofs.uplink(node, {"a": 5.0})
    assert counts["damaged_command"] == 2 and client.get(f"havel:awaiting:{node.dev_eui:016X}") is None
    roofs.uplink(node, {"a": 5.0})
    assert counts["damaged_command"] == 2
