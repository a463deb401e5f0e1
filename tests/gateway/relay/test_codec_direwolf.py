"""The project's KISS/AX.25 codec against direwolf's own: direwolf A decodes what it is given (its log
line ``[0L] SRC>DEST,PATH:info``), transmits it as AFSK 1200, direwolf B demodulates it and hands the bytes
back over KISS: they must equal our encoding byte for byte, and our decoding of them the original frame."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from havel.gateway.relay import aprs, ax25, kiss

from .conftest import needs_direwolf

pytestmark = [needs_direwolf, pytest.mark.slow]

FRAMES = [
    # an alarm as the relay sends it
    ax25.UIFrame.aprs(
        "N0CALL-10", "APZHVL", ":N0CALL-1 :HA 70B3D57ED0001234-0-41 TP3QC0 level=182 17.AbC-_9xYz01{3F"
    ),
    # SSID 15, a digipeater that has repeated the frame (H bit) and one that has not
    ax25.UIFrame(
        ax25.Address("APZHVL", 0, True),
        ax25.Address("DB0ABC", 15),
        b"T#005,199,000,255,073,123,01101001",
        (ax25.Address("DB0XYZ", 1, True), ax25.Address("WIDE2", 2)),
    ),
    # telemetry definitions, addressed to itself
    ax25.UIFrame.aprs(
        "N0CALL-10",
        "APZHVL",
        aprs.definition_messages("N0CALL-10", [aprs.Channel("Level", "cm", 0, 2, 0)])[2].encode(),
        ["WIDE1-1"],
    ),
    # bytes KISS must escape (FEND, FESC) inside the information field
    ax25.UIFrame.aprs("N0CALL-10", "APZHVL", b">esc \xc0 \xdb \x01 end"),
]


@pytest.mark.timeout(60)
def test_direwolf_decodes_our_frames_and_returns_the_same_bytes(radio: Any) -> None:
    with (
        socket.create_connection(("127.0.0.1", radio.b.kiss_port)) as rx,
        socket.create_connection(("127.0.0.1", radio.a.kiss_port)) as tx,
    ):
        rx.settimeout(1.0)
        for f in FRAMES:
            tx.sendall(kiss.encode(f.encode()))
        dec = kiss.Decoder()
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < len(FRAMES) and time.monotonic() < deadline:
            try:
                data = rx.recv(4096)
            except TimeoutError:
                continue
            got += [fr.payload for fr in dec.feed(data) if fr.command == kiss.CMD_DATA]
    # direwolf sends frames that were digipeated already from its high-priority queue: order may differ
    assert sorted(got) == sorted(f.encode() for f in FRAMES)
    assert sorted(map(ax25.UIFrame.decode, got), key=lambda f: f.encode()) == sorted(
        FRAMES, key=lambda f: f.encode()
    )
    # direwolf's own rendering of what it was given equals ours, byte for byte
    assert sorted(radio.a.sent_lines()) == sorted(f.tnc2() for f in FRAMES)
    assert sorted(radio.b.heard_lines()) == sorted(f.tnc2() for f in FRAMES)
