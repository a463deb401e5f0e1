"""The asyncio UDP server the packet forwarders talk to (Semtech GWMP v1/v2); moves bytes only.

- PUSH_DATA is acknowledged at once (the protocol never retransmits); with ``defer_acks`` (the daemon) the
  PUSH_ACK waits only for the intake journal's next group commit (a few milliseconds), so an acknowledged
  rxpk is on disk. Datagrams without rxpk (stat only) are acknowledged immediately.
- PULL_DATA is answered with PULL_ACK and its source address remembered: that is where PULL_RESP goes.
- TX_ACK with an error makes the server send the downlink's RX2 fallback, if it has one.
- ``stat`` reports are kept per forwarder as gateway health.
- A forwarder that sends nothing (no PUSH_DATA, no PULL_DATA keepalive) for ``silent_after_s`` raises an
  alarm (log, metric, status callback) once, and a recovery message when it speaks again.

GWMP has no authentication: anyone who can send a datagram to the port can claim any gateway EUI. So,
before a datagram's JSON is read:

- each source IP address is rate-limited (``max_datagrams_per_s``, a token bucket per address, at most
  :data:`MAX_SOURCES` addresses remembered);
- only the gateway EUIs in ``allowed_gateways`` are served; with an empty list, the first EUI heard is
  accepted (logged as a warning) and every other one refused. Nothing is kept for a refused EUI, so
  spoofed EUIs cannot grow the server's state or raise silence alarms;
- an EUI is pinned to the IP address it first spoke from, and its downlink address (where PULL_RESP goes)
  to the address and port of its PULL_DATA: another address is refused while the forwarder is alive (a
  restarted forwarder's new port takes over once the old one has sent no PULL_DATA for
  :data:`PULL_MOVE_AFTER_S` or ``silent_after_s``, whichever is shorter; a new IP address once the
  forwarder was silent).

Refused datagrams get no answer and are counted in ``datagrams_rejected_total`` by reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from havel.codecs.lorawan.ids import eui_hex
from havel.gateway import gwmp
from havel.gateway.gwmp import GwmpError, RxPacket, Stat
from havel.gateway.metrics import Metrics

log = logging.getLogger("havel.gateway.udp")

Addr = tuple[str, int]
_PENDING_TX_TTL_S = 30.0
RCVBUF_BYTES = 4 << 20
MAX_SOURCES = 1024  # source addresses whose rate is tracked (the least recently heard is forgotten)
MAX_RXPK = 255  # rxpk in one PUSH_DATA: a concentrator delivers at most this many per fetch
PULL_MOVE_AFTER_S = 30.0  # the downlink address may move to a new port after this long without PULL_DATA
_MAX_LOGGED_STRANGERS = 8  # refused EUIs logged as warnings (the rest at debug level; all are counted)


def is_loopback(host: str) -> bool:
    """Whether a bind address is reachable only from this host."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass
class PacketForwarder:
    """What the server knows of one packet forwarder (one concentrator)."""

    eui: int
    version: int = 2
    host: str | None = None  # the IP address it is pinned to
    push_addr: Addr | None = None
    pull_addr: Addr | None = None
    pull_at: float = 0.0  # monotonic time of the last PULL_DATA from pull_addr
    last_seen: float = 0.0  # monotonic
    last_seen_wall: float = 0.0  # unix time, for status output
    stat: Stat | None = None
    stat_at: float | None = None
    silent: bool = False
    rx_count: int = 0
    tx_count: int = 0

    def health(self, now_mono: float) -> dict[str, Any]:
        """JSON-ready health of this forwarder."""
        return {
            "gateway": eui_hex(self.eui),
            "version": self.version,
            "address": self.host,
            "silent": self.silent,
            "seen_s_ago": round(now_mono - self.last_seen, 1),
            "downlink_ready": self.pull_addr is not None,
            "rx": self.rx_count,
            "tx": self.tx_count,
            "stat": self.stat.as_dict() if self.stat else None,
        }


@dataclass
class _PendingTx:
    forwarder: int
    fallback: dict[str, Any] | None
    sent_at: float
    info: Any = None
    done: bool = False
    tried: list[str] = field(default_factory=list)


