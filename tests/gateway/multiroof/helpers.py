"""Roofs in one process for the multi-roof tests: each with its own SQLite outbox and network server, all on
one real redis-server; nodes that build real LoRaWAN frames; concentrators reduced to receptions."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from havel.codecs.lorawan import crypto, phy
from havel.gateway import db
from havel.gateway.backends.semtech_udp.rxpk import RxPacket
from havel.gateway.config import NetworkConfig
from havel.gateway.network.reception import Reception
from havel.gateway.network.server import NetworkServer
from havel.gateway.network.sessions import Device, Session
from havel.gateway.network.shared.connection import StoreSettings, connect
from havel.gateway.network.shared.roof import Roof
from havel.gateway.network.shared.sessionstore import RedisSessionStore
from havel.gateway.network.shared.state import SharedState
from havel.gateway.outbox import Outbox

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
APP_KEY = bytes.fromhex("88888888888888888888888888888888")
JOIN_EUI = 0x70B3D57ED0001000


@dataclass
class Node:
    """A device's side: its session and counters, frames built with the codec library."""

    name: str
    dev_eui: int
    dev_addr: int = 0
    nwk: bytes = b""
    app: bytes = b""
    fcnt: int = 0
    dev_nonce: int = 100
    otaa: bool = False
    heard: list[bytes] = field(default_factory=list)

    def device(self) -> Device:
        if self.otaa:
            return Device(
                name=self.name,
                dev_eui=self.dev_eui,
                codec="temperature",
                activation="otaa",
                join_eui=JOIN_EUI,
                app_key=APP_KEY,
            )
        return Device(
            name=self.name,
            dev_eui=self.dev_eui,
            codec="temperature",
            activation="abp",
            session=Session(self.dev_addr, self.nwk, self.app),
        )

    def uplink(
        self, payload: bytes = bytes.fromhex("1200f1013d4cba"), *, confirmed: bool = False, **flags: Any
    ) -> bytes:
        """The next data frame; ``flags``: fopts, adr, adr_ack_req, ack (``phy.build_data_frame``)."""
        self.fcnt += 1
        return phy.build_data_frame(
            uplink=True,
            confirmed=confirmed,
            dev_addr=self.dev_addr,
            fcnt32=self.fcnt,
            fport=1,
            payload=payload,
            nwk_s_key=self.nwk,
            app_s_key=self.app,
            **flags,
        )

    def join_request(self) -> bytes:
        self.dev_nonce += 1
        return phy.build_join_request(
            join_eui=JOIN_EUI, dev_eui=self.dev_eui, dev_nonce=self.dev_nonce, app_key=APP_KEY
        )

    def take_join_accept(self, data: bytes) -> None:
        """Read a join-accept as the device does and switch to the new session."""
        plain = phy.parse_join_accept(crypto.decrypt_join_accept(APP_KEY, data))
        self.dev_addr = plain.dev_addr
        self.nwk, self.app = crypto.derive_session_keys(
            APP_KEY, plain.join_nonce, plain.net_id, self.dev_nonce
        )
        self.fcnt = 0


def abp_node(i: int) -> Node:
    rng = random.Random(i)
    return Node(
        f"abp-{i}",
        0x70B3D57ED0000100 + i,
        0x26010000 + i,
        rng.randbytes(16),
        rng.randbytes(16),
    )


def copy(gw: int, data: bytes, *, snr: float, tmst: int = 1_000_000) -> Reception:
    rx = RxPacket(data=data, tmst=tmst, freq_hz=868_100_000, datr="SF7BW125", rssi=-60 + snr, lsnr=snr)
    return Reception(gw, rx, NOW, "local")


class RoofUnderTest:
    """One roof: a Roof on its own database; ``sent`` collects what its concentrators transmitted."""

    def __init__(
        self, name: str, url: str, tmp: Path, *, window_ms: int = 50, timeout_s: float = 0.5
    ) -> None:
        self.name = name
        self.conn = db.open_db(tmp / f"{name}.db")
        self.outbox = Outbox(self.conn, sinks=["primary"])
        self.shared = SharedState(connect(StoreSettings(url, timeout_s=timeout_s)))
        self.store = RedisSessionStore(self.shared, self.conn)
        net = replace(NetworkConfig(), dedup_window_ms=window_ms, dev_addr_prefix=0x26000000)
        self.ns = NetworkServer(self.store, self.outbox, net, rng=random.Random(name))
        self.sent: list[dict[str, Any]] = []  # what went down, but downlinks of MAC commands alone ...
        self.mac_sent: list[dict[str, Any]] = []  # ... which are here (e.g. the DevStatusReq a device gets)
        self.roof = Roof(name, self.shared, self.store, self.ns, self.transmit)
        self.mono = 0.0

    def transmit(self, d: dict[str, Any]) -> None:
        (self.mac_sent if d["kind"] == "mac" else self.sent).append(d)

    def hear(self, gw: int, data: bytes, snr: float, tmst: int = 1_000_000) -> None:
        self.roof.receive(copy(gw, data, snr=snr, tmst=tmst), self.mono)

    def flush(self) -> list[Any]:
        self.mono += 1.0
        outs = self.roof.flush(self.mono, NOW)
        self.roof.poll()
        return outs

    def records(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT payload FROM outbox ORDER BY seq").fetchall()
        return [json.loads(r[0]) for r in rows]


def settle(roofs: list[RoofUnderTest]) -> list[Any]:
    """Every roof processes what is due, then every roof sends what was handed to it."""
    outs = [o for r in roofs for o in r.flush()]
    for r in roofs:
        r.roof.poll()
    return outs


def all_records(roofs: list[RoofUnderTest]) -> list[dict[str, Any]]:
    return [r for roof in roofs for r in roof.records()]


def read_records(path: Path) -> list[dict[str, Any]]:
    """The outbox of a roof process's database (read while it runs: WAL)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return [json.loads(r[0]) for r in conn.execute("SELECT payload FROM outbox ORDER BY seq")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def battery_known(shared: SharedState, dev_eui: int) -> None:
    """Give a device in the store a fresh battery report, so that no roof asks for one (DevStatusReq): the
    tests that count downlinks and gateways' duty cycles see only the ones they are about."""
    shared.r.hset(shared.dev_key(dev_eui), mapping={"battery": "200", "battery_at": str(time.time())})
