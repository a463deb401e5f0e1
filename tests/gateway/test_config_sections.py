"""The optional components' sections are typed sections of the one config schema: read (and refused) with
the config, held as typed fields of the Config, and the daemon's components built from them into typed
fields of ``Gateway.components``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from support.gateway_run import InProcessGateway, http_get, write_config

from havel.errors import ConfigError
from havel.gateway import components, config, preflight
from havel.gateway.sections import (
    DeliverySection,
    PowerSection,
    RelaySection,
    UpstreamSection,
    WatchdogSection,
)
from havel.gateway.setup.watchdog import WatchdogComponent
from havel.gateway.sinks.file import FileSink

BASE: dict[str, Any] = {"gateway": {"id": "gw", "data_dir": "/nonexistent/havel-test"}}


def load(**sections: Any) -> config.Config:
    return config.from_dict({**BASE, **sections})


def test_each_section_is_a_typed_field_of_the_config() -> None:
    cfg = load()
    assert cfg.forwarder == DeliverySection()  # the delivery always runs, with its defaults
    assert (cfg.relay, cfg.watchdog, cfg.power, cfg.upstream) == (None, None, None, None)
    cfg = load(
        forwarder={"batch": 50, "ack_interval_s": 1},
        relay={"primary": "file", "down_after_s": 10},
        watchdog={"max_restarts": 2},
        power={"ups": "roofups@127.0.0.1:3493"},
        upstream={"server": [{"host": "127.0.0.1", "port": 1700}], "follow": ["0102030405060708"]},
    )
    assert cfg.forwarder == DeliverySection(batch=50, ack_interval_s=1.0)
    assert isinstance(cfg.forwarder.ack_interval_s, float) and cfg.forwarder.window == 2000
    assert cfg.relay == RelaySection(primary="file", down_after_s=10.0)
    assert cfg.watchdog == WatchdogSection(max_restarts=2)
    assert isinstance(cfg.power, PowerSection) and cfg.power.ups == "roofups@127.0.0.1:3493"
    assert isinstance(cfg.upstream, UpstreamSection) and cfg.upstream.follow == (0x0102030405060708,)
    (server,) = cfg.upstream.server
    assert (server.name, server.host, server.port, server.up_after) == ("upstream0", "127.0.0.1", 1700, 2)
    assert components.names(cfg) == ["forwarder", "relay", "watchdog", "power", "upstream"]


# Refused as the config is read (before, [forwarder] and the components' sections were only checked when
# the daemon built its parts): (section, table, the exact key the error names).
POISON: list[tuple[str, Any, str]] = [
    ("forwarder", {"batchsize": 10}, "forwarder.batchsize"),
    ("forwarder", {"batch": "many"}, "forwarder.batch"),
    ("forwarder", {"batch": 2.5}, "forwarder.batch"),
    ("forwarder", {"batch": True}, "forwarder.batch"),
    ("forwarder", {"down_after_s": float("nan")}, "forwarder.down_after_s"),
    ("forwarder", {"retry_s": float("inf")}, "forwarder.retry_s"),
    ("forwarder", {"window": -1}, "forwarder.window"),
    ("forwarder", {"ack_interval_s": 0}, "forwarder.ack_interval_s"),
    ("forwarder", {"poll_s": -0.5}, "forwarder.poll_s"),
    ("forwarder", 5, "forwarder"),
    ("relay", {"down_after_s": -1}, "relay.down_after_s"),
    ("relay", {"rules": 5}, "relay.rules"),
    ("watchdog", {"max_restarts": -1}, "watchdog.max_restarts"),
    ("watchdog", {"timeout_s": "long"}, "watchdog.timeout_s"),
    ("power", {}, "power.ups"),
    ("power", {"ups": "bad name"}, "power.ups"),
    ("power", {"ups": "x", "poll_s": float("nan")}, "power.poll_s"),
    ("upstream", {}, "upstream.server"),
    ("upstream", {"server": [{"host": "h", "port": 0}]}, "upstream.server[0].port"),
    ("upstream", {"server": [{"host": "h"}]}, "upstream.server[0].port"),
    ("upstream", {"server": [{"host": "h", "port": 1, "colour": 1}]}, "upstream.server[0].colour"),
    ("upstream", {"server": [{"host": "h", "port": 1, "keepalive_s": -1}]}, "upstream.server[0].keepalive_s"),
    (
        "upstream",
        {"server": [{"host": "h", "port": 1, "join_euis": ["AA"]}]},
        "upstream.server[0].join_euis[0]",
    ),
    ("upstream", {"server": [{"host": "h", "port": 1, "dev_addr_prefixes": ["26"]}]}, "dev_addr_prefixes[0]"),
    ("upstream", {"server": [{"host": "h", "port": 1}], "follow": 5}, "upstream.follow"),
    ("upstream", {"server": [{"host": "h", "port": 1}], "sessions_file": 3}, "upstream.sessions_file"),
]


@pytest.mark.parametrize(("section", "table", "key"), POISON, ids=[f"{p[0]}-{p[2]}" for p in POISON])
def test_a_bad_component_section_is_refused_when_the_config_is_read(
    section: str, table: Any, key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(**{section: table})
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        ({"colour": 3}, "unknown key 'sink[log].colour'"),
        ({"fsync": "yes"}, "sink[log].fsync must be true or false"),
        ({"fsync": -1}, "sink[log].fsync must be true or false"),
        ({"path": 5}, "sink[log].path must be a non-empty string"),
        ({"path": ""}, "sink[log].path must be a non-empty string"),
        ({"sensorthings": 5}, "sink[log].sensorthings must be a table"),
        ({"prefix": ["a"]}, "sink[log].prefix must be a non-empty string"),
    ],
)
def test_the_file_sink_reads_its_table_with_the_config_schema(sink: dict[str, Any], message: str) -> None:
    table = {"type": "file", "name": "log", "path": "-", **sink}
    with pytest.raises(ConfigError) as info:
        FileSink.from_config(table)
    assert message in str(info.value)
    cfg = load(sink=[table])  # the sink's own keys: checked by check and run alike, before any file exists
    with pytest.raises(ConfigError) as info:
        preflight.validate(cfg)
    assert message in str(info.value)


def test_the_file_sink_keeps_its_documented_keys() -> None:
    sink = FileSink.from_config(
        {"type": "file", "name": "log", "path": "-", "fsync": True, "gateway_id": "g"}
    )
    assert (sink.name, sink.path, sink.fsync) == ("log", "-", True)
    assert FileSink.from_config({"type": "file"}).name == "file"


def test_the_daemon_holds_its_components_in_typed_fields(tmp_path: Path) -> None:
    extra = '\n[watchdog]\nrestart_command = ["true"]\n'
    cfg = config.load(write_config(tmp_path, extra=extra))
    cfg = dataclasses.replace(cfg, forwarder=dataclasses.replace(cfg.forwarder, retry_s=2.0))
    with InProcessGateway(cfg) as g:
        parts = g.gateway.components
        assert parts is not None and isinstance(parts.watchdog, WatchdogComponent)
        assert parts.relay is None and parts.power is None and parts.upstream is None
        assert parts.northbound is g.gateway.northbound
        assert parts.northbound.forwarder.retry_s == 2.0  # built from the typed [forwarder] section
        assert [name for name, _ in parts.in_order()] == ["forwarder", "watchdog"]
        status = json.loads(http_get(cfg.http.port, "/status")[1])
        assert status["components"] == ["forwarder", "watchdog"]
        assert status["watchdog"] == {"command": ["true"], "forwarders": {}}