RxHandler = Callable[[int, RxPacket, datetime], None]
TxDone = Callable[[Any, str], None]  # (info, "NONE" | error) when a downlink's fate is known
SilenceHandler = Callable[[PacketForwarder, bool], None]  # (forwarder, silent?)
PushHandler = Callable[[int, bytes, datetime, list[tuple[int, RxPacket]]], None]


class _Bucket:
    """A token bucket of one source address."""

    __slots__ = ("at", "tokens", "warned")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at
        self.warned = False


class GwmpServer(asyncio.DatagramProtocol):
    """See the module docstring. ``on_rx(gateway_eui, rxpk, now)`` gets every readable rxpk (CRC-bad
    ones too: the network server counts and drops them). With ``on_push``, that gets them instead, all of
    a PUSH_DATA in one call: ``on_push(gateway_eui, datagram, now, [(index in its rxpk list, rxpk)])``
    (the daemon journals the datagram itself).

    ``allowed_gateways``: the EUIs served (empty: the first one heard); ``max_datagrams_per_s``: the
    rate allowed from one source address (bursts of up to one second's worth)."""

    def __init__(
        self,
        on_rx: RxHandler,
        metrics: Metrics,
        *,
        silent_after_s: float = 90.0,
        on_tx_done: TxDone | None = None,
        on_silence: SilenceHandler | None = None,
        on_push: PushHandler | None = None,
        allowed_gateways: Collection[int] = (),
        max_datagrams_per_s: float = 2000.0,
    ) -> None:
        self.on_rx = on_rx
        self.allowed: frozenset[int] = frozenset(allowed_gateways)
        self.rate = float(max_datagrams_per_s)
        self._burst = max(self.rate, 10.0)
        self._sources: OrderedDict[str, _Bucket] = OrderedDict()
        self._strangers: set[int] = set()  # refused EUIs already logged as warnings
        self.on_push = on_push
        self.metrics = metrics
        self.silent_after_s = silent_after_s
        self.on_tx_done = on_tx_done
        self.on_silence = on_silence
        # gets PUSH_DATA that carry ``stat`` but no readable rxpk, as they came (upstream mode forwards them)
        self.on_stat: Callable[[int, bytes], None] | None = None
        self.forwarders: dict[int, PacketForwarder] = {}
        # With defer_acks, PUSH_ACKs of datagrams that carried rxpk wait for release_acks() (called by the
        # daemon right after the intake journal's group commit, a few milliseconds later).
        self.defer_acks = False
        self._acks: list[tuple[bytes, Addr]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self._pending_tx: dict[int, _PendingTx] = {}
        self._addr: Addr | None = None
        m = metrics
        m.describe("datagrams_total", "counter", "GWMP datagrams received, by type")
        m.describe("datagrams_rejected_total", "counter", "GWMP datagrams rejected, by reason")
        m.describe(
            "fields_rejected_total",
            "counter",
            "rxpk and stat objects rejected, by object and the field at fault",
        )
        m.describe("rxpk_total", "counter", "rxpk received from the forwarders")
        m.describe("forwarder_silent", "gauge", "1 when a forwarder fell silent")
        m.describe("downlinks_tx_total", "counter", "PULL_RESP sent, by window")
        m.describe("downlinks_tx_ack_total", "counter", "TX_ACK received, by error")

    # ------------------------------------------------------------------------------------ lifecycle
    async def start(self, host: str, port: int) -> Addr:
        """Bind and serve; returns the bound address (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        self.transport = transport
        raw = transport.get_extra_info("socket")
        if raw is not None:  # room for bursts from many forwarders (the kernel caps it at net.core.rmem_max)
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        sock = transport.get_extra_info("sockname")
        self._addr = (str(sock[0]), int(sock[1]))
        if not is_loopback(host):
            log.warning(
                "GWMP listens on %s:%d, beyond this host: the protocol has no authentication, so allow only "
                "your concentrators' addresses to it with a firewall rule (docs/gateway.md)",
                self._addr[0],
                self._addr[1],
            )
        return self._addr

    def close(self) -> None:
        """Stop serving."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    @property
    def address(self) -> Addr | None:
        """The bound address."""
        return self._addr

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a forwarder that went away: not ours to fix, but worth a debug line.
        log.debug("UDP error: %s", exc)

    # ------------------------------------------------------------------------------------- receive
    def datagram_received(self, data: bytes, addr: Addr) -> None:
        try:
            self._receive(data, addr)
        except Exception:  # a bug here must not cost the datagrams after this one
            self.metrics.inc("datagrams_rejected_total", reason="internal")
            log.exception("datagram from %s:%d could not be handled", addr[0], addr[1])

    def _receive(self, data: bytes, addr: Addr) -> None:
        if not self._admit_source(addr[0]):
            self.metrics.inc("datagrams_rejected_total", reason="rate_limited")
            return
        try:
            _, _, ident, eui = gwmp.header(data)  # refuse strangers before reading their JSON
            if eui is not None and not self._admit_gateway(eui, addr, ident):
                return
            dg = gwmp.parse(data)
        except GwmpError as exc:
            self.metrics.inc("datagrams_rejected_total", reason=exc.reason)
            log.debug("rejected datagram from %s:%d: %s", addr[0], addr[1], exc)
            return
        self.metrics.inc("datagrams_total", type=dg.kind)
        if dg.identifier == gwmp.PUSH_DATA:
            ack = gwmp.encode_push_ack(dg.version, dg.token)
            handed = self._push_data(dg, addr, data)
            if handed is None:  # refused as a whole: no answer
                return
            if handed and self.defer_acks:
                # rxpk handed on: ACK once they are journaled (see release_acks)
                self._acks.append((ack, addr))
            else:
                self._sendto(ack, addr)
        elif dg.identifier == gwmp.PULL_DATA:
            fwd = self._seen(dg, addr)
            fwd.pull_addr = addr
            fwd.pull_at = fwd.last_seen
            self._sendto(gwmp.encode_pull_ack(dg.version, dg.token), addr)
        elif dg.identifier == gwmp.TX_ACK:
            self._seen(dg, addr)
            self._tx_ack(dg)
        else:
            self.metrics.inc("datagrams_rejected_total", reason="direction")
            log.debug("%s from %s:%d is a server-to-forwarder message", dg.kind, addr[0], addr[1])

    def _admit_source(self, host: str) -> bool:
        """Token bucket per source address: whether this datagram is within the allowed rate."""
        now = time.monotonic()
        sources = self._sources
        bucket = sources.get(host)
        if bucket is None:
            bucket = sources[host] = _Bucket(self._burst, now)
            if len(sources) > MAX_SOURCES:
                sources.popitem(last=False)
        else:
            sources.move_to_end(host)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        if not bucket.warned:
            bucket.warned = True
            log.warning(
                "datagrams from %s exceed %g per second: the excess is dropped (udp.max_datagrams_per_s)",
                host,
                self.rate,
            )
        return False

    def _admit_gateway(self, eui: int, addr: Addr, ident: int) -> bool:
        """Whether a datagram claiming ``eui`` from ``addr`` is served; counts and logs a refusal."""
        fwd = self.forwarders.get(eui)
        if fwd is None:
            if self.allowed:
                if eui in self.allowed:
                    return True
            elif not self.forwarders:
                log.warning(
                    "udp.allowed_gateways is empty: serving packet forwarder %s (from %s), the first one "
                    "heard, and refusing every other gateway EUI; list your concentrators in "
                    "[udp] allowed_gateways",
                    eui_hex(eui),
                    addr[0],
                )
                return True
            return self._refuse("gateway_not_allowed", eui, addr, "is not in udp.allowed_gateways")
        if addr[0] != fwd.host:
            if not fwd.silent:
                return self._refuse("address", eui, addr, f"is pinned to {fwd.host} while it is alive")
            log.warning(
                "packet forwarder %s moved from %s to %s (after falling silent)",
                eui_hex(eui),
                fwd.host,
                addr[0],
            )
            fwd.host = addr[0]
            fwd.pull_addr = None
        if ident == gwmp.PULL_DATA and fwd.pull_addr is not None and addr != fwd.pull_addr:
            quiet_s = min(PULL_MOVE_AFTER_S, self.silent_after_s)
            if not fwd.silent and time.monotonic() - fwd.pull_at < quiet_s:
                # another socket claiming the downlink path while the forwarder's own one keeps it alive
                return self._refuse(
                    "pull_address", eui, addr, f"already pulls from {fwd.pull_addr[0]}:{fwd.pull_addr[1]}"
                )
            log.info(
                "packet forwarder %s now pulls from port %d (was %d: restarted?)",
                eui_hex(eui),
                addr[1],
                fwd.pull_addr[1],
            )
        return True

    def _refuse(self, reason: str, eui: int, addr: Addr, why: str) -> bool:
        self.metrics.inc("datagrams_rejected_total", reason=reason)
        strangers = self._strangers
        if eui not in strangers and len(strangers) < _MAX_LOGGED_STRANGERS:
            strangers.add(eui)
            log.warning(
                "refused datagrams of gateway %s from %s:%d: it %s%s",
                eui_hex(eui),
                addr[0],
                addr[1],
                why,
                ""
                if len(strangers) < _MAX_LOGGED_STRANGERS
                else " (further gateways refused are only "
                "counted in datagrams_rejected_total and logged at debug level)",
            )
        else:
            log.debug(
                "refused datagram of gateway %s from %s:%d (%s)", eui_hex(eui), addr[0], addr[1], reason
            )
        return False

    def _seen(self, dg: gwmp.Datagram, addr: Addr) -> PacketForwarder:
        assert dg.gateway_eui is not None
        fwd = self.forwarders.get(dg.gateway_eui)
        if fwd is None:  # (admitted by _admit_gateway: allowed, or the first one heard)
            fwd = self.forwarders[dg.gateway_eui] = PacketForwarder(dg.gateway_eui, host=addr[0])
            log.info(
                "packet forwarder %s connected from %s:%d (protocol v%d)",
                eui_hex(dg.gateway_eui),
                addr[0],
                addr[1],
                dg.version,
            )
        fwd.version = dg.version
        fwd.last_seen = time.monotonic()
        fwd.last_seen_wall = time.time()
        if fwd.silent:
            fwd.silent = False
            self.metrics.set("forwarder_silent", 0, gateway=eui_hex(fwd.eui))
            log.warning("packet forwarder %s speaks again", eui_hex(fwd.eui))
            if self.on_silence:
                self.on_silence(fwd, False)
        return fwd

    def release_acks(self) -> int:
        """Send the PUSH_ACKs held back until their rxpk were journaled; returns how many."""
        acks, self._acks = self._acks, []
        for data, addr in acks:
            self._sendto(data, addr)
        return len(acks)

    def withhold_acks(self) -> int:
        """Drop the PUSH_ACKs held back for rxpk that could not be journaled: a PUSH_ACK means stored, so
        none goes out for them. Returns how many."""
        acks, self._acks = self._acks, []
        return len(acks)

    def _push_data(self, dg: gwmp.Datagram, addr: Addr, data: bytes) -> bool | None:
        """Returns whether any rxpk was handed on; None when the datagram is refused as a whole."""
        rxpks = dg.payload.get("rxpk", [])
        if not isinstance(rxpks, list):
            self.metrics.inc("datagrams_rejected_total", reason="rxpk")
            rxpks = []
        elif len(rxpks) > MAX_RXPK:
            # no concentrator sends this many: refused before anything is stored or acknowledged
            self.metrics.inc("datagrams_rejected_total", reason="rxpk_count")
            log.debug("PUSH_DATA from %s:%d with %d rxpk refused", addr[0], addr[1], len(rxpks))
            return None
        fwd = self._seen(dg, addr)
        fwd.push_addr = addr
        now = datetime.now(UTC)
        stat = dg.payload.get("stat")
        if stat is not None:
            try:
                fwd.stat = gwmp.parse_stat(stat)
                fwd.stat_at = time.time()
            except GwmpError as exc:
                self._field_rejected(exc)
                log.debug("unreadable stat from %s: %s", eui_hex(fwd.eui), exc)
        readable: list[tuple[int, RxPacket]] = []
        for index, obj in enumerate(rxpks):
            try:
                readable.append((index, gwmp.parse_rxpk(obj)))
            except GwmpError as exc:  # each rxpk is judged alone: the others of the datagram go on
                self._field_rejected(exc)
                log.debug("unreadable rxpk from %s: %s", eui_hex(fwd.eui), exc)
        handed = len(readable)
        if not readable and stat is not None and self.on_stat is not None:
            self.on_stat(fwd.eui, data)
        if self.on_push is not None:
            if readable:
                self.on_push(fwd.eui, data, now, readable)
        else:
            for _, rx in readable:
                self.on_rx(fwd.eui, rx, now)
        if handed:
            fwd.rx_count += handed
            self.metrics.inc("rxpk_total", handed)
        return handed > 0

    def _field_rejected(self, exc: GwmpError) -> None:
        self.metrics.inc("datagrams_rejected_total", reason=exc.reason)
        self.metrics.inc("fields_rejected_total", object=exc.reason, field=exc.field or "?")

    # ------------------------------------------------------------------------------------ downlinks
    def can_send(self, gateway_eui: int) -> bool:
        """Whether this forwarder told us where to send (PULL_DATA seen) and is not silent."""
        fwd = self.forwarders.get(gateway_eui)
        return fwd is not None and fwd.pull_addr is not None and not fwd.silent

    def send(
        self,
        gateway_eui: int,
        txpk: dict[str, Any],
        *,
        fallback: dict[str, Any] | None = None,
        info: Any = None,
        window: str = "RX1",
    ) -> bool:
        """PULL_RESP one txpk; ``fallback`` is sent instead when the TX_ACK reports an error."""
        fwd = self.forwarders.get(gateway_eui)
        if fwd is None or fwd.pull_addr is None:
            return False
        token = secrets.randbits(16)
        while token in self._pending_tx:
            token = secrets.randbits(16)
        self._sendto(gwmp.encode_pull_resp(fwd.version, token, txpk), fwd.pull_addr)
        fwd.tx_count += 1
        self.metrics.inc("downlinks_tx_total", window=window)
        if fwd.version >= 2:
            self._pending_tx[token] = _PendingTx(gateway_eui, fallback, time.monotonic(), info)
        elif self.on_tx_done:  # v1 has no TX_ACK: the forwarder took it, that is all we will know
            self.on_tx_done(info, "NONE")
        return True

    def _tx_ack(self, dg: gwmp.Datagram) -> None:
        err = gwmp.tx_ack_error(dg)
        self.metrics.inc("downlinks_tx_ack_total", error=err)
        pending = self._pending_tx.get(dg.token)
        if pending is None or pending.forwarder != dg.gateway_eui:
            return  # not ours, or another gateway's ACK with a token that happens to match
        del self._pending_tx[dg.token]
        if err != "NONE" and pending.fallback is not None and dg.gateway_eui is not None:
            log.info("downlink via %s failed (%s): trying RX2", eui_hex(dg.gateway_eui), err)
            fb, pending.fallback = pending.fallback, None
            self.send(dg.gateway_eui, fb, fallback=None, info=pending.info, window="RX2")
            return
        if err != "NONE":
            log.warning("downlink via %s failed: %s", eui_hex(pending.forwarder), err)
        if self.on_tx_done:
            self.on_tx_done(pending.info, err)

    # ------------------------------------------------------------------------------------ watchdog
    def check(self, now_mono: float | None = None) -> list[PacketForwarder]:
        """Mark forwarders silent for longer than ``silent_after_s``; returns the newly silent ones.
        Also forgets downlinks whose TX_ACK never came."""
        now = time.monotonic() if now_mono is None else now_mono
        newly = []
        for fwd in self.forwarders.values():
            if not fwd.silent and now - fwd.last_seen > self.silent_after_s:
                fwd.silent = True
                newly.append(fwd)
                self.metrics.set("forwarder_silent", 1, gateway=eui_hex(fwd.eui))
                log.error(
                    "ALARM: packet forwarder %s silent for %.0f s (no PUSH_DATA or PULL_DATA)",
                    eui_hex(fwd.eui),
                    now - fwd.last_seen,
                )
                if self.on_silence:
                    self.on_silence(fwd, True)
        for token, p in list(self._pending_tx.items()):
            if now - p.sent_at > _PENDING_TX_TTL_S:
                del self._pending_tx[token]
        return newly

    def health(self) -> list[dict[str, Any]]:
        """Health of every forwarder seen."""
        now = time.monotonic()
        return [f.health(now) for f in self.forwarders.values()]

    def _sendto(self, data: bytes, addr: Addr) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)
