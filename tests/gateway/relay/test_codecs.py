"""KISS, AX.25 and APRS codecs: reference bytes from the notes and the specs, round trips, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from havel.errors import FrameError, InputError
from havel.gateway.relay import aprs, ax25, kiss

# From shared/notes/relay.md: N0CALL-10>APZPGW,WIDE1-1:T#001,...
REF_HEADER = bytes.fromhex("82a0b4a08eaee09c608682989874ae92888a62406303f0")


def test_ax25_reference_header() -> None:
    f = ax25.UIFrame.aprs("N0CALL-10", "APZPGW", "T#001,...", ["WIDE1-1"])
    assert f.encode() == REF_HEADER + b"T#001,..."
    back = ax25.UIFrame.decode(f.encode())
    assert back == f
    assert back.dest.flag and not back.source.flag  # C bits: command
    assert back.tnc2() == "N0CALL-10>APZPGW,WIDE1-1:T#001,..."


def test_ax25_repeated_digipeater_and_ssid15() -> None:
    f = ax25.UIFrame(
        ax25.Address("APZHVL", 0, True),
        ax25.Address("DB0ABC", 15),
        b"x",
        (ax25.Address("DB0XYZ", 1, True), ax25.Address("WIDE2", 1)),
    )
    raw = f.encode()
    assert raw[6] == 0xE0 and raw[13] == 0x60 | 15 << 1 and raw[20] == 0x80 | 0x60 | 2 and raw[27] == 0x63
    assert ax25.UIFrame.decode(raw).tnc2() == "DB0ABC-15>APZHVL,DB0XYZ-1*,WIDE2-1:x"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        REF_HEADER[:10],  # truncated address
        REF_HEADER[:21] + b"\x03",  # control without PID
        REF_HEADER[:21] + b"\x13\xf0abc",  # not UI
        REF_HEADER[:21] + b"\x03\xccabc",  # another PID
        bytes.fromhex("82a0b4a08eaee1") + b"\x03\xf0",  # only one address
    ],
)
def test_ax25_bad_frames(raw: bytes) -> None:
    with pytest.raises(FrameError):
        ax25.UIFrame.decode(raw)


@pytest.mark.parametrize("call", ["", "TOOLONG1", "n0call-16", "N0-CALL", "ÄB1CD"])
def test_ax25_bad_callsigns(call: str) -> None:
    with pytest.raises(InputError):
        ax25.Address.parse(call)


def test_kiss_escapes_in_order() -> None:
    # FESC first, then FEND: C0 -> DB DC, DB -> DB DD (never DB DD DC)
    assert kiss.encode(b"\xc0\xdb\x01") == b"\xc0\x00\xdb\xdc\xdb\xdd\x01\xc0"
    assert kiss.encode(b"a", port=1) == b"\xc0\x10a\xc0"


def test_kiss_decoder_stream_and_noise() -> None:
    d = kiss.Decoder()
    stream = b"noise" + kiss.encode(b"\xc0one") + b"\xc0\xc0" + kiss.encode(b"two\xdb", port=2)
    frames = [f for i in range(0, len(stream), 3) for f in d.feed(stream[i : i + 3])]
    assert [(f.port, f.payload) for f in frames] == [(0, b"\xc0one"), (2, b"two\xdb")]
    assert d.feed(b"\xc0\x00bad\xdb\x41\xc0") == [] and d.errors == 1  # invalid escape dropped, counted


@given(st.binary(max_size=300), st.integers(0, 15))
def test_kiss_round_trip(payload: bytes, port: int) -> None:
    frames = kiss.Decoder().feed(kiss.encode(payload, port=port))
    if payload:
        assert frames == [kiss.KissFrame(port, 0, payload)]


def test_aprs_message_and_ack() -> None:
    m = aprs.Message("N0CALL-1", "HA 70B3 1 2 level=5", "A1B")
    info = m.encode()
    assert info == ":N0CALL-1 :HA 70B3 1 2 level=5{A1B"
    assert aprs.parse_message(info) == m
    ack = aprs.Message("N0CALL-10", "", "A1B", kind="ack").encode()
    assert ack == ":N0CALL-10:ackA1B"
    assert aprs.parse_message(ack).kind == "ack"
    assert aprs.parse_message(":N0CALL-1 :hi{7}AA").msgno == "7"  # APRS 1.1 reply-ack form


@pytest.mark.parametrize(
    "text,exc",
    [("x" * 68, aprs.OversizeError), ("pipe | here", aprs.APRSError), ("tilde~", aprs.APRSError)],
)
def test_aprs_text_rules(text: str, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        aprs.Message("N0CALL-1", text, "1").encode()
    with pytest.raises(exc):
        aprs.parse_message(f":N0CALL-1 :{text}")


@pytest.mark.parametrize(
    "info", [":SHORT:text", "!4903.50N/07201.75W-", ":N0CALL-1 :t{toolong", ":N0 CALL  :x", ":N0CALL-1 x"]
)
def test_aprs_malformed_messages(info: str) -> None:
    with pytest.raises(aprs.APRSError):
        aprs.parse_message(info)


def test_aprs_addressee_too_long() -> None:
    with pytest.raises(aprs.APRSError):
        aprs.pad_addressee("DB0ABCDEF-1")


def test_telemetry_report_and_definitions() -> None:
    t = aprs.Telemetry(5, (199, 0, 255, 73, 123), (False, True, True, False, True, False, False, True))
    assert t.encode() == "T#005,199,000,255,073,123,01101001"
    assert aprs.parse_telemetry(t.encode() + " 12.abc") == aprs.Telemetry(5, t.analog, t.bits, " 12.abc")
    level = aprs.Channel("Level", "cm", 0, 2, 0)
    assert level.raw(163) == 82 and level.value(82) == 164 and level.raw(9999) == 255
    defs = [
        m.encode()
        for m in aprs.definition_messages("N0CALL-10", [level, aprs.Channel("Temp", "C", 0, 0.5, -20)])
    ]
    assert defs == [
        ":N0CALL-10:PARM.Level,Temp",
        ":N0CALL-10:UNIT.cm,C",
        ":N0CALL-10:EQNS.0,2,0,0,0.5,-20,0,1,0,0,1,0,0,1,0",
        ":N0CALL-10:BITS.11111111,HV",
    ]
    assert aprs.parse_definition("EQNS.0,2,0") == ("EQNS", ["0", "2", "0"])


@pytest.mark.parametrize("info", ["T#1,2,3", "T#001,256,0,0,0,0,00000000", "T#001,1,2,3,4,5,0101"])
def test_telemetry_malformed(info: str) -> None:
    with pytest.raises(aprs.APRSError):
        aprs.parse_telemetry(info)
