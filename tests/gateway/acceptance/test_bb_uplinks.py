"""Black-box: uplinks of an ABP and an OTAA device through the real daemon, real UDP and real Mosquitto,
checked against docs/mqtt.md (topics, ids, fields) and docs/gateway.md (join-accept timing, replays,
duplicates from two concentrators). Frames are built and read with lora-packet, not the project's code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bb_kit import (
    Forwarder,
    Gateway,
    LoraPacket,
    Subscriber,
    abp_device,
    otaa_device,
    wait_for,
    water_payload,
)

# docs/mqtt.md: "RFC 3339 UTC with milliseconds" (example ...09:00:00.123Z)
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UP_FIELDS = {
    "id", "device", "dev_eui", "dev_addr", "session_epoch", "fcnt", "fport", "confirmed", "received_at",
    "time_source", "buffered", "rx", "codec", "data", "units", "warnings", "errors", "raw",
}  # fmt: skip


def test_abp_uplink_arrives_decoded_with_the_documented_fields(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(1)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    payload = water_payload(159)
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 7, payload), rssi=-87, lsnr=7.5, chan=2, freq=868.5)])

    (up,) = subscriber.wait_json(f"havel/gw1/devices/{dev.dev_eui}/up")
    assert set(up) >= UP_FIELDS, UP_FIELDS - set(up)
    assert up["id"] == f"{dev.dev_eui}-0-7"
    assert up["device"] == dev.name
    assert up["dev_eui"] == dev.dev_eui
    assert up["dev_addr"].upper() == dev.dev_addr.upper()
    assert up["session_epoch"] == 0
    assert up["fcnt"] == 7
    assert up["fport"] == 1
    assert up["confirmed"] is False
    assert RFC3339_UTC.match(up["received_at"]), up["received_at"]
    assert up["time_source"] == "local"  # no tmms: the forwarder has no GPS
    assert up["buffered"] is False
    assert up["codec"] == "water"
    assert up["raw"].lower() == payload
    assert up["data"]["level"] == 159
    assert up["data"]["distance"] == 1570
    assert up["data"]["battery"] == 3580
    assert up["units"]["level"] == "cm"
    assert up["errors"] == []
    (rx,) = up["rx"]
    assert rx["gateway"] == fwd.eui_hex
    assert rx["rssi"] == -87
    assert rx["snr"] == 7.5
    assert rx["freq"] == 868.5
    assert rx["datr"] == "SF7BW125"
    assert rx["chan"] == 2
    assert isinstance(rx["tmst"], int)


def test_gps_time_is_the_receive_time_when_the_forwarder_sends_tmms(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(2)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    phy = lora.uplink(dev, 1, water_payload(10))
    fwd.push_acked([fwd.rxpk(phy, time="2026-11-26T09:00:00.123456Z", tmms=1_448_182_818_123)])
    (up,) = subscriber.wait_json("/up")
    assert up["time_source"] == "gps"
    assert up["received_at"] == "2026-11-26T09:00:00.123Z"  # docs/mqtt.md: milliseconds


def test_received_at_is_rfc3339_with_milliseconds_for_local_and_gps_time(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    """docs/mqtt.md: "`received_at` is RFC 3339 UTC with milliseconds" (example ...09:00:00.123Z)."""
    dev = abp_device(31)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 1, water_payload(1)))])
    fwd.push_acked(
        [fwd.rxpk(lora.uplink(dev, 2, water_payload(2)), time="2026-11-26T09:00:00.123456Z", tmms=1)]
    )
    local, gps = subscriber.wait_json("/up", 2)
    assert gps["received_at"] == "2026-11-26T09:00:00.123Z", gps["received_at"]
    assert RFC3339_UTC.match(local["received_at"]), local["received_at"]


def test_undecodable_payload_keeps_raw_and_says_why(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(3)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 1, "ff00"))])  # 2 bytes where the layout has 8
    (up,) = subscriber.wait_json("/up")
    assert up["data"] is None
    assert up["errors"], up
    assert up["raw"].lower() == "ff00"


def _join(
    gw: Gateway, fwd: Forwarder, lora: LoraPacket, dev: Any, nonce: int, timeout: float = 30.0
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Join-request over PUSH_DATA; returns (txpk, decrypted join-accept, the request's tmst)."""
    rxpk = fwd.rxpk(lora.join_request(dev, nonce), freq=868.3, datr="SF9BW125")
    fwd.push_acked([rxpk])
    txpk = fwd.pull_resp(timeout)
    return txpk, lora.join_accept(dev, txpk["_phy"], nonce), rxpk["tmst"]


