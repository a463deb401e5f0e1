"""The GWMP port as an attacker and a broken forwarder meet it: the daemon with its real UDP socket.

Each rxpk is judged alone, strangers' gateway EUIs are refused before anything is stored or remembered,
an EUI is pinned to its address, sources are rate-limited, and no datagram stops the server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.gateway_run import InProcessGateway, register_abp, write_config

from havel.codecs.lorawan import phy
from havel.gateway import config, db
from havel.gateway.backends.base import DownlinkFrame
from havel.gateway.backends.semtech_udp import forwarders, gwmp
from havel.gateway.backends.semtech_udp.server import MAX_RXPK, GwmpServer
from havel.gateway.backends.semtech_udp.txpk import build_txpk, txpk_of
from havel.gateway.metrics import Metrics

NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
EUI = 0x70B3D57ED0000001
ADDR = 0x26011BDA
GW1, GW2 = 0xAA555A0000000001, 0xAA555A0000000002
COOLING_UP = bytes.fromhex("14000000000000000000df012c0118")


def frame(fcnt: int) -> bytes:
    return phy.build_data_frame(
        uplink=True,
        confirmed=False,
        dev_addr=ADDR,
        fcnt32=fcnt,
        fport=1,
        payload=COOLING_UP,
        ack=False,
        nwk_s_key=NWK,
        app_s_key=APP,
    )


def rxpk(data: bytes, **over: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "tmst": 5_000_000,
        "chan": 0,
        "rfch": 0,
        "freq": 868.1,
        "stat": 1,
        "modu": "LORA",
        "datr": "SF7BW125",
        "codr": "4/5",
        "rssi": -80,
        "lsnr": 5.0,
        "size": len(data),
        "data": base64.b64encode(data).decode(),
    }
    obj.update(over)
    return obj


def push(eui: int, body: dict[str, Any] | bytes, token: int = 0x0101) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return bytes([2]) + token.to_bytes(2, "big") + bytes([gwmp.PUSH_DATA]) + eui.to_bytes(8, "big") + raw


def wait(pred: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def ups(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [x["payload"] for x in rows if x["topic"].endswith("/up")]


def recv(sock: socket.socket, timeout: float = 3.0) -> bytes | None:
    sock.settimeout(timeout)
    try:
        return sock.recv(65535)
    except TimeoutError:
        return None


def udp_socket(host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


def start(tmp_path: Path, **udp_keys: Any) -> InProcessGateway:
    cfg = config.load(write_config(tmp_path, network={"dedup_window_ms": 40}, udp=udp_keys or None))
    conn = db.open_db(cfg.db_path)
    register_abp(conn, 1, dev_eui=EUI, dev_addr=ADDR, nwk_s_key=NWK, app_s_key=APP, codec="cooling")
    conn.close()
    return InProcessGateway(cfg).start()


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[InProcessGateway]:
    g = start(tmp_path, allowed_gateways=[f"{GW1:016X}"])
    try:
        yield g
    finally:
        g.stop()


def rejected(gw: InProcessGateway, reason: str) -> float:
    return gw.gateway.metrics.get("datagrams_rejected_total", reason=reason)


# ----------------------------------------------------------------------------------- one rxpk at a time


def test_a_bad_rxpk_costs_only_itself(gw: InProcessGateway, tmp_path: Path) -> None:
    """freq 1e303 and a time past year 9999 once raised OverflowError: the datagram's good rxpk were lost
    and it got no PUSH_ACK."""
    body = {
        "rxpk": [
            rxpk(frame(1)),
            rxpk(frame(2), freq=1e303),
            rxpk(frame(3)),
            rxpk(frame(4), time="9999-12-31T23:59:59-01:00"),
            rxpk(frame(5), tmst=10**30),
            rxpk(frame(6)),
        ],
        "stat": {"time": "2026-11-26 09:00:00 GMT", "rxnb": 1e303},
    }
    with udp_socket() as s:
        s.sendto(push(GW1, body, token=0x4242), gw.udp)
        assert recv(s) == b"\x02\x42\x42\x01"  # PUSH_ACK
    wait(lambda: len(ups(tmp_path / "out.jsonl")) == 3)
    assert sorted(u["fcnt"] for u in ups(tmp_path / "out.jsonl")) == [1, 3, 6]
    m = gw.gateway.metrics
    assert rejected(gw, "rxpk") == 3 and rejected(gw, "stat") == 1
    assert m.get("fields_rejected_total", object="rxpk", field="freq") == 1
    assert m.get("fields_rejected_total", object="rxpk", field="time") == 1
    assert m.get("fields_rejected_total", object="rxpk", field="tmst") == 1
    assert m.get("fields_rejected_total", object="stat", field="rxnb") == 1
    assert m.get("rxpk_total") == 3


# ---------------------------------------------------------------------------------- who may speak


def test_gateways_not_allowed_are_refused_before_anything_is_stored(
    gw: InProcessGateway, tmp_path: Path
) -> None:
    with udp_socket() as s:
        for i in range(300):  # spoofed EUIs, each with a frame the registry would accept
            s.sendto(push(GW2 + i, {"rxpk": [rxpk(frame(10 + i))]}), gw.udp)
            s.sendto(gwmp.encode_pull_data(2, i, GW2 + i), gw.udp)
        assert recv(s, timeout=1.0) is None  # strangers get no answer
        wait(lambda: rejected(gw, "gateway_not_allowed") == 600)
        s.sendto(push(GW1, {"rxpk": [rxpk(frame(1))]}, token=7), gw.udp)
        assert recv(s) == b"\x02\x00\x07\x01"
    wait(lambda: ups(tmp_path / "out.jsonl"))
    time.sleep(0.3)
    assert [u["fcnt"] for u in ups(tmp_path / "out.jsonl")] == [1]
    m = gw.gateway.metrics
    assert m.total("uplinks_received_total") == 1  # the strangers' frames never reached the intake journal
    assert set(gw.gateway.udp.forwarders) == {GW1}  # and left no state behind


def test_without_a_list_the_first_gateway_heard_is_the_only_one(tmp_path: Path) -> None:
    """Thousands of spoofed EUIs once each created a forwarder (unbounded state, a silence alarm each)."""
    g = start(tmp_path, max_datagrams_per_s=1e6)  # (the default rate limit would drop most of them)
    try:
        with udp_socket() as s:
            s.sendto(gwmp.encode_pull_data(2, 1, GW1), g.udp)
            assert recv(s) == b"\x02\x00\x01\x04"
            for i in range(3000):
                s.sendto(gwmp.encode_pull_data(2, 2, GW2 + i), g.udp)
            wait(lambda: rejected(g, "gateway_not_allowed") == 3000)
            s.sendto(gwmp.encode_pull_data(2, 3, GW1), g.udp)
            assert recv(s) == b"\x02\x00\x03\x04"
        assert set(g.gateway.udp.forwarders) == {GW1}
        assert len(g.gateway.udp.health()) == 1
    finally:
        g.stop()


def test_an_eui_is_pinned_to_its_address(gw: InProcessGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    server = gw.gateway.udp
    with udp_socket() as down, udp_socket() as thief, udp_socket("127.0.0.2") as elsewhere:
        down.sendto(gwmp.encode_pull_data(2, 1, GW1), gw.udp)
        assert recv(down) == b"\x02\x00\x01\x04"
        # another socket claims the downlink path while the forwarder's own keeps it alive: refused
        thief.sendto(gwmp.encode_pull_data(2, 2, GW1), gw.udp)
        assert recv(thief, timeout=1.0) is None
        assert rejected(gw, "pull_address") == 1
        assert server.forwarders[GW1].pull_addr == down.getsockname()
        # another IP address for a live forwarder: refused, whatever it sends
        down.sendto(gwmp.encode_pull_data(2, 5, GW1), gw.udp)  # (keepalive: alive, whatever the load)
        assert recv(down) == b"\x02\x00\x05\x04"
        elsewhere.sendto(push(GW1, {"rxpk": [rxpk(frame(1))]}), gw.udp)
        elsewhere.sendto(gwmp.encode_pull_data(2, 3, GW1), gw.udp)
        assert recv(elsewhere, timeout=1.0) is None
        wait(lambda: rejected(gw, "address") == 2)
        assert gw.gateway.metrics.total("uplinks_received_total") == 0
        # a restarted forwarder (new port, same address) gets the downlinks back once its old socket has
        # been quiet for PULL_MOVE_AFTER_S (or silent_after_s, if shorter)
        monkeypatch.setattr(forwarders, "PULL_MOVE_AFTER_S", 0.3)
        time.sleep(0.5)
        thief.sendto(gwmp.encode_pull_data(2, 4, GW1), gw.udp)
        assert recv(thief) == b"\x02\x00\x04\x04"
        assert server.forwarders[GW1].pull_addr == thief.getsockname()


def test_each_source_is_rate_limited(tmp_path: Path) -> None:
    g = start(tmp_path, allowed_gateways=[f"{GW1:016X}"], max_datagrams_per_s=5)
    try:
        with udp_socket() as s:
            for i in range(200):  # (few enough to fit the kernel's receive buffer)
                s.sendto(gwmp.encode_pull_data(2, i, GW1), g.udp)
            wait(lambda: g.gateway.metrics.total("datagrams_total") + rejected(g, "rate_limited") == 200)
            assert rejected(g, "rate_limited") >= 150  # a burst of 10, then 5 a second
            time.sleep(1.0)  # the bucket refills
            while recv(s, timeout=0.2) is not None:
                pass
            s.sendto(gwmp.encode_pull_data(2, 0xBEEF, GW1), g.udp)
            assert recv(s) == b"\x02\xbe\xef\x04"
    finally:
        g.stop()


def test_more_rxpk_than_a_concentrator_sends_is_refused_whole(gw: InProcessGateway, tmp_path: Path) -> None:
    many = [rxpk(frame(1))] * (MAX_RXPK + 1)
    with udp_socket() as s:
        s.sendto(push(GW1, {"rxpk": many}), gw.udp)
        assert recv(s, timeout=1.0) is None
        wait(lambda: rejected(gw, "rxpk_count") == 1)
        s.sendto(push(GW1, {"rxpk": [rxpk(frame(2))]}, token=9), gw.udp)
        assert recv(s) == b"\x02\x00\x09\x01"
    wait(lambda: ups(tmp_path / "out.jsonl"))
    assert gw.gateway.metrics.total("uplinks_received_total") == 1


# ------------------------------------------------------------------------------------------ poison

E = GW1.to_bytes(8, "big")
POISON: list[tuple[str, bytes, str]] = [
    ("empty", b"", "truncated"),
    ("one byte", b"\x02", "truncated"),
    ("header only, no EUI", b"\x02\x00\x01\x00", "truncated"),
    ("half an EUI", b"\x02\x00\x01\x02" + E[:4], "truncated"),
    ("PUSH_DATA without JSON", b"\x02\x00\x01\x00" + E, "truncated"),
    ("version 0", b"\x00\x00\x01\x02" + E, "version"),
    ("version 255", b"\xff\x00\x01\x02" + E, "version"),
    ("unknown identifier", b"\x02\x00\x01\x09" + E, "identifier"),
    ("text", b"GET / HTTP/1.1\r\n\r\n", "version"),
    ("truncated JSON", push(GW1, b'{"rxpk": [{"tmst": 1'), "json"),
    ("not JSON", push(GW1, b"\x00\x01\x02 not json"), "json"),
    ("invalid UTF-8", push(GW1, b'{"rxpk": "\xff\xfe"}'), "json"),
    ("raw surrogate bytes", push(GW1, b'{"stat": {"desc": "\xed\xa0\x80"}}'), "json"),
    ("lone surrogate escape", push(GW1, b'{"rxpk": [{"data": "\\ud800"}]}'), "json"),
    ("NaN literal", push(GW1, b'{"rxpk": [{"rssi": NaN}]}'), "json"),
    ("Infinity literal", push(GW1, b'{"rxpk": [{"freq": Infinity}]}'), "json"),
    ("number beyond a double", push(GW1, b'{"rxpk": [{"freq": 1e400}]}'), "json"),
    ("nested 30,000 deep", push(GW1, b"[" * 30_000 + b"]" * 30_000), "json"),
    ("nested objects", push(GW1, b'{"a":' * 5000 + b"1" + b"}" * 5000), "json"),
    ("a JSON list", push(GW1, b"[1, 2, 3]"), "json"),
    ("a JSON string", push(GW1, b'"rxpk"'), "json"),
    ("huge datagram", push(GW1, b'{"pad": "' + b"x" * 65_000), "json"),
    ("rxpk not a list", push(GW1, {"rxpk": {"data": "AA=="}}), "rxpk"),
    ("rxpk of wrong types", push(GW1, {"rxpk": [None]}), "rxpk"),
    ("rxpk with a huge integer", push(GW1, b'{"rxpk": [{"tmst": ' + b"9" * 4000 + b"}]}"), "json"),
    ("rxpk freq out of range", push(GW1, {"rxpk": [rxpk(frame(1), freq=1e303)]}), "rxpk"),
    ("rxpk lone surrogate", push(GW1, {"rxpk": [rxpk(frame(1), datr="SF7\ud800")]}), "json"),
    ("stat not an object", push(GW1, {"stat": [1, 2]}), "stat"),
    ("stat out of range", push(GW1, {"stat": {"lati": 1e303}}), "stat"),
    ("PUSH_ACK sent to the server", b"\x02\x00\x01\x01", "direction"),
    ("PULL_RESP sent to the server", b"\x02\x00\x01\x03" + b'{"txpk": {}}', "direction"),
    ("PULL_ACK sent to the server", b"\x02\x00\x01\x04", "direction"),
]


def test_poison_datagrams_are_counted_by_reason_and_the_server_keeps_serving(
    gw: InProcessGateway, tmp_path: Path
) -> None:
    m = gw.gateway.metrics
    with udp_socket() as s:
        for name, data, reason in POISON:
            before = rejected(gw, reason)
            s.sendto(data, gw.udp)
            try:
                wait(lambda r=reason, b=before: rejected(gw, r) == b + 1, timeout=10)
            except AssertionError:
                raise AssertionError(f"{name}: not counted as {reason}: {m.snapshot()}") from None
        # a TX_ACK whose error is free text is counted under UNKNOWN, not under a label it invents
        s.sendto(b"\x02\x00\x01\x05" + E + json.dumps({"txpk_ack": {"error": "x" * 9000}}).encode(), gw.udp)
        wait(lambda: m.get("downlinks_tx_ack_total", error="UNKNOWN") == 1)
        assert m.get("datagrams_rejected_total", reason="internal") == 0
        # and after all of that, a good datagram is acknowledged and its frame stored
        while recv(s, timeout=0.2) is not None:  # (the PUSH_ACKs of the readable PUSH_DATA among them)
            pass
        s.sendto(push(GW1, {"rxpk": [rxpk(frame(1))]}, token=0x7777), gw.udp)
        assert recv(s) == b"\x02\x77\x77\x01"
    wait(lambda: ups(tmp_path / "out.jsonl"))
    assert [u["fcnt"] for u in ups(tmp_path / "out.jsonl")] == [1]
    labels = {k for k in m.snapshot()["downlinks_tx_ack_total"]}
    assert labels == {"error=UNKNOWN"}


def test_a_tx_ack_counts_only_from_the_gateway_that_was_sent_the_downlink() -> None:
    """Tokens are 16 bits: another gateway's TX_ACK with the same token must not settle (or, with an error,
    send the RX2 fallback of) this gateway's downlink."""

    async def main() -> list[tuple[Any, str]]:
        loop = asyncio.get_running_loop()
        done: list[tuple[Any, str]] = []
        server = GwmpServer(
            lambda *_: None,
            Metrics(),
            on_tx_done=lambda info, err: done.append((info, err)),
            allowed_gateways=(GW1, GW2),
        )
        addr = await server.start("127.0.0.1", 0)
        a, b = udp_socket(), udp_socket()
        a.setblocking(False)
        b.setblocking(False)
        try:
            for sock, eui in ((a, GW1), (b, GW2)):
                await loop.sock_sendto(sock, gwmp.encode_pull_data(2, 1, eui), addr)
                assert await asyncio.wait_for(loop.sock_recv(sock, 64), 5) == b"\x02\x00\x01\x04"
            txpk = build_txpk(data=b"\x60\x01", freq_hz=869_525_000, datr="SF12BW125", immediate=True)
            assert server.send(GW1, txpk, fallback=txpk, info="dl-1")
            resp = await asyncio.wait_for(loop.sock_recv(a, 2048), 5)
            token = int.from_bytes(resp[1:3], "big")
            await loop.sock_sendto(b, gwmp.encode_tx_ack(2, token, GW2, "TOO_LATE"), addr)
            await loop.sock_sendto(a, gwmp.encode_tx_ack(2, token, GW1), addr)
            deadline = loop.time() + 5
            while not done and loop.time() < deadline:
                await asyncio.sleep(0.01)
            with contextlib.suppress(BlockingIOError):  # GW2's ACK sent no RX2 fallback to GW1
                assert a.recv(2048) is None
            return done
        finally:
            a.close()
            b.close()
            server.close()

    assert asyncio.run(main()) == [("dl-1", "NONE")]


