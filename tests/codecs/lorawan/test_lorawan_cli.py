"""``havel frame decode|encode`` and ``havel airtime``: the CLI contract of issue 2."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from havel.cli import cli
from havel.errors import FrameError, InputError

UP = "40F17DBE4900020001954378762B11FF0D"
UP_B64 = "QPF9vkkAAgABlUN4disR/w0="
NWK = "44024241ed4ce9a68c6a8bc055233fd3"
APP = "ec925802ae430ca77fd3dd73cb2cc588"
TTN_APP_KEY = "B6B53F4A168A7A88BDF7EA135CE9CFCA"
TTN_JOIN_REQ = "00DC0000D07ED5B3701E6FEDF57CEEAF0085CC587FE913"
TTN_JOIN_ACC = "204DD85AE608B87FC4889970B7D2042C9E72959B0057AED6094B16003DF12DE145"


def run(*args: str, input: str | None = None) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines, result.stdout


def test_decode_data_frame_keys_and_values() -> None:
    code, (out,), _ = run("frame", "decode", UP, "--nwk-s-key", NWK, "--app-s-key", APP)
    assert code == 0
    assert out == {
        "mtype": "UnconfirmedDataUp",
        "major": 0,
        "dev_addr": "49BE7DF1",
        "fctrl": {"adr": False, "adr_ack_req": False, "ack": False, "class_b": False, "fopts_len": 0},
        "fcnt": 2,
        "fcnt32": 2,
        "fopts": "",
        "fport": 1,
        "frm_payload": "74657374",
        "encrypted": False,
        "mac_commands": [],
        "mic": "2B11FF0D",
        "mic_valid": True,
    }


def test_decode_without_keys_leaves_payload_encrypted() -> None:
    code, (out,), _ = run("frame", "decode", UP.lower())
    assert code == 0
    assert out["frm_payload"] == "95437876" and out["encrypted"] is True and out["mic_valid"] is None


def test_decode_base64_and_wrong_key_gives_false_mic() -> None:
    code, (out,), _ = run("frame", "decode", "--base64", UP_B64, "--nwk-s-key", APP)
    assert code == 0 and out["mic"] == "2B11FF0D" and out["mic_valid"] is False


def test_decode_join_request_and_join_accept_with_session_keys() -> None:
    code, (req, acc), _ = run(
        "frame", "decode", TTN_JOIN_REQ, TTN_JOIN_ACC, "--app-key", TTN_APP_KEY, "--dev-nonce", "0xCC85"
    )
    assert code == 0
    assert req == {
        "mtype": "JoinRequest",
        "major": 0,
        "join_eui": "70B3D57ED00000DC",
        "dev_eui": "00AFEE7CF5ED6F1E",
        "dev_nonce": 0xCC85,
        "mic": "587FE913",
        "mic_valid": True,
    }
    assert acc["mtype"] == "JoinAccept" and acc["mic_valid"] is True
    assert (acc["net_id"], acc["dev_addr"], acc["rx_delay"]) == ("000013", "26012E43", 1)
    assert acc["dl_settings"] == {"rx1_dr_offset": 0, "rx2_dr": 3}
    assert acc["cflist"] == [867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000]
    assert acc["nwk_s_key"] == "2C96F7028184BB0BE8AA49275290D4FC"
    assert acc["app_s_key"] == "F3A5C8F0232A38C144029C165865802C"


def test_stdin_lines_with_own_keys_and_errors_in_between() -> None:
    lines = [
        UP,
        json.dumps({"phy": UP, "nwk_s_key": NWK, "app_s_key": APP}),
        "",
        "40F",  # odd-length hex
        "40F17DBE4905020001020304",  # FOptsLen past the end
        json.dumps({"phy": TTN_JOIN_ACC, "app_key": TTN_APP_KEY, "dev_nonce": 52357}),
        json.dumps({"phy": UP, "nwk_s_key": "0011"}),  # wrong key length
        "{not json",
        json.dumps({"phy": UP, "nwk_s_key": NWK, "fcnt32": 65538}),
        "0039363463336913AA05693574323831330489C65B13",  # join-request one byte short
    ]
    code, out, text = run("frame", "decode", input="\n".join(lines) + "\n")
    assert code == 1
    assert len(out) == 9 and len(text.splitlines()) == 9
    assert out[0]["encrypted"] is True and out[0]["mic_valid"] is None
    assert out[1]["frm_payload"] == "74657374" and out[1]["mic_valid"] is True
    assert "odd-length" in out[2]["error"] and list(out[2]) == ["error"]
    assert "FOptsLen" in out[3]["error"]
    assert out[4]["nwk_s_key"] == "2C96F7028184BB0BE8AA49275290D4FC"
    assert "16 bytes" in out[5]["error"] and "0011" not in out[5]["error"]
    assert "JSON" in out[6]["error"]
    assert out[7]["fcnt32"] == 65538 and out[7]["mic_valid"] is False
    assert "23 bytes" in out[8]["error"]


def test_stdin_base64_lines() -> None:
    keyed = json.dumps({"phy": UP_B64.rstrip("="), "nwk_s_key": NWK, "app_s_key": APP})
    code, out, _ = run("frame", "decode", "--base64", input=f"{UP_B64}\nQPF9vk!kAAgAB\n{keyed}\n")
    assert code == 1
    assert out[0]["mic"] == "2B11FF0D" and "base64" in out[1]["error"]
    assert out[2]["mic_valid"] is True and out[2]["frm_payload"] == "74657374"  # JSON line, base64 phy


def test_bad_option_key_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="--nwk-s-key: an AES-128 key has 16 bytes"):
        run("frame", "decode", UP, "--nwk-s-key", "00112233")


def test_encode_data_frame_matches_published_vector() -> None:
    code, _, text = run(
        "frame",
        "encode",
        "--dev-addr",
        "49BE7DF1",
        "--fcnt",
        "2",
        "--fport",
        "1",
        "--payload",
        "74657374",
        "--nwk-s-key",
        NWK,
        "--app-s-key",
        APP,
    )
    assert code == 0 and text.strip() == UP
    code, _, text = run(
        "frame",
        "encode",
        "--base64",
        "--dev-addr",
        "49BE7DF1",
        "--fcnt",
        "2",
        "--fport",
        "1",
        "--payload",
        "74657374",
        "--nwk-s-key",
        NWK,
        "--app-s-key",
        APP,
    )
    assert text.strip() == UP_B64


def test_encode_downlink_mac_commands_then_decode() -> None:
    mac = json.dumps(
        [
            {
                "name": "LinkADRReq",
                "data_rate": 5,
                "tx_power": 1,
                "ch_mask": 7,
                "ch_mask_cntl": 0,
                "nb_trans": 1,
            },
            {"name": "DevStatusReq"},
        ]
    )
    code, _, text = run(
        "frame",
        "encode",
        "--down",
        "--confirmed",
        "--ack",
        "--fpending",
        "--dev-addr",
        "26012E43",
        "--fcnt",
        "70000",
        "--mac",
        mac,
        "--nwk-s-key",
        NWK,
    )
    assert code == 0
    code, (out,), _ = run("frame", "decode", text.strip(), "--nwk-s-key", NWK, "--fcnt32", "70000")
    assert out["mtype"] == "ConfirmedDataDown" and out["mic_valid"] is True and out["fcnt"] == 70000 - 65536
    assert out["fctrl"] == {"adr": False, "ack": True, "fpending": True, "fopts_len": 6}
    assert [c["name"] for c in out["mac_commands"]] == ["LinkADRReq", "DevStatusReq"]
    code, _, text = run(
        "frame",
        "encode",
        "--down",
        "--dev-addr",
        "26012E43",
        "--fport",
        "0",
        "--mac",
        mac,
        "--nwk-s-key",
        NWK,
    )
    code, (out,), _ = run("frame", "decode", text.strip(), "--nwk-s-key", NWK)
    assert out["fport"] == 0 and out["fopts"] == "" and len(out["mac_commands"]) == 2


def test_encode_join_request_and_accept_match_published_vectors() -> None:
    code, _, text = run(
        "frame",
        "encode",
        "--join-request",
        "--join-eui",
        "70B3D57ED00000DC",
        "--dev-eui",
        "00AFEE7CF5ED6F1E",
        "--dev-nonce",
        "0xCC85",
        "--app-key",
        TTN_APP_KEY,
    )
    assert code == 0 and text.strip() == TTN_JOIN_REQ
    code, _, text = run(
        "frame",
        "encode",
        "--join-accept",
        "--app-key",
        "00112233445566778899aabbccddeeff",
        "--join-nonce",
        "5704647",
        "--net-id",
        "221101",
        "--dev-addr",
        "02031980",
        "--rx-delay",
        "0",
    )
    assert code == 0 and text.strip() == "20493EEB51FBA2116F810EDB3742975142"
    code, _, text = run(
        "frame",
        "encode",
        "--join-accept",
        "--app-key",
        TTN_APP_KEY,
        "--join-nonce",
        "1",
        "--net-id",
        "000013",
        "--dev-addr",
        "26012E43",
        "--rx2-dr",
        "3",
        "--cflist",
        "867100000,867300000",
    )
    code, (out,), _ = run("frame", "decode", text.strip(), "--app-key", TTN_APP_KEY)
    assert out["cflist"] == [867_100_000, 867_300_000, 0, 0, 0] and out["dl_settings"]["rx2_dr"] == 3


@pytest.mark.parametrize(
    "args",
    [
        ["--dev-addr", "49BE7DF1", "--fport", "1", "--payload", "00", "--nwk-s-key", NWK],  # no AppSKey
        ["--dev-addr", "49BE7DF1", "--nwk-s-key", NWK, "--join-eui", "0000000000000001"],  # wrong kind
        ["--dev-addr", "49BE7D", "--nwk-s-key", NWK],  # short DevAddr
        ["--dev-addr", "49BE7DF1", "--payload", "0", "--fport", "1", "--nwk-s-key", NWK, "--app-s-key", APP],
        ["--dev-addr", "49BE7DF1", "--fcnt", "4294967296", "--nwk-s-key", NWK],
        ["--dev-addr", "49BE7DF1", "--down", "--class-b", "--nwk-s-key", NWK],
        [
            "--join-request",
            "--join-eui",
            "01",
            "--dev-eui",
            "0000000000000001",
            "--dev-nonce",
            "1",
            "--app-key",
            NWK,
        ],
        ["--join-accept", "--app-key", NWK, "--join-nonce", "1", "--net-id", "000013"],  # no DevAddr
        [
            "--dev-addr",
            "49BE7DF1",
            "--nwk-s-key",
            NWK,
            "--mac",
            '[{"name": "LinkADRReq"}]',
        ],  # request goes down
        ["--dev-addr", "49BE7DF1", "--nwk-s-key", NWK, "--mac", "[" * 100_000],  # nested too deeply
        ["--dev-addr", "49BE7DF1", "--nwk-s-key", NWK, "--mac", '{"name": "DevStatusAns"}'],  # not a list
        ["--dev-addr", "49BE7DF1", "--nwk-s-key", NWK, "--fport", "1", "--payload", "00"],  # no AppSKey
        ["--dev-addr", "49BE7DF1", "--nwk-s-key", NWK, "--payload", "00"],  # a payload needs an FPort
        ["--dev-addr", "49BE7DF1", "--nwk-s-key", NWK, "--fport", "0", "--fopts", "02", "--payload", "02"],
        ["--dev-addr", "49BE7DF1", "--nwk-s-key", NWK, "--fopts", "00" * 16],  # FOpts > 15 bytes
        [
            "--join-accept",
            "--app-key",
            NWK,
            "--join-nonce",
            "1",
            "--net-id",
            "0013",
            "--dev-addr",
            "26012E43",
        ],  # NetID of 2 bytes
        [
            "--join-accept",
            "--app-key",
            NWK,
            "--join-nonce",
            "1",
            "--net-id",
            "000013",
            "--dev-addr",
            "26012E43",
            "--cflist",
            "867100000,x",
        ],
        [
            "--join-accept",
            "--app-key",
            NWK,
            "--join-nonce",
            "1",
            "--net-id",
            "000013",
            "--dev-addr",
            "26012E43",
            "--rx-delay",
            "16",
        ],
    ],
)
def test_encode_bad_input_is_an_error(args: list[str]) -> None:
    with pytest.raises((InputError, FrameError)):
        run("frame", "encode", *args)


def test_airtime_json_and_table() -> None:
    code, (out,), _ = run("airtime", "--sf", "12", "--bytes", "51", "--json")
    assert code == 0
    assert out["airtime_us"] == 2_793_472 and out["phy_len"] == 64 and out["ldro"] is True
    pauses = {p["duty"]: p["pause_s"] for p in out["pauses"]}
    assert pauses[0.01] == pytest.approx(276.554) and pauses[0.001] == pytest.approx(2790.679)
    assert pauses[0.10] == pytest.approx(25.141)  # 2.793472 s x (1/0.1 - 1)
    # ETSI EN 300 220 sub-bands under each limit (the notes' table): RX2's 869.4-869.65 MHz at 10 %.
    bands = {p["duty"]: set(p["subbands"]) for p in out["pauses"]}
    assert bands == {
        0.001: {"863-865 MHz", "868.7-869.2 MHz"},
        0.01: {"865-868 MHz", "868-868.6 MHz", "869.7-870 MHz"},
        0.10: {"869.4-869.65 MHz"},
    }
    code, _, text = run("airtime", "--sf", "12", "--bytes", "51", "--bw", "125")
    assert code == 0 and "2793.472 ms" in text and "276.554 s" in text
    code, (out,), _ = run("airtime", "--dr", "5", "--bytes", "10", "--json")
    assert out["airtime_us"] == 61_696 and out["sf"] == 7
    code, (out,), _ = run("airtime", "--sf", "9", "--bytes", "13", "--phy", "--json")
    assert out["airtime_us"] == 164_864
    code, (out,), _ = run("airtime", "--sf", "12", "--bytes", "60", "--json")
    assert "51" in out["warning"]


def test_airtime_bad_input() -> None:
    assert CliRunner().invoke(cli, ["airtime", "--sf", "13", "--bytes", "5"]).exit_code == 2
    with pytest.raises(InputError, match="--sf"):
        run("airtime", "--bytes", "5")
    with pytest.raises(InputError, match="255"):
        run("airtime", "--sf", "7", "--bytes", "250")


@pytest.mark.timeout(60)
def test_real_console_script_streams_and_sets_exit_status() -> None:
    """Through the installed entry point: JSON Lines on stdout, exit 1 after an unreadable frame."""
    proc = subprocess.run(
        [sys.executable, "-m", "havel", "frame", "decode", "--nwk-s-key", NWK],
        input=f"{UP}\nzz\n{UP}\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 1
    assert [("error" in x) for x in lines] == [False, True, False] and lines[2]["mic_valid"] is True
    proc = subprocess.run(
        [sys.executable, "-m", "havel", "frame", "decode", UP, "--app-key", "abc"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        proc.stderr.startswith("havel: error: --app-key: odd-length hex") and "Traceback" not in proc.stderr
    )


def test_undecodable_stdin_bytes_and_deep_json_are_error_lines() -> None:
    data = b"\xff\xfe\n" + b"{" * 5000 + b"\n" + UP.encode() + b"\n"
    result = CliRunner().invoke(cli, ["frame", "decode"], input=data, catch_exceptions=False)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 1
    assert "UTF-8" in lines[0]["error"] and "error" in lines[1] and lines[2]["mic"] == "2B11FF0D"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
line_objects = st.fixed_dictionaries(
    {"phy": json_values},
    optional={
        "nwk_s_key": json_values,
        "app_s_key": json_values,
        "app_key": json_values,
        "dev_nonce": json_values,
        "fcnt32": json_values,
    },
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.text(max_size=80) | line_objects.map(json.dumps) | st.binary(max_size=40).map(bytes.hex),
        max_size=6,
    )
)
def test_any_stdin_gives_one_json_line_per_input_line(lines: list[str]) -> None:
    text = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines) + "\n"
    result = CliRunner().invoke(
        cli, ["frame", "decode", "--nwk-s-key", NWK], input=text, catch_exceptions=False
    )
    out = [json.loads(line) for line in result.stdout.splitlines()]
    expected = [line for line in text.split("\n") if line.strip()]  # blank lines are skipped
    assert len(out) == len(expected)
    assert result.exit_code == (1 if any("error" in o for o in out) else 0)
