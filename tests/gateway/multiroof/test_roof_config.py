"""A roof from its gateway config: `[network] store` (and the roof's name) read through the config module,
its messages delivered through the config's sinks; `havel gateway check` accepts such a config and refuses
a store password file others can read."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.gateway_run import write_config
from support.redis import RedisServer

from havel.errors import ConfigError
from havel.gateway import config, preflight
from havel.gateway.network.shared.connection import StoreSettings, connect
from havel.gateway.network.shared.state import SharedState

from .helpers import abp_node
from .roofs import Concentrator, RoofProcess


def test_a_roof_runs_from_its_gateway_config_and_delivers_to_its_sinks(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    path = write_config(
        tmp_path, network={"store": redis_server.url, "roof": "roof-a", "dedup_window_ms": 50}
    )
    cfg = config.load(path)
    assert cfg.network.store == redis_server.url and cfg.network.roof == "roof-a"
    preflight.validate(cfg)  # (`havel gateway run` takes such a config too: test_daemon_roofs.py)
    shared = SharedState(connect(StoreSettings(redis_server.url)))
    node = abp_node(80)
    shared.put_device(node.device())
    roof = RoofProcess("roof-a", redis_server.url, tmp_path, config=path)
    roof.start()
    conc = Concentrator(0xAA00000000000001, cfg.udp.port)
    try:
        conc.hear(node.uplink(), 3.0)
        out = tmp_path / "out.jsonl"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (out.exists() and out.read_text().strip()):
            time.sleep(0.1)
        (line,) = out.read_text().splitlines()
        msg = json.loads(line)["payload"]
        assert msg["buffered"] is False
        assert msg["id"] == f"{node.dev_eui:016X}-0-1" and msg["data"] is not None
    finally:
        conc.close()
        roof.stop()


def test_store_settings_in_the_gateway_config_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"network\.store"):
        config.load(write_config(tmp_path, network={"store": "redis://:secret@127.0.0.1:6379/0"}))
    with pytest.raises(ConfigError, match=r"network\.roof"):
        config.load(write_config(tmp_path, network={"store": "redis://127.0.0.1/0", "roof": "a b"}))


def test_the_docs_network_block_is_a_valid_roof_config(tmp_path: Path) -> None:
    import re

    from havel.gateway.network.shared.roofd import settings_from_config

    text = (Path(__file__).resolve().parents[3] / "docs" / "multiroof.md").read_text()
    block = re.search(r"--config gateway.toml`, with:\n\n```\n(\[network\]\n.*?)```", text, re.S)
    assert block is not None
    path = write_config(tmp_path)
    path.write_text(path.read_text() + "\n" + block.group(1))
    s = settings_from_config(config.load(path))
    assert s.roof == "roof-a" and s.store.startswith("rediss://") and s.ca_file == "/etc/havel/redis-ca.pem"


def test_gateway_check_refuses_a_store_password_file_others_can_read(tmp_path: Path) -> None:
    pw = tmp_path / "redis.pw"
    pw.write_text("secret\n")
    pw.chmod(0o644)
    cfg = config.load(
        write_config(tmp_path, network={"store": "redis://127.0.0.1:1/0", "store_password_file": str(pw)})
    )
    with pytest.raises(ConfigError, match="may be read by others"):
        preflight.validate(cfg)
    pw.chmod(0o600)
    preflight.validate(cfg)  # (no connection is made: the store need not answer for a check)
