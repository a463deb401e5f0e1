"""The downlink part of the shared store: each device's command queue, the downlinks handed to another
roof, and the duty-cycle pause of each gateway."""

from __future__ import annotations

import json
from typing import Any

import redis

from havel.gateway.network.shared.connection import text


class CommandQueue:
    """Part of :class:`~havel.gateway.network.shared.state.SharedState`: its downlink operations."""

    r: redis.Redis
    p: str

    # ---------------------------------------------------------------------------------- downlinks
    def next_commands(self, dev_euis: list[int]) -> list[str | None]:
        """The next queued command of each device (taken from its queue), in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for e in dev_euis:
            pipe.lpop(f"{self.p}dlq:{e:016X}")
        return [text(v) if v is not None else None for v in pipe.execute()]

    def queue_command(self, dev_eui: int, command: dict[str, Any]) -> None:
        """A command for the device, sent once (by the roof that processes its next uplink)."""
        self.r.rpush(f"{self.p}dlq:{dev_eui:016X}", json.dumps(command))

    def requeue_command(self, dev_eui: int, raw: str) -> None:
        """Put a command taken but not sent back at the head of the device's queue."""
        self.r.lpush(f"{self.p}dlq:{dev_eui:016X}", raw)

    def next_command_seq(self) -> int:
        """The network's submission number for a downlink command (part of its result ids)."""
        return int(self.r.incr(f"{self.p}cmdseq"))

    def hand_over(self, roof: str, downlink: dict[str, Any]) -> None:
        self.r.rpush(f"{self.p}tx:{roof}", json.dumps(downlink))

    def handed_to(self, roof: str, limit: int = 64) -> list[str]:
        v = self.r.lpop(f"{self.p}tx:{roof}", limit)
        return [text(x) for x in v] if v else []

    def gateways_waiting(self, gateways: list[int]) -> set[int]:
        """The gateways among these that still wait for their duty cycle."""
        if not gateways:
            return set()
        pipe = self.r.pipeline(transaction=False)
        for g in gateways:
            pipe.exists(f"{self.p}dc:{g:016X}")
        return {g for g, n in zip(gateways, pipe.execute(), strict=True) if n}

    def gateway_busy(self, gateway: int, wait_s: float) -> None:
        if wait_s > 0:
            self.r.set(f"{self.p}dc:{gateway:016X}", "1", px=max(1, int(wait_s * 1000)))
