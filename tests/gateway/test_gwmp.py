"""The GWMP codec against the protocol's byte layout (PROTOCOL.TXT v1.3 / PROTOCOL.md v1.5)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from havel.gateway.backends.base import DownlinkFrame
from havel.gateway.backends.semtech_udp import gwmp
from havel.gateway.backends.semtech_udp.gwmp import GwmpError
from havel.gateway.backends.semtech_udp.rxpk import parse_rxpk, parse_stat, parse_time, rxpk_to_json
from havel.gateway.backends.semtech_udp.txpk import build_txpk, txpk_data, txpk_of

EUI = 0xAA555A0000000101
EUI_BYTES = bytes.fromhex("AA555A0000000101")

# The spec's example PUSH_DATA body (its "data" strings are not frames, only JSON handling is tested).
SPEC_RXPK = {
    "time": "2013-03-31T16:21:17.528002Z",
    "tmst": 3512348611,
    "chan": 2,
    "rfch": 0,
    "freq": 866.349812,
    "stat": 1,
    "modu": "LORA",
    "datr": "SF7BW125",
    "codr": "4/6",
    "rssi": -35,
    "lsnr": 5.1,
    "size": 32,
    "data": base64.b64encode(bytes(range(32))).decode(),
}


def test_push_data_layout_and_rxpk_fields() -> None:
    raw = b"\x02\x12\x34\x00" + EUI_BYTES + json.dumps({"rxpk": [SPEC_RXPK]}).encode()
    dg = gwmp.parse(raw)
    assert (dg.version, dg.token, dg.kind, dg.gateway_eui) == (2, 0x1234, "PUSH_DATA", EUI)
    rx = parse_rxpk(dg.payload["rxpk"][0])
    assert rx.data == bytes(range(32))
    assert rx.freq_hz == 866_349_812
    assert (rx.tmst, rx.chan, rx.datr, rx.codr, rx.rssi, rx.lsnr) == (
        3512348611,
        2,
        "SF7BW125",
        "4/6",
        -35,
        5.1,
    )
    assert rx.time == datetime(2013, 3, 31, 16, 21, 17, 528002, tzinfo=UTC)
    assert rx.crc_ok


def test_push_ack_echoes_token_and_version() -> None:
    assert gwmp.encode_push_ack(1, 0xBEEF) == b"\x01\xbe\xef\x01"
    assert gwmp.encode_pull_ack(2, 0x0102) == b"\x02\x01\x02\x04"


def test_pull_data_and_tx_ack() -> None:
    dg = gwmp.parse(b"\x02\xab\xcd\x02" + EUI_BYTES)
    assert (dg.kind, dg.gateway_eui, dg.token) == ("PULL_DATA", EUI, 0xABCD)
    ok = gwmp.parse(gwmp.encode_tx_ack(2, 7, EUI))
    assert gwmp.tx_ack_error(ok) == "NONE"
    bad = gwmp.parse(gwmp.encode_tx_ack(2, 7, EUI, "TOO_LATE"))
    assert (bad.kind, gwmp.tx_ack_error(bad)) == ("TX_ACK", "TOO_LATE")
    # Some forwarders NUL-terminate the JSON.
    nul = gwmp.parse(b"\x02\x00\x07\x05" + EUI_BYTES + b'{"txpk_ack":{"error":"TX_FREQ"}}\x00')
    assert gwmp.tx_ack_error(nul) == "TX_FREQ"


def test_pull_resp_roundtrip_txpk() -> None:
    txpk = build_txpk(data=b"\x60\x01\x02", freq_hz=869_525_000, datr="SF12BW125", tmst=2**32 + 5)
    raw = gwmp.encode_pull_resp(2, 0x4242, txpk)
    assert raw[:4] == b"\x02\x42\x42\x03"
    dg = gwmp.parse(raw)
    out = dg.payload["txpk"]
    assert out["tmst"] == 5  # the microsecond counter wraps
    assert out["freq"] == 869.525 and out["ipol"] is True and out["size"] == 3
    assert txpk_data(out) == b"\x60\x01\x02"
    # v1 forwarders ignore the token: it is sent as zero.
    assert gwmp.encode_pull_resp(1, 0x4242, txpk)[:4] == b"\x01\x00\x00\x03"


def test_a_backend_neutral_frame_becomes_a_lorawan_txpk() -> None:
    frame = DownlinkFrame(b"\x20\x01", 868_100_000, "SF7BW125", 2**32 + 7, power_dbm=16)
    assert txpk_of(frame) == {
        "freq": 868.1,
        "rfch": 0,
        "powe": 16,
        "modu": "LORA",
        "datr": "SF7BW125",
        "codr": "4/5",
        "ipol": True,  # downlinks are sent with inverted polarity and no CRC
        "ncrc": True,
        "size": 2,
        "data": "IAE=",
        "tmst": 7,  # the concentrator's counter wraps
    }
    at_once = txpk_of(DownlinkFrame(b"\x20", 869_525_000, "SF12BW125", None))
    assert at_once["imme"] is True and "tmst" not in at_once and at_once["powe"] == 14


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "truncated"),
        (b"\x02\x00", "truncated"),
        (b"\x03\x00\x00\x00" + EUI_BYTES + b"{}", "version"),
        (b"\x00\x00\x00\x00" + EUI_BYTES + b"{}", "version"),
        (b"\x02\x00\x00\x09", "identifier"),
        (b"\x02\x00\x00\x00\xaa\x55", "truncated"),
        (b"\x02\x00\x00\x00" + EUI_BYTES, "truncated"),
        (b"\x02\x00\x00\x00" + EUI_BYTES + b'{"rxpk": [', "json"),
        (b"\x02\x00\x00\x00" + EUI_BYTES + b"\xff\xfe", "json"),
        (b"\x02\x00\x00\x00" + EUI_BYTES + b"[1, 2]", "json"),
        (b"\x02\x00\x00\x02\x01", "truncated"),
    ],
)
def test_bad_datagrams_raise_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(GwmpError) as info:
        gwmp.parse(raw)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("data"),
        lambda d: d.__setitem__("data", "!!!not base64"),
        lambda d: d.pop("tmst"),
        lambda d: d.pop("freq"),
        lambda d: d.__setitem__("freq", "868.1"),
        lambda d: d.pop("datr"),
        lambda d: d.__setitem__("size", 99),
        lambda d: d.__setitem__("time", "yesterday"),
        # Python's JSON reader takes NaN and Infinity: no radio measures them and JSON cannot store them
        lambda d: d.__setitem__("rssi", float("nan")),
        lambda d: d.__setitem__("lsnr", float("-inf")),
        lambda d: d.__setitem__("freq", float("inf")),
        lambda d: d.update(rssi=None, lsnr=None, rsig=[{"ant": 0, "lsnr": "strong", "rssic": -90}]),
        lambda d: d.__setitem__("tmst", True),
        lambda d: d.__setitem__("chan", "two"),
    ],
)
def test_bad_rxpk_fields(mutate) -> None:  # type: ignore[no-untyped-def]
    obj = dict(SPEC_RXPK)
    mutate(obj)
    with pytest.raises(GwmpError) as info:
        parse_rxpk(obj)
    assert info.value.reason == "rxpk"


def test_rxpk_optional_padding_fsk_and_rsig() -> None:
    obj = {"tmst": 1, "freq": 868.1, "datr": 50000, "modu": "FSK", "data": "AQID", "stat": -1}
    rx = parse_rxpk(obj)
    assert rx.datr == "50000" and not rx.crc_ok and rx.time is None
    unpadded = dict(SPEC_RXPK, data="AQ", size=1)
    assert parse_rxpk(unpadded).data == b"\x01"
    v15 = {
        "tmst": 1,
        "freq": 868.3,
        "datr": "SF9BW125",
        "data": "AQID",
        "rsig": [
            {"ant": 0, "chan": 1, "rssic": -110, "lsnr": -3.0},
            {"ant": 1, "chan": 1, "rssic": -100, "lsnr": 7.5},
        ],
    }
    rx = parse_rxpk(v15)
    assert (rx.rssi, rx.lsnr) == (-100.0, 7.5)


def test_times_with_nanoseconds_and_stat_format() -> None:
    assert parse_time("2026-11-26T09:00:00.123456789Z") == datetime(2026, 11, 26, 9, 0, 0, 123456, tzinfo=UTC)
    stat = parse_stat(
        {
            "time": "2014-01-12 08:59:28 GMT",
            "lati": 46.24,
            "long": 3.2523,
            "alti": 145,
            "rxnb": 2,
            "rxok": 2,
            "rxfw": 2,
            "ackr": 100.0,
            "dwnb": 2,
            "txnb": 2,
        }
    )
    assert stat.time == datetime(2014, 1, 12, 8, 59, 28, tzinfo=UTC)
    assert (stat.rxnb, stat.ackr, stat.alti) == (2, 100.0, 145)
    assert stat.as_dict()["time"] == "2014-01-12T08:59:28.000000Z"


def test_rxpk_json_roundtrip() -> None:
    rx = parse_rxpk(SPEC_RXPK)
    again = parse_rxpk(rxpk_to_json(rx))
    assert again == rx


def test_push_data_encoder_is_parseable() -> None:
    raw = gwmp.encode_push_data(1, 9, EUI, rxpk=[SPEC_RXPK], stat={"rxnb": 1})
    dg = gwmp.parse(raw)
    assert dg.version == 1 and dg.payload["stat"] == {"rxnb": 1} and len(dg.payload["rxpk"]) == 1


def test_rxpk_parsed_from_json_text_with_nan_is_refused_not_stored() -> None:
    """The same through the datagram parser: NaN and Infinity are not JSON, and its reader (orjson)
    refuses them where Python's json.loads would take them."""
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"rxpk":[{"tmst":1,"freq":868.1,"datr":"SF7BW125","rssi":' + literal + b',"data":"AA=="}]}'
        with pytest.raises(GwmpError) as info:
            gwmp.parse(bytes([2, 0, 1, 0]) + bytes(8) + body)
        assert info.value.reason == "json"


