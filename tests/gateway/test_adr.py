"""ADR decisions (gateway/adr.py): the step table, and the per-device state from request to answer."""

from __future__ import annotations

import random
from typing import Any

import pytest

from havel.codecs.lorawan import maccmds
from havel.gateway.adr import AdrController
from havel.gateway.adr_rules import HISTORY, OUTAGE_GAP, link_adr_req, loss_percent, nb_trans_for, target

ACCEPT = {"name": "LinkADRAns", "channel_mask_ack": True, "data_rate_ack": True, "power_ack": True}


class DictStore:
    """The AdrStore interface over a dict (the SQLite one is exercised through the scheduler's tests)."""

    def __init__(self) -> None:
        self.saved: dict[int, tuple[int, int, int]] = {}  # dev_eui -> (epoch, tx_power, nb_trans)

    def load_settings(self, dev_eui: int, epoch: int) -> tuple[int, int] | None:
        held = self.saved.get(dev_eui)
        return (held[1], held[2]) if held is not None and held[0] == epoch else None

    def save_settings(self, dev_eui: int, epoch: int, tx_power: int, nb_trans: int) -> None:
        self.saved[dev_eui] = (epoch, tx_power, nb_trans)


@pytest.mark.parametrize(
    ("snr", "dr", "power", "margin", "expected"),
    [
        (5.0, 0, 0, 10.0, (5, 0)),  # SF12 needs -20 dB: 15 dB over the margin = 5 steps, all data rate
        (8.0, 0, 0, 10.0, (5, 1)),  # 18 dB: 6 steps, the last one off the power
        (20.0, 3, 0, 10.0, (5, 5)),  # 22.5 dB: 7 steps, 2 of data rate and 5 of power
        (30.0, 3, 0, 10.0, (5, 7)),  # far more than needed: DR5 and the lowest power, no further
        (-12.0, 0, 0, 10.0, (0, 0)),  # -2 dB: truncated to no step (not a reason to spend more power)
        (-14.0, 0, 3, 10.0, (0, 2)),  # -4 dB: one step back up in power
        (-30.0, 2, 5, 10.0, (2, 0)),  # a bad link: full power, but the network never lowers the data rate
        (-7.5 + 10.0, 5, 2, 10.0, (5, 2)),  # exactly at the margin: stay
        (0.0, 5, 0, 0.0, (5, 2)),  # margin 0: 7.5 dB over the SF7 floor = 2 steps of power
    ],
)
def test_target_steps(snr: float, dr: int, power: int, margin: float, expected: tuple[int, int]) -> None:
    assert target(snr, dr, power, margin) == expected


def test_link_adr_req_encodes_as_the_spec_lays_it_out() -> None:
    # CID 0x03, DataRate_TXPower (DR5 << 4 | 2), ChMask 0x0000, Redundancy (ChMaskCntl 6 << 4 | NbTrans 1)
    assert maccmds.encode([link_adr_req(5, 2)], False) == bytes.fromhex("03520000" + "61")


_fcnt = {"next": 0}


def uplinks(
    ctl: AdrController,
    n: int,
    *,
    dr: int = 0,
    snr: float = 5.0,
    epoch: int = 0,
    window: bool = True,
    lost_every: int = 0,
    mac_up: list[dict[str, Any]] | None = None,
) -> list[Any]:
    """``n`` uplinks that arrive (the frame counter skipping one before every ``lost_every``-th, a frame
    lost on the air), the first with ``mac_up``; a LinkADRReq decided is sent as the scheduler does when a
    receive window (``window``) takes it."""

    def one(k: int) -> Any:
        _fcnt["next"] += 1 + (1 if lost_every and k % lost_every == lost_every - 1 else 0)
        up = (mac_up or []) if k == 0 else []
        d = ctl.on_uplink(
            1, epoch, adr=True, adr_ack_req=False, dr=dr, max_snr_db=snr, mac_up=up, fcnt=_fcnt["next"]
        )
        if d.command is not None and window:
            ctl.sent(1, epoch, d.command)
        return d

    return [one(k) for k in range(n)]


def test_a_decision_waits_for_a_full_history_then_asks_once() -> None:
    ctl = AdrController(DictStore())
    early = uplinks(ctl, HISTORY - 1)
    assert all(d.command is None and not d.answer_needed for d in early)
    [d] = uplinks(ctl, 1)
    assert d.command is not None and (d.command["data_rate"], d.command["tx_power"]) == (5, 0)
    # while the answer is awaited, nothing is asked again
    [again] = uplinks(ctl, 1)
    assert again.command is None and ctl.counters["requested"] == 1


