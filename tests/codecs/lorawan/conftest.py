"""The lora-packet oracle: one Node.js process per test session, fed many requests as JSON Lines."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ORACLE = Path(__file__).parent / "lora_packet_oracle.mjs"
BATCH = 40  # requests in flight at once: keeps both pipes well under their 64 KiB buffers


class LoraPacketOracle:
    """A running lora_packet_oracle.mjs; ask() sends requests and returns the answers in order."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("Node.js is missing: run tools/bootstrap.sh (make test does) to install it")
        self.proc = subprocess.Popen(
            [node, str(ORACLE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def ask(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Answers to ``requests``, one dict each (``{"error": ...}`` where lora-packet threw)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        answers: list[dict[str, Any]] = []
        for start in range(0, len(requests), BATCH):
            chunk = requests[start : start + BATCH]
            self.proc.stdin.write("".join(json.dumps(r) + "\n" for r in chunk))
            self.proc.stdin.flush()
            for _ in chunk:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"lora-packet oracle exited with status {self.proc.poll()}")
                answers.append(json.loads(line))
        return answers

    def close(self) -> None:
        """Stop the Node.js process (closing stdin ends its loop; kill if it does not)."""
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture(scope="session")
def lora_packet() -> Iterator[LoraPacketOracle]:
    """The lora-packet oracle, started once for the session and stopped after it."""
    oracle = LoraPacketOracle()
    try:
        assert oracle.ask([{"op": "version"}]) == [{"version": "0.9.3"}]
        yield oracle
    finally:
        oracle.close()