HUGE = 10**400  # a JSON integer Python reads exactly, and float() cannot hold


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("freq", 1e303),  # once an uncaught OverflowError (1e303 MHz in Hz is infinity)
        ("freq", HUGE),
        ("freq", 0.0),
        ("freq", -868.1),
        ("tmst", 1e303),
        ("tmst", HUGE),
        ("tmst", -1),
        ("tmst", 1 << 32),
        ("tmst", 1.5),
        ("time", "9999-12-31T23:59:59-01:00"),  # past year 9999 in UTC: once an OverflowError
        ("time", "10000-01-01T00:00:00Z"),
        ("time", 1700000000),
        ("time", "2026-11-26T09:00:00Z" + " " * 100),
        ("tmms", 1e303),
        ("tmms", -5),
        ("tmms", "1234"),
        ("chan", 1e303),
        ("chan", 256),
        ("rfch", -1),
        ("rfch", [0]),
        ("stat", 7),
        ("stat", "1"),
        ("stat", 1e303),
        ("rssi", 1e303),
        ("rssi", -HUGE),
        ("rssi", "loud"),
        ("lsnr", 1e303),
        ("lsnr", True),
        ("size", 1e303),
        ("size", "32"),
        ("size", 33),
        ("data", "A" * 100_000),
        ("data", base64.b64encode(bytes(256)).decode()),
        ("data", 12),
        ("datr", "SF99BW125"),
        ("datr", "SF7BW125" + "x" * 1000),
        ("datr", 50000),  # a number is FSK's bit rate, but modu says LORA
        ("datr", ["SF7BW125"]),
        ("codr", 5),
        ("codr", "4/9"),
        ("codr", "x" * 1000),
        ("codr", ["4/5"]),
        ("modu", "QPSK"),
        ("modu", 1),
        ("rsig", {"ant": 0}),
        ("rsig", [1]),
        ("rsig", [{"ant": 0, "lsnr": 1e303}]),
        ("rsig", [{"ant": 0, "lsnr": HUGE}]),
        ("rsig", [{"ant": 0, "rssic": -HUGE}]),
        ("rsig", [{"ant": i} for i in range(1000)]),
    ],
)
def test_rxpk_fields_out_of_range_or_of_the_wrong_type(field: str, value: object) -> None:
    obj = dict(SPEC_RXPK, **{field: value})
    with pytest.raises(GwmpError) as info:
        parse_rxpk(obj)
    assert (info.value.reason, info.value.field) == ("rxpk", field)


