"""Black-box: the real ``havel gateway run`` in front of a network server of our own.

Written from docs/gateway.md ("In front of the city's network server"), docs/mqtt.md (ids), the example
config and Semtech's PROTOCOL.TXT (GWMP v2), not from the implementation. The "network server" here is a
small GWMP server in upstream_kit.py: it records every datagram byte for byte, answers PUSH_ACK and
PULL_ACK, and sends PULL_RESP with frames it builds with lora-packet (a join-accept, a data downlink). In
front of the daemon sits a scripted packet forwarder on a real UDP socket. Frames are built by lora-packet
(``lorawan_frames.mjs``), not by the project's code.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from upstream_kit import (
    FOLLOWED,
    FOLLOWED_ABP,
    FWD_EUI,
    LOCAL,
    PREFIX,
    UNKNOWN,
    Device,
    Forwarder,
    Frames,
    Gateway,
    NetworkServer,
    Subscriber,
    assert_only_ours,
    forwarder_pull_resps,
    phys_of,
    push_frames,
    same_pull_resp,
    take_pull_resp,
    txpk_for,
    ups,
    wait_for,
    water_payload,
)


def test_keepalives_arrive_under_the_gateway_eui(
    roof: Gateway, fwd: Forwarder, server: NetworkServer
) -> None:
    # "keepalive_s: PULL_DATA per concentrator this often", "under its own gateway EUI"
    pulls = wait_for(lambda: len(server.datagrams(0x02)) >= 3 and server.datagrams(0x02), 30, "3 PULL_DATA")
    for d in pulls:
        assert d[0] == 2 and len(d) == 12, d
        assert d[4:12] == bytes.fromhex(FWD_EUI)


def test_unknown_device_goes_up_byte_for_byte_and_the_roof_keeps_nothing(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames, subscriber: Subscriber
) -> None:
    phy = frames.uplink(UNKNOWN, 5, water_payload(300))
    sent = push_frames(fwd, phy)
    # "A PUSH_DATA whose frames are all for a server goes up byte for byte"
    server.wait_push(lambda d: d == sent, "the unknown device's PUSH_DATA, byte for byte")
    # a local device's frame does not go up, and in a mixed PUSH_DATA the others go up with the same token
    # and their rxpk objects unchanged
    local_phy = frames.uplink(LOCAL, 1, water_payload(120))
    unknown_phy = frames.uplink(UNKNOWN, 6, water_payload(301))
    mixed = push_frames(fwd, local_phy, unknown_phy)
    up = server.wait_push(lambda d: unknown_phy in phys_of(d), "the unknown frame of the mixed PUSH_DATA")
    assert up[:4] == mixed[:4] and up[4:12] == bytes.fromhex(FWD_EUI)
    sent_rxpk = json.loads(mixed[12:])["rxpk"]
    assert json.loads(up[12:])["rxpk"] == [sent_rxpk[1]]
    (local_up,) = subscriber.wait_json(f"{PREFIX}/devices/{LOCAL.dev_eui}/up")
    assert local_up["data"]["level"] == 120
    # the local device is served here, its frames never reach the server
    time.sleep(1.0)
    assert local_phy not in server.rxpk_phys()
    # nothing published for the unknown device, and the roof never answered it
    assert not any(UNKNOWN.dev_eui in t for t, _, _ in subscriber.messages)
    assert_only_ours(forwarder_pull_resps(fwd), server)
    assert roof.alive()


def test_pull_resp_reaches_the_forwarder_and_its_tx_ack_comes_back_with_our_token(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames
) -> None:
    phy = frames.uplink(UNKNOWN, 9, water_payload(310))
    push_frames(fwd, phy)
    server.wait_push(lambda d: phy in phys_of(d), "the uplink at our server")
    # a data downlink built by lora-packet as the city's server would, scheduled in RX1
    down = bytes.fromhex(
        frames.call(
            op="uplink",
            dev_addr=UNKNOWN.dev_addr,
            fcnt=3,
            fport=10,
            payload="100384",
            nwk_s_key=UNKNOWN.nwk_s_key,
            app_s_key=UNKNOWN.app_s_key,
        )["phy"]
    )
    down = bytes([0x60]) + down[1:]  # MHDR: unconfirmed data down (the MIC is not the roof's business)
    token = b"\xbe\xef"
    sent = server.pull_resp(fwd.eui, token, txpk_for(down, fwd.tmst + 1_000_000))
    got = wait_for(
        lambda: fwd.take(lambda d: len(d) >= 4 and d[3] == 0x03), 20, "the PULL_RESP at the forwarder"
    )
    assert same_pull_resp(got, sent), "PULL_RESP must reach the concentrator as it came"
    fwd.tx_ack(got[1:3])
    tx_ack = wait_for(lambda: server.datagrams(0x05), 20, "the TX_ACK at our server")[0]
    assert tx_ack[1:3] == token, "the concentrator's TX_ACK must come back with the server's token"
    assert tx_ack[4:12] == bytes.fromhex(FWD_EUI)
    # PROTOCOL.TXT: the TX_ACK's JSON is optional when there is no error
    assert tx_ack[12:] in (b"", b"{}") or json.loads(tx_ack[12:])["txpk_ack"]["error"] == "NONE", tx_ack
    # a failed transmission: the server must learn of the concentrator's error
    token2 = b"\xbe\xf0"
    sent2 = server.pull_resp(fwd.eui, token2, txpk_for(down, fwd.tmst + 2_000_000))
    got2 = wait_for(lambda: take_pull_resp(fwd), 20, "the second PULL_RESP")
    assert same_pull_resp(got2, sent2)
    fwd.tx_ack(got2[1:3], "TOO_LATE")
    ack2 = wait_for(lambda: [d for d in server.datagrams(0x05) if d[1:3] == token2], 20, "TX_ACK 2")[0]
    assert ack2[4:12] == bytes.fromhex(FWD_EUI)
    assert json.loads(ack2[12:])["txpk_ack"]["error"] == "TOO_LATE"
    assert_only_ours(forwarder_pull_resps(fwd), server)


def test_pull_resp_carries_the_servers_txpk_under_the_roofs_token(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames
) -> None:
    phy = frames.uplink(UNKNOWN, 9, water_payload(310))
    push_frames(fwd, phy)
    server.wait_push(lambda d: phy in phys_of(d), "up")
    sent = server.pull_resp(fwd.eui, b"\xbe\xef", txpk_for(phy, fwd.tmst + 1_000_000))
    got = wait_for(lambda: take_pull_resp(fwd), 20, "PULL_RESP")
    # docs/gateway.md: not byte for byte ("as it came" was a doc bug): the server's txpk with its values
    # unchanged, the JSON written anew, under a token of the roof's own
    assert got[0] == sent[0] and got[3] == 0x03
    assert json.loads(got[4:]) == json.loads(sent[4:])
    fwd.tx_ack(got[1:3])
    tx_ack = wait_for(
        lambda: next((d for d in server.datagrams(0x05) if d[1:3] == b"\xbe\xef"), None), 20, "TX_ACK"
    )
    # "without an error as an empty body" (PROTOCOL.TXT makes the JSON optional then)
    assert tx_ack[4:12] == bytes.fromhex(FWD_EUI) and tx_ack[12:] == b"", tx_ack


def test_followed_device_joins_through_our_server_and_its_uplinks_are_decoded_and_forwarded(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames, subscriber: Subscriber
) -> None:
    dev_nonce = 6699
    join = frames.join_request(FOLLOWED, dev_nonce)
    sent = push_frames(fwd, join)
    up = server.wait_push(lambda d: join in phys_of(d), "the join-request at our server")
    assert up == sent, "a PUSH_DATA with only a followed device's frame goes up byte for byte"
    tmst = json.loads(sent[12:])["rxpk"][0]["tmst"]
    # the roof holds the AppKey but must not answer the join itself: give it time to (wrongly) do so
    time.sleep(2.0)
    assert_only_ours(forwarder_pull_resps(fwd), server)

    dev_addr = "26AB0001"
    accept, nwk_s_key, app_s_key = frames.join_accept(FOLLOWED, dev_nonce, dev_addr)
    token = b"\x4a\x01"
    pr = server.pull_resp(fwd.eui, token, txpk_for(accept, tmst + 5_000_000))
    got = wait_for(
        lambda: fwd.take(lambda d: len(d) >= 4 and d[3] == 0x03), 20, "the join-accept at the forwarder"
    )
    assert same_pull_resp(got, pr)
    fwd.tx_ack(got[1:3])
    wait_for(lambda: any(d[1:3] == token for d in server.datagrams(0x05)), 20, "TX_ACK with our token")

    session = Device(
        FOLLOWED.name, FOLLOWED.dev_eui, dev_addr=dev_addr, nwk_s_key=nwk_s_key, app_s_key=app_s_key
    )
    # the second one confirmed: the city's server acknowledges it, not the roof
    phys = [frames.uplink(session, n, water_payload(200 + n), confirmed=n == 2) for n in (1, 2)]
    for phy in phys:
        push_frames(fwd, phy)
    for phy in phys:
        server.wait_push(lambda d, phy=phy: phy in phys_of(d), "the followed device's uplink at our server")
    got_up = subscriber.wait_json(f"{PREFIX}/devices/{FOLLOWED.dev_eui}/up", count=2)
    epoch = 1_000_000 + dev_nonce  # docs/mqtt.md: 1000000 + the DevNonce of the join
    assert [m["id"] for m in got_up] == [f"{FOLLOWED.dev_eui}-{epoch}-1", f"{FOLLOWED.dev_eui}-{epoch}-2"]
    assert [m["data"]["level"] for m in got_up] == [201, 202]
    assert all(m.get("served_by") == "upstream" and m["session_epoch"] == epoch for m in got_up)
    # /status lists the followed device under upstream.followed
    followed = roof.status()["upstream"]["followed"]
    assert FOLLOWED.dev_eui in json.dumps(followed).upper(), followed
    time.sleep(1.0)
    assert_only_ours(forwarder_pull_resps(fwd), server)


def _abp_epoch(dev: Device) -> int:
    """docs/mqtt.md: DevAddr as 4 bytes little-endian, then the NwkSKey's 16 bytes as written, SHA-256;
    the digest's first 4 bytes as a big-endian number, modulo 10^9, plus 2000000000."""
    digest = hashlib.sha256(bytes.fromhex(dev.dev_addr)[::-1] + bytes.fromhex(dev.nwk_s_key)).digest()
    return 2_000_000_000 + int.from_bytes(digest[:4], "big") % 1_000_000_000


