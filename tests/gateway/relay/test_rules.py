"""Priority rules, budgets, outage hysteresis, the emergency switch: pure logic with a fake clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from havel.errors import ConfigError
from havel.gateway.relay.budget import Budget, afsk_airtime_s
from havel.gateway.relay.cli import relay as relay_cli
from havel.gateway.relay.emergency import STATE_FILE, EmergencySwitch
from havel.gateway.relay.outage import OutageDetector
from havel.gateway.relay.priority import Classifier


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


RULES: list[dict[str, Any]] = [
    {"name": "flood", "class": "alarm", "codec": "water", "field": "level", "op": ">=", "value": 150},
    {"name": "valve", "class": "alarm", "codec": "cooling", "field": "faults.valve", "op": "true"},
    {"name": "heat", "class": "alarm", "codec": "temperature", "field": "probes", "op": ">", "value": 35},
    {"name": "levels", "class": "state", "codec": "water", "fields": ["level"]},
]


@pytest.mark.parametrize(
    "payload,cls,rule",
    [
        ({"codec": "water", "data": {"level": 163}}, "alarm", "flood"),
        ({"codec": "water", "data": {"level": 149}}, "state", "levels"),
        ({"codec": "cooling", "data": {"faults": {"valve": True}}}, "alarm", "valve"),
        ({"codec": "cooling", "data": {"faults": {"valve": False}}}, "background", None),
        ({"codec": "cooling", "data": {"faults": None}}, "background", None),
        ({"codec": "temperature", "data": {"probes": [24.1, 36.5]}}, "alarm", "heat"),
        ({"codec": "temperature", "data": {"probes": [24.1, None]}}, "background", None),  # absent probe
        ({"codec": "temperature", "data": {"probes": "n/a"}}, "background", None),  # no crash on strings
        ({"codec": "air", "data": {"pm10": 80}}, "background", None),
    ],
)
def test_classification(payload: dict[str, Any], cls: str, rule: str | None) -> None:
    c = Classifier.from_config(RULES).classify(payload)
    assert (c.cls, c.rule) == (cls, rule)


@pytest.mark.parametrize(
    "rule",
    [
        {"class": "urgent"},
        {"class": "alarm", "field": "x"},
        {"class": "alarm", "field": "x", "op": "~"},
        {"class": "alarm", "field": "x", "op": ">"},
        {"class": "alarm", "op": "true"},
        {"class": "alarm", "colour": "red"},
    ],
)
def test_bad_rules_name_the_problem(rule: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"relay\.rules\[0\]"):
        Classifier.from_config([rule])


def test_budget_never_exceeded_and_alarms_first() -> None:
    clock = Clock()
    b = Budget(10.0, 60.0, state_share=0.5, clock=clock)
    assert b.try_spend(4, "state") and not b.try_spend(2, "state")  # state may fill only half
    assert b.try_spend(6, "alarm") and not b.try_spend(0.1, "alarm")  # alarms the rest, never more
    assert not b.try_spend(0.1, "background")
    assert b.used() == 10.0 and b.refused == {"alarm": 1, "state": 1, "background": 1}
    assert b.wait_s(1, "alarm") == pytest.approx(60.0)
    assert b.wait_s(11, "alarm") is None
    clock.t += 60.0
    assert b.used() == 0 and b.wait_s(1, "alarm") == 0.0


def test_afsk_airtime() -> None:
    # 100 bytes + FCS = 816 bits, +20 % worst-case stuffing = 979, + 2 flags = 995 bits at 1200 bd
    assert afsk_airtime_s(100, txdelay_s=0.3, txtail_s=0.05) == pytest.approx(0.35 + 995 / 1200)


def test_outage_hysteresis() -> None:
    clock = Clock()
    d = OutageDetector(down_after_s=30, up_after_s=60, clock=clock)
    changes: list[str] = []
    d.listeners.append(lambda c: changes.append(c.state))
    d.bad()
    clock.t += 29
    d.update()
    assert d.state == "up"  # one hiccup is not an outage
    d.good()
    d.bad()
    clock.t += 29
    d.update()
    assert d.state == "up"
    clock.t += 2
    d.update()
    assert d.state == "down"
    d.good()
    clock.t += 59
    d.update()
    d.bad()  # flapping: the stable period starts again
    d.good()
    clock.t += 59
    d.update()
    assert d.state == "down"
    clock.t += 1
    d.update()
    assert d.state == "up" and changes == ["down", "up"] and d.changes == {"down": 1, "up": 1}


def test_emergency_switch_file_and_cli(tmp_path: Path) -> None:
    sw = EmergencySwitch(tmp_path, config_default=True)
    assert sw.is_on() and sw.state().source == "config"
    res = CliRunner().invoke(relay_cli, ["emergency", "off", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0 and "silent" in res.output
    assert not sw.is_on()  # the file overrides the config
    res = CliRunner().invoke(relay_cli, ["emergency", "status", "--data-dir", str(tmp_path)])
    assert "off (by cli" in res.output
    (tmp_path / STATE_FILE).write_text("{garbage")
    assert not EmergencySwitch(tmp_path, config_default=True).is_on()  # unreadable: never transmit
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('[gateway]\ndata_dir = "data"\n')
    res = CliRunner().invoke(relay_cli, ["emergency", "on", "--config", str(cfg)])
    assert res.exit_code == 0 and EmergencySwitch(tmp_path / "data").is_on()


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "relay.key"
    assert CliRunner().invoke(relay_cli, ["keygen", str(path)]).exit_code == 0
    before = path.read_text()
    res = CliRunner().invoke(relay_cli, ["keygen", str(path)])
    assert res.exit_code != 0 and path.read_text() == before


def test_emergency_status_reads_the_config_switch_the_daemon_acts_on(tmp_path: Path) -> None:
    """`emergency = true` in [relay] and no state file: the daemon transmits, so status says ON."""
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('[gateway]\ndata_dir = "data"\n[relay]\nemergency = true\n')
    res = CliRunner().invoke(relay_cli, ["emergency", "status", "--config", str(cfg)])
    assert res.exit_code == 0 and "emergency ON (by config)" in res.output, res.output
    # with only the data directory the config is unknown: say so instead of guessing off
    res = CliRunner().invoke(relay_cli, ["emergency", "status", "--data-dir", str(tmp_path / "data")])
    assert res.exit_code == 0 and "config's [relay] emergency decides" in res.output, res.output
    res = CliRunner().invoke(relay_cli, ["emergency", "off", "--config", str(cfg)])
    res = CliRunner().invoke(relay_cli, ["emergency", "status", "--config", str(cfg)])
    assert "emergency off (by cli" in res.output, res.output
