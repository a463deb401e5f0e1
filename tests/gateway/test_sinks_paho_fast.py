"""The fast paths of ``havel.gateway.sinks.paho_fast.FastClient``, against paho's own code and Mosquitto.

- On real socket pairs: the bytes ``publish_qos1`` puts on the wire, and the message states paho keeps for a
  reconnect, equal those of paho's ``publish``; ``publish_many`` writes at once, but not inside a callback;
  coalesced writes through partial writes and EAGAIN give the same byte stream; PUBACKs read through the
  buffer give the same ``on_publish`` calls as paho's reader (split packets, other packets in between, failure
  codes, a malformed PUBACK).
- Against Mosquitto: a TLS drain that fills the socket while the broker is stopped (want-write, partial
  writes) loses nothing; PUBACKs lost with a cut connection make paho send the same messages again with DUP
  under the same packet ids (seen on the wire by a proxy), and every record arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from support.mqtt_subscriber import Subscriber
from support.outbox_records import harness, uplink

from havel.gateway.sinks.paho_fast import FastClient

pytestmark = pytest.mark.timeout(60)

# (topic, payload, retain): remaining lengths of 1, 2 and 3 bytes, an empty payload, retain
MESSAGES = [
    ("havel/gw1/devices/70B3D57ED0000001/up", b'{"id":"a"}', False),
    ("havel/gw1/devices/70B3D57ED0000002/up", b"x" * 300, False),
    ("havel/gw1/status", b'{"state":"online"}', True),
    ("t", b"", False),
    ("v1.1/Datastreams(17)/Observations", bytes(range(256)) * 80, False),
    ("havel/gw1/events", "ünïcode".encode(), True),
]


_SOCKETS: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_socket_pairs() -> Any:
    yield
    while _SOCKETS:
        _SOCKETS.pop().close()


def connected(cls: type[mqtt.Client]) -> tuple[Any, socket.socket]:
    """A client whose socket is one end of a real socket pair, run from an external loop (socket
    callbacks set), as the sink runs it; returns (client, the peer end). Both ends are closed after the
    test."""
    client = cls(mqtt.CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    ours, peer = socket.socketpair()
    _SOCKETS.extend((ours, peer))
    ours.setblocking(False)
    client._sock = ours
    client.on_socket_register_write = lambda *a: None
    client.on_socket_unregister_write = lambda *a: None
    return client, peer


def drain_writes(client: Any, peer: socket.socket, chunk: int = 1 << 20) -> tuple[bytes, int]:
    """loop_write until nothing is queued, reading the peer in between; (bytes read, how many loop_write
    calls left something queued because the socket was full)."""
    peer.setblocking(False)
    got = bytearray()
    blocked = 0
    while True:
        client.loop_write()
        done = not client.want_write()
        blocked += not done
        with contextlib.suppress(BlockingIOError):
            while data := peer.recv(chunk):
                got += data
                if not done:
                    break  # a little at a time while the writer is blocked
        if done:
            return bytes(got), blocked


def states(client: Any) -> list[tuple[Any, ...]]:
    return [
        (m.mid, m.state, m.qos, m.retain, m.dup, bytes(m.payload), m.topic, m.properties)
        for m in client._out_messages.values()
    ]


def test_publish_qos1_puts_the_bytes_and_states_of_paho_publish() -> None:
    ref, ref_peer = connected(mqtt.Client)
    fast, fast_peer = connected(FastClient)
    sends = [0]
    plain_send = fast._sock_send

    def counting(buf: bytes) -> int:
        sends[0] += 1
        return int(plain_send(buf))

    fast._sock_send = counting
    ref._last_mid = fast._last_mid = 65530  # the packet ids wrap around on the way
    for topic, payload, retain in MESSAGES * 2:
        info = ref.publish(topic, payload, qos=1, retain=retain)
        rc, mid = fast.publish_qos1(topic.encode(), payload, retain)
        assert (rc, mid) == (info.rc, info.mid) == (mqtt.MQTT_ERR_SUCCESS, mid)
    infos = [ref.publish(t, p, qos=1, retain=r) for t, p, r in MESSAGES]
    assert fast.publish_many([(t.encode(), p, r) for t, p, r in MESSAGES]) == [(i.rc, i.mid) for i in infos]
    assert states(fast) == states(ref)
    assert [s[0] for s in states(fast)][3:7] == [65534, 65535, 1, 2]
    assert fast._inflight_messages == ref._inflight_messages == len(MESSAGES) * 3
    want, _ = drain_writes(ref, ref_peer)
    got, _ = drain_writes(fast, fast_peer)
    assert got == want
    assert sends[0] <= 2  # 18 packets, about 60 KiB: one or two sends instead of 18
    # paho's re-send after a reconnect starts from these records: DUP set, same mids
    ref._messages_reconnect_reset_out()
    fast._messages_reconnect_reset_out()
    assert states(fast) == states(ref)
    assert all(s[4] for s in states(fast))
    for p in (ref_peer, fast_peer):
        p.close()


def test_publish_many_writes_at_once_but_not_from_inside_a_callback() -> None:
    """A batch goes on the wire in the call (no wait for the loop to report the socket writable); inside a
    paho callback (on_connect publishing, say) it is left to the loop, as paho's own publish does. The bytes
    are paho's either way."""
    ref, ref_peer = connected(mqtt.Client)
    fast, fast_peer = connected(FastClient)
    asked: list[bool] = []
    fast.on_socket_register_write = lambda *a: asked.append(True)
    items = [(t.encode(), p, r) for t, p, r in MESSAGES]
    for _ in range(2):
        for t, p, r in MESSAGES:
            ref.publish(t, p, qos=1, retain=r)
    want, _ = drain_writes(ref, ref_peer)
    fast.publish_many(items)
    assert not fast.want_write() and asked == []  # written, and the loop was never asked
    with fast._in_callback_mutex:  # as while paho runs a callback
        fast.publish_many(items)
    assert fast.want_write() and asked == [True]  # queued for the loop
    got, _ = drain_writes(fast, fast_peer)
    assert got == want


