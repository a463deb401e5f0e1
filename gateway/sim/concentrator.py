"""A simulated concentrator: a packet forwarder speaking GWMP v1/v2 over real UDP to the gateway.

It sends PUSH_DATA (rxpk and periodic stat) and PULL_DATA keepalives, counts PUSH_ACK/PULL_ACK, and takes
PULL_RESP downlinks: each txpk is handed to whoever waits for its ``tmst`` (the simulated node whose receive
window that is) and answered with TX_ACK (``NONE``, or an error a test scripts with ``tx_errors``). Blocking
API on a background thread, because the firmware MAC it serves is blocking code.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.network.reception import format_wire_time


@dataclass
class _Waiter:
    tmsts: set[int]
    event: threading.Event = field(default_factory=threading.Event)
    txpk: dict[str, Any] | None = None


class Concentrator:
    """One packet forwarder. ``gateway`` is the (host, port) of the gateway's GWMP server."""

    def __init__(
        self,
        gateway: tuple[str, int],
        eui: int,
        *,
        version: int = 2,
        keepalive_s: float = 2.0,
        stat_every_s: float = 30.0,
        gps: bool = False,
    ) -> None:
        self.gateway = gateway
        self.eui = eui
        self.version = version
        self.keepalive_s = keepalive_s
        self.stat_every_s = stat_every_s
        self.gps = gps
        self.tx_errors: deque[str] = deque()  # scripted TX_ACK errors for the next PULL_RESPs
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self._tokens = itertools.count(random.randrange(0x10000))
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []
        self._acked: dict[int, threading.Event] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.counts = {
            "push": 0,
            "push_ack": 0,
            "pull": 0,
            "pull_ack": 0,
            "pull_resp": 0,
            "tx_ack": 0,
            "unclaimed": 0,
        }
        self.downlinks: list[dict[str, Any]] = []  # every txpk received
        self.acked_tokens: set[int] = set()  # tokens of PUSH_DATA the gateway acknowledged
        self.rxnb = 0
        self.paused = False  # a "dead" forwarder: sends nothing (for the silent-forwarder alarm)

    # ---------------------------------------------------------------------------------- lifecycle
    def start(self) -> Concentrator:
        """Start receiving and keepalives (a PULL_DATA goes out at once)."""
        for target, name in ((self._recv_loop, "rx"), (self._keepalive_loop, "keepalive")):
            t = threading.Thread(target=target, name=f"conc-{self.eui:016X}-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        """Stop the threads and close the socket."""
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.sock.close()

    def __enter__(self) -> Concentrator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _token(self) -> int:
        return next(self._tokens) & 0xFFFF

    def _send(self, data: bytes) -> None:
        if not self.paused:
            with contextlib.suppress(OSError):  # gateway down: a real forwarder just keeps trying
                self.sock.sendto(data, self.gateway)

    # ----------------------------------------------------------------------------------- uplinks
    def rxpk(
        self, frame: bytes, *, tmst: int, freq_hz: int, datr: str, rssi: float, snr: float, chan: int = 0
    ) -> dict[str, Any]:
        """The rxpk JSON for one received frame (with GPS time when this forwarder has a fix)."""
        pk: dict[str, Any] = {
            "tmst": tmst % gwmp.TMST_MODULO,
            "chan": chan,
            "rfch": 0,
            "freq": freq_hz / 1e6,
            "stat": 1,
            "modu": "LORA",
            "datr": datr,
            "codr": "4/5",
            "rssi": round(rssi),
            "lsnr": round(snr, 1),
            "size": len(frame),
            "data": base64.b64encode(frame).decode(),
        }
        if self.gps:
            now = datetime.now(UTC)
            pk["time"] = format_wire_time(now)
            pk["tmms"] = int((now.timestamp() - 315_964_800 + 18) * 1000)  # GPS epoch 1980-01-06, 18 leap s
        return pk

    def push(self, rxpks: list[dict[str, Any]], *, wait_ack_s: float = 0.0) -> bool:
        """PUSH_DATA; with ``wait_ack_s`` wait for the PUSH_ACK (returns whether it came)."""
        return self.push_token(rxpks, wait_ack_s=wait_ack_s)[1]

    def push_token(self, rxpks: list[dict[str, Any]], *, wait_ack_s: float = 0.0) -> tuple[int, bool]:
        """PUSH_DATA; returns its token (see :attr:`acked_tokens`) and whether the PUSH_ACK came in time."""
        token = self._token()
        ev = threading.Event()
        with self._lock:
            self._acked[token] = ev
        self.rxnb += len(rxpks)
        self._send(gwmp.encode_push_data(self.version, token, self.eui, rxpk=rxpks))
        self.counts["push"] += 1
        ok = ev.wait(wait_ack_s) if wait_ack_s else False
        return token, ok

    def push_raw(self, data: bytes) -> None:
        """Send any bytes (garbage tests)."""
        self._send(data)

    def send_stat(self) -> None:
        """A ``stat`` report as the packet forwarder sends it."""
        stat = {
            "time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S GMT"),
            "rxnb": self.rxnb,
            "rxok": self.rxnb,
            "rxfw": self.rxnb,
            "ackr": 100.0,
            "dwnb": self.counts["pull_resp"],
            "txnb": self.counts["tx_ack"],
        }
        if self.gps:
            stat.update({"lati": 52.39886, "long": 13.06566, "alti": 35})
        self._send(gwmp.encode_push_data(self.version, self._token(), self.eui, stat=stat))

    # --------------------------------------------------------------------------------- downlinks
    def expect(self, tmsts: set[int]) -> _Waiter:
        """Register interest in a txpk scheduled at one of ``tmsts``."""
        w = _Waiter({t % gwmp.TMST_MODULO for t in tmsts})
        with self._lock:
            self._waiters.append(w)
        return w

    def forget(self, w: _Waiter) -> None:
        """Stop waiting."""
        with self._lock:
            if w in self._waiters:
                self._waiters.remove(w)

    def _on_pull_resp(self, dg: gwmp.Datagram) -> None:
        txpk = dg.payload.get("txpk")
        if not isinstance(txpk, dict):
            return
        self.counts["pull_resp"] += 1
        self.downlinks.append(txpk)
        error = self.tx_errors.popleft() if self.tx_errors else "NONE"
        if self.version >= 2:
            self._send(gwmp.encode_tx_ack(self.version, dg.token, self.eui, error))
            self.counts["tx_ack"] += 1
        if error != "NONE":
            return  # not transmitted: the node hears nothing
        tmst = txpk.get("tmst")
        with self._lock:
            waiter = next((w for w in self._waiters if tmst in w.tmsts), None)
            if waiter is not None:
                self._waiters.remove(waiter)
        if waiter is None:
            self.counts["unclaimed"] += 1
            return
        waiter.txpk = txpk
        waiter.event.set()

    # ------------------------------------------------------------------------------------ threads
    def _recv_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                dg = gwmp.parse(data)
            except gwmp.GwmpError:
                continue
            if dg.identifier == gwmp.PUSH_ACK:
                self.counts["push_ack"] += 1
                with self._lock:
                    ev = self._acked.pop(dg.token, None)
                    self.acked_tokens.add(dg.token)
                if ev is not None:
                    ev.set()
            elif dg.identifier == gwmp.PULL_ACK:
                self.counts["pull_ack"] += 1
            elif dg.identifier == gwmp.PULL_RESP:
                self._on_pull_resp(dg)

    def _keepalive_loop(self) -> None:
        last_stat = time.monotonic()
        while not self._stop.is_set():
            self._send(gwmp.encode_pull_data(self.version, self._token(), self.eui))
            self.counts["pull"] += 1
            if time.monotonic() - last_stat >= self.stat_every_s:
                self.send_stat()
                last_stat = time.monotonic()
            self._stop.wait(self.keepalive_s)


def wait_any(waiters: list[tuple[Concentrator, _Waiter]], timeout_s: float) -> dict[str, Any] | None:
    """The first txpk any of the concentrators got for its waiter, or None after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    got = None
    while got is None and time.monotonic() < deadline:
        for _, w in waiters:
            if w.event.is_set():
                got = w.txpk
                break
        else:
            waiters[0][1].event.wait(min(0.01, max(0.0, deadline - time.monotonic())))
    for c, w in waiters:
        c.forget(w)
    return got