def test_an_accepted_change_is_stored_and_the_history_starts_again() -> None:
    store = DictStore()
    ctl = AdrController(store)
    uplinks(ctl, HISTORY - 1, snr=12.0)
    [d] = uplinks(ctl, 1, snr=12.0)
    assert d.command is not None and (d.command["data_rate"], d.command["tx_power"]) == (5, 2)
    ctl.on_uplink(1, 0, adr=True, adr_ack_req=False, dr=5, max_snr_db=0.0, mac_up=[ACCEPT], fcnt=100)
    assert store.saved == {1: (0, 2, 1)} and ctl.counters["accepted"] == 1
    # a fresh controller (a restart) knows the power from the store; the history starts from nothing
    ctl2 = AdrController(store)
    got = uplinks(ctl2, HISTORY, dr=5, snr=0.0)  # 7.5 dB over SF7's floor, 10 dB margin: -2.5 -> no step
    assert all(d.command is None for d in got)
    [d2] = uplinks(ctl2, 1, dr=5, snr=-8.0)  # with -8 in the history the best is still 0.0
    assert d2.command is None
    # a worse link: the history's best falls only when the good ones have left it
    got = uplinks(ctl2, HISTORY, dr=5, snr=-8.0)
    asked = [d.command for d in got if d.command is not None]
    assert asked and (asked[0]["data_rate"], asked[0]["tx_power"]) == (5, 0)  # -5.5 dB: power 2 -> 0


def test_a_refused_request_is_not_repeated_until_a_new_history() -> None:
    ctl = AdrController(DictStore())
    uplinks(ctl, HISTORY)
    refused = {"name": "LinkADRAns", "channel_mask_ack": True, "data_rate_ack": False, "power_ack": True}
    d = ctl.on_uplink(1, 0, adr=True, adr_ack_req=False, dr=0, max_snr_db=5.0, mac_up=[refused], fcnt=100)
    assert d.command is None and ctl.counters["refused"] == 1
    assert all(d.command is None for d in uplinks(ctl, HISTORY - 2))
    assert [d.command is not None for d in uplinks(ctl, 1)] == [True]


def test_a_lost_request_may_be_sent_again() -> None:
    ctl = AdrController(DictStore())
    uplinks(ctl, HISTORY)
    first, second = uplinks(ctl, 2)  # no LinkADRAns in either: the downlink or the answer was lost
    assert first.command is None and second.command is not None
    assert ctl.counters == {"requested": 2, "accepted": 0, "refused": 0, "lost": 1}


def test_a_request_that_found_no_window_is_decided_again_and_not_counted() -> None:
    ctl = AdrController(DictStore())
    got = uplinks(ctl, HISTORY + 2, window=False)  # e.g. no packet forwarder has sent PULL_DATA yet
    assert [d.command is not None for d in got[-3:]] == [True, True, True]
    assert ctl.counters == {"requested": 0, "accepted": 0, "refused": 0, "lost": 0}


def test_a_change_decided_again_is_handed_out_again_until_the_link_asks_for_another() -> None:
    """A change that found no window is decided at every uplink (the same one, mostly): it is handed out as
    the same object, and a new one as soon as the link asks for something else."""
    ctl = AdrController(DictStore())
    got = uplinks(ctl, HISTORY + 2, dr=0, snr=8.0, window=False)
    changes = [d for d in got if d.command is not None]
    assert len(changes) == 3 and changes[0] is changes[1] is changes[2]
    assert (changes[0].command["data_rate"], changes[0].command["tx_power"]) == (5, 1)
    [better] = uplinks(ctl, 1, dr=0, snr=20.0, window=False)  # 30 dB over SF12's floor: lower power
    assert better is not changes[0] and (better.command["data_rate"], better.command["tx_power"]) == (5, 5)
    _fcnt["next"] += 1
    fcnt = _fcnt["next"]
    asked = ctl.on_uplink(1, 0, adr=True, adr_ack_req=True, dr=0, max_snr_db=20.0, mac_up=[], fcnt=fcnt)
    assert asked.answer_needed and asked.command == better.command and asked is not better
    assert changes[0].command["tx_power"] == 1  # what was handed out before is unchanged


def test_adr_ack_req_is_always_answered_even_when_adr_is_switched_off() -> None:
    ctl = AdrController(DictStore(), enabled=False)
    d = ctl.on_uplink(1, 0, adr=True, adr_ack_req=True, dr=0, max_snr_db=5.0, mac_up=[], fcnt=1)
    assert d.answer_needed and d.command is None
    assert all(d.command is None for d in uplinks(ctl, 3 * HISTORY))