def test_paho_s_own_inflight_window_works_the_same() -> None:
    """With paho's max_inflight set (the sink sets 0), messages beyond it wait queued and a PUBACK sends
    the next one, as with paho's publish."""
    ref, ref_peer = connected(mqtt.Client)
    fast, fast_peer = connected(FastClient)
    for c in (ref, fast):
        c.max_inflight_messages_set(2)
    for topic, payload, retain in MESSAGES[:4]:
        ref.publish(topic, payload, qos=1, retain=retain)
    fast.publish_many([(t.encode(), p, r) for t, p, r in MESSAGES[:4]])
    assert states(fast) == states(ref)
    assert [s[1] for s in states(fast)] == [mqtt.mqtt_ms_wait_for_puback] * 2 + [mqtt.mqtt_ms_queued] * 2
    assert drain_writes(fast, fast_peer)[0] == drain_writes(ref, ref_peer)[0]
    for peer in (ref_peer, fast_peer):
        peer.sendall(b"\x40\x02\x00\x01")  # PUBACK for the first: room for the third
    read_like_a_selector(ref)
    read_like_the_sink(fast)
    assert states(fast) == states(ref)
    assert len(states(fast)) == 3 and states(fast)[1][1] == mqtt.mqtt_ms_wait_for_puback
    assert drain_writes(fast, fast_peer)[0] == drain_writes(ref, ref_peer)[0]
    for p in (ref_peer, fast_peer):
        p.close()


def test_invalid_topics_are_refused_like_paho() -> None:
    fast, peer = connected(FastClient)
    for bad in (b"a/+/b", b"a/#"):
        with pytest.raises(ValueError):
            fast.publish_qos1(bad, b"x")
        with pytest.raises(ValueError):  # all or nothing: the good one before it is not queued either
            fast.publish_many([(b"a/b", b"x", False), (bad, b"x", False)])
    assert not fast._out_messages and not fast.want_write()
    peer.close()


