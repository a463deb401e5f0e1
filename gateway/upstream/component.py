"""``[upstream]``: this gateway in front of one or more network servers (the city's, a Lab test server).

Every frame the packet forwarders deliver is routed by device:

- **local**: a device in Havel's registry that is not listed in ``follow``: served by Havel's own network
  server (joins, ADR, MAC commands, downlinks), as in standalone mode; it does not go upstream.
- **followed**: a registry device listed in ``follow``: its frames go upstream, the upstream server answers
  it, and Havel follows its session passively (:mod:`havel.gateway.network.following`) to decode its
  readings into the outbox (for the platform and the relay) without ever answering it.
- **upstream**: every other device: its frames go upstream untouched and Havel does nothing else with them.

The upstream servers stay authoritative for joins, ADR, MAC commands and downlinks of the devices they
serve: PULL_RESP from a server goes to the concentrator, its TX_ACK back (:mod:`.link`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from havel.codecs.lorawan import phy
from havel.codecs.lorawan.ids import eui_hex
from havel.errors import FrameError, InputError
from havel.gateway import db
from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.backends.semtech_udp.server import GwmpServer
from havel.gateway.network.following import Follower
from havel.gateway.network.messages import MessageBuilder, compiled_codec
from havel.gateway.network.reception import RadioFrame, reception
from havel.gateway.sections import UpstreamSection, UpstreamServer, relay_rules
from havel.gateway.upstream.link import Filter, UpstreamLink, UpstreamTx

if TYPE_CHECKING:
    from havel.gateway.components import DaemonContext

log = logging.getLogger("havel.gateway.upstream")

OPEN_EVERY_S = 0.5  # how soon a concentrator that pulls gets its path to the servers
SAVE_EVERY_S = 10.0  # followed sessions' counters are written this often (and at stop)


def link_filter(server: UpstreamServer) -> Filter:
    """Which frames go to this server (its DevAddr prefixes and JoinEUIs; none: every frame)."""
    return Filter(list(server.dev_addr_prefixes), frozenset(server.join_euis))


class Upstream:
    """The ``[upstream]`` component (module docstring)."""

    def __init__(self, ctx: DaemonContext, section: UpstreamSection) -> None:
        self.servers = section.server
        self.follow = frozenset(section.follow)
        self.ctx = ctx
        self.gateway = ctx.gateway
        self.registry = ctx.registry
        self.metrics = ctx.metrics
        self.links: list[UpstreamLink] = []
        self.udp: GwmpServer | None = None  # the daemon's GWMP backend, once started
        p = Path(section.sessions_file)
        self.follower = Follower(
            self._followed_device,
            # the relay's rules raise a reading's priority as they do for local devices
            MessageBuilder(compiled_codec, relay_rules(ctx.config.relay)),
            self._store,
            ctx.metrics,
            p if p.is_absolute() else Path(ctx.config.data_dir) / p,
            listeners=ctx.gateway.outcome_listeners,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._saver: asyncio.Task[None] | None = None
        self._opener: asyncio.Task[None] | None = None
        m = ctx.metrics
        m.describe("upstream_up", "gauge", "1 while the upstream network server answers")
        m.describe("upstream_state_changes", "gauge", "times an upstream server went down or came back")
        m.describe("upstream_datagrams_sent_total", "counter", "GWMP datagrams sent upstream, by type")
        m.describe("upstream_datagrams_received_total", "counter", "GWMP datagrams from upstream, by type")
        m.describe(
            "upstream_datagrams_rejected_total", "counter", "datagrams from upstream refused, by reason"
        )
        m.describe("upstream_not_forwarded_total", "counter", "PUSH_DATA not sent upstream, by reason")
        m.describe(
            "upstream_acks_missing_total", "counter", "PUSH_DATA and PULL_DATA upstream never acknowledged"
        )
        m.describe("upstream_errors_total", "counter", "socket errors towards upstream, by error")
        m.describe("upstream_frames_total", "counter", "received frames by the mode of their device")

    # ------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        gw = self.gateway
        try:
            self.follower.load()
        except InputError as exc:
            # not a reason to stop the roof: the sessions come back with the devices' next joins (ABP ones
            # at once, from the registry); the damaged file is kept aside for a look
            aside = self.follower.path.with_name(f"{self.follower.path.name}.damaged-{int(time.time())}")
            with contextlib.suppress(OSError):
                self.follower.path.rename(aside)
            self.metrics.inc("followed_total", what="sessions_file_damaged")
            log.error("%s; moved aside to %s, following starts without sessions", exc, aside.name)
        self._import_abp()
        for s in self.servers:
            link = UpstreamLink(
                s.name,
                s.host,
                s.port,
                self.metrics,
                filter=link_filter(s),
                keepalive_s=s.keepalive_s,
                down_after_s=s.down_after_s,
                up_after=s.up_after,
                deliver=self._deliver,
                on_state=self._on_state,
                on_downlink=self._on_downlink,
            )
            link.start()
            self.links.append(link)
        # route every PUSH_DATA through this component; the daemon's intake gets the local devices' frames
        udp = gw.udp
        assert udp is not None and udp.on_push is not None, "the daemon binds GWMP before components start"
        self.udp = udp
        self._intake_push = udp.on_push
        udp.on_push = self.on_push
        udp.on_stat = self.on_stat
        self._tx_done = udp.on_tx_done
        udp.on_tx_done = self._on_tx_done
        loop = asyncio.get_running_loop()
        self._saver = loop.create_task(self._save_loop(), name="upstream-sessions")
        self._opener = loop.create_task(self._open_loop(), name="upstream-paths")
        local = sum(1 for d in self.registry.devices() if d.dev_eui not in self.follow)
        log.info(
            "upstream mode: %d device(s) served locally, %d followed, every other device served by %s",
            local,
            len(self.follow),
            ", ".join(f"{s.name} ({s.host}:{s.port})" for s in self.servers),
        )

    async def stop(self) -> None:
        for task in (self._saver, self._opener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for t in list(self._tasks):
            with contextlib.suppress(Exception):
                await t
        for link in self.links:
            await link.stop()
        with contextlib.suppress(OSError):
            self.follower.save()

    async def _open_loop(self) -> None:
        """Open a concentrator's path to every server as soon as it pulls from this gateway (as a packet
        forwarder would at its start), so that the servers can send it downlinks before its first uplink."""
        while True:
            try:
                for eui, fwd in list(self.udp.forwarders.items() if self.udp is not None else ()):
                    if fwd.pull_addr is None or fwd.silent:
                        continue
                    for link in self.links:
                        if not link.has_channel(eui):
                            with contextlib.suppress(OSError):
                                await link.channel(eui, fwd.version)
            except Exception:
                log.exception("upstream: opening the concentrators' paths failed")
            await asyncio.sleep(OPEN_EVERY_S)

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY_S)
            try:
                self.follower.save()
            except OSError as exc:
                log.error("followed sessions not saved: %s", exc)

    def _import_abp(self) -> None:
        """ABP devices listed in ``follow`` are followed with the session the registry holds."""
        for eui in self.follow:
            dev = self.registry.get(eui)
            if dev is None:
                log.warning(
                    "upstream.follow lists %s, which is not in the registry: not followed", eui_hex(eui)
                )
                continue
            s = dev.session
            if dev.activation == "abp" and s is not None and eui not in self.follower.sessions:
                self.follower.import_session(eui, s.dev_addr, s.nwk_s_key, s.app_s_key)

    # ------------------------------------------------------------------------------------------ modes
    def mode(self, dev_eui: int) -> str:
        """ "local", "followed" or "upstream": who serves this device (module docstring)."""
        if dev_eui in self.follow:
            return "followed"
        return "local" if self.registry.get(dev_eui) is not None else "upstream"

    def _followed_device(self, dev_eui: int) -> Any:
        return self.registry.get(dev_eui) if dev_eui in self.follow else None

    def _route(self, data: bytes) -> tuple[str, Any]:
        """(mode, parsed frame or None) of one received frame."""
        try:
            frame = phy.parse(data)
        except FrameError:
            return "upstream", None
        if isinstance(frame, phy.JoinRequest):
            dev = self.registry.by_join(frame.join_eui, frame.dev_eui)
            if dev is None:
                return "upstream", frame
            return ("followed" if dev.dev_eui in self.follow else "local"), frame
        if isinstance(frame, phy.DataFrame) and frame.uplink:
            if self.follower.follows_addr(frame.dev_addr):
                return "followed", frame
            if any(d.dev_eui not in self.follow for d in self.registry.by_dev_addr(frame.dev_addr)):
                return "local", frame
        return "upstream", frame

    # ------------------------------------------------------------------------------------- uplinks
    def on_push(
        self, gateway_eui: int, datagram: bytes, now: datetime, rxs: Sequence[tuple[int, RadioFrame]]
    ) -> None:
        local: list[tuple[int, Any]] = []  # (the backend's own packets, handed back to it as they came)
        up: dict[int, list[int]] = {}  # link index -> rxpk indexes
        followed: list[tuple[phy.DataFrame, Any]] = []
        for index, rx in rxs:
            mode, frame = self._route(rx.data) if rx.crc_ok else ("upstream", None)
            self.metrics.inc("upstream_frames_total", mode=mode)
            if mode == "local":
                local.append((index, rx))
                continue
            for i, link in enumerate(self.links):
                if self._wants(link, frame):
                    up.setdefault(i, []).append(index)
            if mode == "followed":
                if isinstance(frame, phy.JoinRequest):
                    dev = self.registry.by_join(frame.join_eui, frame.dev_eui)
                    if dev is not None:
                        self.follower.on_join_request(dev, frame, heard=(gateway_eui, rx.tmst))
                elif isinstance(frame, phy.DataFrame):
                    followed.append((frame, reception(gateway_eui, rx, now)))
        if up:  # first: the network server's receive windows are running, the local work can wait
            self._forward(gateway_eui, datagram, up)
        # the intake always gets the call: it releases the PUSH_ACK after its next journal commit
        self._intake_push(gateway_eui, datagram, now, local)
        if followed:
            self.follower.on_uplinks(followed)

    @staticmethod
    def _wants(link: UpstreamLink, frame: Any) -> bool:
        if isinstance(frame, phy.JoinRequest):
            return link.filter.wants_join(frame.join_eui)
        if isinstance(frame, phy.DataFrame):
            return link.filter.wants_data(frame.dev_addr)
        return link.filter.open

    def _forward(self, gateway_eui: int, datagram: bytes, up: dict[int, list[int]]) -> None:
        version, token = datagram[0], int.from_bytes(datagram[1:3], "big")
        body: dict[str, Any] | None = None
        for i, indexes in up.items():
            if body is None:
                body = gwmp.parse(datagram).payload
            rxpk = body.get("rxpk", [])
            if len(indexes) == len(rxpk):
                out = datagram  # all of it for this server: the forwarder's bytes as they came
            else:
                out = gwmp.encode_push_data(
                    version, token, gateway_eui, rxpk=[rxpk[j] for j in indexes], stat=body.get("stat")
                )
            self._push(self.links[i], gateway_eui, version, out)

    def on_stat(self, gateway_eui: int, datagram: bytes) -> None:
        """A PUSH_DATA with only ``stat``: to every server, as it came."""
        for link in self.links:
            self._push(link, gateway_eui, datagram[0], datagram)

    def _push(self, link: UpstreamLink, gateway_eui: int, version: int, datagram: bytes) -> None:
        # at once when the concentrator's socket is open (no task, no wait); else open it first
        if link.push_now(gateway_eui, version, datagram) is None:
            self._spawn(link.push(gateway_eui, version, datagram))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _store(self, records: list[dict[str, Any]]) -> int:
        with db.unit_of_work(self.ctx.conn):
            n = self.ctx.outbox.put_many(records)
        nb = self.gateway.northbound
        if nb is not None:
            nb.poke()
        return n

    # ----------------------------------------------------------------------------------- downlinks
    def _on_downlink(self, data: bytes, gateway_eui: int, tmst: int | None) -> None:
        self.follower.on_downlink(data, gateway_eui=gateway_eui, tmst=tmst)

    def _deliver(self, gateway_eui: int, txpk: dict[str, Any], tx: UpstreamTx) -> bool:
        return self.udp is not None and bool(self.udp.send(gateway_eui, txpk, info=tx, window="upstream"))

    def _on_tx_done(self, info: Any, error: str) -> None:
        if isinstance(info, UpstreamTx):
            info.link.tx_done(info, error)
        elif self._tx_done is not None:
            self._tx_done(info, error)

    def _on_state(self, link: UpstreamLink, up: bool) -> None:
        details = {"upstream": link.name, "address": f"{link.host}:{link.port}"}
        self.gateway.emit_event("upstream_back" if up else "upstream_down", details)

    def health(self) -> dict[str, Any]:
        return {
            "servers": {link.name: link.health() for link in self.links},
            "followed": {
                eui_hex(e): {
                    "session_epoch": self.follower.sessions[e].epoch if e in self.follower.sessions else None,
                    "dev_addr": f"{self.follower.sessions[e].dev_addr:08X}"
                    if e in self.follower.sessions
                    else None,
                }
                for e in sorted(self.follow)
            },
        }