def _upstream_up(roof: Gateway) -> Any:
    return roof.metrics().get('havel_gateway_upstream_up{upstream="city"}')


def test_outage_no_replay_readings_go_on_and_it_is_reported(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames, subscriber: Subscriber
) -> None:
    dev = FOLLOWED_ABP
    first = frames.uplink(dev, 1, water_payload(100))
    push_frames(fwd, first)
    server.wait_push(lambda d: first in phys_of(d), "the followed ABP frame at our server")
    (m,) = subscriber.wait_json(f"{PREFIX}/devices/{dev.dev_eui}/up")
    assert m["session_epoch"] == _abp_epoch(dev), (m["session_epoch"], _abp_epoch(dev))
    assert m["id"] == f"{dev.dev_eui}-{m['session_epoch']}-1"
    wait_for(lambda: _upstream_up(roof) == 1, 20, "upstream_up 1")

    # the server goes silent (it still hears, so we see what is sent to it)
    server.set_answering(False)
    # datagrams must go up for the silence to count ("no answer ... while datagrams went up")
    wait_for(
        lambda: any(e.get("event") == "upstream_down" for e in subscriber.json_on(f"{PREFIX}/events")),
        40,
        "the upstream_down event",
    )
    assert "ALARM: upstream city" in roof.log.read_text()
    assert _upstream_up(roof) == 0
    assert '"up": false' in json.dumps(roof.status()["upstream"]), roof.status()["upstream"]

    # frames during the outage: readings go on to MQTT, nothing goes up
    down_at = time.monotonic()
    # (the second one confirmed: with its server away the roof still must not answer it)
    during = [frames.uplink(dev, n, water_payload(100 + n), confirmed=n == 3) for n in (2, 3)]
    stranger = frames.uplink(UNKNOWN, 40, water_payload(333), confirmed=True)
    local = frames.uplink(LOCAL, 1, water_payload(55))
    for phy in during:
        push_frames(fwd, phy)
    push_frames(fwd, stranger, local)
    subscriber.wait_json(f"{PREFIX}/devices/{dev.dev_eui}/up", count=3)
    (local_up,) = subscriber.wait_json(f"{PREFIX}/devices/{LOCAL.dev_eui}/up")
    assert local_up["data"]["level"] == 55
    time.sleep(1.5)
    assert not set(server.rxpk_phys(down_at)) & {*during, stranger}, "uplinks went to a server marked down"
    assert_only_ours(forwarder_pull_resps(fwd), server)

    # the server returns: keep-alives notice it, then "upstream_back"
    server.set_answering(True)
    wait_for(
        lambda: any(e.get("event") == "upstream_back" for e in subscriber.json_on(f"{PREFIX}/events")),
        40,
        "the upstream_back event",
    )
    wait_for(lambda: _upstream_up(roof) == 1, 20, "upstream_up 1 again")
    after = frames.uplink(dev, 4, water_payload(104))
    push_frames(fwd, after)
    server.wait_push(lambda d: after in phys_of(d), "a new uplink after the outage")
    time.sleep(2.0)
    # "Uplinks are then not sent to that server, and never later"
    assert not set(server.rxpk_phys()) & {*during, stranger}, "frames of the outage were replayed"
    ids = [x["id"] for x in ups(subscriber, dev)]
    assert ids == [f"{dev.dev_eui}-{m['session_epoch']}-{n}" for n in (1, 2, 3, 4)]


