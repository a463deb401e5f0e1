"""Outbox priority from the relay's configured rules: alarms the rules define (heat from temperature probes,
``faults.valve`` of the cooling point) are stored as ``alarm`` by the network server, so the outbox quota
never drops them. Real SQLite registry, D2's real outbox, B's real codecs and vectors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from havel.errors import ConfigError
from havel.gateway.config import from_dict
from havel.gateway.network.priority import higher
from havel.gateway.network.sessions import Device, Session
from havel.gateway.outbox import Outbox
from havel.gateway.relay.priority import Classifier
from havel.gateway.sections import relay_rules

from .test_netserver import APP, NWK, REPO, Env, up

# The rules as docs/relay.md and gateway.example.toml give them (real decoded field names).
RULES: list[dict[str, Any]] = [
    {"name": "flood", "class": "alarm", "codec": "water", "field": "level", "op": ">=", "value": 150},
    {"name": "valve", "class": "alarm", "codec": "cooling", "field": "faults.valve", "op": "true"},
    {"name": "heat", "class": "alarm", "codec": "temperature", "field": "probes", "op": ">", "value": 35},
    {"name": "levels", "class": "state", "codec": "water", "fields": ["level"]},
]
TEMP_EUI, COOL_EUI = 0x70B3D57ED0000011, 0x70B3D57ED0000012
TEMP_ADDR, COOL_ADDR = 0x26011C01, 0x26011C02


def vec(codec: str, words: str) -> dict[str, Any]:
    items = json.loads((REPO / "codecs" / "vectors" / f"{codec}.json").read_text())
    return next(v for v in items if v["direction"] == "up" and words in v["description"])


HOT = vec("temperature", "fifteen probes")  # a probe at 125.0 Cel
MILD = vec("temperature", "cooling point inside")  # 24.1 and 31.7 Cel
STUCK = vec("cooling", "valve stuck fault")  # faults.valve = true
FINE = vec("cooling", "cool morning")


class RuleEnv(Env):
    def __init__(self, tmp: Path, rules: list[dict[str, Any]] | None, quota: int | None = None) -> None:
        super().__init__(tmp)
        self.outbox = Outbox(self.conn, quota_bytes=quota, sinks=["primary"])
        self.ns.outbox = self.outbox
        self.ns.rules = Classifier.from_config(rules) if rules is not None else None
        for name, eui, addr, codec in (
            ("temp-1", TEMP_EUI, TEMP_ADDR, "temperature"),
            ("cool-1", COOL_EUI, COOL_ADDR, "cooling"),
        ):
            self.reg.add(
                Device(name=name, dev_eui=eui, codec=codec, activation="abp", session=Session(addr, NWK, APP))
            )

    def send(self, fcnt: int, vector: dict[str, Any], addr: int) -> str:
        out = self.one(up(fcnt, bytes.fromhex(vector["bytes"]), addr=addr))
        assert out.status == "accepted" and out.record is not None
        return str(out.record["priority"])


@pytest.fixture
def with_rules(tmp_path: Path) -> Iterator[RuleEnv]:
    e = RuleEnv(tmp_path, RULES)
    yield e
    e.conn.close()


def test_relay_rules_raise_heat_and_valve_faults_to_alarm(with_rules: RuleEnv) -> None:
    assert HOT["data"]["probes"][1] > 35 and STUCK["data"]["faults"]["valve"] is True
    assert with_rules.send(1, HOT, TEMP_ADDR) == "alarm"
    assert with_rules.send(2, MILD, TEMP_ADDR) == "background"  # no rule matches: the built-in class
    assert with_rules.send(1, STUCK, COOL_ADDR) == "alarm"
    assert with_rules.send(2, FINE, COOL_ADDR) == "state"  # built-in: actuator state, higher than none


def test_without_rules_only_the_built_in_classes(tmp_path: Path) -> None:
    e = RuleEnv(tmp_path, None)
    try:
        assert e.send(1, HOT, TEMP_ADDR) == "background"
        assert e.send(1, STUCK, COOL_ADDR) == "state"
    finally:
        e.conn.close()


def test_a_rule_never_lowers_the_built_in_class(tmp_path: Path) -> None:
    lower = [{"name": "quiet", "class": "background", "codec": "cooling"}]
    e = RuleEnv(tmp_path, lower)
    try:
        assert e.send(1, FINE, COOL_ADDR) == "state"
    finally:
        e.conn.close()
    assert higher("background", "alarm") == "alarm" and higher("state", "background") == "state"


def test_rule_alarms_survive_the_outbox_quota(tmp_path: Path) -> None:
    # A quota of a few records: routine readings flood in around the alarms the rules define.
    e = RuleEnv(tmp_path, RULES, quota=6_000)
    try:
        alarms = []
        for fcnt in range(1, 61):
            if fcnt % 10 == 6:
                assert e.send(fcnt, HOT, TEMP_ADDR) == "alarm"
                alarms.append(f"{TEMP_EUI:016X}-0-{fcnt}")
            else:
                e.send(fcnt, MILD, TEMP_ADDR)
        stored = e.outbox.ids()
        assert e.outbox.dropped()["background"] > 0  # the quota really bit
        assert all(a in stored for a in alarms), (alarms, stored)
        assert e.outbox.dropped().get("alarm", 0) == 0
    finally:
        e.conn.close()


def _cfg(tmp_path: Path, relay: dict[str, Any] | None) -> Any:
    raw: dict[str, Any] = {
        "gateway": {"id": "gw1", "data_dir": str(tmp_path)},
        "sink": [{"type": "file", "name": "local", "path": str(tmp_path / "out.jsonl")}],
    }
    if relay is not None:
        raw["relay"] = relay
    return from_dict(raw)


def test_daemon_takes_the_rules_from_the_relay_section(tmp_path: Path) -> None:
    assert relay_rules(_cfg(tmp_path, None).relay) is None
    rules = relay_rules(_cfg(tmp_path, {"rules": RULES}).relay)
    payload = {"codec": "temperature", "data": HOT["data"]}
    assert rules is not None and rules.classify(payload).cls == "alarm"
    with pytest.raises(ConfigError, match=r"relay\.rules\[0\]"):
        relay_rules(_cfg(tmp_path, {"rules": [{"class": "urgent"}]}).relay)


def _rule_lines(text: str, prefix: str) -> list[dict[str, Any]]:
    import tomllib

    rows = [ln.strip().removeprefix("#").strip() for ln in text.splitlines()]
    picked = [r.rstrip(",") for r in rows if r.startswith("{name =")]
    assert picked, f"no example rules found ({prefix})"
    return list(tomllib.loads("r = [" + ",".join(picked) + "]")["r"])


@pytest.mark.parametrize("doc", ["gateway/gateway.example.toml", "docs/relay.md"])
def test_example_rules_name_real_decoded_fields(doc: str) -> None:
    from havel.gateway.relay.priority import lookup

    rules = _rule_lines((REPO / doc).read_text(), doc)
    Classifier.from_config(rules)  # valid rules
    for rule in rules:
        vectors = json.loads((REPO / "codecs" / "vectors" / f"{rule['codec']}.json").read_text())
        for name in [rule.get("field"), *rule.get("fields", [])]:
            if name is None:
                continue
            assert any(lookup(v["data"], name)[0] for v in vectors if v["direction"] == "up"), (doc, name)
