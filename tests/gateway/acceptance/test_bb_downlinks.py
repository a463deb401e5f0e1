"""Black-box: downlink commands over MQTT (docs/mqtt.md, "Downlink command") reach the scripted packet
forwarder as PULL_RESP in the device's RX1 window, read back with lora-packet; every message on a
`.../down` topic gets a `.../down/result`, poison included, and the daemon keeps serving.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from bb_kit import Forwarder, Gateway, LoraPacket, Subscriber, abp_device, wait_for, water_payload

PREFIX = "havel/gw1/devices"


def _results(sub: Subscriber, dev_eui: str) -> list[dict[str, Any]]:
    return sub.json_on(f"{PREFIX}/{dev_eui}/down/result")


def _state_of(sub: Subscriber, dev_eui: str, command_id: str, state: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for r in _results(sub, dev_eui):
            if r.get("command_id") == command_id and r.get("state") == state:
                return r
        return None

    try:
        return wait_for(find, 30, f"down/result {command_id} {state}")
    except AssertionError as e:
        seen = [(r.get("command_id"), r.get("state"), r.get("detail")) for r in _results(sub, dev_eui)]
        raise AssertionError(f"{e}; results seen: {seen}") from None


def test_commands_reach_the_forwarder_in_rx1_and_report_their_fate(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(21)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    wait_for(lambda: gw.status()["sinks"]["commands"]["subscribed"], 30, "the command subscription")

    topic = f"{PREFIX}/{dev.dev_eui}/down"
    subscriber.publish(topic, json.dumps({"fport": 10, "data": {"interval": 900}, "id": "every-15-min"}))
    queued = _state_of(subscriber, dev.dev_eui, "every-15-min", "queued")
    # docs/mqtt.md: <DevEUI>-down-<command id>-<submission number>-<state>
    assert re.fullmatch(f"{dev.dev_eui}-down-every-15-min-[0-9]+-queued", queued["id"]), queued["id"]
    assert queued["dev_eui"] == dev.dev_eui
    assert queued["device"] == dev.name
    assert queued["request"]["fport"] == 10

    # the next uplink opens the device's receive windows
    rxpk = fwd.rxpk(lora.uplink(dev, 1, water_payload(50)), freq=868.3, datr="SF9BW125")
    fwd.push_acked([rxpk])
    txpk = fwd.pull_resp()
    assert txpk["tmst"] == (rxpk["tmst"] + 1_000_000) & 0xFFFFFFFF  # RX1: RECEIVE_DELAY1 = 1 s
    assert txpk["freq"] == 868.3
    assert txpk["datr"] == "SF9BW125"
    assert txpk["ipol"] is True
    down = lora.downlink(dev, txpk["_phy"])
    assert down["mtype"] == "Unconfirmed Data Down"
    assert down["mic_ok"] is True
    assert down["dev_addr"].upper() == dev.dev_addr.upper()
    assert down["fport"] == 10
    assert down["payload"] == "100384"  # docs/payloads.md: set_interval 900 s
    sent = _state_of(subscriber, dev.dev_eui, "every-15-min", "sent")
    assert sent["fcnt_down"] == down["fcnt"]
    assert sent["id"] == queued["id"].replace("-queued", "-sent")

    # a confirmed command is acknowledged by the device's next uplink (ACK bit)
    subscriber.publish(topic, json.dumps({"fport": 12, "raw": "1000", "confirmed": True, "id": "reboot-1"}))
    _state_of(subscriber, dev.dev_eui, "reboot-1", "queued")
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 2, water_payload(51)))])
    txpk = fwd.pull_resp()
    down = lora.downlink(dev, txpk["_phy"])
    assert down["mtype"] == "Confirmed Data Down"
    assert down["mic_ok"] is True
    assert (down["fport"], down["payload"]) == (12, "1000")
    # docs: every change of fate is published, "sent" included, also for a confirmed command (TX_ACK NONE)
    # before the device acknowledges it; downlinks.sent counts it
    confirmed_sent = _state_of(subscriber, dev.dev_eui, "reboot-1", "sent")
    assert confirmed_sent["fcnt_down"] == down["fcnt"]
    wait_for(lambda: gw.status()["downlinks"]["sent"] >= 2, 30, "downlinks.sent counting both commands")
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 3, water_payload(52), ack=True))])
    acked = _state_of(subscriber, dev.dev_eui, "reboot-1", "acked")
    assert re.fullmatch(f"{dev.dev_eui}-down-reboot-1-[0-9]+-acked", acked["id"]), acked["id"]
    assert acked["id"].replace("-acked", "-sent") == confirmed_sent["id"]
    assert gw.status()["downlinks"]["acked"] >= 1
    states = [r["state"] for r in _results(subscriber, dev.dev_eui) if r["command_id"] == "reboot-1"]
    assert states == ["queued", "sent", "acked"], states


POISON: list[tuple[str, bytes]] = [
    ("not_json", b"{not json"),
    ("not_object", b"[1, 2, 3]"),
    ("too_large", json.dumps({"fport": 24, "raw": "00", "pad": "x" * 5000}).encode()),
    ("too_deep", b'{"fport": 24, "data": ' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}"),
    ("bad_number", b'{"fport": 24, "raw": "00", "ttl_s": NaN}'),
    ("bad_number", b'{"fport": 24, "raw": "00", "ttl_s": 1e999}'),
    ("bad_text", b'{"fport": 24, "raw": "00", "id": "\\ud800"}'),
    ("bad_field", b'{"fport": 0, "raw": "00"}'),
    ("bad_field", b'{"fport": 224, "raw": "00"}'),
    ("bad_field", b'{"fport": 24, "raw": "00", "data": {}}'),
    ("bad_field", b'{"fport": 24}'),
    ("bad_field", b'{"fport": 24, "raw": "zz"}'),
    ("bad_field", b'{"fport": 24, "raw": "00", "colour": "red"}'),
    ("bad_id", b'{"fport": 24, "raw": "00", "id": "has space"}'),
    ("bad_id", json.dumps({"fport": 24, "raw": "00", "id": "x" * 65}).encode()),
    ("bad_ttl", b'{"fport": 24, "raw": "00", "ttl_s": 2592001}'),
    ("too_long", json.dumps({"fport": 24, "raw": "00" * 52}).encode()),
    ("codec", b'{"fport": 10, "data": {"interval": "soon"}}'),
    ("", b"\xff\xfe\x00garbage"),
]


def test_every_message_on_a_down_topic_gets_a_result_and_poison_is_counted(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(22)
    gw = make_gateway(devices=(dev,))
    wait_for(lambda: gw.status()["sinks"]["commands"]["subscribed"], 30, "the command subscription")
    topic = f"{PREFIX}/{dev.dev_eui}/down"
    for _reason, body in POISON:
        subscriber.publish(topic, body)
    results = wait_for(
        lambda: (r := _results(subscriber, dev.dev_eui)) and len(r) >= len(POISON) and r,
        60,
        "a result for every poison message",
    )
    assert all(r["state"] == "rejected" for r in results), results
    details = [r["detail"] for r in results]
    for reason, _body in POISON:
        if reason:
            assert any(d.startswith(reason) for d in details), (reason, details)
    by_reason = gw.status()["downlinks"]["rejected_by_reason"]
    for reason in {r for r, _ in POISON if r}:
        assert by_reason.get(reason, 0) >= 1, (reason, by_reason)

    # unknown device: a result on that device's topic, reason unknown_device
    stranger = "70B3D57ED0FFFFFF"
    subscriber.publish(f"{PREFIX}/{stranger}/down", b'{"fport": 24, "raw": "00"}')
    (unknown,) = subscriber.wait_json(f"{PREFIX}/{stranger}/down/result")
    assert unknown["detail"].startswith("unknown_device")
    # a topic whose DevEUI is not 16 hex digits: no result, counted as refused
    for bad in ("nothex!", "70B3D57ED00", "70b3d57ed0ffffff00"):
        subscriber.publish(f"{PREFIX}/{bad}/down", b'{"fport": 24, "raw": "00"}')
    wait_for(lambda: sum(gw.status()["sinks"]["commands"]["refused"].values()) >= 3, 30, "refused topics")

    # the daemon still serves: a good command and an uplink after all that
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    subscriber.publish(topic, json.dumps({"fport": 11, "raw": "10", "id": "status-please"}))
    _state_of(subscriber, dev.dev_eui, "status-please", "queued")
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 1, water_payload(5)))])
    down = lora.downlink(dev, fwd.pull_resp()["_phy"])
    assert (down["fport"], down["payload"]) == (11, "10")
    assert gw.alive()


def test_the_queue_holds_downlink_queue_max_commands_and_an_id_replaces_its_namesake(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(23)
    gw = make_gateway(extra="[network]\ndownlink_queue_max = 2\n", devices=(dev,))
    wait_for(lambda: gw.status()["sinks"]["commands"]["subscribed"], 30, "the command subscription")
    topic = f"{PREFIX}/{dev.dev_eui}/down"
    for cid, raw in (("a", "1001"), ("b", "1002"), ("a", "1003"), ("c", "1004")):
        subscriber.publish(topic, json.dumps({"fport": 24, "raw": raw, "id": cid}))
    c = _state_of(subscriber, dev.dev_eui, "c", "rejected")
    assert c["detail"].startswith("queue_full"), c  # "a" replaced its namesake: two wait, not three
    _state_of(subscriber, dev.dev_eui, "b", "queued")

    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    payloads = []
    for fcnt in (1, 2, 3):
        fwd.push_acked(
            [fwd.rxpk(lora.uplink(dev, fcnt, water_payload(fcnt)), freq=(868.1, 868.3, 868.5)[fcnt % 3])]
        )
        down = lora.downlink(dev, fwd.pull_resp()["_phy"])
        assert down["mic_ok"] is True
        if down["fport"] == 24:
            payloads.append(down["payload"])
        if len(payloads) == 2:
            break
    assert sorted(payloads) == ["1002", "1003"], payloads  # the replaced "a" (1001) never goes down
    # docs/mqtt.md: "Every message on a device's .../down topic gets a result": the replacement too
    results = [
        (r["command_id"], r["state"], r["request"].get("raw")) for r in _results(subscriber, dev.dev_eui)
    ]
    assert ("a", "queued", "1001") in results and ("a", "queued", "1003") in results, results
    assert len({r["id"] for r in _results(subscriber, dev.dev_eui)}) == len(results)


def test_a_command_that_replaces_its_namesake_gets_a_result(
    make_gateway: Callable[..., Gateway], subscriber: Subscriber
) -> None:
    """docs/mqtt.md: "Every message on a device's .../down topic gets a result" and "a new command with the
    id of one still queued for the same device replaces it"."""
    dev = abp_device(33)
    gw = make_gateway(devices=(dev,))
    wait_for(lambda: gw.status()["sinks"]["commands"]["subscribed"], 30, "the command subscription")
    topic = f"{PREFIX}/{dev.dev_eui}/down"
    subscriber.publish(topic, json.dumps({"fport": 24, "raw": "1001", "id": "a"}))
    subscriber.publish(topic, json.dumps({"fport": 24, "raw": "1003", "id": "a"}))
    subscriber.publish(topic, json.dumps({"fport": 24, "raw": "1002", "id": "b"}))
    subscriber.wait_json("/down/result", where=lambda r: r["command_id"] == "b")
    wait_for(
        lambda: (
            ("a", "1003")
            in [(r["command_id"], r["request"].get("raw")) for r in subscriber.json_on("/down/result")]
        ),
        30,
        "the result of the replacing command",
    )


