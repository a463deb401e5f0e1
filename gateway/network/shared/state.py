"""All the shared store's operations on one client: :class:`SharedState` (each operation atomic on the
server). The key layout is in :mod:`.connection`, the scripts in :mod:`.scripts`."""

from __future__ import annotations

import redis

from havel.gateway.network.shared import scripts
from havel.gateway.network.shared.connection import PREFIX
from havel.gateway.network.shared.devices import DeviceKeys
from havel.gateway.network.shared.frames import FrameLocks
from havel.gateway.network.shared.queue import CommandQueue


class SharedState(DeviceKeys, FrameLocks, CommandQueue):
    """The Redis operations of the multi-roof network server: devices and sessions (:class:`DeviceKeys`),
    frame locks and copies (:class:`FrameLocks`), downlink queues and hand-overs (:class:`CommandQueue`)."""

    def __init__(self, client: redis.Redis, prefix: str = PREFIX) -> None:
        self.r = client
        self.p = prefix
        self._claim = client.register_script(scripts.CLAIM)
        self._commit = client.register_script(scripts.COMMIT)
        self._fcnt_down = client.register_script(scripts.FCNT_DOWN)
        self._take_over = client.register_script(scripts.TAKE_OVER)
        self._at_addr = client.register_script(scripts.AT_ADDR)
        self._queue = client.register_script(scripts.QUEUE)
        self._take = client.register_script(scripts.TAKE)
        self._expire = client.register_script(scripts.EXPIRE)
