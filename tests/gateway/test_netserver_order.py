"""Session changes and frame counters are ordered per device whatever the order of a batch: a join-request
and uplinks of the session it replaces, processed in one commit in any interleaving, never leave the old
session's counter on the new one. Used DevNonces outlive the device entry. A counter jump past the 16-bit
window is reported as ``fcnt_gap``, not as a MIC failure. Real SQLite registry, outbox and codecs."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from havel.codecs.lorawan import crypto, phy
from havel.gateway.network.sessions import Device

from .test_netserver import ABP_EUI, APP_KEY, JOIN_EUI, NOW, OTAA_EUI, Env, up, vector
from .test_netserver import env as env

COOL = bytes.fromhex(vector("cooling")["bytes"])


def otaa_env(tmp: Path) -> tuple[Env, int, bytes, bytes]:
    """An OTAA device joined once (DevNonce 1) with FCnt 0..10 accepted: (env, DevAddr, NwkSKey, AppSKey)."""
    env = Env(tmp)
    env.reg.add(
        Device(
            name="cool-1",
            dev_eui=OTAA_EUI,
            codec="cooling",
            activation="otaa",
            join_eui=JOIN_EUI,
            app_key=APP_KEY,
        )
    )
    joined = env.one(
        phy.build_join_request(join_eui=JOIN_EUI, dev_eui=OTAA_EUI, dev_nonce=1, app_key=APP_KEY)
    )
    assert joined.status == "joined"
    addr, nwk, app = session_of(joined.join_accept or b"", 1)
    for f in range(11):
        assert env.hear(up(f, COOL, addr=addr, nwk=nwk, app=app), tmst=f) is None
    assert all(o.status == "accepted" for o in env.flush())
    return env, addr, nwk, app


def session_of(accept: bytes, dev_nonce: int) -> tuple[int, bytes, bytes]:
    plain = phy.parse_join_accept(crypto.decrypt_join_accept(APP_KEY, accept))
    nwk, app = crypto.derive_session_keys(APP_KEY, plain.join_nonce, plain.net_id, dev_nonce)
    return plain.dev_addr, nwk, app


def check_new_session_starts_clean(env: Env, accept: bytes, dev_nonce: int) -> None:
    """No counter on the new session (database and cache), and its FCnt 0 is accepted."""
    assert env.fcnt_in_db(OTAA_EUI) is None
    dev = env.reg.get(OTAA_EUI)
    assert dev is not None and dev.session is not None and dev.session.fcnt_up is None
    addr, nwk, app = session_of(accept, dev_nonce)
    first = env.one(up(0, COOL, addr=addr, nwk=nwk, app=app), tmst=999)
    assert (first.status, first.fcnt32) == ("accepted", 0), (first.reason, first.detail)


def run_batch(env: Env, order: list[object], old: tuple[int, bytes, bytes], nonce: int) -> list[object]:
    """Hear the frames of ``order`` (ints: old-session FCnts; "join": the join-request) in that order and
    flush them as one batch."""
    addr, nwk, app = old
    for i, item in enumerate(order):
        if item == "join":
            frame = phy.build_join_request(
                join_eui=JOIN_EUI, dev_eui=OTAA_EUI, dev_nonce=nonce, app_key=APP_KEY
            )
        else:
            assert isinstance(item, int)
            frame = up(item, COOL, addr=addr, nwk=nwk, app=app)
        assert env.hear(frame, tmst=1000 + i) is None
    return env.flush()  # type: ignore[return-value]


@pytest.mark.parametrize("join_first", [True, False], ids=["join-then-uplink", "uplink-then-join"])
def test_join_and_an_old_session_uplink_in_one_batch_in_either_order(
    tmp_path: Path, join_first: bool
) -> None:
    env, addr, nwk, app = otaa_env(tmp_path)
    order: list[object] = ["join", 11] if join_first else [11, "join"]
    outs = run_batch(env, order, (addr, nwk, app), 2)
    by_kind = {("join" if o.status == "joined" else "up"): o for o in outs}  # type: ignore[attr-defined]
    assert set(by_kind) == {"join", "up"}
    # the old session's frame is kept (its data is real), under the old session's id
    assert by_kind["up"].status == "accepted"  # type: ignore[attr-defined]
    assert by_kind["up"].record["id"] == f"{OTAA_EUI:016X}-1-11"  # type: ignore[attr-defined]
    check_new_session_starts_clean(env, by_kind["join"].join_accept, 2)  # type: ignore[attr-defined]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.permutations([11, 12, 13, 14, "join"]))
def test_any_interleaving_of_a_join_and_old_session_uplinks(order: list[object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env, addr, nwk, app = otaa_env(Path(tmp))
        try:
            outs = run_batch(env, order, (addr, nwk, app), 2)
            joined = [o for o in outs if o.status == "joined"]  # type: ignore[attr-defined]
            assert len(joined) == 1
            # each old frame is accepted unless a higher one of its session came before it in the batch
            highest = 10
            for item, out in zip(order, outs, strict=True):
                if item == "join":
                    continue
                assert isinstance(item, int)
                if item > highest:
                    assert (out.status, out.fcnt32) == ("accepted", item)  # type: ignore[attr-defined]
                    highest = item
                else:
                    assert out.reason == "replay"  # type: ignore[attr-defined]
            check_new_session_starts_clean(env, joined[0].join_accept, 2)  # type: ignore[attr-defined]
        finally:
            env.conn.close()


def test_a_removed_device_keeps_its_used_dev_nonces(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A recorded join-request replayed after `device remove` + add (or `import --replace`) is refused: the
    DevNonces outlive the device entry. Clearing them is explicit, logged, and says what it cleared."""
    env, *_ = otaa_env(tmp_path)
    jr = phy.build_join_request(join_eui=JOIN_EUI, dev_eui=OTAA_EUI, dev_nonce=1, app_key=APP_KEY)
    dev = env.reg.get(OTAA_EUI)
    assert dev is not None
    env.reg.remove(OTAA_EUI)
    env.reg.add(
        Device(
            name="cool-1",
            dev_eui=OTAA_EUI,
            codec="cooling",
            activation="otaa",
            join_eui=JOIN_EUI,
            app_key=APP_KEY,
        )
    )
    env.ns.dedup.forget_all()  # as after a restart: only the stored DevNonces protect
    assert env.one(jr).reason == "dev_nonce_reused"
    with caplog.at_level(logging.WARNING, logger="havel.gateway.registry"):
        assert env.reg.forget_dev_nonces(OTAA_EUI) == 1
    assert any(
        "1 used DevNonce" in r.getMessage() and f"{OTAA_EUI:016X}" in r.getMessage() for r in caplog.records
    )
    env.ns.dedup.forget_all()
    assert env.one(jr).status == "joined"


