"""A roof process for a network of roofs sharing Redis: GWMP (Semtech UDP packet forwarder) on a UDP port,
the network server on the shared store, the roof's own SQLite outbox. Used by the multi-roof tests, the
bench and ``make demo`` with two roofs; its settings are a JSON file::

    {"roof": "roof-a", "store": "redis://127.0.0.1:6379/0", "password_file": null, "ca_file": null,
     "udp_port": 1700, "db": "/var/lib/havel/roof-a.db", "dedup_window_ms": 200, "duty": 0.01}

One line of JSON per downlink sent goes to standard output (``{"tx": ...}``), and one ``{"ready": ...}``
line once it listens. SIGTERM processes what waits in the dedup window and stops."""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from havel.errors import ConfigError, HavelError
from havel.gateway import db, gwmp
from havel.gateway.config import NetworkConfig
from havel.gateway.network.reception import reception
from havel.gateway.network.server import NetworkServer
from havel.gateway.network.shared.roof import Downlink, Roof
from havel.gateway.network.shared.store import (
    RedisSessionStore,
    SharedState,
    StoreSettings,
    connect,
    redacted,
)
from havel.gateway.outbox import Outbox
from havel.gateway.settings import key, read

log = logging.getLogger("havel.gateway.shared")


def _store_url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith(("redis://", "rediss://")):
        raise ConfigError(f"{where} must be a redis:// or rediss:// URL", hint="rediss://host:6380/0")
    return value


@dataclass(frozen=True)
class RoofSettings:
    """A roof process's settings (the JSON file); a wrong key or value is a ConfigError naming it."""

    roof: str = key()  # this roof's name, unique in the network (downlinks are handed to it by name)
    store: str = key(parse=_store_url)
    db: str = key()  # the roof's SQLite database (its outbox)
    password_file: str | None = key(None)
    ca_file: str | None = key(None)
    timeout_s: float = key(1.0, lo=0.05, hi=30.0)  # a silent store counts as unreachable after this
    udp_port: int = key(1700, lo=0, hi=65535)
    bind: str = key("127.0.0.1")
    dedup_window_ms: int = key(200, lo=0, hi=5000)
    duty: float = key(0.01, lo=0.001, hi=1.0)  # the downlink sub-band's duty cycle (1.0: no pause)


def read_settings(obj: Any) -> RoofSettings:
    s = read(RoofSettings, obj, "roof")
    if not s.roof or len(s.roof) > 64 or not all(ch.isalnum() or ch in "-_." for ch in s.roof):
        raise ConfigError("roof.roof must be 1 to 64 letters, digits, '-', '_' or '.'")
    return s


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(settings: RoofSettings) -> None:
    roof_id = settings.roof
    store_settings = StoreSettings(
        settings.store, settings.password_file, settings.ca_file, settings.timeout_s
    )
    shared = SharedState(connect(store_settings))
    conn = db.open_db(settings.db)
    outbox = Outbox(conn, sinks=["primary"])
    store = RedisSessionStore(shared, conn)
    net = replace(NetworkConfig(), dedup_window_ms=settings.dedup_window_ms, dev_addr_prefix=0x26000000)
    ns = NetworkServer(store, outbox, net)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((settings.bind, settings.udp_port))
    pull: dict[int, tuple[str, int]] = {}  # concentrator EUI -> where its PULL_DATA came from
    token = [0]

    def transmit(d: Downlink) -> None:
        gw = int(d["gateway"], 16)
        addr = pull.get(gw)
        if addr is None:
            log.error("no PULL_DATA from %s yet: downlink dropped", d["gateway"])
            return
        token[0] = (token[0] + 1) & 0xFFFF
        txpk = gwmp.build_txpk(
            data=bytes.fromhex(d["data"]), freq_hz=int(d["freq_hz"]), datr=str(d["datr"]), tmst=int(d["tmst"])
        )
        sock.sendto(gwmp.encode_pull_resp(2, token[0], txpk), addr)
        _emit({"tx": {**d, "sent_by": roof_id}})

    roof = Roof(roof_id, shared, store, ns, transmit, duty=settings.duty)
    store.warm()
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__(0, True))
    log.info("roof %s on %s, UDP port %d", roof_id, redacted(store_settings.url), sock.getsockname()[1])
    _emit({"ready": {"roof": roof_id, "udp_port": sock.getsockname()[1]}})
    next_tick = next_poll = 0.0
    next_report = time.monotonic() + 60.0

    def datagram(data: bytes, addr: tuple[str, int]) -> None:
        try:
            dg = gwmp.parse(data)
        except gwmp.GwmpError as exc:
            roof.counts["bad_datagram"] += 1
            log.warning("datagram from %s refused: %s", addr, exc)
            return
        if dg.gateway_eui is None:
            return
        if dg.identifier == gwmp.PULL_DATA:
            pull[dg.gateway_eui] = addr
            sock.sendto(gwmp.encode_pull_ack(dg.version, dg.token), addr)
        elif dg.identifier == gwmp.PUSH_DATA:
            sock.sendto(gwmp.encode_push_ack(dg.version, dg.token), addr)
            rxpks = dg.payload.get("rxpk", [])
            if not isinstance(rxpks, list):
                roof.counts["bad_rxpk"] += 1
                return
            now = datetime.now(UTC)
            for obj in rxpks:
                try:
                    rx = gwmp.parse_rxpk(obj)
                except gwmp.GwmpError as exc:
                    roof.counts["bad_rxpk"] += 1
                    log.warning("rxpk refused: %s", exc)
                    continue
                roof.receive(reception(dg.gateway_eui, rx, now), time.monotonic())

    while not stop[0]:
        mono = time.monotonic()
        deadline = roof.next_deadline()
        wait = 0.02 if deadline is None else min(0.02, max(0.0, deadline - mono))
        sock.settimeout(max(wait, 0.001))
        for _ in range(256):  # what has arrived, then the flush
            try:
                data, addr = sock.recvfrom(65535)
            except (TimeoutError, BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # (an ICMP error for an earlier send)
                log.debug("udp: %s", exc)
                break
            sock.settimeout(0)
            try:
                datagram(data, addr)
            except (HavelError, redis.RedisError) as exc:  # one bad frame must not stop the roof
                roof.counts["intake_error"] += 1
                log.error("roof %s: %s", roof_id, exc)
        try:
            mono = time.monotonic()
            roof.flush(mono, datetime.now(UTC))
            if mono >= next_poll:
                next_poll = mono + 0.01
                roof.poll()
            if mono >= next_tick:
                next_tick = mono + 0.25
                roof.tick(mono)
            if mono >= next_report:
                next_report = mono + 60.0
                log.info("roof %s: %s", roof_id, dict(sorted(roof.counts.items())))
        except (HavelError, redis.RedisError) as exc:  # one bad batch must not stop the roof
            roof.counts["flush_error"] += 1
            log.error("roof %s: %s", roof_id, exc)
    roof.flush(time.monotonic(), datetime.now(UTC), force=True)
    log.info("roof %s stopped: %s", roof_id, dict(sorted(roof.counts.items())))
    conn.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m havel.gateway.network.shared.roofd SETTINGS.json\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        try:
            obj = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"roof settings {args[0]}: {exc}") from None
        run(read_settings(obj))
    except HavelError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