def test_fsk_bit_rate_out_of_range() -> None:
    obj = {"tmst": 1, "freq": 868.8, "modu": "FSK", "data": "AQID"}
    for datr in (1e303, HUGE, -50000, 0.5, "fast", None):
        with pytest.raises(GwmpError) as info:
            parse_rxpk(dict(obj, datr=datr))
        assert info.value.field == "datr"


def test_rxpk_values_at_the_edges_of_their_ranges_are_taken() -> None:
    edge = dict(
        SPEC_RXPK,
        tmst=(1 << 32) - 1,
        freq=2425.0,  # a 2.4 GHz concentrator
        chan=255,
        rfch=0,
        stat=-1,
        rssi=-250,
        lsnr=-50.0,
        tmms=1_400_000_000_000,
        codr="4/8LI",
        datr="SF12BW812",
        time="9999-12-31T22:59:59Z",
        data=base64.b64encode(bytes(255)).decode(),
        size=255,
    )
    rx = parse_rxpk(edge)
    assert (rx.tmst, rx.freq_hz, rx.stat, rx.tmms, len(rx.data)) == (
        (1 << 32) - 1,
        2_425_000_000,
        -1,
        1_400_000_000_000,
        255,
    )
    assert parse_rxpk(dict(SPEC_RXPK, tmst=5.0)).tmst == 5  # an integral float is an integer


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rxnb", 1e303),
        ("rxnb", HUGE),
        ("rxok", -1),
        ("ackr", 1e303),
        ("ackr", "full"),
        ("lati", 1e303),
        ("lati", 91.0),
        ("long", -HUGE),
        ("alti", 1e303),
        ("temp", 1e303),
        ("dwnb", "2"),
        ("time", "9999-12-31 23:59:59 GMT" + "x"),
        ("time", 12),
        ("time", "9999-12-31T23:59:59-01:00"),
    ],
)
def test_stat_fields_out_of_range_or_of_the_wrong_type(field: str, value: object) -> None:
    with pytest.raises(GwmpError) as info:
        parse_stat({"time": "2014-01-12 08:59:28 GMT", "rxnb": 2, field: value})
    assert (info.value.reason, info.value.field) == ("stat", field)


def test_tx_ack_error_is_one_of_the_protocol_names() -> None:
    """A TX_ACK's error becomes a metric label: a sender's free text must not create new ones."""
    raw = b"\x02\x00\x07\x05" + EUI_BYTES + json.dumps({"txpk_ack": {"error": "x" * 5000}}).encode()
    assert gwmp.tx_ack_error(gwmp.parse(raw)) == "UNKNOWN"
    raw = b"\x02\x00\x07\x05" + EUI_BYTES + b'{"txpk_ack": {"error": [1, 2]}}'
    assert gwmp.tx_ack_error(gwmp.parse(raw)) == "UNKNOWN"


def test_header_reads_the_eui_without_the_json() -> None:
    raw = b"\x02\x12\x34\x00" + EUI_BYTES + b"{not json at all"
    assert gwmp.header(raw) == (2, 0x1234, gwmp.PUSH_DATA, EUI)
    assert gwmp.header(gwmp.encode_pull_ack(2, 7)) == (2, 7, gwmp.PULL_ACK, None)
