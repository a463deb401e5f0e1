"""ADR decisions (gateway/adr.py): the step table, and the per-device state from request to answer."""

from __future__ import annotations

from typing import Any

import pytest

from havel.codecs.lorawan import maccmds
from havel.gateway.adr import HISTORY, AdrController, link_adr_req, target


class DictStore:
    """The AdrStore interface over a dict (the SQLite one is exercised through the scheduler's tests)."""

    def __init__(self) -> None:
        self.saved: dict[int, tuple[int, int]] = {}  # dev_eui -> (epoch, tx_power)

    def load_tx_power(self, dev_eui: int, epoch: int) -> int | None:
        held = self.saved.get(dev_eui)
        return held[1] if held is not None and held[0] == epoch else None

    def save_tx_power(self, dev_eui: int, epoch: int, tx_power: int) -> None:
        self.saved[dev_eui] = (epoch, tx_power)


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


def uplinks(
    ctl: AdrController, n: int, *, dr: int = 0, snr: float = 5.0, epoch: int = 0, window: bool = True
) -> list[Any]:
    """``n`` uplinks without MAC answers; a LinkADRReq decided is sent as the scheduler does when a receive
    window (``window``) takes it."""

    def one() -> Any:
        d = ctl.on_uplink(1, epoch, adr=True, adr_ack_req=False, dr=dr, max_snr_db=snr, mac_up=[])
        if d.command is not None and window:
            ctl.sent(1, epoch, d.command)
        return d

    return [one() for _ in range(n)]


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
    ans = {"name": "LinkADRAns", "channel_mask_ack": True, "data_rate_ack": True, "power_ack": True}
    ctl.on_uplink(1, 0, adr=True, adr_ack_req=False, dr=5, max_snr_db=0.0, mac_up=[ans])
    assert store.saved == {1: (0, 2)} and ctl.counters["accepted"] == 1
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
    d = ctl.on_uplink(1, 0, adr=True, adr_ack_req=False, dr=0, max_snr_db=5.0, mac_up=[refused])
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


def test_adr_ack_req_is_always_answered_even_when_adr_is_switched_off() -> None:
    ctl = AdrController(DictStore(), enabled=False)
    d = ctl.on_uplink(1, 0, adr=True, adr_ack_req=True, dr=0, max_snr_db=5.0, mac_up=[])
    assert d.answer_needed and d.command is None
    assert all(d.command is None for d in uplinks(ctl, 3 * HISTORY))


def test_devices_without_the_adr_bit_or_with_an_unknown_rate_are_left_alone() -> None:
    ctl = AdrController(DictStore())
    for _ in range(2 * HISTORY):
        for dev, adr, dr in ((1, False, 0), (2, True, None), (3, True, 6)):
            d = ctl.on_uplink(dev, 0, adr=adr, adr_ack_req=False, dr=dr, max_snr_db=9.0, mac_up=[])
            assert d.command is None


def test_a_new_session_starts_from_the_defaults() -> None:
    store = DictStore()
    store.saved[1] = (3, 4)  # acknowledged in session 3
    ctl = AdrController(store)
    assert ctl.tx_power(1, 3) == 4
    uplinks(ctl, HISTORY - 1, epoch=3)
    # the device joined again (session 4): its MAC is back at TXPower 0, and a new history is needed
    assert ctl.tx_power(1, 4) == 0
    assert uplinks(ctl, 1, epoch=4)[0].command is None
    assert [d.command is not None for d in uplinks(ctl, HISTORY - 1, epoch=4)][-1]
