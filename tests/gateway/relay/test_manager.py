"""The relay manager over a real outbox (SQLite): what goes out while the primary is down, and what waits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from havel.gateway import db
from havel.gateway.outbox import Outbox
from havel.gateway.relay.envelope import sign_body
from havel.gateway.relay.manager import Manager
from havel.gateway.relay.outage import OutageDetector
from havel.gateway.relay.priority import Classifier
from havel.gateway.relay.record import RelayRecord

from .test_outage_e2e import RULES, record


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Collector:
    """A relay that keeps what it is offered (the manager's only contract with a relay)."""

    name = "collector"

    def __init__(self) -> None:
        self.offered: list[RelayRecord] = []
        self.status: list[dict[str, Any]] = []

    def offer(self, rec: RelayRecord) -> bool:
        self.offered.append(rec)
        return True

    def publish_status(self, status: dict[str, Any]) -> None:
        self.status.append(status)


def test_manager_relays_alarms_at_once_state_slowly_background_never(tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "havel.db")
    outbox = Outbox(conn, sinks=["platform"])
    clock = Clock()
    health = {"connected": True}
    relay = Collector()
    m = Manager(
        outbox,
        "platform",
        Classifier.from_config(RULES),
        [relay],
        OutageDetector(10, 20, clock=clock),
        lambda: (health["connected"], None),
        state_interval_s=300,
        clock=clock,
    )
    outbox.put(record("70B3D57ED0000001", 1, "water", {"level": 170}))
    m.tick()
    assert relay.offered == []  # primary up: the forwarder delivers, nothing relayed
    health["connected"] = False
    clock.t = 5
    m.tick()
    assert relay.offered == []  # not yet: hysteresis
    clock.t = 11
    m.tick()
    # Down: the alarm still owed by the primary goes out, and the status on every path.
    assert [r.id for r in relay.offered] == ["70B3D57ED0000001-1-1"] and relay.status[0]["primary"] == "down"
    for fcnt, level in ((2, 100), (3, 110), (4, 180)):
        outbox.put(record("70B3D57ED0000001", fcnt, "water", {"level": level}))
    outbox.put(record("70B3D57ED0000009", 1, "temperature", {"probes": [20.1, 21.4]}))
    old = record("70B3D57ED0000002", 1, "water", {"level": 190})
    old["payload"]["received_at"] = old["received_at"] = "2026-01-01T00:00:00Z"
    outbox.put(old)
    clock.t = 12
    m.tick()
    # The new alarm at once, then the first state report with only the latest value per sensor.
    assert [(r.id, r.cls) for r in relay.offered[1:]] == [
        ("70B3D57ED0000001-1-4", "alarm"),
        ("70B3D57ED0000001-1-3", "state"),
    ]
    assert m.stats["too_old"] == 1 and m.stats["background_held"] == 1
    outbox.put(record("70B3D57ED0000001", 5, "water", {"level": 120}))
    clock.t = 100
    m.tick()
    assert len(relay.offered) == 3  # state cadence: not before state_interval_s
    clock.t = 320
    m.tick()
    assert relay.offered[-1].id == "70B3D57ED0000001-1-5"
    # Nothing was taken out of the outbox: it drains to the primary after recovery.
    assert outbox.depth("platform") == 7
    health["connected"] = True
    clock.t = 330
    m.tick()
    clock.t = 351
    m.tick()
    assert m.detector.state == "up" and relay.status[-1]["primary"] == "up"
    conn.close()


def test_manager_survives_a_failing_relay(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        def offer(self, rec: RelayRecord) -> bool:
            raise RuntimeError("boom")

    conn = db.open_db(tmp_path / "havel.db")
    outbox = Outbox(conn, sinks=["platform"])
    clock = Clock()
    good = Collector()
    m = Manager(
        outbox,
        "platform",
        Classifier.from_config(RULES),
        [Broken(), good],
        OutageDetector(1, 1, clock=clock),
        lambda: (False, None),
        clock=clock,
        wall=time.time,
    )
    outbox.put(record("70B3D57ED0000001", 1, "water", {"level": 170}))
    clock.t = 2
    m.tick()
    m.tick()
    assert [r.id for r in good.offered] == ["70B3D57ED0000001-1-1"]
    conn.close()


class EventCollector(Collector):
    """A relay that also carries gateway events."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def publish_event(self, body: dict[str, Any]) -> bool:
        self.events.append(body)
        return True


def _event(rid: str, name: str, priority: str, **details: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    from havel.gateway.network.reception import format_time as rfc3339

    now = rfc3339(datetime.now(UTC))
    return {
        "id": rid,
        "kind": "event",
        "dev_eui": None,
        "fcnt32": None,
        "priority": priority,
        "received_at": now,
        "payload": {"id": rid, "event": name, "gateway_id": "gw1", "at": now, **details},
    }


def test_alarm_class_gateway_events_go_to_every_relay_and_the_receiver_reads_their_envelope(
    tmp_path: Path,
) -> None:
    """Mains lost (an alarm-class event stored by the gateway) goes out during an outage; a state-class
    event (sink_down) waits for the primary. The signed envelope a mesh path sends is republished by the
    receiver on <prefix>/<gateway_id>/events under the event's own id."""
    from havel.gateway.relay.receive.config import ReceiverConfig
    from havel.gateway.relay.receive.core import ReceiverCore
    from havel.gateway.relay.signing import CounterStore, Signer, SigningKey

    conn = db.open_db(tmp_path / "havel.db")
    outbox = Outbox(conn, sinks=["platform"])
    clock = Clock()
    relay, plain = EventCollector(), Collector()
    m = Manager(
        outbox,
        "platform",
        Classifier.from_config(RULES),
        [relay, plain],
        OutageDetector(10, 20, clock=clock),
        lambda: (False, None),
        clock=clock,
    )
    outbox.put(_event("gw1-event-00000000abcd", "power_on_battery", "alarm", charge_pct=85, ups="ups"))
    outbox.put(_event("gw1-event-00000000abce", "sink_down", "state", sink="platform"))
    m.tick()
    clock.t = 11
    m.tick()
    assert [(e["event"], e["id"]) for e in relay.events] == [("power_on_battery", "gw1-event-00000000abcd")]
    assert relay.events[0]["details"] == {"charge_pct": 85, "ups": "ups"} and m.stats["events"] == 1
    assert isinstance(relay.events[0]["at"], int) and abs(relay.events[0]["at"] - time.time()) < 600

    key = SigningKey.generate()
    key.save(tmp_path / "gw1.key")
    cfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "rx"),
            "sender": [{"name": "gw1", "key_file": str(tmp_path / "gw1.key"), "gateway_id": "gw1"}],
            "mqtt": {"port": 1},
        }
    )
    published: list[tuple[str, bytes]] = []
    core = ReceiverCore(cfg, lambda topic, payload: published.append((topic, payload)))
    signer = Signer(key, "gw1", CounterStore(None))
    assert core.handle_envelope(sign_body(signer, "mqtt", relay.events[0]), "mqtt", "mqtt")
    other = dict(relay.events[0], id="gw2-event-00000000abcd")  # another gateway's id: malformed
    assert not core.handle_envelope(sign_body(signer, "mqtt", other), "mqtt", "mqtt")
    assert [t for t, _ in published] == ["havel/gw1/events"]
    import json

    msg = json.loads(published[0][1])
    assert msg["id"] == "gw1-event-00000000abcd" and msg["event"] == "power_on_battery", msg
    assert msg["charge_pct"] == 85 and msg["relayed"] is True and msg["via"] == "mqtt", msg
    assert core.total("events") == 1 and core.total("malformed") == 1
