"""Upstream mode against a real upstream network server (a second Havel daemon in standalone mode): frames
go up byte for byte, the upstream's join-accept and downlinks reach the forwarder with the TX_ACK going back,
the roof follows the joined session and decodes its readings, local and unknown devices take their paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.gateway_run import InProcessGateway, write_config

from havel.codecs.lorawan import phy
from havel.gateway import config

from .helpers import (
    FOLLOWED_EUI,
    GW_EUI,
    JOIN_EUI,
    LOCAL_ADDR,
    LOCAL_EUI,
    STRANGER_ADDR,
    STRANGER_EUI,
    Forwarder,
    abp,
    data_frame,
    messages,
    otaa,
    register,
    session_from_accept,
    spy,
    upstream_section,
    vector,
    wait_for,
)


class Setup:
    def __init__(self, upstream: InProcessGateway, roof: InProcessGateway, fwd: Forwarder, tmp: Path) -> None:
        self.upstream = upstream
        self.roof = roof
        self.fwd = fwd
        self.up_out = tmp / "up" / "out.jsonl"
        self.roof_out = tmp / "roof" / "out.jsonl"
        self.up_got = spy(upstream)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    (tmp_path / "up").mkdir()
    (tmp_path / "roof").mkdir()
    up_cfg = config.load(write_config(tmp_path / "up", network={"dedup_window_ms": 40}, gateway_id="city-ns"))
    register(up_cfg.db_path, [otaa(), abp("stranger", STRANGER_EUI, STRANGER_ADDR)])
    with InProcessGateway(up_cfg) as upstream:
        port = upstream.udp[1]
        roof_cfg = config.load(
            write_config(
                tmp_path / "roof",
                network={"dedup_window_ms": 40},
                extra=upstream_section(port, follow=[FOLLOWED_EUI]),
            )
        )
        register(roof_cfg.db_path, [otaa(), abp("local", LOCAL_EUI, LOCAL_ADDR)])
        with InProcessGateway(roof_cfg) as roof:
            fwd = Forwarder(roof.udp)
            try:
                fwd.pull()
                yield Setup(upstream, roof, fwd, tmp_path)
            finally:
                fwd.close()


def pushes(got: list[bytes]) -> list[bytes]:
    return [d for d in got if len(d) > 12 and d[3] == 0]


def test_unknown_device_passes_through_byte_identical(setup: Setup) -> None:
    frame = data_frame(STRANGER_ADDR, 1)
    sent = setup.fwd.push(frame)
    wait_for(lambda: sent in pushes(setup.up_got), 20, "the PUSH_DATA upstream")
    got = wait_for(
        lambda: [m for m in messages(setup.up_out) if m.get("dev_eui") == f"{STRANGER_EUI:016X}"], 20, ""
    )
    assert got[0]["data"] == vector()["data"] and got[0]["fcnt"] == 1
    # the roof stored nothing of a device it does not know, and said which mode it took
    assert not [m for m in messages(setup.roof_out) if m.get("dev_eui") == f"{STRANGER_EUI:016X}"]
    assert setup.roof.gateway.metrics.get("upstream_frames_total", mode="upstream") >= 1


def test_join_through_upstream_then_the_followed_session_decodes_locally(setup: Setup) -> None:
    fwd, roof = setup.fwd, setup.roof
    nonce = 0x1A2B
    join = phy.build_join_request(
        join_eui=JOIN_EUI, dev_eui=FOLLOWED_EUI, dev_nonce=nonce, app_key=otaa().app_key
    )  # type: ignore[arg-type]
    sent = fwd.push(join)
    wait_for(lambda: sent in pushes(setup.up_got), 20, "the join-request upstream")
    # the upstream server answers; the forwarder transmits its join-accept and acknowledges it
    txpk, accept = fwd.pull_resp()
    assert accept[0] >> 5 == 0b001 and txpk["ipol"] is True
    up_metrics = setup.upstream.gateway.metrics
    wait_for(lambda: up_metrics.get("downlinks_tx_ack_total", error="NONE") >= 1, 20, "the TX_ACK upstream")
    dev_addr, nwk, app = session_from_accept(accept, nonce)
    # the roof derived the same session from what it relayed
    wait_for(
        lambda: roof.gateway.status()["upstream"]["followed"][f"{FOLLOWED_EUI:016X}"]["session_epoch"],
        10,
        "session",
    )
    follow = roof.gateway.status()["upstream"]["followed"][f"{FOLLOWED_EUI:016X}"]
    assert follow == {"session_epoch": 1_000_000 + nonce, "dev_addr": f"{dev_addr:08X}"}
    for fcnt in (1, 2):
        fwd.push(data_frame(dev_addr, fcnt, nwk, app))
    eui = f"{FOLLOWED_EUI:016X}"
    mine = wait_for(
        lambda: (
            len([m for m in messages(setup.roof_out) if m.get("dev_eui") == eui]) == 2
            and [m for m in messages(setup.roof_out) if m.get("dev_eui") == eui]
        ),
        20,
        "followed readings",
    )
    assert [m["id"] for m in mine] == [f"{eui}-{1_000_000 + nonce}-1", f"{eui}-{1_000_000 + nonce}-2"]
    assert all(m["data"] == vector()["data"] and m["served_by"] == "upstream" for m in mine)
    # the upstream server got the frames too and is the one that serves the device
    theirs = wait_for(
        lambda: [m for m in messages(setup.up_out) if m.get("dev_eui") == eui and "fcnt" in m], 20, ""
    )
    assert {m["fcnt"] for m in theirs} <= {1, 2}
    # the upstream server's downlinks to the device (its MAC commands) reach the forwarder and their TX_ACK
    # goes back; the roof itself never answers the device (no RX1/RX2 downlink of its own)
    txpk, down = fwd.pull_resp()
    assert not phy.parse(down).uplink  # type: ignore[union-attr]
    assert phy.parse(down).dev_addr == dev_addr  # type: ignore[union-attr]
    wait_for(
        lambda: up_metrics.get("downlinks_tx_ack_total", error="NONE") >= 2, 20, "the second TX_ACK upstream"
    )
    m = roof.gateway.metrics
    assert m.get("downlinks_tx_total", window="RX1") == m.get("downlinks_tx_total", window="RX2") == 0
    assert m.get("downlinks_tx_total", window="upstream") == 2


def test_local_device_is_served_by_the_roof_and_not_sent_upstream(setup: Setup) -> None:
    frame = data_frame(LOCAL_ADDR, 7)
    sent = setup.fwd.push(frame)
    eui = f"{LOCAL_EUI:016X}"
    got = wait_for(
        lambda: [m for m in messages(setup.roof_out) if m.get("dev_eui") == eui], 20, "local reading"
    )
    assert got[0]["fcnt"] == 7 and got[0]["id"] == f"{eui}-0-7"
    # a stat report still goes up, so the upstream side is open; the local frame never went
    setup.fwd.push(data_frame(STRANGER_ADDR, 3))
    wait_for(lambda: len(pushes(setup.up_got)) >= 1, 20, "a later PUSH_DATA upstream")
    assert sent not in pushes(setup.up_got)
    assert not any(frame.hex() in repr(d) for d in setup.up_got)
    assert setup.roof.gateway.metrics.get("upstream_frames_total", mode="local") == 1


def test_a_concentrator_that_pulls_gets_its_downlink_path_upstream_before_any_uplink(setup: Setup) -> None:
    # (the fixture's forwarder has only sent PULL_DATA so far)
    wait_for(lambda: setup.upstream.gateway.udp.can_send(GW_EUI), 20, "the upstream's downlink path")
    assert not pushes(setup.up_got)


def test_a_stat_report_goes_upstream_as_it_came(setup: Setup) -> None:
    stat = {
        "time": "2026-12-07 06:00:00 GMT",
        "rxnb": 3,
        "rxok": 2,
        "rxfw": 2,
        "ackr": 100.0,
        "dwnb": 1,
        "txnb": 1,
    }
    datagram = b"\x02\x12\x34\x00" + GW_EUI.to_bytes(8, "big") + json.dumps({"stat": stat}).encode()
    setup.fwd.sock.sendto(datagram, setup.roof.udp)
    wait_for(lambda: datagram in setup.up_got, 20, "the stat report upstream")
    wait_for(
        lambda: setup.upstream.gateway.udp.forwarders[GW_EUI].stat is not None, 20, "the upstream's view"
    )
