"""Gateway daemons (`havel gateway run` with `[network] store`) as roofs for the multi-roof tests: each from a
config of its own, its sink a JSON-lines file, its monitoring port read for metrics and the status."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from support.gateway_run import GatewayProcess, free_tcp_port, http_get, write_config

from .roofs import free_udp_port

UPLINK_ID = re.compile(r"^[0-9A-F]{16}-\d+-\d+$")


def wait_for(pred: Any, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    return False


class DaemonRoof:
    """One roof: `havel gateway run` from a config of its own, its sink a JSON-lines file."""

    def __init__(
        self,
        name: str,
        store_url: str,
        tmp: Path,
        *,
        mqtt: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        network: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.folder = tmp / name
        self.folder.mkdir()
        self.out = self.folder / "out.jsonl"
        self.udp_port = free_udp_port()
        http = free_tcp_port()
        sinks: list[dict[str, Any]] = [{"type": "file", "path": str(self.out)}]
        if mqtt is not None:
            sinks.append(mqtt)
        path = write_config(
            self.folder,
            sinks=sinks,
            gateway_id=name,
            udp_port=self.udp_port,
            http_port=http,
            # (a window wide enough that every roof's copy is in the list on a loaded machine: which gateway
            # sends a downlink depends on it)
            network={
                "store": store_url,
                "roof": name,
                "dedup_window_ms": 400,
                "store_timeout_s": 0.5,
                **(network or {}),
            },
        )
        self.proc = GatewayProcess(path, http, env=env)

    def messages(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text().splitlines():
            try:
                out.append(json.loads(line)["payload"])
            except (ValueError, KeyError):
                continue  # (a line being written)
        return out

    def status(self) -> dict[str, Any]:
        """The daemon's /status."""
        _, body = http_get(self.proc.http_port, "/status")
        return dict(json.loads(body))

    def status_text(self) -> str:
        """What ``havel gateway status`` prints for this roof."""
        done = subprocess.run(
            [sys.executable, "-m", "havel", "gateway", "status", "--config", str(self.proc.config)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
        )
        return done.stdout + done.stderr

    def metric(self, name: str) -> float:
        _, text = http_get(self.proc.http_port, "/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(f"havel_gateway_{name}"):
                total += float(line.rsplit(" ", 1)[1])
        return total


def uplink_ids(roofs: dict[str, DaemonRoof]) -> Counter[str]:
    return Counter(m["id"] for r in roofs.values() for m in r.messages() if UPLINK_ID.match(str(m.get("id"))))
