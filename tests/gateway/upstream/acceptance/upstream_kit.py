"""Plumbing of the black-box upstream tests: a GWMP network server of our own, LoRaWAN frames from
lora-packet, and helpers around the scripted packet forwarder. Written from docs/gateway.md and Semtech's
PROTOCOL.TXT (GWMP v2), not from the implementation. The broker, daemon, subscriber and forwarder come
from the black-box gateway kit (tests/gateway/acceptance/bb_kit.py).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The process plumbing of the black-box gateway tests (broker, daemon, subscriber, scripted forwarder).
sys.path.insert(0, str(HERE.parents[1] / "acceptance"))

from bb_kit import (  # noqa: E402,F401  (re-exported to the tests)
    LORA_PACKET,
    Broker,
    Device,
    Forwarder,
    Gateway,
    Subscriber,
    add_device,
    free_port,
    wait_for,
    water_payload,
)

HOST = "127.0.0.1"
FWD_EUI = "AA555A0000000119"
PREFIX = "havel/gw1"

# A device of the city's server that this roof follows (OTAA, AppKey in the registry).
FOLLOWED = Device(
    "follow-otaa",
    "70B3D57ED0000011",
    join_eui="70B3D57ED0000000",
    app_key="3c8f2a1e5d7b9c04e6f1a2b3c4d5e6f7",
)
# A followed ABP device: the roof follows the session the registry holds.
FOLLOWED_ABP = Device(
    "follow-abp",
    "70B3D57ED0000012",
    dev_addr="26015A5A",
    nwk_s_key="a1b2c3d4e5f60718293a4b5c6d7e8f90",
    app_s_key="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
)
# A local device: served by the roof itself, its frames never go upstream.
LOCAL = Device(
    "local-abp",
    "70B3D57ED0000013",
    dev_addr="26017777",
    nwk_s_key="11223344556677889900aabbccddeeff",
    app_s_key="ffeeddccbbaa00998877665544332211",
)
# A device nobody on the roof knows (its keys are only ours, as the city's server would hold them).
UNKNOWN = Device(
    "stranger",
    "70B3D57ED00000FF",
    dev_addr="260BEEF1",
    nwk_s_key="00000000000000000000000000000a01",
    app_s_key="00000000000000000000000000000b02",
)


# ------------------------------------------------------------------------------------------ frames


class Frames:
    """lora-packet under Node: what a device sends and what our network server answers."""

    def __init__(self) -> None:
        env = dict(os.environ, LORA_PACKET=str(LORA_PACKET))
        self.proc = subprocess.Popen(
            ["node", str(HERE / "lorawan_frames.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def call(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        assert answer.pop("ok"), answer.get("error")
        return answer

    def uplink(self, dev: Device, fcnt: int, payload: str, fport: int = 1, confirmed: bool = False) -> bytes:
        return bytes.fromhex(
            self.call(
                op="uplink",
                dev_addr=dev.dev_addr,
                fcnt=fcnt,
                fport=fport,
                payload=payload,
                nwk_s_key=dev.nwk_s_key,
                app_s_key=dev.app_s_key,
                confirmed=confirmed,
            )["phy"]
        )

    def join_request(self, dev: Device, dev_nonce: int) -> bytes:
        return bytes.fromhex(
            self.call(
                op="join_request",
                join_eui=dev.join_eui,
                dev_eui=dev.dev_eui,
                dev_nonce=f"{dev_nonce:04x}",
                app_key=dev.app_key,
            )["phy"]
        )

    def join_accept(self, dev: Device, dev_nonce: int, dev_addr: str) -> tuple[bytes, str, str]:
        a = self.call(
            op="join_accept",
            app_key=dev.app_key,
            app_nonce="00002a",
            net_id="000013",
            dev_addr=dev_addr,
            dev_nonce=f"{dev_nonce:04x}",
        )
        return bytes.fromhex(a["phy"]), a["nwk_s_key"], a["app_s_key"]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ------------------------------------------------------------------------------- our network server


class NetworkServer:
    """A minimal GWMP v2 network server (Semtech PROTOCOL.TXT), independent of Havel's own."""

    def __init__(self) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, self.port))
        self.sock.settimeout(0.1)
        self.lock = threading.Lock()
        self.received: list[tuple[float, bytes, tuple[str, int]]] = []
        self.pull_addr: dict[bytes, tuple[str, int]] = {}
        self.answering = True
        self.sent_pull_resps: list[bytes] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                d, addr = self.sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            with self.lock:
                self.received.append((time.monotonic(), d, addr))
                answering = self.answering
            if len(d) < 12 or d[0] != 2 or not answering:
                continue
            if d[3] == 0x00:  # PUSH_DATA -> PUSH_ACK
                self.sock.sendto(d[:3] + b"\x01", addr)
            elif d[3] == 0x02:  # PULL_DATA -> PULL_ACK, and this is where downlinks go
                with self.lock:
                    self.pull_addr[d[4:12]] = addr
                self.sock.sendto(d[:3] + b"\x04", addr)

    def datagrams(self, ident: int, since: float = 0.0) -> list[bytes]:
        with self.lock:
            return [d for t, d, _ in self.received if t >= since and len(d) >= 4 and d[3] == ident]

    def push_data(self, since: float = 0.0) -> list[bytes]:
        return self.datagrams(0x00, since)

    def rxpk_phys(self, since: float = 0.0) -> list[bytes]:
        """Every frame (PHYPayload) that reached us in a PUSH_DATA."""
        out = []
        for d in self.push_data(since):
            for pk in json.loads(d[12:]).get("rxpk", []):
                out.append(base64.b64decode(pk["data"] + "=" * (-len(pk["data"]) % 4)))
        return out

    def wait_push(self, match: Callable[[bytes], bool], what: str, timeout: float = 30.0) -> bytes:
        return wait_for(lambda: next((d for d in self.push_data() if match(d)), None), timeout, what)

    def send_to(self, eui: bytes, datagram: bytes) -> None:
        addr = wait_for(lambda: self.pull_addr.get(eui), 30, "a PULL_DATA of the roof for this EUI")
        self.sock.sendto(datagram, addr)

    def pull_resp(self, eui: bytes, token: bytes, txpk: dict[str, Any]) -> bytes:
        datagram = b"\x02" + token + b"\x03" + json.dumps({"txpk": txpk}).encode()
        self.sent_pull_resps.append(datagram)
        self.send_to(eui, datagram)
        return datagram

    def set_answering(self, on: bool) -> None:
        with self.lock:
            self.answering = on

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()

    def reopen(self, port: int) -> None:
        """A new server process on the same port, after ``close``: nothing received or learnt yet."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.sock.settimeout(0.1)
        with self.lock:
            self.received.clear()
            self.pull_addr.clear()
        self._stop.clear()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()


def txpk_for(phy: bytes, tmst: int) -> dict[str, Any]:
    """A class-A RX1 downlink as a network server schedules it (PROTOCOL.TXT, section 6)."""
    return {
        "imme": False,
        "tmst": tmst & 0xFFFFFFFF,
        "freq": 868.1,
        "rfch": 0,
        "powe": 14,
        "prea": 8,
        "modu": "LORA",
        "datr": "SF7BW125",
        "codr": "4/5",
        "ipol": True,
        "size": len(phy),
        "data": base64.b64encode(phy).decode(),
    }


def take_pull_resp(fwd: Forwarder) -> bytes | None:
    return fwd.take(lambda d: len(d) >= 4 and d[3] == 0x03)


def forwarder_pull_resps(fwd: Forwarder) -> list[bytes]:
    """Take every PULL_RESP the forwarder got so far."""
    got = []
    while (d := take_pull_resp(fwd)) is not None:
        got.append(d)
    return got


def assert_only_ours(got: list[bytes], server: NetworkServer) -> None:
    """The roof must never answer a followed or unknown device itself: each PULL_RESP the concentrator
    gets carries a frame our server sent, or a frame for the one local device (served by the roof)."""
    ours = [json.loads(d[4:])["txpk"]["data"] for d in server.sent_pull_resps]
    for d in got:
        data = json.loads(d[4:])["txpk"]["data"]
        if data in ours:
            continue
        phy = base64.b64decode(data + "=" * (-len(data) % 4))
        is_data_down = phy[0] >> 5 in (3, 5)
        assert is_data_down and phy[1:5][::-1].hex().upper() == LOCAL.dev_addr, (
            f"the roof answered a device it does not serve: {d!r}"
        )


def same_pull_resp(got: bytes, sent: bytes) -> bool:
    """The PULL_RESP at the concentrator carries the server's txpk unchanged. Not byte for byte: the token
    is the roof's own (it maps the TX_ACK back to the server) and the JSON is written anew (see the
    findings file), so the header byte, the identifier and the JSON value are compared."""
    return got[0] == sent[0] and got[3] == sent[3] == 0x03 and json.loads(got[4:]) == json.loads(sent[4:])


def push_frames(fwd: Forwarder, *phys: bytes) -> bytes:
    """One PUSH_DATA with these frames, acknowledged by the roof; returns the datagram as sent."""
    fwd.token = (fwd.token + 1) & 0xFFFF
    token = fwd.token.to_bytes(2, "big")
    body = json.dumps({"rxpk": [fwd.rxpk(p) for p in phys]}).encode()
    datagram = b"\x02" + token + b"\x00" + fwd.eui + body
    fwd.send_raw(datagram)
    wait_for(lambda: fwd.take(lambda d: d[:4] == b"\x02" + token + b"\x01"), 20, "PUSH_ACK from the roof")
    return datagram


def ups(subscriber: Subscriber, dev: Device) -> list[dict[str, Any]]:
    return subscriber.json_on(f"{PREFIX}/devices/{dev.dev_eui}/up")


def phys_of(datagram: bytes) -> list[bytes]:
    try:
        pks = json.loads(datagram[12:]).get("rxpk", [])
    except ValueError:
        return []
    return [base64.b64decode(pk["data"] + "=" * (-len(pk["data"]) % 4)) for pk in pks]