def test_a_backend_neutral_downlink_goes_out_as_txpk_and_its_fallback_after_a_tx_ack_error() -> None:
    """The daemon hands the GWMP backend frames, not txpk: the server builds the PULL_RESP's txpk of the
    first window, and on a TX_ACK error the fallback's."""
    rx1 = DownlinkFrame(b"\x60\x01\x02", 868_100_000, "SF7BW125", 5_000_000)
    rx2 = DownlinkFrame(b"\x60\x01\x02", 869_525_000, "SF12BW125", 6_000_000, power_dbm=27)

    async def main() -> tuple[list[dict[str, Any]], list[tuple[Any, str]]]:
        loop = asyncio.get_running_loop()
        done: list[tuple[Any, str]] = []
        metrics = Metrics()
        server = GwmpServer(
            lambda *_: None,
            metrics,
            on_tx_done=lambda info, err: done.append((info, err)),
            allowed_gateways=(GW1,),
        )
        addr = await server.start("127.0.0.1", 0)
        sock = udp_socket()
        sock.setblocking(False)
        sent: list[dict[str, Any]] = []
        try:
            await loop.sock_sendto(sock, gwmp.encode_pull_data(2, 1, GW1), addr)
            assert await asyncio.wait_for(loop.sock_recv(sock, 64), 5) == b"\x02\x00\x01\x04"
            assert server.transmit(GW1, rx1, fallback=rx2, info="dl-1", window="RX1")
            for error in ("TOO_LATE", "NONE"):
                resp = gwmp.parse(await asyncio.wait_for(loop.sock_recv(sock, 2048), 5))
                assert resp.identifier == gwmp.PULL_RESP
                sent.append(resp.payload["txpk"])
                await loop.sock_sendto(sock, gwmp.encode_tx_ack(2, resp.token, GW1, error), addr)
            deadline = loop.time() + 5
            while not done and loop.time() < deadline:
                await asyncio.sleep(0.01)
            assert metrics.snapshot()["downlinks_tx_total"] == {"window=RX1": 1, "window=RX2": 1}
            return sent, done
        finally:
            sock.close()
            server.close()

    sent, done = asyncio.run(main())
    assert sent == [txpk_of(rx1), txpk_of(rx2)]
    assert (sent[0]["tmst"], sent[0]["freq"], sent[1]["freq"], sent[1]["powe"]) == (
        5_000_000,
        868.1,
        869.525,
        27,
    )
    assert done == [("dl-1", "NONE")]
