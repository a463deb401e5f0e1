"""Roof processes (``havel.gateway.network.shared.roofd``) and simulated concentrators speaking GWMP to them
over real UDP, for the multi-roof process tests and the bench."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.backends.semtech_udp.rxpk import RxPacket, rxpk_to_json

HOST = "127.0.0.1"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class RoofProcess:
    """One roof daemon; ``sent`` collects its ``{"tx": ...}`` lines."""

    def __init__(
        self,
        name: str,
        store_url: str,
        tmp: Path,
        *,
        config: Path | None = None,
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> None:
        """``config``: run from that gateway config (``--config``) instead of a settings file; ``env``: more
        environment variables for the process."""
        self.name = name
        self.env = dict(env or {})
        self.config = config
        self.port = free_udp_port()
        self.settings_path = tmp / f"{name}.json"
        self.db = tmp / f"{name}.db"
        self.settings_path.write_text(
            json.dumps(
                {
                    "roof": name,
                    "store": store_url,
                    "udp_port": self.port,
                    "db": str(self.db),
                    "dedup_window_ms": 100,
                    "timeout_s": 0.5,
                    **settings,
                }
            )
        )
        self.log = tmp / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.sent: list[dict[str, Any]] = []
        self._ready = threading.Event()

    def start(self) -> None:
        self._ready.clear()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log.open("a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "havel.gateway.network.shared.roofd"]
                + (["--config", str(self.config)] if self.config else [str(self.settings_path)]),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(30):
            raise RuntimeError(f"roof {self.name} did not start: {self.log.read_text()[-2000:]}")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "ready" in obj:
                self._ready.set()
            elif "tx" in obj:
                self.sent.append(obj["tx"])

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Concentrator:
    """A packet forwarder's side of GWMP: PULL_DATA every half second, PUSH_DATA for what it hears; the
    PULL_RESPs it gets are collected in ``downlinks`` (txpk objects)."""

    def __init__(self, eui: int, roof_port: int) -> None:
        self.eui = eui
        self.roof = (HOST, roof_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.2)
        self.downlinks: list[dict[str, Any]] = []
        self.tmst = 1_000_000
        self._stop = threading.Event()
        self._token = 0
        threading.Thread(target=self._pull, daemon=True).start()
        threading.Thread(target=self._recv, daemon=True).start()

    def _next_token(self) -> int:
        self._token = (self._token + 1) & 0xFFFF
        return self._token

    def _pull(self) -> None:
        while not self._stop.is_set():
            self.sock.sendto(gwmp.encode_pull_data(2, self._next_token(), self.eui), self.roof)
            self._stop.wait(0.5)

    def _recv(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            try:
                dg = gwmp.parse(data)
            except gwmp.GwmpError:
                continue
            if dg.identifier == gwmp.PULL_RESP:
                self.downlinks.append(dg.payload["txpk"])

    def hear(self, data: bytes, snr: float) -> None:
        self.tmst += 3_000_000
        rx = RxPacket(
            data=data, tmst=self.tmst, freq_hz=868_100_000, datr="SF7BW125", rssi=-70 + snr, lsnr=snr
        )
        self.sock.sendto(
            gwmp.encode_push_data(2, self._next_token(), self.eui, rxpk=[rxpk_to_json(rx)]), self.roof
        )

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def command_downlinks(concs: dict[str, Concentrator]) -> list[tuple[str, Any]]:
    """(roof, data frame) of every downlink that carried a command (an FPort), leaving out join-accepts and
    downlinks of MAC commands alone (the DevStatusReq each device whose battery is unknown gets)."""
    from havel.codecs.lorawan import phy

    out = []
    for name, c in concs.items():
        for t in list(c.downlinks):
            d = phy.parse(base64.b64decode(t["data"]))
            if isinstance(d, phy.DataFrame) and d.fport is not None:
                out.append((name, d))
    return out


def join_accepts(concs: dict[str, Concentrator]) -> int:
    """How many join-accepts the concentrators sent."""
    from havel.codecs.lorawan import phy

    return sum(
        1
        for c in concs.values()
        for t in list(c.downlinks)
        if not isinstance(phy.parse(base64.b64decode(t["data"])), phy.DataFrame)
    )