def test_without_a_socket_messages_wait_for_the_connection_like_paho() -> None:
    fast = FastClient(mqtt.CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    ref = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    for c in (fast, ref):
        c.max_inflight_messages_set(0)
    rc, mid = fast.publish_qos1(b"a/b", b"x")
    info = ref.publish("a/b", b"x", qos=1)
    assert (rc, mid) == (info.rc, info.mid) == (mqtt.MQTT_ERR_NO_CONN, 1)
    assert states(fast) == states(ref)
    assert states(fast)[0][1] == mqtt.mqtt_ms_publish  # sent when the connection comes


def test_coalesced_writes_through_partial_writes_and_eagain() -> None:
    """A small socket buffer: every loop_write stops part way (EAGAIN); paho's handling continues it."""
    ref, ref_peer = connected(mqtt.Client)
    fast, fast_peer = connected(FastClient)
    for c, peer in ((ref, ref_peer), (fast, fast_peer)):
        c._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    topics = [f"havel/gw1/devices/70B3D57ED{n:07X}/up" for n in range(50)]
    for i in range(3000):
        payload = (b'{"n":%d,"pad":"' % i) + b"p" * (i % 700) + b'"}'
        ref.publish(topics[i % 50], payload, qos=1)
        fast.publish_qos1(topics[i % 50].encode(), payload)
        if i == 1500:  # a write part way through the publishing, as the event loop does it
            fast.loop_write()
            ref.loop_write()
    want, _ = drain_writes(ref, ref_peer, chunk=3000)
    got, blocked = drain_writes(fast, fast_peer, chunk=3000)
    assert blocked > 10  # the socket was full again and again
    assert len(got) > 1_000_000 and got == want
    for p in (ref_peer, fast_peer):
        p.close()


def puback_stream(pending: int) -> list[bytes]:
    """Bytes a broker might send, in the pieces they arrive in: PUBACKs of every form, a PINGRESP in
    between, a PUBACK split over two reads, an unknown mid."""
    return [
        b"\x40\x02\x00\x01"  # success, 2 bytes
        + b"\x40\x03\x00\x02\x10"  # 0x10 no matching subscribers (success)
        + b"\xd0\x00"  # PINGRESP
        + b"\x40\x03\x00\x03\x87"  # 135 not authorized
        + b"\x40\x04\x00\x04\x00\x00"  # with an (empty) property length
        + b"\x40\x02\x00",  # split ...
        b"\x05" + b"\x40\x02\x01\x00" + b"\x40\x02\x00\x06",  # ... here; mid 256 is not in flight
    ]


def reads(cls: type[mqtt.Client], pieces: list[bytes], loop: Callable[[Any], None]) -> tuple[Any, ...]:
    client, peer = connected(cls)
    seen: list[tuple[int, int]] = []
    client.on_publish = lambda c, u, mid, reason, props: seen.append((mid, int(reason.value)))
    for i in range(6):
        client.publish("a/b", b"m%d" % i, qos=1)
    drain_writes(client, peer)
    client._ping_t = 1.0  # a PINGREQ is outstanding
    rcs = []
    for piece in pieces:
        peer.sendall(piece)
        rcs.append(loop(client))
    peer.close()
    return seen, rcs, sorted(client._out_messages), client._inflight_messages, client._ping_t


def readable(client: Any) -> bool:
    sock = client.socket()
    return sock is not None and bool(select.select([sock], [], [], 0)[0])


def read_like_a_selector(client: Any) -> Any:
    """paho's loop_read as a level-triggered event loop calls it: again while the socket is readable."""
    rc = client.loop_read()
    while readable(client):
        rc = client.loop_read()
    return rc


def read_like_the_sink(client: Any) -> Any:
    """The same, plus again while the client's read buffer holds bytes (MqttSink._readable)."""
    rc = client.loop_read()
    while client.socket() is not None and (client.has_buffered_input() or readable(client)):
        rc = client.loop_read()
    return rc


def test_pubacks_from_the_buffer_give_paho_s_callbacks() -> None:
    ref = reads(mqtt.Client, puback_stream(6), read_like_a_selector)
    fast = reads(FastClient, puback_stream(6), read_like_the_sink)
    assert fast == ref
    seen, rcs, left, inflight, ping = fast
    assert seen == [(1, 0), (2, 16), (3, 135), (4, 0), (5, 0), (6, 0)]
    assert rcs == [0, 0] and left == [] and inflight == 0 and ping == 0


def test_a_malformed_puback_is_a_protocol_error_like_paho() -> None:
    pieces = [b"\x40\x02\x00\x01" + b"\x40\x03\x00\x02\x05" + b"\x40\x02\x00\x03"]  # 5: no PUBACK code
    closed: list[int] = []

    def loop(c: Any) -> Any:
        c.on_disconnect = lambda *a: closed.append(1)
        return read_like_a_selector(c) if type(c) is mqtt.Client else read_like_the_sink(c)

    ref = reads(mqtt.Client, pieces, loop)
    fast = reads(FastClient, pieces, loop)
    assert fast == ref
    assert ref[0] == [(1, 0)] and ref[1] == [mqtt.MQTT_ERR_PROTOCOL]
    assert closed == [1, 1]


# ----------------------------------------------------------------------------------------- real broker


def test_tls_drain_through_a_full_socket_loses_nothing(tmp_path: Path, mosquitto_factory: Any) -> None:
    """The broker stops reading (SIGSTOP) while about 6 MB are being published over TLS: the socket fills
    (want-write, partial writes), the writes wait, and everything goes through after it resumes."""
    broker = mosquitto_factory(tls=True, max_inflight=0)
    assert broker.pki is not None
    cfg = {
        "type": "mqtt",
        "name": "primary",
        "host": "127.0.0.1",
        "port": broker.tls_port,
        "ca_file": str(broker.pki.ca_cert),
        "max_inflight": 3000,
    }
    n = 3000

    async def run() -> None:
        with Subscriber(broker.port, "havel/gw1/devices/#") as sub:
            async with harness(tmp_path, [cfg], window=3000, batch=500, down_after_s=30.0) as h:
                await h.forwarder.wait_state("primary", "up", 10)
                client = h.sinks[0]._client  # type: ignore[attr-defined]
                broker.pause()
                try:
                    h.put([uplink(i % 50, 1 + i // 50, data={"blob": "b" * 2000}) for i in range(n)])
                    for _ in range(500):
                        if client.want_write() and h.forwarder.status("primary").sent == n:
                            break
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.3)
                    assert client.want_write()  # held up by the full socket, not lost
                finally:
                    broker.resume()
                await h.forwarder.wait_idle(30)
                assert h.forwarder.status("primary").acked == n
            got = [m.json() for m in sub.wait_for(n, 20) if m.topic.endswith("/up")]
        first: dict[str, Any] = {}
        for msg in got:
            first.setdefault(msg["id"], msg)
        assert len(first) == n
        last: dict[str, int] = {}
        for msg in first.values():
            assert msg["fcnt"] > last.get(msg["dev_eui"], 0)
            last[msg["dev_eui"]] = msg["fcnt"]

    asyncio.run(run())


class Proxy:
    """A TCP proxy on loopback in front of the broker that records the PUBLISH packets the client sends
    (packet id, DUP flag, topic; per connection) and can hold back what the broker sends (the PUBACKs)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.hold = threading.Event()
        self.publishes: list[list[tuple[int, bool, str]]] = []
        self.conns: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.closed = False
        self._spawn(self._accept)

    def _spawn(self, fn: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        self.threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.conns += [client, upstream]
            seen: list[tuple[int, bool, str]] = []
            self.publishes.append(seen)
            self._spawn(self._up, client, upstream, seen)
            self._spawn(self._down, upstream, client)

    def _up(self, src: socket.socket, dst: socket.socket, seen: list[tuple[int, bool, str]]) -> None:
        buf = bytearray()
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            except OSError:
                break
            buf += data
            while (packet := take_packet(buf)) is not None:
                head, body = packet
                if head >> 4 == 3 and (head >> 1) & 3 == 1:  # PUBLISH, QoS 1
                    tlen = int.from_bytes(body[:2], "big")
                    pid = int.from_bytes(body[2 + tlen : 4 + tlen], "big")
                    seen.append((pid, bool(head & 0x08), body[2 : 2 + tlen].decode()))
        self._shut(src, dst)

    def _down(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    break
                if not self.hold.is_set():
                    dst.sendall(data)
            except OSError:
                break
        self._shut(src, dst)

    @staticmethod
    def _shut(*socks: socket.socket) -> None:
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection at once (no DISCONNECT: a dead link)."""
        self._shut(*self.conns)

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()
        for s in self.conns:
            s.close()
        for t in self.threads:
            t.join(5)


def take_packet(buf: bytearray) -> tuple[int, bytes] | None:
    """Remove one whole MQTT packet from the front of ``buf``: (first byte, body); None if incomplete."""
    n, i = 0, 1
    while True:
        if i >= len(buf) or i > 4:
            return None
        n |= (buf[i] & 0x7F) << (7 * (i - 1))
        i += 1
        if not buf[i - 1] & 0x80:
            break
    if len(buf) < i + n:
        return None
    head, body = buf[0], bytes(buf[i : i + n])
    del buf[: i + n]
    return head, body


def test_lost_pubacks_mean_the_same_packet_ids_again_with_dup(tmp_path: Path, mosquitto_factory: Any) -> None:
    mosquitto = mosquitto_factory(max_inflight=0)  # no Receive Maximum: all 200 in flight at once
    proxy = Proxy(mosquitto.port)
    cfg = {
        "type": "mqtt",
        "name": "primary",
        "host": "127.0.0.1",
        "port": proxy.port,
        "tls": False,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.4,
        "status_topic": "",
    }
    n = 200

    async def run() -> None:
        with Subscriber(mosquitto.port, "havel/#", persistent=True) as sub:
            async with harness(tmp_path, [cfg], down_after_s=5.0) as h:
                await h.forwarder.wait_state("primary", "up", 10)
                proxy.hold.set()  # the broker's PUBACKs go nowhere from now on
                h.put([uplink(i % 7, 1 + i // 7) for i in range(n)])
                for _ in range(500):
                    if len(proxy.publishes[0]) == n:
                        break
                    await asyncio.sleep(0.01)
                assert h.forwarder.status("primary").acked == 0
                proxy.cut()
                proxy.hold.clear()
                await h.forwarder.wait_idle(20)
                assert h.sinks[0].connects == 2
            got = [m.json() for m in sub.wait_for(n, 10) if m.topic.endswith("/up")]
        first, again = proxy.publishes[0], proxy.publishes[1]
        assert len(first) == n and not any(dup for _, dup, _ in first)
        # every unacknowledged message again, DUP set, under its packet id, in the same order
        assert [(pid, topic) for pid, _, topic in again] == [(pid, topic) for pid, _, topic in first]
        assert all(dup for _, dup, _ in again)
        assert {m["id"] for m in got} == {uplink(i % 7, 1 + i // 7)["id"] for i in range(n)}

    try:
        asyncio.run(run())
    finally:
        proxy.close()
