"""Black-box: sessions and frame counters as docs/mqtt.md ("Stable ids") and docs/gateway.md (step 3) describe
them: ids that stay unique across rejoins and re-provisioning, DevNonces that outlive `device remove`, 32-bit
counters, the `fcnt_gap` limit, confirmed retransmissions, the intake journal's replay after SIGKILL, and
frames of strangers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bb_kit import (
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


def _rejected(gw: Gateway) -> dict[str, float]:
    return dict(gw.status()["uplinks"]["rejected"])


def _join(fwd: Forwarder, lora: LoraPacket, dev: Any, nonce: int) -> dict[str, Any]:
    fwd.push_acked([fwd.rxpk(lora.join_request(dev, nonce))])
    while (txpk := fwd.pull_resp())["_phy"][0] & 0xE0 != 0x20:  # skip MAC downlinks of the old session
        pass
    accept = lora.join_accept(dev, txpk["_phy"], nonce)
    dev.dev_addr, dev.nwk_s_key, dev.app_s_key = accept["dev_addr"], accept["nwk_s_key"], accept["app_s_key"]
    return accept


def test_a_reprovisioned_abp_device_gets_new_ids(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
    tmp_path: Path,
) -> None:
    dev = abp_device(71)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    for n in (1, 2):
        fwd.push_acked([fwd.rxpk(lora.uplink(dev, n, water_payload(n)))])
    old = subscriber.wait_json("/up", 2)
    assert [u["id"] for u in old] == [f"{dev.dev_eui}-0-1", f"{dev.dev_eui}-0-2"]
    assert gw.cli("device", "remove", dev.name).returncode == 0
    add_device(gw, dev, tmp_path / "again")  # the kit, reflashed: its counter starts again
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 1, water_payload(101)))])
    ups = subscriber.wait_json("/up", 3)
    new = ups[2]
    assert new["data"]["level"] == 101
    # docs/mqtt.md: re-added, it "continues above its last epoch ... so its restarted counter gives new ids":
    # "an ABP device added again gets its last epoch + 1"
    assert new["id"] not in {u["id"] for u in old}
    assert new["session_epoch"] == 1 and new["id"] == f"{dev.dev_eui}-1-1"


def test_devnonces_outlive_remove_and_forget_nonces_clears_them(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
    tmp_path: Path,
) -> None:
    dev = otaa_device(72)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    _join(fwd, lora, dev, 7)
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 0, water_payload(1)))])
    (up,) = subscriber.wait_json("/up")
    assert up["id"] == f"{dev.dev_eui}-1-0"

    # re-provisioned with a new AppKey: its join-request with the used DevNonce 7 is new bytes (not a
    # duplicate of the recorded frame), and still refused, since used DevNonces outlive `device remove`
    assert gw.cli("device", "remove", dev.dev_eui).returncode == 0
    dev.app_key = "a5" * 16
    add_device(gw, dev, tmp_path / "again")
    fwd.push_acked([fwd.rxpk(lora.join_request(dev, 7))])
    wait_for(lambda: sum(_rejected(gw).values()) >= 1, 30, "the used DevNonce rejected")
    time.sleep(1)
    assert len(subscriber.json_on("/join")) == 1

    forgotten = gw.cli("device", "forget-nonces", dev.name)
    assert forgotten.returncode == 0, forgotten.stderr
    fwd.tmst += 10_000_000  # the device asks again later
    _join(fwd, lora, dev, 7)
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 0, water_payload(2)))])
    ups = subscriber.wait_json("/up", 2)
    assert ups[1]["id"] != ups[0]["id"]
    assert ups[1]["session_epoch"] > ups[0]["session_epoch"]  # above its last epoch
    assert ups[1]["id"] == f"{dev.dev_eui}-{ups[1]['session_epoch']}-0"
    # the join with the DevNonce used before is published too (docs/mqtt.md: join ids carry the session
    # epoch, which every accepted join raises), not dropped as a duplicate of the first one
    joins = subscriber.wait_json("/join", 2)
    assert [j["dev_nonce"] for j in joins] == [7, 7]
    assert [j["id"] for j in joins] == [f"{dev.dev_eui}-join-{j['session_epoch']}" for j in joins]
    assert joins[1]["session_epoch"] == ups[1]["session_epoch"]
    time.sleep(1)
    assert len(subscriber.json_on("/join")) == 2


def test_32_bit_frame_counters_and_the_fcnt_gap_limit(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(73)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    for fcnt in (65_530, 65_541, 70_000):  # across the 16-bit wrap: the MIC covers the 32-bit value
        fwd.push_acked([fwd.rxpk(lora.uplink(dev, fcnt, water_payload(fcnt % 1000)))])
    ups = subscriber.wait_json("/up", 3)
    assert [u["fcnt"] for u in ups] == [65_530, 65_541, 70_000]
    assert ups[1]["id"] == f"{dev.dev_eui}-0-65541"
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 70_000 + 49_152, water_payload(9)))])
    wait_for(lambda: _rejected(gw).get("fcnt_gap", 0) >= 1, 30, f"fcnt_gap counted ({_rejected(gw)})")
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 70_001, water_payload(10)))])
    ups = subscriber.wait_json("/up", 4)
    assert [u["fcnt"] for u in ups] == [65_530, 65_541, 70_000, 70_001]


def test_a_confirmed_frame_sent_again_after_its_windows_is_stored_once_and_acked_at_most_8_times(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(74)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    phy = lora.uplink(dev, 5, water_payload(5), confirmed=True)
    for _ in range(12):  # the concentrator's clock moves 3 s each time: every copy is after its RX windows
        fwd.push_acked([fwd.rxpk(phy)])
        time.sleep(0.3)  # beyond the dedup window
    wait_for(lambda: gw.status()["uplinks"]["received"] >= 12, 30, "all copies received")
    time.sleep(1)
    acks = []
    while (d := fwd.take(lambda d: len(d) > 4 and d[3] == 3)) is not None:
        acks.append(d)
    assert 1 <= len(acks) <= 1 + 8, len(acks)
    ups = subscriber.json_on("/up")
    assert [u["fcnt"] for u in ups] == [5]
    assert gw.status()["uplinks"]["retransmitted"] >= 1


def test_the_journal_replay_after_sigkill_keeps_the_receive_time_and_marks_buffered(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(75)
    # a long dedup window keeps the acknowledged frames in the intake journal when the daemon is killed
    gw = make_gateway(extra="[network]\ndedup_window_ms = 3000\n", devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    for n in (1, 2, 3):
        fwd.push_acked([fwd.rxpk(lora.uplink(dev, n, water_payload(n)))])
    gw.kill9()
    killed_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1))
    time.sleep(1.5)
    gw.start()
    ups = subscriber.wait_json("/up", 3, timeout=60)
    assert [u["fcnt"] for u in ups] == [1, 2, 3]
    for u in ups:
        assert u["received_at"] < killed_at, (u["received_at"], killed_at)  # the original receive time
        assert u["buffered"] is True  # it waited through the gateway's outage (docs/mqtt.md)


def test_frames_of_strangers_are_rejected_and_counted(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = otaa_device(76)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    stranger = abp_device(77)  # never registered
    fwd.push_acked([fwd.rxpk(lora.uplink(stranger, 1, water_payload(1)))])
    unknown = otaa_device(78)  # never registered
    fwd.push_acked([fwd.rxpk(lora.join_request(unknown, 1))])
    wrong_key = otaa_device(76)
    wrong_key.app_key = "ff" * 16
    fwd.push_acked([fwd.rxpk(lora.join_request(wrong_key, 2))])
    wait_for(lambda: sum(_rejected(gw).values()) >= 3, 30, f"three rejections ({_rejected(gw)})")
    time.sleep(1)
    assert subscriber.json_on("/up") == [] and subscriber.json_on("/join") == []
    assert not [d for d in fwd.inbox if d[3] == 3], "a join-accept for a stranger"
    _join(fwd, lora, dev, 2)  # the nonce of the forged request was not used up
    subscriber.wait_json("/join")


def test_protocol_v1_forwarders_are_served(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    import json as _json

    dev = abp_device(79)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    body = _json.dumps({"rxpk": [fwd.rxpk(lora.uplink(dev, 1, water_payload(1)))]}).encode()
    fwd.send_raw(b"\x01\x77\x77\x00" + fwd.eui + body)
    wait_for(lambda: fwd.take(lambda d: d[:4] == b"\x01\x77\x77\x01"), 20, "a v1 PUSH_ACK")
    subscriber.wait_json("/up")
