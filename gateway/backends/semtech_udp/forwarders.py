"""What the GWMP server knows of each packet forwarder, and which datagrams it serves at all.

GWMP has no authentication: anyone who can send a datagram to the port can claim any gateway EUI. So,
before a datagram's JSON is read:

- each source IP address is rate-limited (:class:`SourceLimiter`: a token bucket per address, at most
  :data:`MAX_SOURCES` addresses remembered);
- only the gateway EUIs in ``allowed`` are served (:class:`Forwarders`); with an empty list, the first EUI
  heard is accepted (logged as a warning) and every other one refused. Nothing is kept for a refused EUI,
  so spoofed EUIs cannot grow the server's state or raise silence alarms;
- an EUI is pinned to the IP address it first spoke from, and its downlink address (where PULL_RESP goes)
  to the address and port of its PULL_DATA: another address is refused while the forwarder is alive (a
  restarted forwarder's new port takes over once the old one has sent no PULL_DATA for
  :data:`PULL_MOVE_AFTER_S` or ``silent_after_s``, whichever is shorter; a new IP address once the
  forwarder was silent).

A forwarder that sends nothing (no PUSH_DATA, no PULL_DATA keepalive) for ``silent_after_s`` raises an
alarm (log, metric, callback) once, and a recovery message when it speaks again.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from havel.codecs.lorawan.ids import eui_hex
from havel.gateway.backends.semtech_udp.gwmp import PULL_DATA
from havel.gateway.backends.semtech_udp.rxpk import Stat
from havel.gateway.metrics import Metrics

log = logging.getLogger("havel.gateway.udp")

Addr = tuple[str, int]
MAX_SOURCES = 1024  # source addresses whose rate is tracked (the least recently heard is forgotten)
PULL_MOVE_AFTER_S = 30.0  # the downlink address may move to a new port after this long without PULL_DATA
_MAX_LOGGED_STRANGERS = 8  # refused EUIs logged as warnings (the rest at debug level; all are counted)


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


SilenceHandler = Callable[[PacketForwarder, bool], None]  # (forwarder, silent?)


class _Bucket:
    """A token bucket of one source address."""

    __slots__ = ("at", "tokens", "warned")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at
        self.warned = False


class SourceLimiter:
    """The datagram rate allowed from one source address: ``rate`` a second, in bursts of up to one
    second's worth (at least 10)."""

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self._burst = max(self.rate, 10.0)
        self._sources: OrderedDict[str, _Bucket] = OrderedDict()

    def admit(self, host: str) -> bool:
        """Whether this datagram from ``host`` is within the allowed rate (logs the first excess)."""
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


class Forwarders:
    """The packet forwarders served, by gateway EUI (:attr:`by_eui`): which EUI and address is admitted,
    when each was last heard, the silence alarm and the health report. Refusals are counted in
    ``datagrams_rejected_total`` by reason."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        allowed: Collection[int] = (),
        silent_after_s: float = 90.0,
        on_silence: SilenceHandler | None = None,
    ) -> None:
        self.metrics = metrics
        self.allowed: frozenset[int] = frozenset(allowed)
        self.silent_after_s = silent_after_s
        self.on_silence = on_silence
        self.by_eui: dict[int, PacketForwarder] = {}
        self._strangers: set[int] = set()  # refused EUIs already logged as warnings

    def admit(self, eui: int, addr: Addr, ident: int) -> bool:
        """Whether a datagram claiming ``eui`` from ``addr`` is served; counts and logs a refusal."""
        fwd = self.by_eui.get(eui)
        if fwd is None:
            if self.allowed:
                if eui in self.allowed:
                    return True
            elif not self.by_eui:
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
        if ident == PULL_DATA and fwd.pull_addr is not None and addr != fwd.pull_addr:
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

    def seen(self, eui: int, version: int, addr: Addr) -> PacketForwarder:
        """The forwarder of an admitted datagram, created on its first one; marks it heard now."""
        fwd = self.by_eui.get(eui)
        if fwd is None:  # (admitted by admit(): allowed, or the first one heard)
            fwd = self.by_eui[eui] = PacketForwarder(eui, host=addr[0])
            log.info(
                "packet forwarder %s connected from %s:%d (protocol v%d)",
                eui_hex(eui),
                addr[0],
                addr[1],
                version,
            )
        fwd.version = version
        fwd.last_seen = time.monotonic()
        fwd.last_seen_wall = time.time()
        if fwd.silent:
            fwd.silent = False
            self.metrics.set("forwarder_silent", 0, gateway=eui_hex(fwd.eui))
            log.warning("packet forwarder %s speaks again", eui_hex(fwd.eui))
            if self.on_silence:
                self.on_silence(fwd, False)
        return fwd

    def check(self, now: float) -> list[PacketForwarder]:
        """Mark forwarders silent for longer than ``silent_after_s`` (monotonic ``now``); returns the newly
        silent ones."""
        newly = []
        for fwd in self.by_eui.values():
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
        return newly

    def health(self) -> list[dict[str, Any]]:
        """Health of every forwarder seen."""
        now = time.monotonic()
        return [f.health(now) for f in self.by_eui.values()]
