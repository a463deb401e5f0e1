"""The frame part of the shared store: which roof processes a frame (its lock), every roof's copy of it,
its ``done`` mark, and the take-over of a frame whose roof died."""

from __future__ import annotations

from typing import Any

import redis

from havel.gateway.network.shared.connection import text


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

    def mark_done(self, frames: list[bytes], keep_ms: int) -> None:
        """These frames were processed (or refused): nobody needs to take them over."""
        if frames:
            pipe = self.r.pipeline(transaction=False)
            for f in frames:
                pipe.set(f"{self.p}done:{f.hex()}", "1", px=keep_ms)
            pipe.execute()

    def copies_of(self, frames: list[bytes]) -> list[list[str]]:
        """The copy lists of several frames in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for f in frames:
            pipe.lrange(f"{self.p}copies:{f.hex()}", 0, -1)
        return [[text(x) for x in v] for v in pipe.execute()]

    def copies(self, frame: bytes) -> list[str]:
        return [text(x) for x in self.r.lrange(f"{self.p}copies:{frame.hex()}", 0, -1)]
