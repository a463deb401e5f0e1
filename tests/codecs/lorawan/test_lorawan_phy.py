"""PHYPayload parsing and building: every message type, bad frames, and properties over random input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from havel.codecs.lorawan import crypto, fcnt, ids, phy
from havel.codecs.lorawan.decode import decode_frame
from havel.errors import FrameError, HavelError, InputError

DATA = Path(__file__).parent / "data"
BAD = json.loads((DATA / "bad_frames.json").read_text())["frames"]
NWK = bytes.fromhex("44024241ed4ce9a68c6a8bc055233fd3")
APP = bytes.fromhex("ec925802ae430ca77fd3dd73cb2cc588")
APP_KEY = bytes.fromhex("B6B53F4A168A7A88BDF7EA135CE9CFCA")
ERRORS = {"FrameError": FrameError, "InputError": InputError}


@pytest.mark.parametrize("case", BAD, ids=lambda c: c["why"])
def test_bad_frames_raise_frame_error(case: dict[str, str]) -> None:
    with pytest.raises(ERRORS[case["error"]]):
        phy.parse(bytes.fromhex(case["hex"]))
    with pytest.raises(ERRORS[case["error"]]):
        decode_frame(bytes.fromhex(case["hex"]), nwk_s_key=NWK, app_s_key=APP, app_key=APP_KEY)


@pytest.mark.parametrize(
    ("uplink", "confirmed", "mtype"),
    [
        (True, False, "UnconfirmedDataUp"),
        (False, False, "UnconfirmedDataDown"),
        (True, True, "ConfirmedDataUp"),
        (False, True, "ConfirmedDataDown"),
    ],
)
def test_data_frame_types_and_fctrl(uplink: bool, confirmed: bool, mtype: str) -> None:
    flags: dict[str, bool] = {"adr": True, "ack": True}
    flags.update({"adr_ack_req": True, "class_b": True} if uplink else {"fpending": True})
    raw = phy.build_data_frame(
        uplink=uplink,
        confirmed=confirmed,
        dev_addr=0x26012E43,
        fcnt32=0x12345,
        fport=10,
        payload=b"\x01\x02",
        fopts=b"\x02",
        nwk_s_key=NWK,
        app_s_key=APP,
        **flags,
    )
    frame = phy.parse(raw)
    assert isinstance(frame, phy.DataFrame)
    assert (frame.mtype, frame.uplink, frame.confirmed) == (mtype, uplink, confirmed)
    assert frame.dev_addr == 0x26012E43
    assert raw[1:5] == bytes.fromhex("432E0126")  # DevAddr little-endian on the air
    assert frame.fcnt16 == 0x2345
    assert (frame.adr, frame.ack) == (True, True)
    assert (frame.adr_ack_req, frame.class_b, frame.fpending) == (uplink, uplink, not uplink)
    assert frame.fopts == b"\x02" and frame.fopts_len == 1
    assert frame.msg == raw[:-4] and frame.mic == raw[-4:]
    assert crypto.data_mic(NWK, uplink, frame.dev_addr, 0x12345, frame.msg) == frame.mic
    # The 16-bit guess fails the MIC: the upper half of the counter counts.
    assert crypto.data_mic(NWK, uplink, frame.dev_addr, 0x2345, frame.msg) != frame.mic
    out = decode_frame(raw, nwk_s_key=NWK, app_s_key=APP, fcnt32=0x12345)
    assert out["mic_valid"] is True and out["frm_payload"] == "0102" and out["fcnt32"] == 0x12345
    if uplink:
        assert out["mac_commands"] == [{"cid": 2, "name": "LinkCheckReq"}]
    else:  # a lone 0x02 downlink is a LinkCheckAns cut short: reported, not guessed at
        assert out["mac_commands"] is None and "LinkCheckAns" in out["mac_error"]
    if uplink:
        assert set(out["fctrl"]) == {"adr", "adr_ack_req", "ack", "class_b", "fopts_len"}
    else:
        assert set(out["fctrl"]) == {"adr", "ack", "fpending", "fopts_len"}


def test_fport_zero_payload_is_mac_commands_under_nwk_s_key() -> None:
    mac = bytes.fromhex("0603510700010801")
    raw = phy.build_data_frame(
        uplink=False,
        confirmed=False,
        dev_addr=1,
        fcnt32=7,
        fport=0,
        payload=mac,
        nwk_s_key=NWK,
        app_s_key=APP,
    )
    frame = phy.parse(raw)
    assert isinstance(frame, phy.DataFrame) and frame.fport == 0
    assert crypto.crypt_frm_payload(NWK, False, 1, 7, frame.frm_payload) == mac
    assert crypto.crypt_frm_payload(APP, False, 1, 7, frame.frm_payload) != mac
    out = decode_frame(raw, nwk_s_key=NWK)
    assert out["encrypted"] is False
    assert [c["name"] for c in out["mac_commands"]] == ["DevStatusReq", "LinkADRReq", "RXTimingSetupReq"]
    hidden = decode_frame(raw)
    assert hidden["encrypted"] is True and hidden["mac_commands"] is None and hidden["mic_valid"] is None


def test_frame_without_fport_and_with_empty_payload() -> None:
    raw = phy.build_data_frame(
        uplink=True,
        confirmed=False,
        dev_addr=1,
        fcnt32=1,
        fport=None,
        payload=b"",
        nwk_s_key=NWK,
        app_s_key=APP,
    )
    assert len(raw) == 12
    out = decode_frame(raw, nwk_s_key=NWK)
    assert out["fport"] is None and out["frm_payload"] == "" and out["mic_valid"] is True
    raw = phy.build_data_frame(
        uplink=True, confirmed=False, dev_addr=1, fcnt32=1, fport=5, payload=b"", nwk_s_key=NWK, app_s_key=APP
    )
    assert decode_frame(raw)["fport"] == 5


def test_long_payload_uses_many_key_stream_blocks() -> None:
    payload = bytes(range(222))
    raw = phy.build_data_frame(
        uplink=True,
        confirmed=True,
        dev_addr=0xFFFFFFFF,
        fcnt32=0xFFFFFFFF,
        fport=224,
        payload=payload,
        nwk_s_key=NWK,
        app_s_key=APP,
    )
    out = decode_frame(raw, nwk_s_key=NWK, app_s_key=APP, fcnt32=0xFFFFFFFF)
    assert out["frm_payload"] == payload.hex() and out["mic_valid"] is True
    # Each 16-byte block has its own key stream block: no two equal blocks of ciphertext for equal plaintext.
    zeros = phy.build_data_frame(
        uplink=True,
        confirmed=False,
        dev_addr=1,
        fcnt32=1,
        fport=1,
        payload=bytes(48),
        nwk_s_key=NWK,
        app_s_key=APP,
    )
    enc = zeros[9:-4]
    assert len({enc[0:16], enc[16:32], enc[32:48]}) == 3


def test_join_request_fields_are_little_endian_on_air() -> None:
    raw = phy.build_join_request(
        join_eui=0x70B3D57ED00000DC, dev_eui=0x00AFEE7CF5ED6F1E, dev_nonce=0xCC85, app_key=APP_KEY
    )
    assert raw.hex().upper() == "00DC0000D07ED5B3701E6FEDF57CEEAF0085CC587FE913"
    frame = phy.parse(raw)
    assert isinstance(frame, phy.JoinRequest)
    assert (frame.join_eui, frame.dev_eui) == (0x70B3D57ED00000DC, 0x00AFEE7CF5ED6F1E)
    assert frame.dev_nonce == 0xCC85


def test_join_accept_without_key_stays_encrypted() -> None:
    raw = phy.build_join_accept(app_key=APP_KEY, join_nonce=1, net_id=0x13, dev_addr=0x26012E43)
    frame = phy.parse(raw)
    assert isinstance(frame, phy.JoinAccept) and frame.raw == raw
    out = decode_frame(raw)
    assert out["encrypted"] is True and out["mic"] is None and out["mic_valid"] is None
    wrong = decode_frame(raw, app_key=NWK)
    assert wrong["mic_valid"] is False


def test_join_accept_cflist_and_dl_settings_round_trip() -> None:
    cflist = [867_100_000, 867_300_000, 867_500_000]
    raw = phy.build_join_accept(
        app_key=APP_KEY,
        join_nonce=0xABCDEF,
        net_id=0x000013,
        dev_addr=0x26012E43,
        rx1_dr_offset=2,
        rx2_dr=3,
        rx_delay=5,
        cflist_hz=cflist,
    )
    assert len(raw) == 33
    out = decode_frame(raw, app_key=APP_KEY, dev_nonce=0x1234)
    assert out["join_nonce"] == 0xABCDEF and out["net_id"] == "000013" and out["dev_addr"] == "26012E43"
    assert out["dl_settings"] == {"rx1_dr_offset": 2, "rx2_dr": 3} and out["rx_delay"] == 5
    assert out["cflist"] == [*cflist, 0, 0]
    assert out["mic_valid"] is True
    nwk, app = crypto.derive_session_keys(APP_KEY, 0xABCDEF, 0x13, 0x1234)
    assert (out["nwk_s_key"], out["app_s_key"]) == (nwk.hex().upper(), app.hex().upper())


def test_cflist_bytes_are_three_byte_little_endian_hundreds_of_hz_then_the_type() -> None:
    """The CFList laid out by hand (LoRaWAN 1.0.3 6.2.5, RP002 2.4.4), not by build_join_accept."""
    freqs = [867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000]
    cflist = b"".join((f // 100).to_bytes(3, "little") for f in freqs) + b"\x00"
    assert cflist[:3] == bytes.fromhex("184F84")  # 8671000 = 0x844F18, little-endian
    dl_settings = (5 << 4) | 3  # RX1DRoffset in bits 6..4, RX2DataRate in bits 3..0; bit 7 RFU
    msg = bytes.fromhex("20563412130000432E0126") + bytes([0x80 | dl_settings, 2]) + cflist
    phy_ = crypto.encrypt_join_accept(APP_KEY, msg + crypto.join_accept_mic(APP_KEY, msg))
    out = decode_frame(phy_, app_key=APP_KEY)
    assert out["mic_valid"] is True
    assert (out["join_nonce"], out["net_id"], out["dev_addr"]) == (0x123456, "000013", "26012E43")
    assert out["dl_settings"] == {"rx1_dr_offset": 5, "rx2_dr": 3} and out["rx_delay"] == 2
    assert out["cflist"] == freqs and out["cflist_type"] == 0
    # CFListType 1 (a channel mask, US915/AU915) is not five frequencies: not printed as such.
    mask = bytes(15) + b"\x01"
    msg = msg[:13] + mask
    phy_ = crypto.encrypt_join_accept(APP_KEY, msg + crypto.join_accept_mic(APP_KEY, msg))
    out = decode_frame(phy_, app_key=APP_KEY)
    assert out["mic_valid"] is True and out["cflist"] is None and out["cflist_type"] == 1
    short = decode_frame(
        phy.build_join_accept(app_key=APP_KEY, join_nonce=1, net_id=1, dev_addr=1), app_key=APP_KEY
    )
    assert short["cflist"] is None and short["cflist_type"] is None


def test_proprietary_is_reported_not_misparsed() -> None:
    raw = bytes.fromhex("E0010203040506")
    frame = phy.parse(raw)
    assert isinstance(frame, phy.Proprietary) and frame.payload == raw[1:]
    out = decode_frame(raw, nwk_s_key=NWK)
    assert out == {
        "mtype": "Proprietary",
        "major": 0,
        "payload": "010203040506",
        "mic": None,
        "mic_valid": None,
    }
    assert phy.parse(b"\xe0").mtype == "Proprietary"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"fopts": bytes(16)}, "FOpts"),
        ({"fport": 0, "fopts": b"\x02"}, "not both"),
        ({"fport": None, "payload": b"x"}, "FPort"),
        ({"fport": 256}, "FPort"),
        ({"uplink": False, "class_b": True}, "uplink-only"),
        ({"uplink": True, "fpending": True}, "downlink-only"),
        ({"dev_addr": 1 << 32}, "DevAddr"),
        ({"fcnt32": -1}, "FCnt"),
        ({"payload": bytes(250)}, "255"),
        ({"nwk_s_key": bytes(15)}, "16 bytes"),
        ({"app_s_key": bytes(17)}, "16 bytes"),
    ],
)
def test_build_data_frame_refuses_invalid_frames(kwargs: dict[str, Any], error: str) -> None:
    args: dict[str, Any] = {
        "uplink": True,
        "confirmed": False,
        "dev_addr": 1,
        "fcnt32": 1,
        "fport": 1,
        "payload": b"",
        "nwk_s_key": NWK,
        "app_s_key": APP,
    }
    args.update(kwargs)
    with pytest.raises(InputError, match=error):
        phy.build_data_frame(**args)


def test_join_builders_refuse_out_of_range_fields() -> None:
    with pytest.raises(InputError):
        phy.build_join_request(join_eui=1 << 64, dev_eui=1, dev_nonce=1, app_key=APP_KEY)
    with pytest.raises(InputError):
        phy.build_join_request(join_eui=1, dev_eui=1, dev_nonce=1 << 16, app_key=APP_KEY)
    with pytest.raises(InputError):
        phy.build_join_accept(app_key=APP_KEY, join_nonce=1, net_id=1, dev_addr=1, cflist_hz=[867_100_050])
    with pytest.raises(InputError):
        phy.build_join_accept(app_key=APP_KEY, join_nonce=1, net_id=1, dev_addr=1, cflist_hz=[1] * 6)
    with pytest.raises(InputError):
        phy.build_join_accept(app_key=APP_KEY, join_nonce=1 << 24, net_id=1, dev_addr=1)
    with pytest.raises(InputError):
        phy.build_join_accept(app_key=bytes(8), join_nonce=1, net_id=1, dev_addr=1)


def test_wrong_key_length_is_an_input_error_everywhere() -> None:
    raw = bytes.fromhex("40F17DBE4900020001954378762B11FF0D")
    for kwargs in ({"nwk_s_key": bytes(15)}, {"app_s_key": bytes(32)}, {"app_key": b""}):
        with pytest.raises(InputError):
            decode_frame(raw, **kwargs)
    with pytest.raises(InputError):
        crypto.data_mic(bytes(10), True, 1, 1, b"\x40")
    with pytest.raises(InputError):
        ids.parse_key("00112233")


def test_fcnt32_that_does_not_match_the_frame_is_refused() -> None:
    raw = bytes.fromhex("40F17DBE4900020001954378762B11FF0D")
    with pytest.raises(InputError):
        decode_frame(raw, nwk_s_key=NWK, fcnt32=3)
    assert decode_frame(raw, nwk_s_key=NWK, fcnt32=0x10002)["mic_valid"] is False


def test_text_parsing_errors() -> None:
    with pytest.raises(InputError, match="odd-length"):
        ids.parse_hex("40F")
    with pytest.raises(InputError, match="not a hex digit"):
        ids.parse_hex("4G")
    with pytest.raises(InputError, match="base64"):
        ids.parse_base64("QPF9vk!kAAgAB")
    assert ids.parse_base64("QPF9vkkAAgABlUN4disR/w0") == bytes.fromhex("40F17DBE4900020001954378762B11FF0D")
    assert ids.parse_hex("0x40 f1") == b"\x40\xf1"
    with pytest.raises(InputError):
        ids.parse_id_hex("26012E", what="DevAddr", size=4)
    assert ids.parse_id_hex("26012E43", what="DevAddr", size=4) == 0x26012E43
    with pytest.raises(InputError):
        ids.parse_int("12x", what="n", bits=8)
    assert ids.parse_int("0xCC85", what="n", bits=16) == 52357


def test_redacted_never_shows_key_bytes() -> None:
    assert NWK.hex() not in ids.redacted(NWK) and "redacted" in ids.redacted(NWK)


# ---- 32-bit frame counters ----


@pytest.mark.parametrize(
    ("last", "fcnt16", "expected"),
    [
        (None, 5, 5),
        (0, 1, 1),
        (10, 10, 10),  # a repeat returns the same counter (replay check is the caller's)
        (0xFFFF, 0, 0x10000),  # rollover of the 16 bits
        (0x1FFF0, 0x0005, 0x20005),
        (0x12345, 0x2400, 0x12400),
        (1000, 999, 999),  # just behind: an old frame, not a jump of 65535
        (70000, 70000 - 16384 - 1 & 0xFFFF, 70000 - 16384 - 1 + 65536),  # beyond the gap behind: ahead
        (5, 0xFFFF, 0xFFFF),  # cannot go below zero
    ],
)
def test_fcnt_reconstruct(last: int | None, fcnt16: int, expected: int) -> None:
    assert fcnt.reconstruct(last, fcnt16) == expected


@given(st.integers(0, 0xFFFF0000), st.integers(0, 0xFFFF))
def test_fcnt_reconstruct_keeps_low_bits_and_stays_near(last: int, fcnt16: int) -> None:
    got = fcnt.reconstruct(last, fcnt16)
    assert got & 0xFFFF == fcnt16
    assert last - fcnt.MAX_FCNT_GAP <= got < last + 0x10000


def test_fcnt_gap_and_range() -> None:
    assert fcnt.within_gap(None, 5) and fcnt.within_gap(5, 6) and not fcnt.within_gap(5, 5)
    assert not fcnt.within_gap(0, fcnt.MAX_FCNT_GAP + 1)
    with pytest.raises(InputError):
        fcnt.reconstruct(1, 0x10000)


# ---- properties ----


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=260))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    for kwargs in ({}, {"nwk_s_key": NWK, "app_s_key": APP, "app_key": APP_KEY, "dev_nonce": 1}):
        try:
            out = decode_frame(data, **kwargs)
        except HavelError:
            continue
        json.dumps(out)  # always JSON-ready
        assert out["mtype"] in phy.MTYPE_NAMES


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFF), st.binary(min_size=11, max_size=80))
def test_random_data_frames_with_valid_mhdr_never_crash(mhdr_mtype: int, body: bytes) -> None:
    data = bytes([(2 + mhdr_mtype % 4) << 5]) + body
    try:
        out = decode_frame(data, nwk_s_key=NWK, app_s_key=APP)
    except HavelError:
        return
    assert out["dev_addr"] == int.from_bytes(body[:4], "little").to_bytes(4, "big").hex().upper()


data_frames = st.fixed_dictionaries(
    {
        "uplink": st.booleans(),
        "confirmed": st.booleans(),
        "dev_addr": st.integers(0, 0xFFFFFFFF),
        "fcnt32": st.integers(0, 0xFFFFFFFF),
        "fport": st.none() | st.integers(0, 255),
        "payload": st.binary(max_size=200),
        "fopts": st.binary(max_size=15),
        "adr": st.booleans(),
        "ack": st.booleans(),
        "flag4": st.booleans(),
        "adr_ack_req": st.booleans(),
    }
)


@settings(max_examples=300, deadline=None)
@given(data_frames)
def test_build_then_parse_round_trips(f: dict[str, Any]) -> None:
    if f["fport"] is None:
        f["payload"] = b""
    if f["fport"] == 0:
        f["fopts"] = b""
    flag4 = f.pop("flag4")
    uplink = f["uplink"]
    if not uplink:
        f["adr_ack_req"] = False
    raw = phy.build_data_frame(
        nwk_s_key=NWK, app_s_key=APP, class_b=uplink and flag4, fpending=not uplink and flag4, **f
    )
    frame = phy.parse(raw)
    assert isinstance(frame, phy.DataFrame)
    assert (frame.uplink, frame.confirmed, frame.dev_addr, frame.fcnt16) == (
        uplink,
        f["confirmed"],
        f["dev_addr"],
        f["fcnt32"] & 0xFFFF,
    )
    assert (frame.adr, frame.ack, frame.adr_ack_req) == (f["adr"], f["ack"], f["adr_ack_req"])
    assert (frame.class_b or frame.fpending) == flag4
    assert frame.fopts == f["fopts"] and frame.fport == f["fport"]
    # The receiver, having seen the previous frame, recovers the counter from the 16 bits on the air.
    assert fcnt.reconstruct(f["fcnt32"] - 1 if f["fcnt32"] else None, frame.fcnt16) == f["fcnt32"]
    assert crypto.verify_mic(crypto.data_mic(NWK, uplink, frame.dev_addr, f["fcnt32"], frame.msg), frame.mic)
    key = NWK if f["fport"] == 0 else APP
    plain = crypto.crypt_frm_payload(key, uplink, frame.dev_addr, f["fcnt32"], frame.frm_payload)
    assert plain == f["payload"]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFF),
    st.integers(0, 0xFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.none() | st.lists(st.integers(0, 0xFFFFFF).map(lambda x: x * 100), max_size=5),
)
def test_join_round_trips(
    join_eui: int,
    dev_eui: int,
    dev_nonce: int,
    join_nonce: int,
    net_id: int,
    dev_addr: int,
    cflist: list[int] | None,
) -> None:
    req = phy.parse(
        phy.build_join_request(join_eui=join_eui, dev_eui=dev_eui, dev_nonce=dev_nonce, app_key=APP_KEY)
    )
    assert isinstance(req, phy.JoinRequest)
    assert (req.join_eui, req.dev_eui, req.dev_nonce) == (join_eui, dev_eui, dev_nonce)
    assert crypto.join_request_mic(APP_KEY, req.msg) == req.mic
    raw = phy.build_join_accept(
        app_key=APP_KEY, join_nonce=join_nonce, net_id=net_id, dev_addr=dev_addr, cflist_hz=cflist
    )
    acc = phy.parse_join_accept(crypto.decrypt_join_accept(APP_KEY, raw))
    assert (acc.join_nonce, acc.net_id, acc.dev_addr, acc.rx_delay) == (join_nonce, net_id, dev_addr, 1)
    assert acc.cflist_hz == (None if cflist is None else cflist + [0] * (5 - len(cflist)))
    assert crypto.join_accept_mic(APP_KEY, acc.msg) == acc.mic


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([16, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_random_join_accepts_decrypt_to_fields_and_a_failed_mic(body: bytes) -> None:
    out = decode_frame(b"\x20" + body, app_key=APP_KEY, dev_nonce=1)
    assert out["mic_valid"] is False  # a random body has a valid MIC with odds 2^-32
    assert (out["cflist_type"] is None) == (len(body) == 16)
    assert (out["cflist"] is not None) == (out["cflist_type"] == 0)
    assert len(out["nwk_s_key"]) == 32
