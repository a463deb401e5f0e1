"""A roof process for a network of roofs sharing Redis: GWMP (Semtech UDP packet forwarder) on a UDP port,
the network server on the shared store, the roof's own SQLite outbox. Used by the multi-roof tests, the
bench and ``make demo`` with two roofs; its settings are a JSON file::

    {"roof": "roof-a", "store": "redis://127.0.0.1:6379/0", "password_file": null, "ca_file": null,
     "udp_port": 1700, "db": "/var/lib/havel/roof-a.db", "dedup_window_ms": 200, "duty": 0.01}

Or the roof's gateway config (``--config gateway.toml``): ``[network] store``, ``store_password_file``,
``store_ca_file``, ``store_timeout_s``, ``roof`` (default: the gateway id) and the rest of ``[network]``,
``[udp]`` bind and port, the database in ``data_dir``, and its ``[[sink]]`` tables and ``[forwarder]``: the
roof then delivers what it stored through those sinks, as the daemon does.

One line of JSON per downlink sent goes to standard output (``{"tx": ...}``), and one ``{"ready": ...}``
line once it listens. SIGTERM processes what waits in the dedup window and stops."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from havel.errors import ConfigError, HavelError
from havel.gateway import config, db
from havel.gateway import delivery as outbox_delivery
from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.backends.semtech_udp.rxpk import parse_rxpk
from havel.gateway.backends.semtech_udp.txpk import build_txpk
from havel.gateway.config import Config, NetworkConfig
from havel.gateway.network.reception import reception
from havel.gateway.network.server import NetworkServer
from havel.gateway.network.shared.connection import StoreSettings, connect, redacted
from havel.gateway.network.shared.roof import Downlink, Roof
from havel.gateway.network.shared.sessionstore import RedisSessionStore
from havel.gateway.network.shared.state import SharedState
from havel.gateway.outbox import Outbox
from havel.gateway.settings import key, read
from havel.gateway.sinks import make_sinks

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


def settings_from_config(cfg: Config) -> RoofSettings:
    """A roof's settings from its gateway config (``[network] store`` must be set)."""
    n = cfg.network
    if n.store is None:
        raise ConfigError("network.store is not set", hint="the shared store's redis:// or rediss:// URL")
    return RoofSettings(
        roof=n.roof or cfg.gateway_id,
        store=n.store,
        db=str(cfg.db_path),
        password_file=n.store_password_file,
        ca_file=n.store_ca_file,
        timeout_s=n.store_timeout_s,
        udp_port=cfg.udp.port,
        bind=cfg.udp.bind,
        dedup_window_ms=n.dedup_window_ms,
    )


class Delivery:
    """The configured sinks fed from the roof's outbox by the daemon's forwarder, in a thread with its own
    event loop and database connection."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main()), name="delivery", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    async def _main(self) -> None:
        cfg = self.cfg
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        conn = db.open_db(cfg.db_path)
        try:
            outbox = Outbox(conn, sinks=[s["name"] for s in cfg.sinks])
            sinks = make_sinks(cfg.sinks, gateway_id=cfg.gateway_id)
            fwd = outbox_delivery.Delivery.from_config(outbox, sinks, cfg.forwarder)
            await fwd.start()  # (it looks into the outbox every poll_s)
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
            await fwd.stop()
        finally:
            conn.close()


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(settings: RoofSettings, cfg: Config | None = None) -> None:
    """Serve until SIGTERM; with ``cfg`` (the gateway config) its network settings and sinks are used."""
    roof_id = settings.roof
    store_settings = StoreSettings(
        settings.store, settings.password_file, settings.ca_file, settings.timeout_s
    )
    shared = SharedState(connect(store_settings))
    if cfg is not None:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
    conn = db.open_db(settings.db)
    outbox = Outbox(conn, sinks=[s["name"] for s in cfg.sinks] if cfg is not None else ["primary"])
    store = RedisSessionStore(shared, conn)
    if cfg is not None:
        net = cfg.network
    else:
        net = replace(NetworkConfig(), dedup_window_ms=settings.dedup_window_ms, dev_addr_prefix=0x26000000)
    delivery = Delivery(cfg) if cfg is not None else None
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
        txpk = build_txpk(
            data=bytes.fromhex(d["data"]), freq_hz=int(d["freq_hz"]), datr=str(d["datr"]), tmst=int(d["tmst"])
        )
        sock.sendto(gwmp.encode_pull_resp(2, token[0], txpk), addr)
        _emit({"tx": {**d, "sent_by": roof_id}})

    roof = Roof(roof_id, shared, store, ns, transmit, duty=settings.duty)
    store.warm()
    if delivery is not None:
        delivery.start()
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
                    rx = parse_rxpk(obj)
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
    if delivery is not None:
        delivery.stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2) or (len(args) == 2 and args[0] != "--config"):
        sys.stderr.write(
            "usage: python -m havel.gateway.network.shared.roofd SETTINGS.json | --config GATEWAY.toml\n"
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if len(args) == 2:
            cfg = config.load(args[1])
            run(settings_from_config(cfg), cfg)
            return 0
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
