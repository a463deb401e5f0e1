"""The board's view of a receiver core fed real signed input (no broker): which rule an alarm crossed, the
chart's window, readings arriving out of order or without units (APRS), the paths, refused input."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from havel.errors import ConfigError
from havel.gateway.relay import aprs, ax25
from havel.gateway.relay.board import Board, alarm_rules
from havel.gateway.relay.envelope import sign_body, sign_json
from havel.gateway.relay.lines import encode_line, sign_line
from havel.gateway.relay.receive.config import ReceiverConfig
from havel.gateway.relay.receive.core import ReceiverCore
from havel.gateway.relay.record import RelayRecord
from havel.gateway.relay.signing import CounterStore, Signer, SigningKey

SENDER = "DB0XYZ-10"
DEV = "70B3D57ED0001234"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(tmp_path: Path) -> SimpleNamespace:
    key = SigningKey.generate()
    key.save(tmp_path / "gw.key")
    cfg = ReceiverConfig.from_dict(
        {
            "data_dir": "data",
            "sender": [{"name": SENDER, "key_file": "gw.key", "gateway_id": "roof-1"}],
            "mqtt": {"host": "127.0.0.1", "port": 1},
        },
        base=tmp_path,
    )
    published: list[tuple[str, bytes]] = []
    core = ReceiverCore(cfg, lambda t, p: published.append((t, p)))
    signer = Signer(key, SENDER, CounterStore(tmp_path / "counter"))
    return SimpleNamespace(
        core=core, signer=signer, tmp=tmp_path, rx=SimpleNamespace(core=core, kiss=None, mqtt=None, rns=None)
    )


def record(fcnt: int, level: Any, cls: str, at: float, **kw: Any) -> RelayRecord:
    return RelayRecord(
        DEV,
        fcnt,
        cls,
        int(at),
        {"level": level},
        kw.get("device", "pegel-1"),
        kw.get("units", {"level": "cm"}),
        1,
    )


def feed(p: SimpleNamespace, rec: RelayRecord) -> None:
    assert p.core.handle_envelope(sign_json(p.signer, "mqtt", rec), "mqtt", "mqtt")


def test_alarm_rules_from_a_gateway_config_or_a_rules_file(tmp_path: Path) -> None:
    gw = tmp_path / "gateway.toml"
    gw.write_text(
        '[gateway]\ndata_dir = "x"\n[relay]\nrules = [\n'
        ' {name = "flood", class = "alarm", codec = "water", field = "level", op = ">=", value = 150},\n'
        ' {name = "valve", class = "alarm", codec = "cooling", field = "faults.valve", op = "true"},\n'
        ' {name = "levels", class = "state", codec = "water", fields = ["level"]},\n]\n'
    )
    assert [r.name for r in alarm_rules(gw)] == ["flood", "valve"]
    top = tmp_path / "rules.toml"
    top.write_text('rules = [{name = "low", class = "alarm", field = "battery", op = "<", value = 3.3}]\n')
    assert [r.name for r in alarm_rules(top)] == ["low"]
    for text in ("rules = 3\n", "[relay]\nx = 1\n", "rules = [", 'rules = [{class = "panic"}]\n'):
        top.write_text(text)
        with pytest.raises(ConfigError):
            alarm_rules(top)
    with pytest.raises(ConfigError, match="cannot be read"):
        alarm_rules(tmp_path / "missing.toml")


def test_alarms_name_the_threshold_and_come_latest_first(parts: SimpleNamespace) -> None:
    rules_file = parts.tmp / "rules.toml"
    rules_file.write_text(
        'rules = [{name = "flood", class = "alarm", codec = "water", field = "level", op = ">=",'
        ' value = 150}, {name = "valve", class = "alarm", field = "faults.valve", op = "true"}]\n'
    )
    clock = Clock(1_800_000_000.0)
    board = Board(parts.rx, alarm_rules(rules_file), clock=clock)
    feed(parts, record(10, 163, "alarm", clock.now - 60))
    feed(parts, record(9, 158, "alarm", clock.now - 600))  # arrives later, measured earlier
    valve = RelayRecord(DEV, 11, "alarm", int(clock.now - 30), {"faults.valve": True}, "valve-3", {}, 1)
    feed(parts, valve)
    no_rule = RelayRecord(DEV, 12, "alarm", int(clock.now - 20), {"smoke": 1}, "x", {}, 1)
    feed(parts, no_rule)
    snap = board.snapshot()
    alarms = snap["alarms"]
    assert [a["id"] for a in alarms] == [f"{DEV}-1-12", f"{DEV}-1-11", f"{DEV}-1-10", f"{DEV}-1-9"]
    assert [a["threshold"] and a["threshold"]["text"] for a in alarms] == [
        None,
        "faults.valve is true",
        "level ≥ 150 cm",
        "level ≥ 150 cm",
    ]
    assert alarms[2]["via_label"] == "Mesh MQTT" and alarms[2]["values"] == [
        {"name": "level", "value": 163, "unit": "cm"}
    ]


def test_the_chart_keeps_the_window_in_time_order_and_aprs_records_keep_the_unit(
    parts: SimpleNamespace,
) -> None:
    clock = Clock(1_800_000_000.0)
    board = Board(parts.rx, [], history_s=3600, clock=clock)
    feed(parts, record(1, 80, "state", clock.now - 7200))  # older than the window
    feed(parts, record(3, 90, "state", clock.now - 600))
    feed(parts, record(2, 85, "state", clock.now - 1800))  # out of order
    # over APRS a record has no device name and no units
    feed(parts, record(4, 95.5, "state", clock.now - 60, device=None, units={}))
    feed(parts, record(5, "n/a", "state", clock.now - 30))  # not a number: shown, not charted
    (dev,) = board.snapshot()["devices"]
    assert dev["name"] == "pegel-1"
    (chart,) = dev["charts"]
    assert chart["points"] == [[clock.now - 1800, 85.0], [clock.now - 600, 90.0], [clock.now - 60, 95.5]]
    assert chart["unit"] == "cm" and chart["threshold"] is None
    assert dev["values"] == [
        {
            "name": "level",
            "value": "n/a",
            "unit": "cm",
            "at": int(clock.now - 30),
            "via": "mqtt",
            "class": "state",
        }
    ]
    clock.now += 3600
    assert board.snapshot()["devices"][0]["charts"][0]["points"] == []


def test_paths_refusals_and_unsigned_link_status(parts: SimpleNamespace) -> None:
    clock = Clock(1_800_000_000.0)
    parts.core.wall = clock  # reports are checked against the receiver's clock (at most 600 s ahead)
    board = Board(parts.rx, [], clock=clock)
    events: list[str] = []
    parts.core.observe(lambda kind, info: events.append(kind))
    (primary,) = board.snapshot()["paths"]
    assert primary["state"] == "unknown" and primary["detail"] == "no signed report yet"
    down = sign_body(parts.signer, "mqtt", {"kind": "status", "primary": "down", "at": int(clock.now - 300)})
    assert parts.core.handle_envelope(down, "mqtt", "mqtt")
    older_up = sign_body(
        parts.signer, "mqtt", {"kind": "status", "primary": "up", "at": int(clock.now - 900)}
    )
    assert parts.core.handle_envelope(older_up, "mqtt", "mqtt")
    (primary,) = board.snapshot()["paths"]
    assert (primary["state"], primary["since"], primary["signed"]) == ("down", clock.now - 300, True)
    # unsigned and forged input: counted, never a reading
    other = Signer(SigningKey.generate(), SENDER, CounterStore(parts.tmp / "other"))
    assert not parts.core.handle_envelope(
        sign_json(other, "mqtt", record(1, 999, "alarm", clock.now)), "mqtt", "mqtt"
    )
    assert not parts.core.handle_envelope(
        json.dumps(record(2, 998, "alarm", clock.now).to_dict()).encode(), "mqtt", "mqtt"
    )
    parts.core.handle_status("havel/roof-1/relay/status", b'{"state": "offline"}')
    snap = board.snapshot()
    assert snap["alarms"] == [] and snap["devices"] == []
    assert snap["unverified"]["rejected"] == {"forged": 1, "malformed": 1}
    assert [(x["gateway_id"], x["state"]) for x in snap["unverified"]["links"]] == [("roof-1", "offline")]
    assert "primary" in events and events.count("count") >= 4
    # a failing observer is logged and costs the receiver nothing
    parts.core.observe(lambda kind, info: 1 / 0)
    feed(parts, record(3, 120, "state", clock.now))
    assert board.snapshot()["devices"][0]["values"][0]["value"] == 120


def test_an_alarm_heard_over_aprs(parts: SimpleNamespace) -> None:
    """Over APRS a record has no device name and no units: the board says APRS, and keeps the unit and
    name it learnt from a signed reading over another path."""
    clock = Clock(1_800_000_000.0)
    rules = parts.tmp / "rules.toml"
    rules.write_text('rules = [{name = "flood", class = "alarm", field = "level", op = ">=", value = 150}]\n')
    board = Board(parts.rx, alarm_rules(rules), clock=clock)
    feed(parts, record(1, 140, "state", clock.now - 600))
    line = encode_line(RelayRecord(DEV, 2, "alarm", int(clock.now - 60), {"level": 163}, epoch=1))
    text = sign_line(parts.signer, "aprs", line, context=aprs.pad_addressee("DB0KST-1") + ":")
    frame = ax25.UIFrame.aprs(SENDER, "APZHVL", aprs.Message("DB0KST-1", text, "A1").encode())
    assert parts.core.handle_ax25(frame.encode()) == "A1"
    snap = board.snapshot()
    (alarm,) = snap["alarms"]
    assert (alarm["device"], alarm["via"], alarm["via_label"]) == (None, "aprs", "APRS")
    assert alarm["values"] == [{"name": "level", "value": 163, "unit": ""}]
    assert alarm["threshold"]["text"] == "level ≥ 150"
    (dev,) = snap["devices"]
    assert dev["name"] == "pegel-1"
    assert dev["values"][0] | {"at": 0} == {
        "name": "level",
        "value": 163,
        "unit": "cm",
        "at": 0,
        "via": "aprs",
        "class": "alarm",
    }
