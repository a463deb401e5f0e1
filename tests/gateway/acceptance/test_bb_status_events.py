"""Black-box: the retained status topic and its last will, gateway events (docs/mqtt.md "Status" and
"Events", docs/gateway.md "Operating it"), and the downlinks the gateway owes a device by itself: the ACK of
a confirmed uplink, LinkCheckAns, DeviceTimeAns, an answer to ADRACKReq, the RX2 fallback after a TX_ACK
error (docs/gateway.md step 4). Downlinks are read back with lora-packet.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from bb_kit import (
    Broker,
    Forwarder,
    Gateway,
    LoraPacket,
    Subscriber,
    abp_device,
    otaa_device,
    wait_for,
    water_payload,
)


def _status(sub: Subscriber) -> list[dict[str, Any]]:
    return sub.json_on("havel/gw1/status")


def test_retained_status_online_then_offline_on_shutdown_and_as_last_will(
    make_gateway: Callable[..., Gateway], broker: Broker, subscriber: Subscriber
) -> None:
    gw = make_gateway()
    online = subscriber.wait_json("havel/gw1/status", where=lambda m: m.get("state") == "online")[0]
    assert online["gateway_id"] == "gw1"
    assert "since" in online
    # a subscriber arriving later reads the current state at once (retained)
    late = Subscriber(broker.port, "havel/gw1/status", client_id="late-1")
    try:
        assert late.wait_json("havel/gw1/status")[-1]["state"] == "online"
        assert late.messages[0][2] is True  # the retain flag
    finally:
        late.close()

    gw.stop()  # clean shutdown: the gateway says offline itself
    wait_for(lambda: _status(subscriber)[-1].get("state") == "offline", 30, "offline on SIGTERM")
    gw.start()
    wait_for(lambda: _status(subscriber)[-1].get("state") == "online", 30, "online again")
    gw.kill9()  # no goodbye: the broker publishes the last will
    wait_for(lambda: _status(subscriber)[-1].get("state") == "offline", 60, "the last will")
    assert _status(subscriber)[-1]["gateway_id"] == "gw1"
    late = Subscriber(broker.port, "havel/gw1/status", client_id="late-2")
    try:
        assert late.wait_json("havel/gw1/status")[-1]["state"] == "offline"
    finally:
        late.close()


def test_a_silent_packet_forwarder_raises_the_alarm_and_its_return_is_reported(
    make_gateway: Callable[..., Gateway], subscriber: Subscriber, forwarders: list[Forwarder]
) -> None:
    gw = make_gateway(udp="silent_after_s = 2")
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    (silent,) = subscriber.wait_json(
        "havel/gw1/events", where=lambda e: e.get("event") == "forwarder_silent", timeout=60
    )
    assert silent["gateway_id"] == "gw1"
    assert silent["id"].startswith("gw1-event-")
    assert "at" in silent
    assert any(k.startswith("havel_gateway_forwarder_silent") and v == 1 for k, v in gw.metrics().items())
    assert "ALARM: packet forwarder" in gw.log.read_text()
    assert gw.cli("gateway", "status").returncode == 2  # degraded
    fwd.pull_acked()
    subscriber.wait_json("havel/gw1/events", where=lambda e: e.get("event") == "forwarder_back", timeout=60)
    wait_for(
        lambda: all(
            v == 0 for k, v in gw.metrics().items() if k.startswith("havel_gateway_forwarder_silent")
        ),
        30,
        "the silent metric back to 0",
    )


def test_sink_down_and_up_events_arrive_after_an_outage(
    make_gateway: Callable[..., Gateway], broker: Broker, subscriber: Subscriber
) -> None:
    gw = make_gateway(extra="[forwarder]\ndown_after_s = 2\n")
    broker.stop()
    wait_for(lambda: gw.status()["sinks"]["platform"]["state"] == "down", 60, "the sink down")
    broker.start()

    def down_then_up() -> list[str] | None:
        names = [e["event"] for e in subscriber.json_on("havel/gw1/events") if e["event"].startswith("sink_")]
        if "sink_down" in names and "sink_up" in names[names.index("sink_down") :]:
            return names
        return None

    try:
        wait_for(down_then_up, 90, "sink_down, then sink_up")
    except AssertionError:
        raise AssertionError(subscriber.json_on("havel/gw1/events")) from None
    events = subscriber.json_on("havel/gw1/events")
    assert all(e["id"].startswith("gw1-event-") and e["gateway_id"] == "gw1" for e in events), events


def _uplink(fwd: Forwarder, lora: LoraPacket, dev: Any, fcnt: int, **flags: Any) -> dict[str, Any]:
    rxpk = fwd.rxpk(lora.uplink(dev, fcnt, water_payload(fcnt), **flags))
    fwd.push_acked([rxpk])
    return rxpk


def test_the_gateway_answers_confirmed_uplinks_link_checks_time_requests_and_adr_ack_requests(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(61)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()

    rxpk = _uplink(fwd, lora, dev, 1, confirmed=True)
    txpk = fwd.pull_resp()
    assert txpk["tmst"] == (rxpk["tmst"] + 1_000_000) & 0xFFFFFFFF
    down = lora.downlink(dev, txpk["_phy"])
    assert down["mic_ok"] is True
    assert down["ack"] is True
    (up,) = subscriber.wait_json("/up")
    assert up["confirmed"] is True

    # LinkCheckReq (CID 0x02) and DeviceTimeReq (CID 0x0D) in FOpts (RX2 serves when RX1's duty cycle is used)
    _uplink(fwd, lora, dev, 2, fopts="020d")
    down = lora.downlink(dev, fwd.pull_resp()["_phy"])
    assert down["mic_ok"] is True
    mac = down["fopts"] if down["fopts"] else (down["payload"] if down["fport"] == 0 else "")
    cids = _parse_mac(bytes.fromhex(mac))
    assert 0x02 in cids, (mac, cids)  # LinkCheckAns: margin, gateway count
    assert cids[0x02][1] >= 1
    assert 0x0D in cids, (mac, cids)  # DeviceTimeAns: GPS seconds (4) + fraction (1)

    # ADRACKReq always gets a downlink (docs/gateway.md, ADR)
    before = gw.status()["downlinks"]["adr_ack_answered"]
    _uplink(fwd, lora, dev, 3, adr=True, adr_ack_req=True)
    down = lora.downlink(dev, fwd.pull_resp()["_phy"])
    assert down["mic_ok"] is True
    wait_for(lambda: gw.status()["downlinks"]["adr_ack_answered"] > before, 30, "adr_ack_answered counted")


def _parse_mac(mac: bytes) -> dict[int, bytes]:
    """Downlink MAC commands (LoRaWAN 1.0.3, section 5) the gateway may send: CID -> payload."""
    sizes = {0x02: 2, 0x03: 4, 0x04: 1, 0x05: 4, 0x06: 0, 0x07: 5, 0x08: 1, 0x09: 1, 0x0A: 4, 0x0D: 5}
    out: dict[int, bytes] = {}
    i = 0
    while i < len(mac):
        cid = mac[i]
        size = sizes[cid]
        out[cid] = mac[i + 1 : i + 1 + size]
        i += 1 + size
    return out


def test_a_tx_ack_error_sends_the_rx2_fallback(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(62)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    wait_for(lambda: gw.status()["sinks"]["commands"]["subscribed"], 30, "the command subscription")
    subscriber.publish(
        f"havel/gw1/devices/{dev.dev_eui}/down", json.dumps({"fport": 11, "raw": "10", "id": "st"})
    )
    subscriber.wait_json("/down/result", where=lambda r: r["state"] == "queued")
    rxpk = _uplink(fwd, lora, dev, 1)
    first = fwd.pull_resp(ack="TOO_LATE")
    assert first["tmst"] == (rxpk["tmst"] + 1_000_000) & 0xFFFFFFFF
    second = fwd.pull_resp()
    assert second["freq"] == 869.525  # RX2
    assert second["tmst"] == (rxpk["tmst"] + 2_000_000) & 0xFFFFFFFF
    down = lora.downlink(dev, second["_phy"])
    assert (down["fport"], down["payload"], down["mic_ok"]) == (11, "10", True)
    # counted in /metrics by error (status `tx_error` stays 0 here: the docs do not say what it counts)
    wait_for(
        lambda: gw.metric('havel_gateway_downlinks_tx_ack_total{error="TOO_LATE"}') >= 1, 30, "TX_ACK error"
    )
    assert gw.metric('havel_gateway_downlinks_tx_total{window="RX2"}') >= 1


def test_json_logs_and_no_key_in_logs_messages_or_http(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    abp, otaa = abp_device(63), otaa_device(63)
    gw = make_gateway(extra='[log]\nformat = "json"\nlevel = "debug"\n', devices=(abp, otaa))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    fwd.push_acked([fwd.rxpk(lora.join_request(otaa, 3))])
    accept = lora.join_accept(otaa, fwd.pull_resp()["_phy"], 3)
    otaa.dev_addr, otaa.nwk_s_key, otaa.app_s_key = (
        accept["dev_addr"],
        accept["nwk_s_key"],
        accept["app_s_key"],
    )
    fwd.push_acked([fwd.rxpk(lora.uplink(otaa, 0, water_payload(1)))])
    fwd.push_acked([fwd.rxpk(lora.uplink(abp, 1, water_payload(1)))])
    fwd.send_raw(b"garbage for a warning")
    subscriber.wait_json("/up", 2)
    seen = gw.http("/status")[1] + gw.http("/metrics")[1] + gw.cli("gateway", "status", "--json").stdout
    gw.stop()
    log = gw.log.read_text()
    lines = log.splitlines()
    assert lines
    for line in lines:  # [log] format = "json": one JSON object per line
        assert isinstance(json.loads(line), dict), line
    everything = (log + seen + "".join(p.decode(errors="replace") for _, p, _ in subscriber.messages)).lower()
    for key in (otaa.app_key, otaa.nwk_s_key, otaa.app_s_key, abp.nwk_s_key, abp.app_s_key):
        assert key.lower() not in everything


def test_adr_steps_a_strong_sf12_device_up_to_sf7_and_counts_its_answer(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(64)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    link_adr = None
    # 20 uplinks at SF12 with 10 dB SNR: floor -20 dB, margin 10 dB, 20 dB to spare = 6 steps of 3 dB:
    # five data rate steps (DR0 -> DR5) and one power step (docs/gateway.md, ADR)
    for n in range(1, 23):
        fwd.tmst += 200_000_000  # minutes apart on the concentrator's clock
        fwd.push_acked(
            [fwd.rxpk(lora.uplink(dev, n, water_payload(n), adr=True), datr="SF12BW125", lsnr=10.0)]
        )
        wait_for(lambda n=n: gw.status()["uplinks"]["accepted"] >= n, 30, f"uplink {n}")
        time.sleep(0.2)
        while (d := fwd.take(lambda d: len(d) > 4 and d[3] == 3)) is not None:
            fwd.tx_ack(d[1:3])
            txpk = json.loads(d[4:])["txpk"]
            down = lora.downlink(dev, base64.b64decode(txpk["data"] + "=" * (-len(txpk["data"]) % 4)))
            mac = down["fopts"] or (down["payload"] if down["fport"] == 0 else "")
            if mac and 0x03 in _parse_mac(bytes.fromhex(mac)):
                link_adr = _parse_mac(bytes.fromhex(mac))[0x03]
        if link_adr is not None:
            break
    assert link_adr is not None, "no LinkADRReq after 20 strong uplinks"
    assert link_adr[0] >> 4 == 5, link_adr.hex()  # DR5 = SF7
    assert link_adr[0] & 0x0F == 1, link_adr.hex()  # TXPower 1: 2 dB below the maximum
    assert (link_adr[3] >> 4) & 0x07 == 6, link_adr.hex()  # ChMaskCntl 6: all channels on
    # the device accepts (LinkADRAns: power, data rate and channel mask ACK) and moves to SF7
    fwd.push_acked(
        [fwd.rxpk(lora.uplink(dev, 30, water_payload(30), adr=True, fopts="0307"), datr="SF7BW125")]
    )
    wait_for(lambda: gw.status()["downlinks"]["adr"]["accepted"] >= 1, 30, "the LinkADRAns counted")
    assert gw.metric('havel_gateway_adr_requests_total{outcome="accepted"}') >= 1