def test_a_command_id_used_again_after_the_first_was_sent_gets_its_results(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    """docs/mqtt.md: "Every change of the command's fate is published on .../down/result"; its own example id
    `thresholds-summer` is the kind an operator sends again next summer: the second command with that id
    gets its "queued" and "sent" as the first did."""
    dev = abp_device(34)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    wait_for(lambda: gw.status()["sinks"]["commands"]["subscribed"], 30, "the command subscription")
    topic = f"{PREFIX}/{dev.dev_eui}/down"
    for rnd, freq in ((1, 868.1), (2, 868.3)):
        command = {"fport": 10, "data": {"interval": 900 * rnd}, "id": "thresholds-summer"}
        subscriber.publish(topic, json.dumps(command))
        subscriber.wait_json(
            "/down/result", where=lambda r, rnd=rnd: r["request"]["data"]["interval"] == 900 * rnd
        )
        fwd.tmst += 10_000_000
        fwd.push_acked([fwd.rxpk(lora.uplink(dev, rnd, water_payload(rnd)), freq=freq)])
        down = lora.downlink(dev, fwd.pull_resp()["_phy"])
        assert (down["fport"], down["payload"]) == (10, f"10{900 * rnd:04x}")

    def both() -> list[tuple[str, int]] | None:
        got = [(r["state"], r["request"]["data"]["interval"]) for r in subscriber.json_on("/down/result")]
        return got if len(got) >= 4 else None

    results = wait_for(both, 30, "queued and sent of both commands")
    assert sorted(results) == [("queued", 900), ("queued", 1800), ("sent", 900), ("sent", 1800)], results
    time.sleep(1)
    assert len(subscriber.json_on("/down/result")) == 4
