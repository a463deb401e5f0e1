"""Run the real gateway daemon for tests: in-process on its own event-loop thread, or as a real process.

    with InProcessGateway(cfg) as gw:        # gw.gateway is the daemon object, gw.udp its GWMP address
        ...
    proc = GatewayProcess(config_file); proc.start(); proc.kill(); proc.terminate()

Both pick free loopback ports; both are always stopped by their context manager.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from havel.gateway.config import Config
from havel.gateway.daemon import Gateway

REPO = Path(__file__).resolve().parents[2]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    folder: Path,
    *,
    sinks: list[dict[str, Any]] | None = None,
    network: dict[str, Any] | None = None,
    udp_port: int | None = None,
    http_port: int | None = None,
    extra: str = "",
    gateway_id: str = "gw-test",
    udp: dict[str, Any] | None = None,
) -> Path:
    """A gateway.toml in ``folder`` with free ports, data in ``folder/data``, and the given sinks (``udp``:
    more keys of ``[udp]``, e.g. ``allowed_gateways`` for tests with several concentrators)."""
    sinks = sinks if sinks is not None else [{"type": "file", "path": str(folder / "out.jsonl")}]
    lines = [
        "[gateway]",
        f'id = "{gateway_id}"',
        f'data_dir = "{folder / "data"}"',
        "",
        "[udp]",
        f"port = {udp_port or free_udp_port()}",
        "silent_after_s = 3",
        *[f"{k} = {json.dumps(v)}" for k, v in (udp or {}).items()],
        "",
        "[http]",
        f"port = {http_port or free_tcp_port()}",
        "",
        "[log]",
        'level = "info"',
        "",
    ]
    if network:
        lines.append("[network]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in network.items()]
        lines.append("")
    lines.append("[forwarder]")
    lines.append("down_after_s = 2")
    lines.append("up_after_s = 1")
    lines.append("retry_s = 1")
    lines.append("ack_interval_s = 0.2")  # (the product's 5 s spares SD cards; tests need not wait for it)
    lines.append("")
    for s in sinks:
        lines.append("[[sink]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in s.items()]
        lines.append("")
    path = folder / "gateway.toml"
    path.write_text("\n".join(lines) + extra)
    return path


class InProcessGateway:
    """The daemon on a background event loop (so tests can use blocking sockets)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.gateway = Gateway(cfg)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="gateway-loop", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            try:
                await self.gateway.start()
            except BaseException as exc:
                self._error = exc
                self._started.set()
                await self.gateway.stop()
                return
            self._started.set()
            await self.gateway.wait_stopped()
            await self.gateway.stop()

        self.loop.run_until_complete(main())

    def start(self) -> InProcessGateway:
        self._thread.start()
        if not self._started.wait(15):
            raise TimeoutError("gateway did not start")
        if self._error is not None:
            raise self._error
        return self

    @property
    def udp(self) -> tuple[str, int]:
        assert self.gateway.udp_addr is not None
        return self.gateway.udp_addr

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the gateway's loop thread and return its result."""
        fut: Any = asyncio.run_coroutine_threadsafe(_acall(fn, *args), self.loop)
        return fut.result(10)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.gateway.request_stop)
            self._thread.join(20)
        if not self.loop.is_closed() and not self._thread.is_alive():
            self.loop.close()

    def __enter__(self) -> InProcessGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _acall(fn: Any, *args: Any) -> Any:
    return fn(*args)


def http_get(port: int, path: str, timeout: float = 3.0) -> tuple[int, str]:
    """(status, body) of a GET on the daemon's local HTTP port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class GatewayProcess:
    """``havel gateway run --config FILE`` as a real child process."""

    def __init__(self, config: Path, http_port: int, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.http_port = http_port
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "gateway.log"

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "havel", "gateway", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=REPO,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"gateway exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                code, _ = http_get(self.http_port, "/status", timeout=0.5)
                if code == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"gateway did not come up: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no cleanup at all."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def provision_sim(cfg: Config, specs: list[Any]) -> None:
    """Register simulated nodes (:class:`havel.gateway.sim.runner.NodeSpec`) in the gateway's registry, as
    ``havel device import`` would."""
    from havel.gateway import db
    from havel.gateway.registry import Registry
    from havel.gateway.registry_io import parse_import

    conn = db.open_db(cfg.db_path)
    reg = Registry(conn)
    for d in parse_import(json.dumps([s.record() for s in specs]), "sim.json"):
        reg.add(d)
    conn.close()


def abp_uplink(
    dev_addr: int, fcnt: int, nwk_s_key: bytes, app_s_key: bytes, payload: bytes, *, confirmed: bool = False
) -> bytes:
    """An uplink data frame (FPort 1) of an ABP device as :func:`register_abp` registers it."""
    from havel.codecs.lorawan import phy

    return phy.build_data_frame(
        uplink=True,
        confirmed=confirmed,
        dev_addr=dev_addr,
        fcnt32=fcnt,
        fport=1,
        payload=payload,
        nwk_s_key=nwk_s_key,
        app_s_key=app_s_key,
    )


def register_abp(
    conn: Any,
    n: int,
    *,
    dev_eui: int,
    dev_addr: int,
    nwk_s_key: bytes,
    app_s_key: bytes,
    codec: str = "temperature",
    prefix: str = "dev",
) -> Any:
    """``n`` ABP devices in the registry on ``conn``, in one commit: DevEUI ``dev_eui`` + i, DevAddr
    ``dev_addr`` + i, name ``<prefix>-<i>``, one pair of session keys. Returns the Registry."""
    from havel.gateway.network.sessions import Device, Session
    from havel.gateway.registry import Registry

    reg = Registry(conn)
    with reg.transaction():
        for i in range(n):
            reg.add(
                Device(
                    name=f"{prefix}-{i}",
                    dev_eui=dev_eui + i,
                    codec=codec,
                    activation="abp",
                    session=Session(dev_addr + i, nwk_s_key, app_s_key),
                )
            )
    return reg
