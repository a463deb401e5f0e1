"""Firmware MAC against the host frame layer (havel.codecs.lorawan, engineer A's contract).

The node side runs the real firmware MAC under CPython in a subprocess (crosscheck_node.py via
cpyrunner.py); the join-accept and downlinks it receives are built here by the host layer, and every
frame it sends is decoded here with the host layer: MIC valid, plaintext right, across FCnt > 65535,
FOpts, FPort 0 and confirmed frames.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from havel.codecs.lorawan import crypto, maccmds, phy
from havel.codecs.lorawan.decode import decode_frame

HERE = Path(__file__).resolve().parent
APP_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
DEV_EUI = 0x0004A30B001C0530
JOIN_EUI = 0x70B3D57ED00001A6
JOIN_NONCE = 0x0A0B0C
NET_ID = 0x000013
DEV_ADDR = 0x260B5A3F
CFLIST = [867100000, 867300000, 867500000, 867700000, 867900000]


def _keys() -> tuple[bytes, bytes]:
    # a fresh node's first DevNonce is 0 (a persisted counter)
    return crypto.derive_session_keys(APP_KEY, JOIN_NONCE, NET_ID, 0)


def _down(fcnt32: int, **kw: Any) -> str:
    nwk, app = _keys()
    kw.setdefault("payload", b"")
    frame = phy.build_data_frame(
        uplink=False, dev_addr=DEV_ADDR, fcnt32=fcnt32, nwk_s_key=nwk, app_s_key=app, **kw
    )
    return frame.hex()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    join_accept = phy.build_join_accept(
        app_key=APP_KEY,
        join_nonce=JOIN_NONCE,
        net_id=NET_ID,
        dev_addr=DEV_ADDR,
        rx1_dr_offset=1,
        rx2_dr=3,
        rx_delay=1,
        cflist_hz=CFLIST,
    )
    scenario = {
        "app_key": APP_KEY.hex(),
        "dev_eui": DEV_EUI,
        "join_eui": JOIN_EUI,
        "join_accept": join_accept.hex(),
        "rx1_dr_offset": 1,
        # uplink index (0 is the join-request) -> downlink in RX1 of that uplink
        "downlinks": {
            # confirmed, FOpts DevStatusReq + LinkCheckAns, application data on FPort 5
            "1": _down(0, confirmed=True, fport=5, payload=b"host", fopts=bytes.fromhex("06" + "0205 02")),
            # ACK of the confirmed uplink, FPort 0 with DutyCycleReq and DevStatusReq (NwkSKey-encrypted)
            "2": _down(1, confirmed=False, ack=True, fport=0, payload=bytes.fromhex("0403" + "06")),
        },
        "steps": [
            {"fport": 1, "payload": "010203"},
            {"fport": 2, "payload": "636f6e66", "confirmed": True},
            {"mac_only": True},
            {"set_fcnt_up": 65534},
            {"fport": 3, "payload": "aa"},
            {"fport": 3, "payload": "bb"},
            {"fport": 3, "payload": "cc"},
            {"set_fcnt_up": 200000},
            {"fport": 4, "payload": "dd" * 40},
        ],
    }
    path = tmp_path_factory.mktemp("xcheck") / "scenario.json"
    path.write_text(json.dumps(scenario))
    env = dict(os.environ, HAVEL_XCHECK_IN=str(path))
    cmd = [sys.executable, str(HERE / "cpyrunner.py"), "--script", str(HERE / "crosscheck_node.py")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.timeout(90)
def test_join_request_verifies_with_host(run: dict[str, Any]) -> None:
    jr = bytes.fromhex(run["uplinks"][0])
    frame = phy.parse(jr)
    assert isinstance(frame, phy.JoinRequest)
    assert frame.dev_eui == DEV_EUI and frame.join_eui == JOIN_EUI and frame.dev_nonce == 0
    assert crypto.verify_mic(crypto.join_request_mic(APP_KEY, frame.msg), frame.mic)
    assert jr == phy.build_join_request(join_eui=JOIN_EUI, dev_eui=DEV_EUI, dev_nonce=0, app_key=APP_KEY)
    d = decode_frame(jr, app_key=APP_KEY)
    assert d["mic_valid"] is True


@pytest.mark.timeout(90)
def test_host_join_accept_accepted_by_firmware(run: dict[str, Any]) -> None:
    nwk, app = _keys()
    assert run["join"] == "joined"
    assert run["dev_addr"] == DEV_ADDR
    assert run["nwk_s_key"] == nwk.hex() and run["app_s_key"] == app.hex()
    assert run["channels"] == [868100000, 868300000, 868500000, *CFLIST]
    assert (run["rx1_dr_offset"], run["rx2_dr"], run["rx_delay_ms"]) == (1, 3, 1000)


def _decoded(run: dict[str, Any]) -> list[dict[str, Any]]:
    nwk, app = _keys()
    fcnts = [r["fcnt"] for r in run["results"]]
    frames = [bytes.fromhex(h) for h in run["uplinks"][1:]]
    assert len(frames) == len(fcnts)
    return [
        decode_frame(f, nwk_s_key=nwk, app_s_key=app, fcnt32=c) for f, c in zip(frames, fcnts, strict=True)
    ]


@pytest.mark.timeout(90)
def test_every_uplink_has_valid_mic_and_right_plaintext(run: dict[str, Any]) -> None:
    decoded = _decoded(run)
    assert all(d["mic_valid"] is True for d in decoded), decoded
    assert [r["fcnt"] for r in run["results"]] == [0, 1, 2, 65534, 65535, 65536, 200000]
    assert [d["fcnt32"] for d in decoded] == [0, 1, 2, 65534, 65535, 65536, 200000]
    assert [d["fport"] for d in decoded] == [1, 2, 0, 3, 3, 3, 4]
    assert all(d["encrypted"] is False for d in decoded)  # both keys given: decrypted
    plain = [d["frm_payload"] for d in decoded]
    assert plain[:2] == ["010203", "636f6e66"] and plain[3:] == ["aa", "bb", "cc", "dd" * 40]
    # the FPort-0 frame's decrypted payload is MAC commands, read by the host layer
    assert [c["name"] for c in decoded[2]["mac_commands"]] == ["DutyCycleAns", "DevStatusAns"]


@pytest.mark.timeout(90)
def test_plaintext_matches_what_the_node_sent(run: dict[str, Any]) -> None:
    nwk, app = _keys()
    want = ["010203", "636f6e66", None, "aa", "bb", "cc", "dd" * 40]
    frames = [bytes.fromhex(h) for h in run["uplinks"][1:]]
    for frame, r, w in zip(frames, run["results"], want, strict=True):
        f = phy.parse(frame)
        assert isinstance(f, phy.DataFrame) and f.uplink and f.dev_addr == DEV_ADDR
        assert f.fcnt16 == r["fcnt"] & 0xFFFF
        key = nwk if f.fport == 0 else app
        plain = crypto.crypt_frm_payload(key, True, DEV_ADDR, r["fcnt"], f.frm_payload)
        if w is not None:
            assert plain.hex() == w


@pytest.mark.timeout(90)
def test_confirmed_frame_fopts_and_ack_bits(run: dict[str, Any]) -> None:
    frames = [phy.parse(bytes.fromhex(h)) for h in run["uplinks"][1:]]
    f1 = frames[1]
    assert isinstance(f1, phy.DataFrame)
    assert f1.confirmed and f1.ack  # confirmed uplink, acknowledging the confirmed downlink
    cmds = maccmds.decode(f1.fopts, True)
    assert [c["name"] for c in cmds] == ["DevStatusAns"]
    assert run["results"][0]["downlink"] == [5, b"host".hex()]
    assert run["results"][1]["status"] == "acked"


@pytest.mark.timeout(90)
def test_fport0_uplink_carries_mac_answers(run: dict[str, Any]) -> None:
    nwk, _ = _keys()
    f = phy.parse(bytes.fromhex(run["uplinks"][3]))
    assert isinstance(f, phy.DataFrame) and f.fport == 0 and not f.fopts
    plain = crypto.crypt_frm_payload(nwk, True, DEV_ADDR, 2, f.frm_payload)
    assert [c["name"] for c in maccmds.decode(plain, True)] == ["DutyCycleAns", "DevStatusAns"]
    assert run["max_dcycle"] == 3 and run["link_check"] == [5, 2]


@pytest.mark.timeout(90)
def test_havel_frame_decode_cli_reads_firmware_frames(run: dict[str, Any]) -> None:
    """The same frames through `havel frame decode` (the CLI operators use), one JSON line each."""
    from click.testing import CliRunner

    from havel.codecs.lorawan.cli import frame as frame_cli

    nwk, app = _keys()
    lines = [
        json.dumps({"phy": h, "fcnt32": r["fcnt"]})
        for h, r in zip(run["uplinks"][1:], run["results"], strict=True)
    ]
    res = CliRunner().invoke(
        frame_cli,
        ["decode", "--nwk-s-key", nwk.hex(), "--app-s-key", app.hex()],
        input="\n".join(lines) + "\n",
    )
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in res.output.splitlines() if line.strip()]
    assert len(out) == len(lines) and all(o["mic_valid"] is True for o in out)
    assert [o["fport"] for o in out] == [1, 2, 0, 3, 3, 3, 4]
