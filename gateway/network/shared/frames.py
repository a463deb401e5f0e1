"""The frame part of the shared store: which roof processes a frame (its lock), every roof's copy of it,
its ``done`` mark, and the take-over of a frame whose roof died."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import redis

from havel.gateway.network.shared.connection import text


class AppliedMark(NamedTuple):
    """A counter a batch raised in Redis: device, session epoch, the counter and the one before (-1: none)."""

    dev_eui: int
    epoch: int
    fcnt: int
    prev: int


class FrameLocks:
    """Part of :class:`~havel.gateway.network.shared.state.SharedState`: its frame operations."""

    r: redis.Redis
    p: str
    _claim: Any
    _take_over: Any

    # --------------------------------------------------------------------------- uplink lock, copies
    def claim(self, frame: bytes, roof: str, copy: str, lock_ms: int, keep_ms: int) -> int:
        """Offer one copy of a frame: 1 this roof now processes it, 2 it did already, 0 another roof does."""
        h = frame.hex()
        return int(
            self._claim(
                keys=[f"{self.p}lock:{h}", f"{self.p}copies:{h}"], args=[roof, copy, lock_ms, keep_ms]
            )
        )

    def take_over(self, frame: bytes, roof: str, lock_ms: int) -> bool:
        """Take the lock of a frame that no roof marked done (see ``scripts.TAKE_OVER``)."""
        h = frame.hex()
        return bool(self._take_over(keys=[f"{self.p}lock:{h}", f"{self.p}done:{h}"], args=[roof, lock_ms]))

    def mark_done(self, frames: list[bytes], keep_ms: int, stored: Sequence[tuple[int, int]] = ()) -> None:
        """These frames were processed (or refused): nobody needs to take them over. ``stored``: the
        (DevAddr, FCnt16) of those the roof's own database now holds, whose markers go."""
        if frames or stored:
            pipe = self.r.pipeline(transaction=False)
            for f in frames:
                pipe.set(f"{self.p}done:{f.hex()}", "1", px=keep_ms)
            for addr, fcnt16 in stored:
                pipe.delete(f"{self.p}applied:{addr:08X}:{fcnt16}")
            pipe.execute()

    def applied(self, frames: list[tuple[int, int]]) -> list[AppliedMark | None]:
        """The markers of these (DevAddr, FCnt16): a counter raised in Redis by a batch whose roof did not
        confirm its own commit (see ``scripts.COMMIT``); one round trip. A damaged marker counts as none."""
        pipe = self.r.pipeline(transaction=False)
        for addr, fcnt16 in frames:
            pipe.get(f"{self.p}applied:{addr:08X}:{fcnt16}")
        out: list[AppliedMark | None] = []
        for raw in pipe.execute():
            try:
                o = json.loads(text(raw)) if raw is not None else None
                out.append(
                    AppliedMark(int(o["e"], 16), int(o["ep"]), int(o["f"]), int(o["prev"]))
                    if isinstance(o, dict)
                    else None
                )
            except (ValueError, TypeError, KeyError):
                out.append(None)
        return out

    def copies_of(self, frames: list[bytes]) -> list[list[str]]:
        """The copy lists of several frames in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for f in frames:
            pipe.lrange(f"{self.p}copies:{f.hex()}", 0, -1)
        return [[text(x) for x in v] for v in pipe.execute()]

    def copies(self, frame: bytes) -> list[str]:
        return [text(x) for x in self.r.lrange(f"{self.p}copies:{frame.hex()}", 0, -1)]