def test_otaa_join_through_the_daemon_then_uplinks_in_the_new_session(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = otaa_device(1)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()  # the downlink path exists before the join-request

    txpk, accept, tmst = _join(gw, fwd, lora, dev, 0x0201)
    assert accept["mtype"] == "Join Accept"
    assert accept["mic_ok"] is True
    assert accept["net_id"] == "000000"  # the configured default
    assert accept["rx_delay"] == 1
    assert len(accept["cflist"]) == 32, "EU868 CFList expected"
    # RX1 of a join-accept: JOIN_ACCEPT_DELAY1 = 5 s after the request, same frequency (docs/gateway.md)
    assert txpk["tmst"] == (tmst + 5_000_000) & 0xFFFFFFFF
    assert txpk["freq"] == 868.3
    assert txpk["ipol"] is True

    (join,) = subscriber.wait_json(f"havel/gw1/devices/{dev.dev_eui}/join")
    assert join["id"] == f"{dev.dev_eui}-join-1"  # docs/mqtt.md: <DevEUI>-join-<SessionEpoch>
    assert join["dev_nonce"] == 0x0201
    assert join["session_epoch"] == 1
    assert join["join_eui"] == dev.join_eui
    assert join["dev_addr"].upper() == accept["dev_addr"].upper()
    assert join["buffered"] is False

    dev.dev_addr = accept["dev_addr"]
    dev.nwk_s_key = accept["nwk_s_key"]
    dev.app_s_key = accept["app_s_key"]
    for fcnt in (0, 1):
        fwd.push_acked([fwd.rxpk(lora.uplink(dev, fcnt, water_payload(100 + fcnt)))])
    ups = subscriber.wait_json(f"havel/gw1/devices/{dev.dev_eui}/up", 2)
    assert [u["id"] for u in ups] == [f"{dev.dev_eui}-1-0", f"{dev.dev_eui}-1-1"]
    assert [u["data"]["level"] for u in ups] == [100, 101]
    assert all(u["session_epoch"] == 1 for u in ups)


def test_rejoin_raises_the_epoch_and_a_used_devnonce_is_refused(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = otaa_device(2)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    _join(gw, fwd, lora, dev, 1)
    _join(gw, fwd, lora, dev, 2)
    joins = subscriber.wait_json("/join", 2)
    assert [j["session_epoch"] for j in joins] == [1, 2]

    # an attacker replays the first join-request: acknowledged at the UDP level, but no join-accept
    fwd.push_acked([fwd.rxpk(lora.join_request(dev, 1))])
    wait_for(lambda: sum(gw.status()["uplinks"]["rejected"].values()) >= 1, 30, "the replayed join rejected")
    assert len(subscriber.json_on("/join")) == 2
    assert not [d for d in fwd.inbox if d[3] == 3], "a join-accept for a replayed DevNonce"


def test_join_before_any_pull_data_is_unanswered_and_not_recorded(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = otaa_device(3)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.push_acked([fwd.rxpk(lora.join_request(dev, 5))])
    wait_for(lambda: gw.status()["downlinks"]["join_unanswered"] >= 1, 30, "join_unanswered counted")
    # the device asks again with the same DevNonce? No: a device uses a new one; the gateway recorded none
    fwd.pull_acked()
    _txpk, accept, _ = _join(gw, fwd, lora, dev, 5)  # the unanswered nonce was not recorded as used
    assert accept["mic_ok"] is True
    (join,) = subscriber.wait_json("/join")
    assert join["dev_nonce"] == 5


def test_replayed_uplinks_are_rejected_and_not_published_again(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(4)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    frames = {n: lora.uplink(dev, n, water_payload(n)) for n in (10, 11, 12)}
    for n in (10, 11, 12):
        fwd.push_acked([fwd.rxpk(frames[n])])
    subscriber.wait_json("/up", 3)
    wait_for(lambda: gw.status()["uplinks"]["accepted"] >= 3, 30, "three accepted")

    # an attacker records frame 11 and sends it again later, and a forged frame with a wrong key
    fwd.push_acked([fwd.rxpk(frames[11])])
    forged = abp_device(4)
    forged.nwk_s_key = "00" * 16
    fwd.push_acked([fwd.rxpk(lora.uplink(forged, 13, water_payload(999)))])
    wait_for(lambda: sum(gw.status()["uplinks"]["rejected"].values()) >= 2, 30, "two rejections counted")
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 14, water_payload(14)))])
    ups = subscriber.wait_json("/up", 4)
    assert [u["fcnt"] for u in ups] == [10, 11, 12, 14]
    metrics = gw.metrics()
    rejected = {k: v for k, v in metrics.items() if k.startswith("havel_gateway_uplinks_rejected_total")}
    assert sum(rejected.values()) >= 2, rejected


def test_one_frame_heard_by_two_forwarders_gives_one_message_listing_both(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(5)
    # several concentrators must all be listed (docs/gateway.md, allowed_gateways)
    gw = make_gateway(udp='allowed_gateways = ["AA555A0000000101", "AA555A0000000202"]', devices=(dev,))
    near = Forwarder(gw.udp_port, "AA555A0000000101")
    far = Forwarder(gw.udp_port, "AA555A0000000202")
    forwarders += [near, far]
    phy = lora.uplink(dev, 3, water_payload(42))
    far.push_acked([far.rxpk(phy, rssi=-118, lsnr=-9.0)])
    near.push_acked([near.rxpk(phy, rssi=-60, lsnr=9.5)])
    (up,) = subscriber.wait_json("/up")
    assert [r["gateway"] for r in up["rx"]] == ["AA555A0000000101", "AA555A0000000202"]  # best signal first
    # a copy after the dedup window is a duplicate, not a new reading
    near.push_acked([near.rxpk(phy, rssi=-61, lsnr=9.0)])
    wait_for(lambda: gw.status()["uplinks"]["received"] >= 3, 30, "third copy received")
    near.push_acked([near.rxpk(lora.uplink(dev, 4, water_payload(43)))])
    ups = subscriber.wait_json("/up", 2)
    assert [u["fcnt"] for u in ups] == [3, 4]
