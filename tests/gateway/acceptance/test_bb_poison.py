"""Black-box: poison on the packet-forwarder port and the HTTP port (docs/gateway.md, "What happens to an
uplink" step 1 and "The packet-forwarder port"): everything is counted by the documented reason, nothing
kills the daemon, and the valid traffic around it still arrives.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

from bb_kit import HOST, Forwarder, Gateway, LoraPacket, Subscriber, abp_device, wait_for, water_payload


def _rejected(gw: Gateway) -> dict[str, float]:
    prefix = 'havel_gateway_datagrams_rejected_total{reason="'
    return {k[len(prefix) : -2]: v for k, v in gw.metrics().items() if k.startswith(prefix)}


def _fields(gw: Gateway) -> dict[str, float]:
    prefix = "havel_gateway_fields_rejected_total"
    return {k: v for k, v in gw.metrics().items() if k.startswith(prefix)}


def test_udp_poison_is_counted_by_reason_and_valid_uplinks_still_arrive(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(51)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 1, water_payload(1)))])  # this EUI is now the one served
    eui = fwd.eui
    tok = b"\x12\x34"
    valid_rxpk = fwd.rxpk(lora.uplink(dev, 2, water_payload(2)))

    poison: list[tuple[str, bytes]] = [
        ("truncated", b"\x02\x00"),
        ("truncated", b""),
        ("version", b"\x07" + tok + b"\x00" + eui + b"{}"),
        ("identifier", b"\x02" + tok + b"\x09" + eui),
        ("direction", b"\x02" + tok + b"\x01"),  # a PUSH_ACK sent to the server
        ("json", b"\x02" + tok + b"\x00" + eui + b"not json at all"),
        ("json", b"\x02" + tok + b"\x00" + eui + b"\xff\xfe\xfd"),
        ("json", b"\x02" + tok + b"\x00" + eui + b'{"rxpk": ' + b"[" * 20000 + b"]" * 20000 + b"}"),
        ("json", b"\x02" + tok + b"\x00" + eui + b"[1, 2]"),
        ("rxpk", b"\x02" + tok + b"\x00" + eui + b'{"rxpk": 5}'),
        ("stat", b"\x02" + tok + b"\x00" + eui + b'{"stat": "hot"}'),
        ("rxpk_count", b"\x02" + tok + b"\x00" + eui + json.dumps({"rxpk": [valid_rxpk] * 256}).encode()),
    ]
    for _reason, datagram in poison:
        fwd.send_raw(datagram)
    huge = b"\x02" + tok + b"\x00" + eui + json.dumps({"rxpk": [], "pad": "x" * 64000}).encode()
    fwd.send_raw(huge)
    # one datagram: a valid rxpk beside rxpk with a field out of range (each rxpk judged alone)
    bad_freq = dict(valid_rxpk, freq=1e303)
    bad_tmst = dict(valid_rxpk, tmst=2**40)
    bad_time = dict(valid_rxpk, time="10000-01-01T00:00:00Z", tmms=1)
    nan_rssi = json.dumps({"rxpk": [bad_freq, valid_rxpk]}).replace("1e+303", "NaN").encode()
    fwd.push([bad_freq, bad_tmst, bad_time, valid_rxpk])
    fwd.push(body=nan_rssi)

    def counted() -> dict[str, float] | None:
        got = _rejected(gw)
        return got if all(got.get(r, 0) >= 1 for r, _ in poison) else None

    try:
        wait_for(counted, 30, "every poison reason counted")
    except AssertionError:
        raise AssertionError(f"counted: {_rejected(gw)}") from None
    fields = _fields(gw)
    assert fields.get('havel_gateway_fields_rejected_total{field="freq",object="rxpk"}', 0) >= 1, fields
    assert fields.get('havel_gateway_fields_rejected_total{field="tmst",object="rxpk"}', 0) >= 1, fields
    assert fields.get('havel_gateway_fields_rejected_total{field="time",object="rxpk"}', 0) >= 1, fields

    (up1, up2) = subscriber.wait_json("/up", 2)
    assert (up1["fcnt"], up2["fcnt"]) == (1, 2)  # the valid rxpk beside the bad ones was stored once
    assert gw.alive()
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 3, water_payload(3)))])
    assert [u["fcnt"] for u in subscriber.wait_json("/up", 3)] == [1, 2, 3]
    assert gw.http("/healthz")[0] == 200


def test_strangers_on_the_udp_port_are_refused(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(52)
    gw = make_gateway(devices=(dev,), udp='allowed_gateways = ["AA555A0000000101"]')
    fwd = Forwarder(gw.udp_port, "AA555A0000000101")
    forwarders.append(fwd)
    fwd.pull_acked()
    # a gateway EUI that is not served: no answer, counted
    stranger = Forwarder(gw.udp_port, "BB555A0000000999")
    forwarders.append(stranger)
    stranger.push([stranger.rxpk(lora.uplink(dev, 1, water_payload(666)))])
    # the served EUI from another source address: refused while the real one is alive
    spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        spoof.bind(("127.0.0.2", 0))
        rx = fwd.rxpk(lora.uplink(dev, 2, water_payload(667)))
        spoof.sendto(b"\x02\x00\x01\x00" + fwd.eui + json.dumps({"rxpk": [rx]}).encode(), (HOST, gw.udp_port))
        spoof.sendto(b"\x02\x00\x02\x02" + fwd.eui, (HOST, gw.udp_port))  # PULL_DATA: steal the downlinks
    finally:
        spoof.close()
    wait_for(
        lambda: (r := _rejected(gw)).get("gateway_not_allowed", 0) >= 1 and r.get("address", 0) >= 1,
        30,
        f"gateway_not_allowed and address counted ({_rejected(gw)})",
    )
    time.sleep(0.5)
    assert not stranger.inbox and not stranger.take(lambda d: True), "a refused EUI got an answer"
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 3, water_payload(3)))])
    ups = subscriber.wait_json("/up", 1)
    time.sleep(1)
    assert [u["fcnt"] for u in subscriber.json_on("/up")] == [3], [u["fcnt"] for u in ups]
    assert [f["gateway"] for f in gw.status()["forwarders"]] == ["AA555A0000000101"]


def test_a_flood_from_one_address_is_rate_limited_and_counted(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(53)
    gw = make_gateway(devices=(dev,), udp="max_datagrams_per_s = 20")
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.pull_acked()
    for _ in range(500):
        fwd.send_raw(b"\x02\x00\x00\x02" + fwd.eui)  # PULL_DATA flood
    wait_for(lambda: _rejected(gw).get("rate_limited", 0) >= 100, 30, "rate_limited counted")
    time.sleep(2)  # the bucket refills (one second's worth)
    fwd.inbox.clear()
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 1, water_payload(1)))])
    subscriber.wait_json("/up")
    assert gw.alive()


def _raw_http(gw: Gateway, request: bytes, read: bool = True) -> bytes:
    with socket.create_connection((HOST, gw.http_port), timeout=10) as s:
        try:
            s.sendall(request)
        except OSError:
            return b""
        if not read:
            return b""
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
        return b"".join(chunks)


def test_http_endpoints_and_poison_on_the_http_port(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(54)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 1, water_payload(1)))])
    subscriber.wait_json("/up")

    code, body = gw.http("/healthz")
    assert code == 200
    assert json.loads(body)["state"] == "ok"
    status: dict[str, Any] = wait_for(
        lambda: (s := gw.status())["uplinks"]["accepted"] >= 1 and s, 30, "status"
    )
    assert status["gateway_id"] == "gw1"
    assert status["devices"] == 1
    assert [f["gateway"] for f in status["forwarders"]] == [fwd.eui_hex]
    for section in ("outbox", "sinks", "downlinks", "uplinks"):
        assert section in status
    assert "delivered" in status["outbox"]
    metrics = gw.metrics()
    assert metrics.get("havel_gateway_uplinks_accepted_total", 0) >= 1
    assert 'havel_gateway_outbox{what="delivered"}' in metrics
    assert 'havel_gateway_outbox{what="depth"}' in metrics
    cli = gw.cli("gateway", "status", "--json")
    assert cli.returncode == 0
    assert json.loads(cli.stdout)["gateway_id"] == "gw1"

    assert gw.http("/nope")[0] == 404
    answers = [
        _raw_http(gw, b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
        _raw_http(gw, b"\x00\xff\xfe garbage\r\n\r\n"),
        _raw_http(gw, b"GET /status HTTP/1.1\r\nX: " + b"a" * 200_000 + b"\r\n\r\n"),
        _raw_http(gw, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n"),
        _raw_http(gw, b"GET /status HTTP/9.9\r\n\r\n"),
    ]
    for answer in answers:
        assert b" 200 " not in answer[:20], answer[:200]
    # slow and idle connections hold the port only for a while (the docs give no limits: the daemon caps
    # the clients at about 30 and drops idle ones after a few seconds, counted as too_many_clients / slow)
    idle = [socket.create_connection((HOST, gw.http_port), timeout=10) for _ in range(50)]
    try:
        for s in idle[:10]:
            s.sendall(b"GET /sta")

        def healthz() -> bool:
            try:
                return gw.http("/healthz")[0] == 200
            except OSError:
                return False

        wait_for(healthz, 60, "healthz served again while idle connections stay open", step=0.5)
    finally:
        for s in idle:
            s.close()
    rejected = {k: v for k, v in gw.metrics().items() if k.startswith("havel_gateway_http_rejected_total")}
    assert sum(rejected.values()) >= 3, rejected
    assert gw.alive()
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 2, water_payload(2)))])
    assert len(subscriber.wait_json("/up", 2)) == 2


def test_rxpk_that_are_not_valid_uplinks_are_dropped_and_counted(
    make_gateway: Callable[..., Gateway],
    subscriber: Subscriber,
    lora: LoraPacket,
    forwarders: list[Forwarder],
) -> None:
    dev = abp_device(55)
    gw = make_gateway(devices=(dev,))
    fwd = Forwarder(gw.udp_port)
    forwarders.append(fwd)
    bad = [
        fwd.rxpk(lora.uplink(dev, 1, water_payload(1)), stat=-1),  # the concentrator saw a CRC error
        fwd.rxpk(b"\x40\x01\x02"),  # too short for a LoRaWAN frame
        dict(fwd.rxpk(lora.uplink(dev, 2, water_payload(2))), data="!!!not base64"),
        fwd.rxpk(lora.uplink(dev, 3, water_payload(3)), size=5),  # size does not match data
        fwd.rxpk(b"\xe0proprietary"),  # MType proprietary
        fwd.rxpk(lora.uplink(dev, 4, water_payload(4)), freq="868.1"),  # a string where a number belongs
    ]
    for rxpk in bad:
        fwd.push_acked([rxpk])
    stat = {"time": "2014-01-12 08:59:28 GMT", "lati": 52.4, "long": 13.06, "alti": 40, "rxnb": 2, "rxok": 2}
    fwd.push(body=json.dumps({"stat": stat}).encode())
    fwd.push_acked([fwd.rxpk(lora.uplink(dev, 5, water_payload(5)))])
    (up,) = subscriber.wait_json("/up")
    assert up["fcnt"] == 5
    status = gw.status()
    rejected = sum(status["uplinks"]["rejected"].values())
    fields = sum(_fields(gw).values())
    assert rejected + fields >= len(bad), (status["uplinks"], _fields(gw))
    assert status["forwarders"][0]["stat"]["lati"] == 52.4  # the forwarder's health is kept
    assert gw.alive()
