"""Black-box, continued: more of docs/gateway.md "In front of the city's network server" against the real
daemon, our own GWMP network server(s) and a scripted packet forwarder (plumbing in upstream_kit.py):
followed sessions kept over a restart and replays, CRC-error and stat-only datagrams, two servers with
filters, a join-request the roof cannot verify, and a server process that is gone (ICMP port
unreachable) and comes back on the same port.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from upstream_kit import (
    FOLLOWED,
    FOLLOWED_ABP,
    FWD_EUI,
    HOST,
    PREFIX,
    UNKNOWN,
    Broker,
    Device,
    Forwarder,
    Frames,
    Gateway,
    NetworkServer,
    Subscriber,
    add_device,
    assert_only_ours,
    forwarder_pull_resps,
    phys_of,
    push_frames,
    same_pull_resp,
    take_pull_resp,
    txpk_for,
    wait_for,
    water_payload,
)


def join_through(
    server: NetworkServer,
    fwd: Forwarder,
    frames: Frames,
    dev_nonce: int,
    dev_addr: str,
    app_key: str | None = None,
) -> Device:
    join = frames.join_request(FOLLOWED, dev_nonce)
    sent = push_frames(fwd, join)
    server.wait_push(lambda d: join in phys_of(d), "join-request up")
    tmst = json.loads(sent[12:])["rxpk"][0]["tmst"]
    signer = (
        FOLLOWED
        if app_key is None
        else Device("x", FOLLOWED.dev_eui, join_eui=FOLLOWED.join_eui, app_key=app_key)
    )
    accept, nwk, app = frames.join_accept(signer, dev_nonce, dev_addr)
    token = os.urandom(2)
    pr = server.pull_resp(fwd.eui, token, txpk_for(accept, tmst + 5_000_000))
    got = wait_for(lambda: take_pull_resp(fwd), 20, "join-accept at forwarder")
    assert same_pull_resp(got, pr)
    fwd.tx_ack(got[1:3])
    wait_for(lambda: any(d[1:3] == token for d in server.datagrams(0x05)), 20, "TX_ACK")
    return Device(FOLLOWED.name, FOLLOWED.dev_eui, dev_addr=dev_addr, nwk_s_key=nwk, app_s_key=app)


def test_sessions_survive_restart(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames, subscriber: Subscriber
) -> None:
    session = join_through(server, fwd, frames, 0x0102, "26AB0002")
    p1 = frames.uplink(session, 1, water_payload(11))
    push_frames(fwd, p1)
    subscriber.wait_json(f"{PREFIX}/devices/{FOLLOWED.dev_eui}/up")
    followed = roof.status()["upstream"]["followed"]
    assert json.dumps(followed).count("26AB0002") == 1, followed
    f = roof.data_dir / "followed-sessions.json"
    wait_for(f.exists, 20, "sessions file")
    assert stat.S_IMODE(f.stat().st_mode) == 0o600, oct(f.stat().st_mode)
    roof.stop()
    roof.start()
    fwd.pull_acked()
    p2 = frames.uplink(session, 2, water_payload(12))
    push_frames(fwd, p2)
    got = subscriber.wait_json(f"{PREFIX}/devices/{FOLLOWED.dev_eui}/up", count=2)
    assert got[1]["id"] == f"{FOLLOWED.dev_eui}-{1_000_000 + 0x0102}-2"
    # a replay of frame 2 (a second copy later) is not published again
    push_frames(fwd, p2)
    time.sleep(2)
    assert len(subscriber.json_on(f"{PREFIX}/devices/{FOLLOWED.dev_eui}/up")) == 2


def test_crc_error_frame_goes_up(roof: Gateway, fwd: Forwarder, server: NetworkServer) -> None:
    body = json.dumps(
        {"rxpk": [fwd.rxpk(b"\x40\x01\x02\x03\x04\x00\x00\x00\x01\xaa\xbb\xcc\xdd", stat=-1)]}
    ).encode()
    fwd.token += 1
    d = b"\x02" + fwd.token.to_bytes(2, "big") + b"\x00" + fwd.eui + body
    fwd.send_raw(d)
    server.wait_push(lambda x: x == d, "CRC-error frame up byte for byte", timeout=15)


def test_stat_only_goes_up(roof: Gateway, fwd: Forwarder, server: NetworkServer) -> None:
    body = json.dumps(
        {
            "stat": {
                "time": "2026-12-07 06:00:00 GMT",
                "rxnb": 1,
                "rxok": 1,
                "rxfw": 1,
                "ackr": 100.0,
                "dwnb": 0,
                "txnb": 0,
            }
        }
    ).encode()
    fwd.token += 1
    d = b"\x02" + fwd.token.to_bytes(2, "big") + b"\x00" + fwd.eui + body
    fwd.send_raw(d)
    server.wait_push(lambda x: x == d, "stat-only PUSH_DATA up byte for byte", timeout=15)


@pytest.fixture
def lab() -> Iterator[NetworkServer]:
    s = NetworkServer()
    try:
        yield s
    finally:
        s.close()


def test_two_servers_with_filters(
    tmp_path: Path, broker: Broker, server: NetworkServer, lab: NetworkServer, frames: Frames
) -> None:
    extra = (
        "[upstream]\n"
        f'follow = ["{FOLLOWED.dev_eui}"]\n'
        "[[upstream.server]]\n"
        f'name = "city"\nhost = "{HOST}"\nport = {server.port}\nkeepalive_s = 1\n'
        "[[upstream.server]]\n"
        f'name = "lab"\nhost = "{HOST}"\nport = {lab.port}\nkeepalive_s = 1\n'
        'dev_addr_prefixes = ["FC00AC00/23"]\njoin_euis = ["70B3D57ED0009999"]\n'
    )
    gw = Gateway(tmp_path / "roof2", broker.port, extra=extra)
    add_device(gw, FOLLOWED, tmp_path)
    gw.start()
    f = Forwarder(gw.udp_port, FWD_EUI)
    try:
        f.pull_acked()
        wait_for(lambda: lab.datagrams(0x02) and server.datagrams(0x02), 20, "keep-alives at both")
        labdev = Device(
            "l", "70B3D57ED00000AA", dev_addr="FC00AD17", nwk_s_key="01" * 16, app_s_key="02" * 16
        )
        outside = Device(
            "o", "70B3D57ED00000AB", dev_addr="FC00AE00", nwk_s_key="01" * 16, app_s_key="02" * 16
        )
        lab_phy = frames.uplink(labdev, 1, "00")
        out_phy = frames.uplink(outside, 1, "00")
        labjoin = frames.join_request(
            Device("j", "70B3D57ED00000AC", join_eui="70B3D57ED0009999", app_key="03" * 16), 5
        )
        cityjoin = frames.join_request(
            Device("k", "70B3D57ED00000AD", join_eui="70B3D57ED0000000", app_key="03" * 16), 6
        )
        sent = push_frames(f, lab_phy, out_phy, labjoin, cityjoin)
        # city has no filters: every frame, byte for byte
        server.wait_push(lambda d: d == sent, "everything at city")
        lab_up = lab.wait_push(lambda d: lab_phy in phys_of(d), "the lab frame at lab")
        time.sleep(1)
        got = lab.rxpk_phys()
        assert lab_phy in got and labjoin in got
        assert out_phy not in got and cityjoin not in got
        assert lab_up[:4] == sent[:4]
        st = json.dumps({"stat": {"rxnb": 0}}).encode()
        f.token += 1
        sd = b"\x02" + f.token.to_bytes(2, "big") + b"\x00" + f.eui + st
        f.send_raw(sd)
        server.wait_push(lambda d: d == sd, "stat at city")
        lab.wait_push(lambda d: d == sd, "stat at lab")
    finally:
        f.close()
        gw.stop()


def test_join_request_with_other_key(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames
) -> None:
    other = Device("x", FOLLOWED.dev_eui, join_eui=FOLLOWED.join_eui, app_key="11" * 16)
    join = frames.join_request(other, 0x0304)
    push_frames(fwd, join)
    server.wait_push(lambda d: join in phys_of(d), "join-request with another key still goes up")
    time.sleep(1)
    # the server decides about this device: the roof counts what it could not verify, and forwards it
    assert roof.metric('havel_gateway_followed_total{what="join_request_mic"}') == 1
    assert_only_ours(forwarder_pull_resps(fwd), server)


def test_join_accept_with_wrong_key_is_not_followed(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames, subscriber: Subscriber
) -> None:
    session = join_through(server, fwd, frames, 0x0203, "26AB0003", app_key="00" * 16)
    p1 = frames.uplink(session, 1, water_payload(11))
    push_frames(fwd, p1)
    server.wait_push(lambda d: p1 in phys_of(d), "uplink up")
    time.sleep(2)
    assert subscriber.json_on(f"{PREFIX}/devices/{FOLLOWED.dev_eui}/up") == []
    assert roof.alive()
    # the roof drops the join-accept it cannot verify (it must not follow a wrong session), and says so
    # as it does for a join-request failing its MIC: counted, and a log line for an operator whose
    # registry holds a wrong AppKey for a followed device
    m = {k: v for k, v in roof.metrics().items() if "followed_total" in k}
    assert m.get('havel_gateway_followed_total{what="join_accept_mic"}') == 1, m
    log = roof.log.read_text()
    line = next((x for x in log.splitlines() if "join-accept" in x.lower()), "")
    assert FOLLOWED.dev_eui in line.upper() and "AppKey" in line, log[-2000:]


def test_server_process_gone_and_back(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames, subscriber: Subscriber
) -> None:
    dev = FOLLOWED_ABP
    first = frames.uplink(dev, 1, water_payload(100))
    push_frames(fwd, first)
    server.wait_push(lambda d: first in phys_of(d), "first up")
    port = server.port
    server.close()  # the process is gone: the port answers with ICMP port unreachable
    during = [frames.uplink(dev, n, water_payload(100 + n)) for n in (2, 3, 4)]
    for phy in during:
        push_frames(fwd, phy)
        time.sleep(0.5)
    wait_for(
        lambda: any(e.get("event") == "upstream_down" for e in subscriber.json_on(f"{PREFIX}/events")),
        40,
        "upstream_down",
    )
    late = frames.uplink(dev, 5, water_payload(105))
    push_frames(fwd, late)
    subscriber.wait_json(f"{PREFIX}/devices/{dev.dev_eui}/up", count=5)
    (event,) = [e for e in subscriber.json_on(f"{PREFIX}/events") if e["event"] == "upstream_down"]
    assert event["upstream"] == "city"
    assert "ALARM: upstream city" in roof.log.read_text()
    # the server comes back on the same port (a new process: it remembers nothing)
    server.reopen(port)
    wait_for(
        lambda: any(e.get("event") == "upstream_back" for e in subscriber.json_on(f"{PREFIX}/events")),
        40,
        "upstream_back",
    )
    after = frames.uplink(dev, 6, water_payload(106))
    push_frames(fwd, after)
    server.wait_push(lambda d: after in phys_of(d), "after up")
    time.sleep(2)
    assert not set(server.rxpk_phys()) & {*during, late}
    assert roof.alive()
    assert roof.metric('havel_gateway_upstream_up{upstream="city"}') == 1
    ids = [m["fcnt"] for m in subscriber.json_on(f"{PREFIX}/devices/{dev.dev_eui}/up")]
    assert ids == [1, 2, 3, 4, 5, 6]


def test_each_concentrator_has_its_own_path_and_downlinks_reach_the_right_one(
    tmp_path: Path, broker: Broker, server: NetworkServer, frames: Frames
) -> None:
    a_eui, b_eui = "AA555A0000000201", "AA555A0000000202"
    extra = (
        "[upstream]\n"
        "[[upstream.server]]\n"
        f'name = "city"\nhost = "{HOST}"\nport = {server.port}\nkeepalive_s = 1\n'
    )
    gw = Gateway(
        tmp_path / "roof3", broker.port, extra=extra, udp=f'allowed_gateways = ["{a_eui}", "{b_eui}"]'
    )
    gw.start()
    a, b = Forwarder(gw.udp_port, a_eui), Forwarder(gw.udp_port, b_eui)
    try:
        a.pull_acked()
        b.pull_acked()
        wait_for(lambda: server.pull_addr.get(a.eui) and server.pull_addr.get(b.eui), 20, "both pulls")
        assert server.pull_addr[a.eui] != server.pull_addr[b.eui], "one socket per concentrator"
        phy = frames.uplink(UNKNOWN, 3, water_payload(1))
        sa = push_frames(a, phy)
        sb = push_frames(b, phy)
        server.wait_push(lambda d: d == sa, "A's copy")
        server.wait_push(lambda d: d == sb, "B's copy")
        tx = txpk_for(phy, b.tmst + 1_000_000)
        tx.update({"brd": 0, "ant": 0, "xyz": 1})  # fields of newer forwarders and one nobody knows: kept
        sent = server.pull_resp(b.eui, b"\x01\x02", tx)
        got = wait_for(lambda: take_pull_resp(b), 20, "PULL_RESP at B")
        assert same_pull_resp(got, sent)
        time.sleep(1)
        assert take_pull_resp(a) is None
    finally:
        a.close()
        b.close()
        gw.stop()


def test_the_forwarder_gets_one_push_ack_not_the_servers_too(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames
) -> None:
    phy = frames.uplink(UNKNOWN, 3, water_payload(1))
    sent = push_frames(fwd, phy)
    server.wait_push(lambda d: d == sent, "up")
    time.sleep(1.5)
    extra = []
    while (d := fwd.take(lambda d: d[1:3] == sent[1:3])) is not None:
        extra.append(d)
    assert extra == []


def test_a_rejoin_opens_a_new_epoch_and_a_reused_dev_nonce_still_goes_to_the_server(
    roof: Gateway, fwd: Forwarder, server: NetworkServer, frames: Frames, subscriber: Subscriber
) -> None:
    first = join_through(server, fwd, frames, 0x0505, "26AB0005")
    push_frames(fwd, frames.uplink(first, 1, water_payload(1)))
    subscriber.wait_json(f"{PREFIX}/devices/{FOLLOWED.dev_eui}/up")
    # the same join-request again: the city's server decides about DevNonce reuse, not the roof
    join = frames.join_request(FOLLOWED, 0x0505)
    push_frames(fwd, join)
    wait_for(lambda: server.rxpk_phys().count(join) == 2, 20, "the repeated join-request at the server")
    second = join_through(server, fwd, frames, 0x0506, "26AB0006")
    push_frames(fwd, frames.uplink(second, 1, water_payload(2)))
    got = subscriber.wait_json(f"{PREFIX}/devices/{FOLLOWED.dev_eui}/up", count=2)
    # docs/mqtt.md: the epoch is 1000000 + the DevNonce of the join that opened the session
    assert [m["id"] for m in got] == [f"{FOLLOWED.dev_eui}-1001285-1", f"{FOLLOWED.dev_eui}-1001286-1"]
    assert_only_ours(forwarder_pull_resps(fwd), server)
