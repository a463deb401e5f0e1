"""The shared store's connection: TLS verified, the password only from a 0600 file and never in the URL or
the logs; the roof settings checked key by key (the example in docs/multiroof.md among them)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import redis
from support.mosquitto import PKI
from support.redis import RedisServer, redis_binary

from havel.errors import ConfigError
from havel.gateway.network.shared.connection import StoreSettings, connect, redacted
from havel.gateway.network.shared.roofd import read_settings
from havel.gateway.network.shared.state import SharedState

from .helpers import abp_node

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def need_redis() -> None:
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (tools/bootstrap.d/redis.sh)")


def test_tls_and_password_file(need_redis: None, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pki = PKI(tmp_path / "pki")
    secret = "s3cret-for-redis"
    pw = tmp_path / "redis.pw"
    pw.write_text(secret + "\n")
    pw.chmod(0o600)
    with RedisServer(password=secret, tls=pki) as server:
        assert server.url.startswith("rediss://")
        caplog.set_level(logging.DEBUG)
        ok = connect(StoreSettings(server.url, str(pw), str(pki.ca_cert)))
        assert ok.ping()
        shared = SharedState(ok)  # the store's own calls over the verified TLS connection
        dev = abp_node(50).device()
        shared.put_device(dev)
        assert shared.device(dev.dev_eui) == dev
        # a CA that did not sign the server's certificate: refused
        with pytest.raises(redis.ConnectionError):
            connect(StoreSettings(server.url, str(pw), str(pki.wrong_ca_cert))).ping()
        # no password: refused by the server
        with pytest.raises(redis.AuthenticationError):
            connect(StoreSettings(server.url, None, str(pki.ca_cert))).ping()
        assert secret not in caplog.text
    pw.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        connect(StoreSettings("redis://127.0.0.1:6379/0", str(pw)))
    with pytest.raises(ConfigError, match="password_file"):
        connect(StoreSettings("redis://:pw@127.0.0.1:6379/0"))
    with pytest.raises(ConfigError, match="not a Redis URL"):
        connect(StoreSettings("http://127.0.0.1:6379/0"))
    assert redacted("rediss://user@redis.lab:6380/0") == "rediss://redis.lab:6380/0"


def test_roof_settings_from_the_docs_and_wrong_keys() -> None:
    text = (REPO / "docs" / "multiroof.md").read_text()
    block = re.search(r"```\n(\{\"roof\".*?)```", text, re.S)
    assert block is not None
    s = read_settings(json.loads(block.group(1)))
    assert s.roof == "roof-a" and s.store.startswith("rediss://") and s.dedup_window_ms == 200
    with pytest.raises(ConfigError, match=r"roof\.dedup_windows_ms"):
        read_settings({**json.loads(block.group(1)), "dedup_windows_ms": 1})
    with pytest.raises(ConfigError, match=r"roof\.store"):
        read_settings({"roof": "a", "store": "mysql://x", "db": "/tmp/x.db"})
    with pytest.raises(ConfigError, match=r"roof\.roof"):
        read_settings({"roof": "a b", "store": "redis://x", "db": "/tmp/x.db"})
    with pytest.raises(ConfigError, match=r"roof\.duty"):
        read_settings({"roof": "a", "store": "redis://x", "db": "/tmp/x.db", "duty": 2})
