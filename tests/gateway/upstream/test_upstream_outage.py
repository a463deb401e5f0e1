"""The upstream network server unreachable for a while: the outage is detected and reported (status,
metric, event), followed devices' readings still reach the outbox, nothing is sent up later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.gateway_run import InProcessGateway, free_udp_port, write_config

from havel.gateway import config
from havel.gateway.network.following import import_epoch

from .helpers import NWK, Forwarder, abp, data_frame, messages, register, spy, upstream_section, wait_for

EUI = 0x70B3D57ED0000044
ADDR = 0x26014444


def city(gw: InProcessGateway) -> dict[str, Any]:
    return gw.gateway.status()["upstream"]["servers"]["city"]  # type: ignore[no-any-return]


def test_upstream_down_readings_stay_local_and_nothing_is_replayed(tmp_path: Path) -> None:
    (tmp_path / "roof").mkdir()
    (tmp_path / "up").mkdir()
    port = free_udp_port()  # nothing listens there yet: the city's server is down
    roof_cfg = config.load(
        write_config(
            tmp_path / "roof",
            network={"dedup_window_ms": 40},
            extra=upstream_section(port, follow=[EUI], keepalive_s=0.2, down_after_s=1.0),
        )
    )
    register(roof_cfg.db_path, [abp("followed-abp", EUI, ADDR)])
    events: list[tuple[str, dict[str, Any]]] = []
    with InProcessGateway(roof_cfg) as roof:
        roof.gateway.event_listeners.append(lambda e, d: events.append((e, d)))
        fwd = Forwarder(roof.udp)
        try:
            fwd.pull()
            fwd.push(data_frame(ADDR, 1))  # opens the concentrator's path upstream: unanswered
            wait_for(lambda: not city(roof)["up"], 20, "the upstream marked down")
            down = ("upstream_down", {"upstream": "city", "address": f"127.0.0.1:{port}"})
            # the listeners hear it on the daemon's loop, possibly just after the status changed
            wait_for(lambda: down in events, 20, "the upstream_down event")
            assert roof.gateway.metrics.get("upstream_state_changes", upstream="city") == 1
            # the platform hears of it as a gateway event
            out = tmp_path / "roof" / "out.jsonl"
            wait_for(lambda: any(m.get("event") == "upstream_down" for m in messages(out)), 20, "the event")
            for fcnt in (2, 3):
                fwd.push(data_frame(ADDR, fcnt))
            eui = f"{EUI:016X}"
            epoch = import_epoch(ADDR, NWK)
            got = wait_for(
                lambda: (
                    [m for m in messages(tmp_path / "roof" / "out.jsonl") if m.get("dev_eui") == eui]
                    if len(messages(tmp_path / "roof" / "out.jsonl")) >= 3
                    else None
                ),
                20,
                "local readings",
            )
            assert [m["id"] for m in got if m.get("fcnt")] == [f"{eui}-{epoch}-{n}" for n in (1, 2, 3)]
            assert (
                roof.gateway.metrics.get("upstream_not_forwarded_total", upstream="city", reason="down") >= 2
            )
            # the city's server comes back (a real one: a Havel daemon in standalone mode on that port)
            up_cfg = config.load(
                write_config(tmp_path / "up", network={"dedup_window_ms": 40}, udp_port=port)
            )
            register(up_cfg.db_path, [abp("followed-abp", EUI, ADDR)])
            with InProcessGateway(up_cfg) as upstream:
                got_up = spy(upstream)
                wait_for(lambda: city(roof)["up"], 20, "the upstream up again")
                # (the link's state turns before its listeners are told, in the daemon's thread)
                wait_for(lambda: events[-1][0] == "upstream_back", 20, "the upstream_back event")
                fwd.push(data_frame(ADDR, 4))
                up_out = tmp_path / "up" / "out.jsonl"
                theirs = wait_for(
                    lambda: [m for m in messages(up_out) if m.get("dev_eui") == eui], 20, "fcnt 4 up"
                )
                # only the frame sent after the outage: the ones heard meanwhile were never replayed
                assert [m["fcnt"] for m in theirs] == [4]
                assert sum(1 for d in got_up if len(d) > 12 and d[3] == 0) == 1
        finally:
            fwd.close()
