"""MAC commands: one table, decoded and encoded both ways, against published and hand-assembled vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from havel.codecs.lorawan import maccmds
from havel.errors import FrameError, InputError

DATA = json.loads((Path(__file__).parent / "data" / "mac_commands.json").read_text())
ERRORS = {"FrameError": FrameError, "InputError": InputError}


def _id(v: dict[str, Any]) -> str:
    return f"{v['direction']}-{v['bytes']}"


@pytest.mark.parametrize("v", DATA["vectors"], ids=_id)
def test_decode_vectors(v: dict[str, Any]) -> None:
    assert maccmds.decode(bytes.fromhex(v["bytes"]), v["direction"] == "up") == v["commands"]


@pytest.mark.parametrize("v", DATA["vectors"], ids=_id)
def test_encode_vectors(v: dict[str, Any]) -> None:
    assert maccmds.encode(v["commands"], v["direction"] == "up").hex() == v["bytes"]


@pytest.mark.parametrize("v", DATA["decode_errors"], ids=lambda v: v["why"])
def test_decode_errors(v: dict[str, Any]) -> None:
    with pytest.raises(ERRORS[v["error"]]):
        maccmds.decode(bytes.fromhex(v["bytes"]), v["direction"] == "up")


@pytest.mark.parametrize("v", DATA["encode_errors"], ids=lambda v: v["why"])
def test_encode_errors(v: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        maccmds.encode(v["commands"], v["direction"] == "up")


def test_table_lists_every_1_0_x_command_both_ways() -> None:
    names = {c.up_name for c in maccmds.TABLE} | {c.down_name for c in maccmds.TABLE}
    assert names == {
        "LinkCheckReq",
        "LinkCheckAns",
        "LinkADRReq",
        "LinkADRAns",
        "DutyCycleReq",
        "DutyCycleAns",
        "RXParamSetupReq",
        "RXParamSetupAns",
        "DevStatusReq",
        "DevStatusAns",
        "NewChannelReq",
        "NewChannelAns",
        "RXTimingSetupReq",
        "RXTimingSetupAns",
        "TxParamSetupReq",
        "TxParamSetupAns",
        "DlChannelReq",
        "DlChannelAns",
        "DeviceTimeReq",
        "DeviceTimeAns",
    }
    # Payload sizes after the CID, LoRaWAN 1.0.3 table 15 (uplink, downlink).
    sizes = {c.cid: (maccmds.layout_size(c.up), maccmds.layout_size(c.down)) for c in maccmds.TABLE}
    assert sizes == {
        2: (0, 2),
        3: (1, 4),
        4: (0, 1),
        5: (1, 4),
        6: (2, 0),
        7: (1, 5),
        8: (0, 1),
        9: (0, 1),
        10: (1, 4),
        13: (0, 5),
    }
    # Every vector file entry together covers every name in both directions.
    covered = {c["name"] for v in DATA["vectors"] for c in v["commands"]}
    assert names <= covered


def test_encode_by_cid_and_raw_unknown() -> None:
    assert maccmds.encode([{"cid": 6}], uplink=False) == b"\x06"
    cmds = [{"cid": 2, "name": "LinkCheckReq"}, {"cid": 0x80, "name": "Unknown", "raw": "aabb"}]
    assert maccmds.encode(cmds, uplink=True) == bytes.fromhex("0280aabb")
    with pytest.raises(InputError):
        maccmds.encode([{"cid": 3, "name": "DevStatusReq"}], uplink=False)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.booleans())
def test_random_bytes_decode_or_frame_error(data: bytes, uplink: bool) -> None:
    try:
        cmds = maccmds.decode(data, uplink)
    except FrameError:
        return
    # Whatever decodes re-encodes to the same bytes, except RFU bits, which are dropped.
    again = maccmds.decode(maccmds.encode(cmds, uplink), uplink)
    assert again == cmds


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_encode_decode_round_trip_of_valid_commands(data: st.DataObject) -> None:
    uplink = data.draw(st.booleans())
    cmds = []
    for _ in range(data.draw(st.integers(1, 4))):
        cmd = data.draw(st.sampled_from(maccmds.TABLE))
        name, layout = (cmd.up_name, cmd.up) if uplink else (cmd.down_name, cmd.down)
        item: dict[str, Any] = {"cid": cmd.cid, "name": name}
        for word in layout:
            for bits in word.fields:
                top = (1 << bits.width) - 1
                if bits.kind == "bool":
                    item[bits.name] = data.draw(st.booleans())
                elif bits.kind == "signed":
                    item[bits.name] = data.draw(st.integers(-(top + 1) // 2, top // 2))
                elif bits.kind == "hz":
                    item[bits.name] = data.draw(st.integers(0, top)) * 100
                elif bits.kind == "frac256":
                    item[bits.name] = data.draw(st.integers(0, 255)) / 256
                else:
                    item[bits.name] = data.draw(st.integers(0, top))
        cmds.append(item)
    assert maccmds.decode(maccmds.encode(cmds, uplink), uplink) == cmds