def test_devices_without_the_adr_bit_or_with_an_unknown_rate_are_left_alone() -> None:
    ctl = AdrController(DictStore())
    for k in range(2 * HISTORY):
        for dev, adr, dr in ((1, False, 0), (2, True, None), (3, True, 6)):
            d = ctl.on_uplink(dev, 0, adr=adr, adr_ack_req=False, dr=dr, max_snr_db=9.0, mac_up=[], fcnt=k)
            assert d.command is None


def test_a_new_session_starts_from_the_defaults() -> None:
    store = DictStore()
    store.saved[1] = (3, 4, 2)  # acknowledged in session 3
    ctl = AdrController(store)
    assert ctl.tx_power(1, 3) == 4 and ctl.settings(1, 3) == (4, 2)
    uplinks(ctl, HISTORY - 1, epoch=3)
    # the device joined again (session 4): its MAC is back at TXPower 0, and a new history is needed
    assert ctl.settings(1, 4) == (0, 1)
    assert uplinks(ctl, 1, epoch=4)[0].command is None
    assert [d.command is not None for d in uplinks(ctl, HISTORY - 1, epoch=4)][-1]


@pytest.mark.parametrize(
    ("fcnts", "loss"),
    [
        ([], 0.0),
        ([7], 0.0),
        (list(range(1, 21)), 0.0),
        ([1, 2, 4, 5], 20.0),  # 3 lost: 1 of 5 sent
        ([1, 10], 80.0),  # 8 lost between them, 2 arrived
    ],
)
def test_loss_is_the_share_of_frame_counters_that_never_arrived(fcnts: list[int], loss: float) -> None:
    assert loss_percent(fcnts) == pytest.approx(loss)


@pytest.mark.parametrize(
    ("current", "loss", "expected"),
    [
        (1, 0.0, 1),
        (2, 4.9, 1),
        (3, 4.9, 2),  # a clean link steps repetition down, one at a time
        (1, 5.0, 1),
        (2, 9.9, 2),
        (3, 7.0, 3),  # < 10 %: keep
        (1, 10.0, 2),
        (2, 29.9, 3),
        (3, 20.0, 3),  # < 30 %: one more
        (1, 30.0, 3),
        (2, 80.0, 3),
        (3, 100.0, 3),  # worse: the most
        (0, 0.0, 1),
        (9, 50.0, 3),  # out-of-range values as the nearest
    ],
)
def test_nb_trans_follows_the_loss_table(current: int, loss: float, expected: int) -> None:
    assert nb_trans_for(current, loss) == expected


def test_link_adr_req_carries_nb_trans_in_the_redundancy_byte() -> None:
    assert maccmds.encode([link_adr_req(5, 2, 3)], False) == bytes.fromhex("03520000" + "63")


def test_a_lossy_link_gets_more_transmissions_and_a_clean_one_fewer() -> None:
    store = DictStore()
    ctl = AdrController(store)
    # 2 dB at SF7 is no step of data rate or power: only the loss speaks. One frame in five lost = 20 %
    got = uplinks(ctl, HISTORY, dr=5, snr=2.0, lost_every=4)
    [cmd] = [d.command for d in got if d.command is not None]
    assert (cmd["data_rate"], cmd["tx_power"], cmd["nb_trans"]) == (5, 0, 2)
    uplinks(ctl, 1, dr=5, snr=2.0, mac_up=[ACCEPT])
    assert store.saved == {1: (0, 0, 2)} and ctl.settings(1, 0) == (0, 2)
    # sent twice, every frame arrives: after a new history, back to one transmission
    got = uplinks(ctl, HISTORY, dr=5, snr=2.0)
    [cmd] = [d.command for d in got if d.command is not None]
    assert cmd["nb_trans"] == 1
    # a clean link at NbTrans 1 and nothing else to change: no request at all
    uplinks(ctl, 1, dr=5, snr=2.0, mac_up=[ACCEPT])
    assert all(d.command is None for d in uplinks(ctl, 2 * HISTORY, dr=5, snr=2.0))


def test_a_lost_answer_with_the_asked_data_rate_in_use_counts_as_applied() -> None:
    store = DictStore()
    ctl = AdrController(store)
    [cmd] = [d.command for d in uplinks(ctl, HISTORY, dr=0, snr=8.0) if d.command is not None]
    assert (cmd["data_rate"], cmd["tx_power"]) == (5, 1)
    # the uplink that carried the LinkADRAns was lost; the next one comes at DR5 without an answer
    d = uplinks(ctl, 1, dr=5, snr=2.0)[0]
    assert d.command is None
    assert ctl.counters == {"requested": 1, "accepted": 1, "refused": 0, "lost": 0}
    assert store.saved == {1: (0, 1, 1)}  # the power it took with the data rate is known, not guessed
    # a fresh history at the new settings before anything else is asked
    assert all(d.command is None for d in uplinks(ctl, HISTORY - 1, dr=5, snr=2.0))


