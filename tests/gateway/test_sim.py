"""The simulator (firmware MAC, encoders and valve controller under CPython) against the real gateway."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from support.gateway_run import InProcessGateway, provision_sim, write_config
from support.mosquitto import Mosquitto
from support.mqtt_subscriber import Subscriber

from havel.gateway import config
from havel.gateway.sim.nodes import KINDS
from havel.gateway.sim.runner import GATEWAY_EUI_BASE, Simulation, make_specs, parse_counts
from havel.gateway.sim.world import World


def file_ups(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    ups = [json.loads(x)["payload"] for x in path.read_text().splitlines() if '/up"' in x]
    return [u for u in ups if u["fport"] == 1]  # readings; FPort 2 is the node's status after a boot


@pytest.mark.timeout(90)
def test_otaa_joins_with_the_firmware_mac_and_readings_arrive_decoded(tmp_path: Path) -> None:
    two = {"allowed_gateways": [f"{GATEWAY_EUI_BASE + i:016X}" for i in (1, 2)]}  # the two concentrators
    cfg = config.load(write_config(tmp_path, network={"dedup_window_ms": 40}, udp=two))
    specs = make_specs(parse_counts(",".join(f"{kind}=1" for kind in KINDS)))  # every simulated kind
    provision_sim(cfg, specs)
    # a flood already rising: the water node reaches its first alarm level within the test
    world = World(flood_start_s=0.0, flood_ramp_s=2400.0)
    with (
        InProcessGateway(cfg) as gw,
        Simulation(gw.udp, specs, speed=600, wait_s=0.35, world=world, concentrators=2) as sim,
    ):
        joins = [sim.wait_for(lambda e, n=s.name: e["node"] == n and e["event"] == "join", 20) for s in specs]
        assert all(joins), sim.history
        alarm = sim.wait_for(lambda e: e["event"] == "uplink" and e["reading"].get("alarm"), 30)
        assert alarm is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            u["device"] == "sim-water-1" and u["data"]["alarm"] for u in file_ups(tmp_path / "out.jsonl")
        ):
            time.sleep(0.1)
        reg = gw.gateway.registry
        sessions = {d.name: d.session for d in reg.devices()}
    by_node = {n.name: n for n in sim.nodes}
    for s in specs:  # the gateway's session is the one the firmware MAC derived
        assert sessions[s.name] is not None and sessions[s.name].dev_addr == by_node[s.name].node.mac.dev_addr
    ups = file_ups(tmp_path / "out.jsonl")
    kinds = {u["device"]: u for u in ups}
    assert set(kinds) == {s.name for s in specs}
    assert kinds["sim-temperature-1"]["data"]["probes"] and kinds["sim-cooling-1"]["codec"] == "cooling"
    for kind in KINDS:  # each node's readings decoded by its own kind's codec, every value present
        data = kinds[f"sim-{kind}-1"]["data"]
        assert kinds[f"sim-{kind}-1"]["codec"] == kind and None not in data.values(), (kind, data)
    assert all(len(u["rx"]) == 2 for u in ups)  # two concentrators heard every frame: one message each
    water_alarm = [u for u in ups if u["device"] == "sim-water-1" and u["data"]["alarm"]]
    assert water_alarm and water_alarm[0]["data"]["alarm_level"] >= 1 and water_alarm[0]["confirmed"]
    fcnts = [u["fcnt"] for u in ups if u["device"] == "sim-water-1"]
    assert fcnts == sorted(set(fcnts))


@pytest.mark.timeout(120)
def test_valve_command_over_mqtt_reaches_the_node_and_the_effect_comes_back(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    cfg = config.load(
        write_config(
            tmp_path,
            network={"dedup_window_ms": 40},
            sinks=[
                {
                    "type": "mqtt",
                    "name": "platform",
                    "host": "127.0.0.1",
                    "port": mosquitto.port,
                    "tls": False,
                    "reconnect_min_s": 0.2,
                    "reconnect_max_s": 1.0,
                    "commands": True,
                }
            ],
        )
    )
    specs = make_specs({"cooling": 1})
    provision_sim(cfg, specs)
    eui = f"{specs[0].dev_eui:016X}"
    base = f"havel/gw-test/devices/{eui}"
    # ~27 Cel: warm enough for the city's misting rule (26), below the valve's own on threshold (30)
    warm_evening = World(mean_c=27.0, amplitude_c=0.3, heat_wave_c=0.0)
    with (
        Subscriber(mosquitto.port, f"{base}/#") as sub,
        InProcessGateway(cfg) as gw,
        Simulation(gw.udp, specs, speed=300, wait_s=0.35, world=warm_evening) as sim,
    ):
        assert sim.wait_for(lambda e: e["event"] == "join", 20)
        first = sim.wait_for(lambda e: e["event"] == "uplink", 20)
        assert first is not None and first["reading"]["valve_open"] is False
        commands = gw.gateway.components.northbound.subscribers[0]
        deadline = time.monotonic() + 10
        while not commands.subscribed and time.monotonic() < deadline:  # the SUBACK, not just the CONNACK
            time.sleep(0.05)
        sub.client.publish(
            f"{base}/down",
            json.dumps({"fport": 23, "data": {"state": "open", "ttl": 3600}, "id": "open-please"}),
            qos=1,
        )
        override = sim.wait_for(lambda e: e["event"] == "override", 40)
        assert override is not None and override["state"] == "open" and override["accepted"], sim.history
        deadline = time.monotonic() + 30
        reported = None
        while time.monotonic() < deadline and reported is None:
            reported = next(
                (
                    m.json()
                    for m in sub.messages
                    if m.topic.endswith("/up") and m.json()["fport"] == 1 and m.json()["data"]["valve_open"]
                ),
                None,
            )
            time.sleep(0.1)
    assert reported is not None, [m.topic for m in sub.messages]
    assert reported["data"]["mode"] == "override_open" and reported["device"] == "sim-cooling-1"
    results = [m.json() for m in sub.messages if m.topic.endswith("/down/result")]
    assert [r["state"] for r in results if r["command_id"] == "open-please"] == ["queued", "sent"]


@pytest.mark.timeout(60)
def test_heat_wave_opens_the_valve_by_itself(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, network={"dedup_window_ms": 40}))
    specs = make_specs({"cooling": 1})
    provision_sim(cfg, specs)
    afternoon = World(start_hour=15.0, heat_wave_start_s=-86_400.0)  # ~34 Cel from the start
    with (
        InProcessGateway(cfg) as gw,
        Simulation(gw.udp, specs, speed=600, wait_s=0.35, world=afternoon) as sim,
    ):
        opened = sim.wait_for(lambda e: e["event"] == "valve" and e["open"], 30)
        assert opened is not None and opened["reason"] == "heat" and opened["ambient"] >= 30
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
            u["data"]["valve_open"] for u in file_ups(tmp_path / "out.jsonl")
        ):
            time.sleep(0.1)
    assert any(
        u["data"]["valve_open"] and u["data"]["ambient_temperature"] >= 30
        for u in file_ups(tmp_path / "out.jsonl")
    )


def test_world_model_shapes() -> None:
    w = World()
    assert w.air_c(11 * 3600) > w.air_c(0)  # 17:00 warmer than 06:00
    assert w.air_c(11 * 3600) > 33  # the heat wave's afternoon
    assert w.river_cm(0) == pytest.approx(150) and w.river_cm(12 * 3600) > w.alarm_levels_cm[-1]
    with pytest.raises(ValueError, match="KIND"):
        parse_counts("dragons=2")


@pytest.mark.timeout(90)
def test_havel_sim_command_registers_its_nodes_and_starts_them_at_the_data_rate_asked(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from havel.cli import cli

    cfg_path = write_config(tmp_path, network={"dedup_window_ms": 40})
    cfg = config.load(cfg_path)
    sigterm = signal.getsignal(signal.SIGTERM)  # the command installs its own handler: put pytest's back
    with InProcessGateway(cfg) as gw:
        host, port = gw.udp
        try:
            r = CliRunner().invoke(
                cli,
                [
                    "sim",
                    "--gateway",
                    f"{host}:{port}",
                    "--nodes",
                    "temperature=1",
                    "--config",
                    str(cfg_path),
                    "--speed",
                    "3000",
                    "--duration",
                    "8",
                    "--dr",
                    "0",
                    "--json",
                ],
                catch_exceptions=False,
            )
        finally:
            signal.signal(signal.SIGTERM, sigterm)
        assert r.exit_code == 0, r.output
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not file_ups(tmp_path / "out.jsonl"):
            time.sleep(0.1)
    events = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    assert any(e["event"] == "join" for e in events), r.output
    ups = file_ups(tmp_path / "out.jsonl")
    assert ups and ups[0]["rx"][0]["datr"] == "SF12BW125"  # joined and started at DR0, as asked
