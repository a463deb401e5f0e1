"""Black-box: what becomes of a downlink command that cannot be delivered (docs/mqtt.md: `ttl_s`,
`confirmed`, `network.confirmed_retries`), and who may take the downlink path (docs/gateway.md, "The
packet-forwarder port": a PULL_DATA from another port takes over only after the pinned one was silent 30 s).
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bb_kit import (
    HOST,
    Forwarder,
    Gateway,
    LoraPacket,
    Subscriber,
    abp_device,
    add_device,
    otaa_device,
    wait_for,
    water_payload,
)

PREFIX = "havel/gw1/devices"


def _states(sub: Subscriber, command_id: str) -> list[tuple[str, str]]:
    return [(r["state"], r["detail"]) for r in sub.json_on("/down/result") if r["command_id"] == command_id]


def test_a_command_whose_ttl_runs_out_is_reported_expired_and_never_sent(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(91)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    wait_for(lambda: gw.status()["sinks"]["commands"]["subscribed"], 30, "the command subscription")
    subscriber.publish(
        f"{PREFIX}/{dev.dev_eui}/down", json.dumps({"fport": 24, "raw": "1001", "id": "short", "ttl_s": 1})
    )
    wait_for(lambda: "expired" in [s for s, _ in _states(subscriber, "short")], 60, "the command expired")
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 1, water_payload(1)))])
    wait_for(lambda: gw.status()["uplinks"]["accepted"] >= 1, 30, "the uplink")
    subscriber.wait_json("/up")
    # whatever goes down now (MAC answers) must not carry the expired command
    for datagram in _pull_resps(fwd, settle=2.0):
        down = lora.downlink(dev, datagram)
        assert down["fport"] != 24, down
    assert gw.status()["downlinks"]["expired"] >= 1


def _pull_resps(fwd: Forwarder, settle: float) -> list[bytes]:
    time.sleep(settle)
    out = []
    while (d := fwd.take(lambda d: len(d) > 4 and d[3] == 3)) is not None:
        fwd.tx_ack(d[1:3])
        txpk = json.loads(d[4:])["txpk"]
        out.append(base64.b64decode(txpk["data"] + "=" * (-len(txpk["data"]) % 4)))
    return out


def test_an_unacknowledged_confirmed_command_fails_after_its_attempts(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(92)
    gw = make_gateway(extra="[network]\nconfirmed_retries = 2\n", devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    wait_for(lambda: gw.status()["sinks"]["commands"]["subscribed"], 30, "the command subscription")
    subscriber.publish(
        f"{PREFIX}/{dev.dev_eui}/down",
        json.dumps({"fport": 24, "raw": "1002", "id": "conf", "confirmed": True}),
    )
    wait_for(lambda: _states(subscriber, "conf"), 30, "queued")
    sent: list[dict[str, Any]] = []
    for n in range(1, 9):  # the device never sets ACK
        fwd.push_acked([fwd.rxpk(lora.uplink(dev, n, water_payload(n)), freq=(868.1, 868.3, 868.5)[n % 3])])
        wait_for(lambda n=n: gw.status()["uplinks"]["accepted"] >= n, 30, f"uplink {n}")
        for phy in _pull_resps(fwd, settle=1.0):
            down = lora.downlink(dev, phy)
            assert down["mic_ok"] is True
            if down["fport"] == 24:
                sent.append(down)
        if "failed" in [s for s, _ in _states(subscriber, "conf")]:
            break
    states = _states(subscriber, "conf")
    assert "failed" in [s for s, _ in states], states
    # docs/mqtt.md: "sent again (new counter) up to network.confirmed_retries times"; the example config:
    # "attempts of a confirmed downlink before it is reported failed". The daemon makes 2 attempts for 2.
    assert 1 <= len(sent) <= 3, sent
    assert all(d["mtype"] == "Confirmed Data Down" for d in sent)
    assert len({d["fcnt"] for d in sent}) == len(sent), "each attempt has a new counter"
    assert gw.status()["downlinks"]["failed"] >= 1


def test_a_removed_devices_commands_fail_and_never_reach_a_device_added_again(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
    tmp_path: Path,
) -> None:
    """docs/mqtt.md: a command queued for a device that `havel device remove` removes is published as
    `failed` (detail "device removed"); the kit added again under the same DevEUI never gets it."""
    dev = abp_device(93)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    wait_for(lambda: gw.status()["sinks"]["commands"]["subscribed"], 30, "the command subscription")
    subscriber.publish(f"{PREFIX}/{dev.dev_eui}/down", json.dumps({"fport": 24, "raw": "1001", "id": "old"}))
    wait_for(lambda: _states(subscriber, "old"), 30, "queued")
    assert gw.cli("device", "remove", dev.name).returncode == 0  # while the daemon runs
    wait_for(lambda: ("failed", "device removed") in _states(subscriber, "old"), 30, "the failed result")
    add_device(gw, dev, tmp_path / "again")
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 1, water_payload(1)))])
    wait_for(lambda: gw.status()["uplinks"]["accepted"] >= 1, 30, "the new device's uplink")
    ports = [lora.downlink(dev, phy)["fport"] for phy in _pull_resps(fwd, settle=2.0)]
    assert 24 not in ports, ports
    assert _states(subscriber, "old") == [("queued", ""), ("failed", "device removed")]


def test_a_pull_data_from_another_port_does_not_take_the_downlink_path(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(93)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    thief = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    thief.bind((HOST, 0))  # same address, another port: a local process claiming the forwarder's EUI
    thief.setblocking(False)
    try:
        thief.sendto(b"\x02\x00\x09\x02" + fwd.eui, (HOST, gw.udp_port))
        wait_for(
            lambda: gw.metric('havel_gateway_datagrams_rejected_total{reason="pull_address"}') >= 1,
            30,
            "pull_address counted",
        )
        wait_for(lambda: gw.status()["sinks"]["commands"]["subscribed"], 30, "the command subscription")
        subscriber.publish(
            f"{PREFIX}/{dev.dev_eui}/down", json.dumps({"fport": 24, "raw": "1003", "id": "x"})
        )
        wait_for(lambda: _states(subscriber, "x"), 30, "queued")
        fwd.push_acked([fwd.rxpk(lora.uplink(dev, 1, water_payload(1)))])
        down = lora.downlink(dev, fwd.pull_resp()["_phy"])  # the real forwarder gets it
        assert (down["fport"], down["payload"]) == (24, "1003")
        stolen = []
        while True:
            try:
                stolen.append(thief.recv(65536))
            except BlockingIOError:
                break
        assert not [d for d in stolen if len(d) > 3 and d[3] == 3], "the thief got a PULL_RESP"
    finally:
        thief.close()


def test_downlink_timestamps_wrap_with_the_concentrators_32_bit_clock(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev, joiner = abp_device(94), otaa_device(94)
    gw = make_gateway(devices=(dev, joiner))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    fwd.tmst = 2**32 - 3_500_000  # the next rxpk is heard 0.5 s before the microsecond counter wraps
    rxpk = fwd.rxpk(lora.uplink(dev, 1, water_payload(1), confirmed=True))
    fwd.push_acked([rxpk])
    assert fwd.pull_resp()["tmst"] == 500_000
    fwd.tmst = 2**32 - 5_000_000  # a join-request 2 s before the wrap: its accept 3 s after it
    fwd.push_acked([fwd.rxpk(lora.join_request(joiner, 3))])
    while (txpk := fwd.pull_resp())["_phy"][0] & 0xE0 != 0x20:
        pass
    assert txpk["tmst"] == 3_000_000
    assert lora.join_accept(joiner, txpk["_phy"], 3)["mic_ok"] is True