def test_an_unanswered_request_at_the_old_data_rate_stays_lost() -> None:
    ctl = AdrController(DictStore())
    uplinks(ctl, HISTORY, dr=0, snr=8.0)
    uplinks(ctl, 2, dr=0, snr=8.0)  # still DR0: the request did not arrive (or was refused unheard)
    assert ctl.counters["lost"] == 1 and ctl.counters["accepted"] == 0


def test_an_outage_or_a_restart_is_not_loss_on_the_air() -> None:
    ctl = AdrController(DictStore())
    uplinks(ctl, HISTORY - 5, dr=5, snr=2.0)
    # the gateway was down for a while (or the node restarted and skipped to its next persisted FCnt block)
    _fcnt["next"] += OUTAGE_GAP + 1
    got = uplinks(ctl, HISTORY - 1, dr=5, snr=2.0)
    assert all(d.command is None for d in got)  # a new history: nothing to decide yet, and no NbTrans 3
    [d] = uplinks(ctl, 1, dr=5, snr=2.0)
    assert d.command is None  # a full, clean history: NbTrans 1 stays, nothing to change
    # a run of OUTAGE_GAP missing counters still counts as loss: 10 of the 30 sent (33 %), the most repeats
    _fcnt["next"] += OUTAGE_GAP
    [d] = uplinks(ctl, 1, dr=5, snr=2.0)
    assert d.command is not None and d.command["nb_trans"] == 3


def test_the_exported_state_keeps_its_json_form_and_a_state_continues_where_it_was() -> None:
    # (the shared store keeps this JSON in Redis: what an older roof wrote must still be read)
    ctl = AdrController(DictStore())
    _fcnt["next"] = 4_000_000_000  # near the top of the 32-bit counter
    uplinks(ctl, HISTORY + 3, dr=3, snr=5.25, window=False)
    state = ctl.export_state(1)
    assert state is not None
    assert state["fcnts"] == list(range(4_000_000_004, 4_000_000_024)) and state["snrs"] == [5.25] * HISTORY
    assert all(type(f) is int for f in state["fcnts"]) and all(type(x) is float for x in state["snrs"])
    assert (state["epoch"], state["tx_power"], state["nb_trans"], state["asked"]) == (0, 0, 1, None)
    other = AdrController(DictStore())
    other.import_state(1, state)
    assert other.export_state(1) == state
    # the next uplink (the same one) decides there as it does here: up to DR5 (7.75 dB over the margin)
    there = uplinks(other, 1, dr=3, snr=5.25, window=False)[0]
    _fcnt["next"] -= 1
    here = uplinks(ctl, 1, dr=3, snr=5.25, window=False)[0]
    assert there.command is not None and there.command["data_rate"] == 5 and there == here


@pytest.mark.parametrize("fcnt", [-1, 1 << 32])
def test_a_stored_history_with_a_counter_beyond_32_bits_is_refused(fcnt: int) -> None:
    ctl = AdrController(DictStore())
    uplinks(ctl, 3, dr=5)
    state = ctl.export_state(1)
    assert state is not None
    with pytest.raises(ValueError, match="32-bit"):
        ctl.import_state(1, {**state, "fcnts": [*state["fcnts"][:-1], fcnt]})


def test_decisions_follow_the_best_snr_of_the_last_uplinks_as_the_history_moves_on() -> None:
    """A long run of uplinks with SNRs up and down: each decision is the one the exported history gives (its
    best SNR among the last HISTORY, its loss), also when the best SNR just left the history."""
    rng = random.Random(18)
    ctl = AdrController(DictStore())
    fcnt, checked = 0, 0
    for k in range(2_000):
        fcnt += 1 + (rng.random() < 0.03)
        snr = rng.choice([None, round(rng.uniform(-16.0, 9.0), 1), -6.5, 0.0, -0.0])
        d = ctl.on_uplink(1, 0, adr=True, adr_ack_req=False, dr=3, max_snr_db=snr, mac_up=[], fcnt=fcnt)
        state = ctl.export_state(1)
        assert state is not None
        if len(state["fcnts"]) < HISTORY or not state["snrs"]:
            continue
        new_dr, new_power = target(max(state["snrs"]), 3, 0, 10.0)
        new_nb = nb_trans_for(1, loss_percent(state["fcnts"]))
        want = None if (new_dr, new_power, new_nb) == (3, 0, 1) else link_adr_req(new_dr, new_power, new_nb)
        assert d.command == want, (k, state)
        checked += 1 + (want is not None)
    assert checked > 2_000  # most uplinks decided, some of them a change
