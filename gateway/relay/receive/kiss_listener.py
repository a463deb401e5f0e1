"""The receiver's KISS TNC listener: frames in, APRS acks out."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from typing import Any

from havel.gateway.relay import aprs, ax25, kiss
from havel.gateway.relay.receive.core import ReceiverCore
from havel.gateway.relay.signing import identity

log = logging.getLogger("havel.relay.receiver")


class KissListener:
    """Reads frames from a KISS TNC over TCP (reconnecting), feeds the core, sends acks.

    Whatever the TNC sends (broken escapes, truncated frames, noise) is counted and dropped; an
    unexpected error restarts the connection (counted in ``restarts``) instead of ending the thread.
    """

    def __init__(self, core: ReceiverCore, cfg: dict[str, Any]) -> None:
        self.core = core
        self.host = str(cfg.get("host", "127.0.0.1"))
        self.port = int(cfg.get("port", 8001))
        self.callsign = identity(str(cfg.get("callsign", "")))
        self.ack = bool(cfg.get("ack", True))
        self.path = list(cfg.get("path") or [])
        self.destination = str(cfg.get("destination", "APZHVL"))
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="receiver-kiss", daemon=True)
        self.connected = threading.Event()
        self.acks_sent = 0
        self.restarts = 0
        self._dec = kiss.Decoder()
        self._kiss_errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                self._session()
            except Exception:
                self.restarts += 1
                log.exception("receiver: KISS listener failed; reconnecting (%d restarts)", self.restarts)
                self._halt.wait(1.0)

    def _session(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5)
        except OSError:
            self._halt.wait(1.0)
            return
        self.connected.set()
        self._dec = kiss.Decoder()
        self._kiss_errors = 0
        try:
            while not self._halt.is_set():
                r, _, _ = select.select([sock], [], [], 0.2)
                if not r:
                    continue
                data = sock.recv(4096)
                if not data:
                    raise ConnectionResetError("TNC closed the connection")
                for fr in self._dec.feed(data):
                    if fr.command != kiss.CMD_DATA:
                        continue
                    msgno = self.core.handle_ax25(fr.payload)
                    if msgno and self.ack and self.callsign:
                        self._send_ack(sock, fr.payload, msgno)
                while self._kiss_errors < self._dec.errors:  # broken escapes, oversize frames
                    self._kiss_errors += 1
                    self.core.count("aprs", "malformed")
        except OSError as exc:
            log.warning("receiver: TNC connection lost: %s", exc)
        finally:
            self.connected.clear()
            with contextlib.suppress(OSError):
                sock.close()

    def _send_ack(self, sock: socket.socket, payload: bytes, msgno: str) -> None:
        src = ax25.UIFrame.decode(payload).source
        info = aprs.Message(str(src), "", msgno, kind="ack").encode()
        frame = ax25.UIFrame.aprs(self.callsign, self.destination, info, self.path)
        sock.sendall(kiss.encode(frame.encode()))
        self.acks_sent += 1

    def health(self) -> dict[str, Any]:
        return {"connected": self.connected.is_set(), "restarts": self.restarts, "acks_sent": self.acks_sent}
