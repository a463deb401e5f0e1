"""A real redis-server per test (fresh data), started on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.redis import RedisServer, redis_binary


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (tools/bootstrap.d/redis.sh)")
    with RedisServer(appendonly=True) as server:
        yield server
