"""Two real Havel daemons for upstream-mode tests: the roof (``[upstream]``) and, as its upstream network
server, a second daemon in standalone mode that speaks GWMP; a scripted packet forwarder (the radio part,
which cannot exist here) talks to the roof over real UDP."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.gateway_run import InProcessGateway

from havel.codecs.lorawan import crypto, phy
from havel.gateway import db
from havel.gateway.network.sessions import Device, Session
from havel.gateway.registry import Registry

REPO = Path(__file__).resolve().parents[3]
HOST = "127.0.0.1"
GW_EUI = 0xAA555A0000000101
JOIN_EUI = 0x70B3D57ED0001000
FOLLOWED_EUI = 0x70B3D57ED0000011  # OTAA, served upstream, followed by the roof
FOLLOWED_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
STRANGER_EUI = 0x70B3D57ED0000022  # ABP, known only upstream
STRANGER_ADDR = 0x26011234
LOCAL_EUI = 0x70B3D57ED0000033  # ABP, served by the roof itself
LOCAL_ADDR = 0x01AB0001
NWK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
APP = bytes.fromhex("F0E0D0C0B0A090807060504030201000")


def vector() -> dict[str, Any]:
    items = json.loads((REPO / "codecs" / "vectors" / "temperature.json").read_text())
    return next(v for v in items if v["direction"] == "up")


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def register(db_path: Path, devices: list[Device]) -> None:
    conn = db.open_db(db_path)
    reg = Registry(conn)
    with reg.transaction():
        for d in devices:
            reg.add(d)
    conn.close()


def otaa(name: str = "followed") -> Device:
    return Device(name, FOLLOWED_EUI, "temperature", "otaa", join_eui=JOIN_EUI, app_key=FOLLOWED_KEY)


def abp(name: str, dev_eui: int, dev_addr: int) -> Device:
    return Device(name, dev_eui, "temperature", "abp", session=Session(dev_addr, NWK, APP))


def upstream_section(
    port: int, *, follow: list[int], keepalive_s: float = 0.3, down_after_s: float = 1.5
) -> str:
    return (
        "\n[upstream]\n"
        f"follow = {json.dumps([f'{e:016X}' for e in follow])}\n"
        "[[upstream.server]]\n"
        'name = "city"\n'
        f'host = "{HOST}"\n'
        f"port = {port}\n"
        f"keepalive_s = {keepalive_s}\n"
        f"down_after_s = {down_after_s}\n"
    )


def messages(path: Path) -> list[dict[str, Any]]:
    """What a daemon's file sink delivered."""
    if not path.exists():
        return []
    return [json.loads(line)["payload"] for line in path.read_text().splitlines() if line.strip()]


def spy(gw: InProcessGateway) -> list[bytes]:
    """Every datagram the daemon's GWMP server receives from now on (it still handles them)."""
    got: list[bytes] = []
    server = gw.gateway.udp
    inner = server.datagram_received

    def record(data: bytes, addr: Any) -> None:
        got.append(data)
        inner(data, addr)

    server.datagram_received = record  # type: ignore[method-assign]
    return got


def session_from_accept(accept: bytes, dev_nonce: int) -> tuple[int, bytes, bytes]:
    """(DevAddr, NwkSKey, AppSKey) as the device derives them from its join-accept."""
    plain = phy.parse_join_accept(crypto.decrypt_join_accept(FOLLOWED_KEY, accept))
    nwk, app = crypto.derive_session_keys(FOLLOWED_KEY, plain.join_nonce, plain.net_id, dev_nonce)
    return plain.dev_addr, nwk, app


def data_frame(dev_addr: int, fcnt: int, nwk: bytes = NWK, app: bytes = APP) -> bytes:
    v = vector()
    return phy.build_data_frame(
        uplink=True,
        confirmed=False,
        dev_addr=dev_addr,
        fcnt32=fcnt,
        fport=v["fport"],
        payload=bytes.fromhex(v["bytes"]),
        nwk_s_key=nwk,
        app_s_key=app,
    )


class Forwarder:
    """A scripted Semtech packet forwarder (GWMP v2) with one gateway EUI."""

    def __init__(self, addr: tuple[str, int], eui: int = GW_EUI) -> None:
        self.addr = addr
        self.eui = eui.to_bytes(8, "big")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.token = 0
        self.inbox: list[bytes] = []
        self.tmst = 1_000_000

    def _token(self) -> bytes:
        self.token = (self.token + 1) & 0xFFFF
        return self.token.to_bytes(2, "big")

    def rxpk(self, frame: bytes) -> dict[str, Any]:
        self.tmst += 3_000_000
        return {
            "tmst": self.tmst,
            "chan": 0,
            "rfch": 0,
            "freq": 868.1,
            "stat": 1,
            "modu": "LORA",
            "datr": "SF7BW125",
            "codr": "4/5",
            "rssi": -87,
            "lsnr": 7.5,
            "size": len(frame),
            "data": base64.b64encode(frame).decode(),
        }

    def push(self, *frames: bytes) -> bytes:
        """One PUSH_DATA with these frames; waits for its PUSH_ACK; returns the datagram sent."""
        token = self._token()
        body = json.dumps({"rxpk": [self.rxpk(f) for f in frames]}).encode()
        datagram = b"\x02" + token + b"\x00" + self.eui + body
        self.sock.sendto(datagram, self.addr)
        wait_for(lambda: self.take(lambda d: d[:4] == b"\x02" + token + b"\x01"), 20, "PUSH_ACK")
        return datagram

    def pull(self) -> None:
        token = self._token()
        self.sock.sendto(b"\x02" + token + b"\x02" + self.eui, self.addr)
        wait_for(lambda: self.take(lambda d: d[:4] == b"\x02" + token + b"\x04"), 20, "PULL_ACK")

    def pull_resp(self, timeout: float = 20.0, ack: str | None = "NONE") -> tuple[dict[str, Any], bytes]:
        """The next PULL_RESP's txpk and frame, answered with a TX_ACK (None: none)."""
        dg = wait_for(lambda: self.take(lambda d: len(d) > 4 and d[3] == 3), timeout, "PULL_RESP")
        txpk = json.loads(dg[4:])["txpk"]
        if ack is not None:
            body = json.dumps({"txpk_ack": {"error": ack}}).encode()
            self.sock.sendto(b"\x02" + dg[1:3] + b"\x05" + self.eui + body, self.addr)
        data = txpk["data"]
        return txpk, base64.b64decode(data + "=" * (-len(data) % 4))

    def take(self, match: Callable[[bytes], bool]) -> bytes | None:
        while True:
            try:
                d, _ = self.sock.recvfrom(65536)
            except (BlockingIOError, TimeoutError):
                break
            self.inbox.append(d)
        for i, d in enumerate(self.inbox):
            if match(d):
                return self.inbox.pop(i)
        return None

    def close(self) -> None:
        self.sock.close()
