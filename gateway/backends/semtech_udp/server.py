"""The asyncio UDP server the packet forwarders talk to (Semtech GWMP v1/v2); moves bytes only.

- PUSH_DATA is acknowledged at once (the protocol never retransmits); with ``defer_acks`` (the daemon) the
  PUSH_ACK waits only for the intake journal's next group commit (a few milliseconds), so an acknowledged
  rxpk is on disk. Datagrams without rxpk (stat only) are acknowledged immediately.
- PULL_DATA is answered with PULL_ACK and its source address remembered: that is where PULL_RESP goes.
- TX_ACK with an error makes the server send the downlink's RX2 fallback, if it has one.
- ``stat`` reports are kept per forwarder as gateway health.
- A forwarder that sends nothing for ``silent_after_s`` raises an alarm once, and a recovery message when
  it speaks again.

GWMP has no authentication, so a datagram's source address is rate-limited and its gateway EUI and
address checked before its JSON is read (:mod:`.forwarders` says how). Refused datagrams get no answer
and are counted in ``datagrams_rejected_total`` by reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from havel.codecs.lorawan.ids import eui_hex
from havel.gateway.backends.base import DownlinkFrame
from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.backends.semtech_udp.forwarders import (
    Addr,
    Forwarders,
    PacketForwarder,
    SilenceHandler,
    SourceLimiter,
)
from havel.gateway.backends.semtech_udp.gwmp import GwmpError
from havel.gateway.backends.semtech_udp.rxpk import RxPacket, parse_rxpk, parse_stat
from havel.gateway.backends.semtech_udp.txpk import txpk_of
from havel.gateway.metrics import Metrics

log = logging.getLogger("havel.gateway.udp")

_PENDING_TX_TTL_S = 30.0
RCVBUF_BYTES = 4 << 20
MAX_RXPK = 255  # rxpk in one PUSH_DATA: a concentrator delivers at most this many per fetch


def is_loopback(host: str) -> bool:
    """Whether a bind address is reachable only from this host."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


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
PushHandler = Callable[[int, bytes, datetime, list[tuple[int, RxPacket]]], None]


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
        self.sources = SourceLimiter(max_datagrams_per_s)
        self.table = Forwarders(
            metrics, allowed=allowed_gateways, silent_after_s=silent_after_s, on_silence=on_silence
        )
        self.on_push = on_push
        self.metrics = metrics
        self.on_tx_done = on_tx_done
        # gets PUSH_DATA that carry ``stat`` but no readable rxpk, as they came (upstream mode forwards them)
        self.on_stat: Callable[[int, bytes], None] | None = None
        self.forwarders: dict[int, PacketForwarder] = self.table.by_eui  # (the same dict)
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
        if not self.sources.admit(addr[0]):
            self.metrics.inc("datagrams_rejected_total", reason="rate_limited")
            return
        try:
            _, _, ident, eui = gwmp.header(data)  # refuse strangers before reading their JSON
            if eui is not None and not self.table.admit(eui, addr, ident):
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

    def _seen(self, dg: gwmp.Datagram, addr: Addr) -> PacketForwarder:
        assert dg.gateway_eui is not None
        return self.table.seen(dg.gateway_eui, dg.version, addr)

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
                fwd.stat = parse_stat(stat)
                fwd.stat_at = time.time()
            except GwmpError as exc:
                self._field_rejected(exc)
                log.debug("unreadable stat from %s: %s", eui_hex(fwd.eui), exc)
        readable: list[tuple[int, RxPacket]] = []
        for index, obj in enumerate(rxpks):
            try:
                readable.append((index, parse_rxpk(obj)))
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
        """PULL_RESP one txpk as it is (upstream mode passes a server's txpk on); ``fallback`` is sent
        instead when the TX_ACK reports an error."""
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

    def transmit(
        self,
        gateway_eui: int,
        frame: DownlinkFrame,
        *,
        fallback: DownlinkFrame | None = None,
        info: Any = None,
        window: str = "RX1",
    ) -> bool:
        """:meth:`send` of a backend-neutral frame (the daemon's downlinks): each becomes a txpk here."""
        fb = txpk_of(fallback) if fallback is not None else None
        return self.send(gateway_eui, txpk_of(frame), fallback=fb, info=info, window=window)

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
        newly = self.table.check(now)
        for token, p in list(self._pending_tx.items()):
            if now - p.sent_at > _PENDING_TX_TTL_S:
                del self._pending_tx[token]
        return newly

    def health(self) -> list[dict[str, Any]]:
        """Health of every forwarder seen."""
        return self.table.health()

    def _sendto(self, data: bytes, addr: Addr) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)
