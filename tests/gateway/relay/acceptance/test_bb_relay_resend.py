"""Black-box: an unacknowledged APRS alarm is sent again after resend_s (at least 30 s, the APRS rule) with
a fresh signature counter and the same message id (docs/relay.md). About 40 s: the APRS rule sets the pace."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import relay_bb_kit as k
from test_bb_relay_gateway import CALL, CENTRE, Rig, make_rig
from test_bb_relay_gateway import pytestmark as needs_mosquitto_and_node

pytestmark = [needs_mosquitto_and_node, pytest.mark.slow]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path)


def test_an_unacked_alarm_is_resent_with_a_fresh_counter_and_the_same_id(rig: Rig) -> None:
    rig.broker.stop()
    k.wait_for(lambda: rig.metric("relay_primary_down") == 1, 60, "relay_primary_down 1")
    rig.emergency("on")
    rig.uplink(2, 163)
    k.wait_for(lambda: sum(b":HA " in f.info for f in rig.frames()) >= 2, 120, "the alarm sent again")
    sent = [k.parse_message(f.text) for f in rig.frames() if b":HA " in f.info][:2]
    lines = [text.rpartition(" ") for _, text, _ in sent]
    counters = [
        k.verify(rig.key, CALL, "aprs", sig, f"{CENTRE:<9}:{line}".encode()) for line, _, sig in lines
    ]
    assert lines[0][0] == lines[1][0], "the same relay line: the same message id and reading"
    assert sent[0][2] == sent[1][2] and sent[0][2] is not None, "the same APRS message id"
    assert counters[1] > counters[0], counters
    assert rig.metric('relay_messages{path="aprs",what="resent"}') >= 1
