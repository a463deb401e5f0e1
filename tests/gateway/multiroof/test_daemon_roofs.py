"""Three real gateway daemons (`havel gateway run` with `[network] store`) on one real redis-server, each
with its own simulated concentrator over real UDP (GWMP), nodes heard by two or three of them: each uplink
delivered once per id through the daemons' sinks, one join-accept per join, one downlink per command
commanded over MQTT on one roof's broker (sent by the roof whose gateway hears the device best), counters
consistent after a daemon is SIGKILLed and restarted; a daemon cut off from Redis keeps delivering from
its cached sessions and sends its counters as maxima when it reaches Redis again."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from pathlib import Path

from support.mosquitto import Mosquitto
from support.mqtt_subscriber import Subscriber
from support.redis import Gate, RedisServer

from havel.codecs.lorawan import phy
from havel.gateway.network.shared.connection import StoreSettings, connect
from havel.gateway.network.shared.state import SharedState

from .daemons import UPLINK_ID, DaemonRoof, uplink_ids, wait_for
from .helpers import Node, abp_node, battery_known
from .roofs import Concentrator

GWS = {"roof-a": 0xAA00000000000001, "roof-b": 0xBB00000000000001, "roof-c": 0xCC00000000000001}
# which roofs hear each node, with the SNR each hears it with
HEARD = [
    {"roof-a": 5.0, "roof-b": -2.0},
    {"roof-b": 7.0, "roof-c": 1.0},
    {"roof-a": -4.0, "roof-c": 3.0},
    {"roof-a": 2.0, "roof-b": 8.0, "roof-c": -6.0},
    {"roof-a": 9.0, "roof-b": 0.5, "roof-c": 4.5},
]
JOINER_HEARD = {"roof-a": 2.0, "roof-c": 6.0}


def test_three_daemons_share_one_network_through_mqtt_commands_and_a_kill(
    redis_server: RedisServer, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    shared = SharedState(connect(StoreSettings(redis_server.url)))
    nodes = [abp_node(30 + i) for i in range(len(HEARD))]
    joiner: Node = abp_node(40)
    joiner.otaa = True
    silent = abp_node(45)  # registered, never heard: its command runs out of time
    for n in [*nodes, joiner, silent]:
        shared.put_device(n.device())
        battery_known(shared, n.dev_eui)
    platform = {
        "type": "mqtt",
        "name": "platform",
        "host": "127.0.0.1",
        "port": mosquitto.port,
        "tls": False,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
        "commands": True,
    }
    roofs = {
        name: DaemonRoof(name, redis_server.url, tmp_path, mqtt=platform if name == "roof-a" else None)
        for name in GWS
    }
    concs: dict[str, Concentrator] = {}
    base = "havel/roof-a/devices"
    try:
        with Subscriber(mosquitto.port, f"{base}/#") as sub:
            for name, r in roofs.items():
                r.proc.start()
                concs[name] = Concentrator(GWS[name], r.udp_port)
            time.sleep(1.2)  # every concentrator's PULL_DATA reached its daemon (sent every 0.5 s)
            # two commands over MQTT on roof A's broker: node 0 (heard best by A), node 3 (best by B)
            for i, data in ((0, "01"), (3, "02")):
                sub.client.publish(
                    f"{base}/{nodes[i].dev_eui:016X}/down",
                    json.dumps({"fport": 7, "raw": data, "id": f"cmd-{i}"}),
                    qos=1,
                )
            results = wait_for(
                lambda: (
                    [
                        m.json()
                        for m in sub.messages
                        if m.topic.endswith("/down/result") and m.json().get("state") == "queued"
                    ]
                    if len([m for m in sub.messages if m.topic.endswith("/down/result")]) >= 2
                    else None
                )
            )
            assert results and sorted(r["command_id"] for r in results) == ["cmd-0", "cmd-3"], sub.messages
            body = {"fport": 7, "raw": "03", "id": "cmd-ttl", "ttl_s": 1}
            sub.client.publish(f"{base}/{silent.dev_eui:016X}/down", json.dumps(body), qos=1)

            # the join, heard by A and C: one join-accept, through C (best SNR)
            jr = joiner.join_request()
            for name, snr in JOINER_HEARD.items():
                concs[name].hear(jr, snr)
            assert wait_for(lambda: sum(len(c.downlinks) for c in concs.values()) == 1)
            (txpk,) = concs["roof-c"].downlinks
            joiner.take_join_accept(base64.b64decode(txpk["data"]))
            everyone = [*zip(nodes, HEARD, strict=True), (joiner, JOINER_HEARD)]

            expected: set[str] = set()
            for rnd in range(8):
                for n, heard in everyone:
                    frame = n.uplink()
                    epoch = 1 if n is joiner else 0
                    expected.add(f"{n.dev_eui:016X}-{epoch}-{n.fcnt}")
                    for name, snr in heard.items():
                        concs[name].hear(frame, snr)
                if rnd == 3:
                    roofs["roof-b"].proc.kill()  # SIGKILL inside the dedup window of the frames it took
                if rnd == 5:
                    roofs["roof-b"].proc.start()
                    time.sleep(1.2)
                got = wait_for(lambda: expected <= set(uplink_ids(roofs)), 30)
                assert got, sorted(expected - set(uplink_ids(roofs)))
            time.sleep(1.0)
            ids = uplink_ids(roofs)
            assert set(ids) == expected
            # every uplink processed and stored by one roof only (one roof's sink has each id)...
            by_id: dict[str, set[str]] = {}
            for name, r in roofs.items():
                for m in r.messages():
                    if UPLINK_ID.match(str(m.get("id"))):
                        by_id.setdefault(m["id"], set()).add(name)
            assert [i for i, names in by_id.items() if len(names) > 1] == []
            # ... and once per id, except what the killed roof's sink delivered again after its restart (its
            # outbox had not yet recorded those deliveries: at least once, with the same id)
            for name in ("roof-a", "roof-c"):
                assert max(Counter(m["id"] for m in roofs[name].messages()).values()) == 1
            for n in [*nodes, joiner]:
                dev = shared.device(n.dev_eui)
                assert dev is not None and dev.session is not None and dev.session.fcnt_up == 8

            # one join-accept and one downlink per command, each through one roof
            def commands() -> list[tuple[str, phy.DataFrame]]:
                out = []
                for name, c in concs.items():
                    for t in c.downlinks:
                        d = phy.parse(base64.b64decode(t["data"]))
                        if isinstance(d, phy.DataFrame) and d.fport is not None:
                            out.append((name, d))
                return out

            assert wait_for(lambda: len(commands()) == 2, 10)
            time.sleep(0.5)
            downs = [phy.parse(base64.b64decode(t["data"])) for c in concs.values() for t in c.downlinks]
            assert len(downs) == 3  # (the devices' batteries are known: no DevStatusReq)
            assert len([d for d in downs if not isinstance(d, phy.DataFrame)]) == 1  # the join-accept
            by_roof = sorted((name, d.dev_addr) for name, d in commands())
            assert by_roof == [("roof-a", nodes[0].dev_addr), ("roof-b", nodes[3].dev_addr)]

            # their results: "sent", each by the roof that transmitted it (A publishes on its broker, B's sink
            # is its file)
            def sent_on_mqtt(cmd: str) -> bool:
                return any(
                    m.topic.endswith("/down/result")
                    and m.json().get("state") == "sent"
                    and m.json().get("command_id") == cmd
                    for m in list(sub.messages)
                )

            assert wait_for(lambda: sent_on_mqtt("cmd-0"), 15)

            def b_sent() -> list[str]:
                return [p["command_id"] for p in roofs["roof-b"].messages() if p.get("state") == "sent"]

            assert wait_for(lambda: b_sent() == ["cmd-3"], 15), b_sent()
            assert not sent_on_mqtt("cmd-3")

            # the command whose ttl_s ran out: expired, reported once, by the one roof whose sweep took it (a
            # record delivered again after roof B's restart has the same id: at least once)
            def expired() -> set[tuple[str, str]]:
                return {
                    (name, p["id"])
                    for name, r in roofs.items()
                    for p in r.messages()
                    if p.get("command_id") == "cmd-ttl" and p.get("state") == "expired"
                }

            assert wait_for(lambda: len(expired()) == 1, 15)
            time.sleep(1.5)  # (every roof's sweep ran again meanwhile)
            assert len(expired()) == 1
            # the daemon's own parts ran: the monitoring port counts what each roof accepted
            assert sum(r.metric("uplinks_accepted_total") for r in roofs.values()) >= len(expected) - 8 * 2
            assert all(r.metric("shared_store_online") == 1.0 for r in roofs.values())
    finally:
        for c in concs.values():
            c.close()
        for r in roofs.values():
            if r.proc.proc is not None:
                r.proc.terminate()


def test_a_daemon_cut_off_from_redis_delivers_from_its_cache_and_reconciles(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    shared = SharedState(connect(StoreSettings(redis_server.url)))
    node = abp_node(50)
    shared.put_device(node.device())
    concs: list[Concentrator] = []
    with Gate(redis_server.port) as gate:
        a = DaemonRoof("roof-a", gate.url, tmp_path)
        b = DaemonRoof("roof-b", redis_server.url, tmp_path)
        roofs = {"a": a, "b": b}
        try:
            a.proc.start()
            b.proc.start()
            ca, cb = Concentrator(GWS["roof-a"], a.udp_port), Concentrator(GWS["roof-b"], b.udp_port)
            concs += [ca, cb]
            time.sleep(1.2)
            ca.hear(node.uplink(), 3.0)
            assert wait_for(lambda: len(uplink_ids(roofs)) == 1)
            assert a.status()["shared_store"]["reachable"] is True
            cut_at = time.time() - 1.0  # (a second of leeway for the clocks' rounding)
            gate.cut()  # roof A's path to Redis is gone
            for _ in range(3):
                ca.hear(node.uplink(), 3.0)
            # delivered by A's sinks from its cached session while it cannot reach the store
            assert wait_for(lambda: len(uplink_ids(roofs)) == 4), a.messages()
            assert a.metric("shared_store_online") == 0.0
            # the status says so: the store without credentials, this roof, unreachable since the cut
            st = a.status()
            shared_st = st["shared_store"]
            assert st["state"] == "degraded" and shared_st["reachable"] is False
            assert shared_st["url"] == gate.url and shared_st["roof"] == "roof-a"
            assert shared_st["last_reconcile"] is None and shared_st["since"] >= cut_at
            assert "shared store redis://127.0.0.1" in a.status_text() and "UNREACHABLE" in a.status_text()
            # meanwhile roof B (on Redis) hears a later frame that A does not: the counter moves to 5
            cb.hear(node.uplink(), 3.0)
            assert wait_for(lambda: len(uplink_ids(roofs)) == 5)
            dev = shared.device(node.dev_eui)
            assert dev is not None and dev.session is not None and dev.session.fcnt_up == 5
            gate.restore()
            assert wait_for(lambda: a.metric("shared_store_online") == 1.0, 20)
            shared_st = a.status()["shared_store"]
            assert shared_st["reachable"] is True and shared_st["last_reconcile"] >= shared_st["since"] - 1
            assert "reachable" in a.status_text() and "UNREACHABLE" not in a.status_text()
            # A's counters went up as maxima: 4 does not move the 5 back (and no frame of theirs is left to
            # save: every marker of a raised counter went with its roof's commit)
            assert redis_server.client().keys("havel:applied:*") == []
            dev = shared.device(node.dev_eui)
            assert dev is not None and dev.session is not None and dev.session.fcnt_up == 5
            ids = uplink_ids(roofs)
            assert set(ids) == {f"{node.dev_eui:016X}-0-{i}" for i in range(1, 6)}
            assert max(ids.values()) == 1
            assert Counter(m["id"] for m in b.messages() if UPLINK_ID.match(str(m.get("id")))) == {
                f"{node.dev_eui:016X}-0-5": 1
            }
        finally:
            for c in concs:
                c.close()
            for r in roofs.values():
                if r.proc.proc is not None:
                    r.proc.terminate()
