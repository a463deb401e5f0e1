"""Passive session following on its own: sessions from a relayed join, kept in a 0600 file across restarts,
a join-accept that answers another device or none ignored, copies and replays not stored twice."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from havel.codecs.lorawan import phy
from havel.errors import InputError
from havel.gateway.backends.semtech_udp.rxpk import RxPacket
from havel.gateway.metrics import Metrics
from havel.gateway.network.following import JOIN_EPOCH_BASE, Follower
from havel.gateway.network.messages import MessageBuilder, compiled_codec
from havel.gateway.network.reception import reception

from .helpers import FOLLOWED_EUI, FOLLOWED_KEY, JOIN_EUI, data_frame, otaa, session_from_accept, vector

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def follower(path: Path, stored: list[dict[str, Any]]) -> Follower:
    dev = otaa()

    def store(records: list[dict[str, Any]]) -> int:
        stored.extend(records)
        return len(records)

    return Follower(
        lambda e: dev if e == FOLLOWED_EUI else None,
        MessageBuilder(compiled_codec, None),
        store,
        Metrics(),
        path,
    )


def copy(frame: bytes) -> Any:
    return reception(0xAA555A0000000101, RxPacket(frame, 1000, 868_100_000, "SF7BW125"), NOW)


def join(f: Follower, nonce: int, at: float, heard: tuple[int, int] | None = None) -> None:
    jr = phy.parse(
        phy.build_join_request(join_eui=JOIN_EUI, dev_eui=FOLLOWED_EUI, dev_nonce=nonce, app_key=FOLLOWED_KEY)
    )
    assert isinstance(jr, phy.JoinRequest)
    assert f.on_join_request(otaa(), jr, at=at, heard=heard)


def accept(key: bytes = FOLLOWED_KEY, dev_addr: int = 0x26000042) -> bytes:
    return phy.build_join_accept(app_key=key, join_nonce=0x10, net_id=0x13, dev_addr=dev_addr)


def test_session_from_join_survives_a_restart_in_a_0600_file(tmp_path: Path) -> None:
    stored: list[dict[str, Any]] = []
    path = tmp_path / "followed.json"
    f = follower(path, stored)
    join(f, 0x0102, at=100.0)
    assert f.on_downlink(accept(bytes(16)), at=101.0) is None  # another device's accept (MIC fails)
    s = f.on_downlink(accept(), at=105.0)
    assert s is not None and s.epoch == JOIN_EPOCH_BASE + 0x0102 and s.dev_addr == 0x26000042
    dev_addr, nwk, app = session_from_accept(accept(), 0x0102)
    assert (s.nwk_s_key, s.app_s_key) == (nwk, app)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    c1 = copy(data_frame(dev_addr, 1, nwk, app))
    assert f.on_uplinks([(phy.parse(c1.rx.data), c1)]) == 1  # type: ignore[list-item]
    assert f.on_uplinks([(phy.parse(c1.rx.data), c1)]) == 0  # (a second copy: not stored again)
    assert stored[0]["id"] == f"{FOLLOWED_EUI:016X}-{JOIN_EPOCH_BASE + 0x0102}-1"
    assert stored[0]["payload"]["data"] == vector()["data"]
    f.save()
    again = follower(path, stored)
    again.load()
    c2 = copy(data_frame(dev_addr, 2, nwk, app))
    assert again.on_uplinks([(phy.parse(c2.rx.data), c2)]) == 1  # type: ignore[list-item]
    assert again.on_uplinks([(phy.parse(c1.rx.data), c1)]) == 0  # type: ignore[list-item]  # replayed
    assert [r["payload"]["fcnt"] for r in stored] == [1, 2]


def test_a_late_accept_starts_nothing(tmp_path: Path) -> None:
    f = follower(tmp_path / "followed.json", [])
    join(f, 7, at=100.0)
    assert f.on_downlink(accept(), at=130.0) is None  # long after JOIN_ACCEPT_DELAY2
    assert not f.sessions


def test_an_accept_timed_for_a_followed_join_that_fails_its_mic_is_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = follower(tmp_path / "followed.json", [])
    gw, tmst = 0xAA555A0000000101, 0xFFFFF000  # (the counter wraps before RX1)
    join(f, 0x0203, at=100.0, heard=(gw, tmst))

    def mic_failures() -> float:
        return f.metrics.get("followed_total", what="join_accept_mic")

    wrong = accept(bytes(16))  # the server used another AppKey than the registry holds
    # another device's accept: another concentrator, or not timed as this request's answer
    assert f.on_downlink(wrong, at=105.0, gateway_eui=gw + 1, tmst=(tmst + 5_000_000) & 0xFFFFFFFF) is None
    assert f.on_downlink(wrong, at=105.0, gateway_eui=gw, tmst=(tmst + 3_000_000) & 0xFFFFFFFF) is None
    assert f.on_downlink(wrong, at=105.0, gateway_eui=gw, tmst=None) is None
    assert mic_failures() == 0 and not caplog.records
    # the answer to this request (RX1, then RX2 timing): counted, and the log names the device
    with caplog.at_level("WARNING", logger="havel.gateway.following"):
        assert f.on_downlink(wrong, at=105.0, gateway_eui=gw, tmst=(tmst + 5_000_000) & 0xFFFFFFFF) is None
        assert f.on_downlink(wrong, at=106.0, gateway_eui=gw, tmst=(tmst + 6_000_000) & 0xFFFFFFFF) is None
    assert mic_failures() == 2 and not f.sessions
    assert f"{FOLLOWED_EUI:016X}" in caplog.text and "AppKey" in caplog.text
    # the right accept still starts the session, and is not counted as a failure
    assert f.on_downlink(accept(), at=106.0, gateway_eui=gw, tmst=(tmst + 6_000_000) & 0xFFFFFFFF)
    assert mic_failures() == 2 and f.metrics.get("followed_total", what="joined") == 1


def test_a_damaged_sessions_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "followed.json"
    path.write_text(json.dumps([{"dev_eui": "zz"}]))
    with pytest.raises(InputError, match=r"followed\.json"):
        follower(path, []).load()


def test_a_damaged_sessions_file_does_not_stop_the_roof(tmp_path: Path) -> None:
    from support.gateway_run import InProcessGateway, free_udp_port, write_config

    from havel.gateway import config

    from .helpers import upstream_section

    cfg = config.load(write_config(tmp_path, extra=upstream_section(free_udp_port(), follow=[])))
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    (cfg.data_dir / "followed-sessions.json").write_text("{not json")
    with InProcessGateway(cfg) as roof:
        assert roof.gateway.metrics.get("followed_total", what="sessions_file_damaged") == 1
    assert list(cfg.data_dir.glob("followed-sessions.json.damaged-*"))