def test_an_abp_counter_jump_past_the_window_is_a_gap_not_a_mic_failure(env: Env) -> None:
    """The device's counter moved 49,152 or more ahead (e.g. a node that lost its counter state and
    skipped ahead): the 16 bits on air look like an old counter. The MIC verifies with the counter one
    16-bit epoch further, so operators are told to look at the counter, not the keys."""
    assert env.one(up(20_000)).status == "accepted"
    jump = env.one(up(20_000 + 49_152))
    assert (jump.status, jump.reason) == ("rejected", "fcnt_gap")
    assert "69152" in jump.detail and "20000" in jump.detail
    assert env.one(up(20_000 + 65_536 + 5)).reason == "fcnt_gap"
    # a frame with wrong keys is still a MIC failure
    assert env.one(up(20_001, nwk=bytes(16))).reason == "mic"
    assert env.fcnt_in_db(ABP_EUI) == 20_000
    assert env.one(up(20_001)).status == "accepted"


def test_a_confirmed_frame_sent_again_after_its_device_joined_in_the_batch_gets_no_ack(
    tmp_path: Path,
) -> None:
    """The old session's confirmed frame, sent again for its missed ACK, processed after the device's new
    join in the same batch: it is recognised, but no downlink is asked for with the replaced session's keys
    (that would also advance the new session's downlink counter)."""
    env, addr, nwk, app = otaa_env(tmp_path)
    confirmed = up(11, COOL, addr=addr, nwk=nwk, app=app, confirmed=True)
    assert env.hear(confirmed, tmst=50_000_000) is None
    assert [o.status for o in env.flush()] == ["accepted"]
    jr = phy.build_join_request(join_eui=JOIN_EUI, dev_eui=OTAA_EUI, dev_nonce=2, app_key=APP_KEY)
    env.mono += 5.0
    assert env.hear(jr, tmst=56_000_000) is None
    assert env.hear(confirmed, tmst=57_000_000) is None  # 7 s after the first copy: sent again
    asked: list[str] = []
    env.mono += 1.0
    outs = env.ns.flush(env.mono, NOW, after_store=lambda out: asked.append(out.status))
    assert [o.status for o in outs] == ["joined", "retransmission"]
    assert outs[1].superseded and asked == ["joined"]