def test_bad_input_from_upstream_is_counted_and_the_path_keeps_working(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames
) -> None:
    eui = fwd.eui
    wait_for(lambda: server.pull_addr.get(eui), 20, "the roof's PULL_DATA")

    def rejected() -> float:
        return sum(
            v
            for k, v in roof.metrics().items()
            if k.startswith("havel_gateway_upstream_datagrams_rejected_total")
        )

    before = rejected()
    bad = [
        b"\x00",  # truncated
        b"this is not GWMP at all",  # garbage
        b"\x02\x77\x77\x01",  # PUSH_ACK of a token never sent
        b"\x02\x66\x66\x04",  # PULL_ACK of a token never sent
        b"\x02\x55\x55\x03" + json.dumps({"txpk": {}}).encode(),  # PULL_RESP without a frame
        b"\x02\x55\x56\x03{not json",  # PULL_RESP that is not JSON
        b"\x02\x44\x44\x00" + eui + b'{"rxpk":[]}',  # wrong direction (PUSH_DATA from a server)
    ]
    for d in bad:
        server.send_to(eui, d)
    wait_for(lambda: rejected() - before >= len(bad), 20, f"{len(bad)} upstream rejections counted")
    assert rejected() - before == len(bad)
    time.sleep(0.5)
    assert not forwarder_pull_resps(fwd), "a bad PULL_RESP reached the concentrator"
    assert roof.alive()

    # the path still works both ways
    phy = frames.uplink(UNKNOWN, 77, water_payload(277))
    push_frames(fwd, phy)
    server.wait_push(lambda d: phy in phys_of(d), "an uplink after the bad input")
    token = b"\x12\x34"
    sent = server.pull_resp(eui, token, txpk_for(phy[:1] + phy[1:], fwd.tmst + 1_000_000))
    got = wait_for(lambda: take_pull_resp(fwd), 20, "PULL_RESP after bad input")
    assert same_pull_resp(got, sent)
    fwd.tx_ack(got[1:3])
    wait_for(lambda: any(d[1:3] == token for d in server.datagrams(0x05)), 20, "TX_ACK with our token")
