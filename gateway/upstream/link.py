"""One upstream network server reached over GWMP, as the packet forwarders themselves would reach it.

For every concentrator (gateway EUI) behind this gateway the link keeps its own UDP socket to the server,
as a packet forwarder does: PUSH_DATA goes up (the forwarder's datagram byte for byte when all of it is
for this server), PULL_DATA keep-alives go up under the concentrator's EUI, PULL_RESP from the server is
handed to the concentrator and its TX_ACK goes back with the server's token.

The link tracks the server's answers (PUSH_ACK, PULL_ACK) to tell whether it is reachable, with hysteresis:
down after ``down_after_s`` without any answer while datagrams went up, up again after ``up_after``
answers in a row. While down nothing but the keep-alives goes up (one per ``keepalive_s``): uplinks are
not queued for later, because a network server must not get frames whose receive windows are long gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from havel.codecs.lorawan.ids import eui_hex
from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.backends.semtech_udp.gwmp import GwmpError
from havel.gateway.backends.semtech_udp.txpk import txpk_data
from havel.gateway.metrics import Metrics

log = logging.getLogger("havel.gateway.upstream")

MAX_OUTSTANDING = 256  # PUSH_DATA/PULL_DATA tokens awaiting their ACK per concentrator
ACK_WAIT_S = 5.0  # an ACK later than this is counted as missing (the token is forgotten)


@dataclass
class UpstreamTx:
    """A downlink the upstream server asked for: what the TX_ACK going back needs."""

    link: UpstreamLink
    gateway_eui: int
    token: int
    version: int


Deliver = Callable[[int, dict[str, Any], UpstreamTx], bool]  # (gateway EUI, txpk, tx) -> sent?
StateHandler = Callable[["UpstreamLink", bool], None]  # (link, up?)
# (PHYPayload, concentrator EUI, txpk tmst or None when not timed by the counter)
DownlinkObserver = Callable[[bytes, int, int | None], Any]


@dataclass
class Filter:
    """Which frames go to this server: DevAddr prefixes (value, length) and JoinEUIs; empty: all."""

    dev_addr_prefixes: list[tuple[int, int]] = field(default_factory=list)
    join_euis: frozenset[int] = frozenset()

    def wants_data(self, dev_addr: int) -> bool:
        if not self.dev_addr_prefixes:
            return True
        return any(dev_addr >> (32 - n) == p >> (32 - n) for p, n in self.dev_addr_prefixes if n) or any(
            n == 0 for _, n in self.dev_addr_prefixes
        )

    def wants_join(self, join_eui: int) -> bool:
        return not self.join_euis or join_eui in self.join_euis

    @property
    def open(self) -> bool:
        """Without any filter (frames nobody can classify go only to such servers)."""
        return not self.dev_addr_prefixes and not self.join_euis


class _Channel(asyncio.DatagramProtocol):
    """The socket of one concentrator to the upstream server."""

    def __init__(self, link: UpstreamLink, gateway_eui: int, version: int) -> None:
        self.link = link
        self.eui = gateway_eui
        self.version = version
        self.transport: asyncio.DatagramTransport | None = None
        self.outstanding: OrderedDict[tuple[int, int], float] = OrderedDict()  # (ident, token) -> sent at

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.link.received(self, data)
        except Exception:  # a bug here must not stop the socket
            self.link.reject("internal")
            log.exception("datagram from upstream %s could not be handled", self.link.name)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: the server is not listening. Counted; the missing ACKs mark it down.
        self.link.metrics.inc("upstream_errors_total", upstream=self.link.name, error=type(exc).__name__)

    def send(self, data: bytes, ident: int | None = None, token: int = 0) -> None:
        if self.transport is None:
            return
        if ident is not None:
            now = time.monotonic()
            out = self.outstanding
            out[(ident, token)] = now
            while len(out) > MAX_OUTSTANDING:
                out.popitem(last=False)
                self.link.metrics.inc("upstream_acks_missing_total", upstream=self.link.name)
        self.link.sent_at = time.monotonic()
        self.transport.sendto(data)


class UpstreamLink:
    """See the module docstring. Use it from the event loop's thread only."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        metrics: Metrics,
        *,
        filter: Filter | None = None,
        keepalive_s: float = 10.0,
        down_after_s: float = 30.0,
        up_after: int = 2,
        deliver: Deliver | None = None,
        on_state: StateHandler | None = None,
        on_downlink: DownlinkObserver | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.metrics = metrics
        self.filter = filter or Filter()
        self.keepalive_s = keepalive_s
        self.down_after_s = down_after_s
        self.up_after = up_after
        self.deliver = deliver
        self.on_state = on_state
        self.on_downlink = on_downlink
        self.up = True  # assumed until the server fails to answer
        self.changes = 0
        self.sent_at = 0.0  # monotonic: the last datagram sent up
        self.last_ack = time.monotonic()
        self._acks_in_row = 0
        self._channels: dict[int, _Channel] = {}
        self._opening: dict[int, asyncio.Future[_Channel]] = {}
        self._task: asyncio.Task[None] | None = None
        self.counts: dict[str, int] = {"pushed": 0, "not_forwarded": 0, "downlinks": 0, "tx_acks": 0}
        labels = {"upstream": name}
        metrics.gauge_fn("upstream_up", lambda: {(("upstream", name),): 1.0 if self.up else 0.0})
        metrics.set("upstream_state_changes", 0, **labels)

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._keepalive(), name=f"upstream-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for ch in self._channels.values():
            if ch.transport is not None:
                ch.transport.close()
        self._channels.clear()

    def has_channel(self, gateway_eui: int) -> bool:
        """Whether the concentrator's socket to this server is open."""
        return gateway_eui in self._channels

    async def channel(self, gateway_eui: int, version: int) -> _Channel:
        """The concentrator's socket to this server (opened on first use)."""
        ch = self._channels.get(gateway_eui)
        if ch is not None:
            ch.version = version
            return ch
        fut = self._opening.get(gateway_eui)
        if fut is not None:
            return await fut
        loop = asyncio.get_running_loop()
        fut = self._opening[gateway_eui] = loop.create_future()
        try:
            _, proto = await loop.create_datagram_endpoint(
                lambda: _Channel(self, gateway_eui, version), remote_addr=(self.host, self.port)
            )
        except OSError as exc:
            del self._opening[gateway_eui]
            fut.set_exception(exc)
            fut.exception()  # (retrieved: the caller gets the exception raised below)
            raise
        self._channels[gateway_eui] = proto
        del self._opening[gateway_eui]
        fut.set_result(proto)
        log.info(
            "upstream %s: concentrator %s speaks to %s:%d",
            self.name,
            eui_hex(gateway_eui),
            self.host,
            self.port,
        )
        self._pull(proto)  # a downlink path from the start, as a packet forwarder opens it
        return proto

    # ---------------------------------------------------------------------------------------- upward
    def push_now(self, gateway_eui: int, version: int, datagram: bytes) -> bool | None:
        """Send one PUSH_DATA up at once if the concentrator's socket is open (True), or not at all because
        the server is down (False); None: the socket must be opened first (:meth:`push`)."""
        if not self.up:
            self.counts["not_forwarded"] += 1
            self.metrics.inc("upstream_not_forwarded_total", upstream=self.name, reason="down")
            return False
        ch = self._channels.get(gateway_eui)
        if ch is None:
            return None
        ch.version = version
        self._send_push(ch, datagram)
        return True

    def _send_push(self, ch: _Channel, datagram: bytes) -> None:
        ch.send(datagram, gwmp.PUSH_ACK, int.from_bytes(datagram[1:3], "big"))
        self.counts["pushed"] += 1
        self.metrics.inc("upstream_datagrams_sent_total", upstream=self.name, type="PUSH_DATA")

    async def push(self, gateway_eui: int, version: int, datagram: bytes) -> bool:
        """Send one PUSH_DATA up, opening the concentrator's socket first if needed (False when not sent:
        the server is down or no socket could be opened)."""
        now = self.push_now(gateway_eui, version, datagram)
        if now is not None:
            return now
        try:
            ch = await self.channel(gateway_eui, version)
        except OSError as exc:
            self.counts["not_forwarded"] += 1
            self.metrics.inc("upstream_not_forwarded_total", upstream=self.name, reason="socket")
            log.warning(
                "upstream %s: cannot open a socket to %s:%d: %s", self.name, self.host, self.port, exc
            )
            return False
        self._send_push(ch, datagram)
        return True

    def _pull(self, ch: _Channel) -> None:
        token = secrets.randbits(16)
        ch.send(gwmp.encode_pull_data(ch.version, token, ch.eui), gwmp.PULL_ACK, token)
        self.metrics.inc("upstream_datagrams_sent_total", upstream=self.name, type="PULL_DATA")

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            try:
                for ch in list(self._channels.values()):
                    self._pull(ch)
                self.check()
            except Exception:
                log.exception("upstream %s: keep-alive failed", self.name)

    def check(self, now: float | None = None) -> None:
        """Mark the server down when it left everything unanswered for ``down_after_s``; forget old tokens."""
        now = time.monotonic() if now is None else now
        for ch in self._channels.values():
            while ch.outstanding:
                key, at = next(iter(ch.outstanding.items()))
                if now - at < ACK_WAIT_S:
                    break
                del ch.outstanding[key]
                self.metrics.inc("upstream_acks_missing_total", upstream=self.name)
        if self.up and self.sent_at > self.last_ack and now - self.last_ack > self.down_after_s:
            self._set(False, f"no answer for {now - self.last_ack:.0f} s")

    def _set(self, up: bool, why: str) -> None:
        self.up = up
        self.changes += 1
        self._acks_in_row = 0
        self.metrics.set("upstream_state_changes", self.changes, upstream=self.name)
        if up:
            log.warning("upstream %s (%s:%d) answers again", self.name, self.host, self.port)
        else:
            log.error(
                "ALARM: upstream %s (%s:%d) unreachable (%s): uplinks are decoded locally where sessions are "
                "followed and not sent to it later",
                self.name,
                self.host,
                self.port,
                why,
            )
        if self.on_state is not None:
            self.on_state(self, up)

    # -------------------------------------------------------------------------------------- downward
    def reject(self, reason: str) -> None:
        self.metrics.inc("upstream_datagrams_rejected_total", upstream=self.name, reason=reason)

    def received(self, ch: _Channel, data: bytes) -> None:
        """A datagram from the server on a concentrator's socket."""
        try:
            dg = gwmp.parse(data)
        except GwmpError as exc:
            self.reject(exc.reason)
            log.debug("upstream %s: rejected datagram: %s", self.name, exc)
            return
        ident = dg.identifier
        self.metrics.inc("upstream_datagrams_received_total", upstream=self.name, type=dg.kind)
        if ident in (gwmp.PUSH_ACK, gwmp.PULL_ACK):
            if ch.outstanding.pop((ident, dg.token), None) is None:
                self.reject("unknown_token")
                return
            self._answered()
        elif ident == gwmp.PULL_RESP:
            self._answered()
            self._pull_resp(ch, dg)
        else:
            self.reject("direction")

    def _answered(self) -> None:
        self.last_ack = time.monotonic()
        if not self.up:
            self._acks_in_row += 1
            if self._acks_in_row >= self.up_after:
                self._set(True, "answers")

    def _pull_resp(self, ch: _Channel, dg: gwmp.Datagram) -> None:
        txpk = dg.payload.get("txpk")
        if not isinstance(txpk, dict):
            self.reject("txpk")
            return
        try:
            phy = txpk_data(txpk)
        except GwmpError as exc:
            self.reject(exc.reason)
            return
        if self.on_downlink is not None:
            try:
                tmst = txpk.get("tmst")
                timed = tmst if isinstance(tmst, int) and not isinstance(tmst, bool) else None
                self.on_downlink(phy, ch.eui, timed)
            except Exception:  # following is an extra: the downlink still goes out
                log.exception("upstream %s: downlink observer failed", self.name)
        tx = UpstreamTx(self, ch.eui, dg.token, dg.version)
        if self.deliver is None or not self.deliver(ch.eui, txpk, tx):
            # (no TX_ACK: none of the protocol's errors says "no downlink path"; the server sees none come)
            self.reject("forwarder_not_ready")
            return
        self.counts["downlinks"] += 1

    def tx_done(self, tx: UpstreamTx, error: str) -> None:
        """The concentrator's TX_ACK for a downlink of this server: passed back with the server's token."""
        ch = self._channels.get(tx.gateway_eui)
        if ch is None or tx.version < 2:
            return
        ch.send(gwmp.encode_tx_ack(tx.version, tx.token, tx.gateway_eui, error))
        self.counts["tx_acks"] += 1
        self.metrics.inc("upstream_datagrams_sent_total", upstream=self.name, type="TX_ACK")

    def health(self) -> dict[str, Any]:
        return {
            "address": f"{self.host}:{self.port}",
            "up": self.up,
            "state_changes": self.changes,
            "last_answer_s_ago": round(time.monotonic() - self.last_ack, 1),
            "concentrators": [eui_hex(e) for e in self._channels],
            **self.counts,
        }
