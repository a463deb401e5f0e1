"""Differential test against lora-packet 0.9.3 (Node.js): a few hundred random frames of every message type.

Both ways: frames Havel builds are decoded by lora-packet (fields, MIC, decrypted payload, session keys), and
lora-packet builds the same frames from the same fields, which must equal Havel's byte for byte and decode
in Havel to the same fields. The frames are drawn from a seeded generator, so a failure reproduces.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from havel.codecs.lorawan import crypto, phy
from havel.codecs.lorawan.decode import decode_frame

SEED = int(os.environ.get("HAVEL_DIFF_SEED", "20261126"))
N_DATA, N_JOIN_REQ, N_JOIN_ACC, N_PROP = 320, 60, 60, 20
LP_MTYPE = {
    "UnconfirmedDataUp": "Unconfirmed Data Up",
    "UnconfirmedDataDown": "Unconfirmed Data Down",
    "ConfirmedDataUp": "Confirmed Data Up",
    "ConfirmedDataDown": "Confirmed Data Down",
}

pytestmark = pytest.mark.timeout(120)


def _random_data_frame(rng: random.Random) -> dict[str, Any]:
    uplink = rng.random() < 0.5
    fport: int | None
    roll = rng.random()
    fport = None if roll < 0.1 else 0 if roll < 0.25 else rng.choice([1, 2, 10, 100, 223, 224, 255])
    size = rng.choice([0, 1, 4, 15, 16, 17, 32, 51, 115, 222]) if fport is not None else 0
    fopts = b"" if fport == 0 else rng.randbytes(rng.choice([0, 0, 1, 5, 15]))
    fcnt32 = rng.choice(
        [rng.randrange(0, 1 << 16), rng.randrange(1 << 16, 1 << 32), 0xFFFF, 0x10000, 0xFFFFFFFF]
    )
    flag4 = rng.random() < 0.5
    return {
        "uplink": uplink,
        "confirmed": rng.random() < 0.5,
        "dev_addr": rng.randrange(1 << 32),
        "fcnt32": fcnt32,
        "fport": fport,
        "payload": rng.randbytes(size),
        "fopts": fopts,
        "adr": rng.random() < 0.5,
        "adr_ack_req": uplink and rng.random() < 0.5,
        "ack": rng.random() < 0.5,
        "class_b": uplink and flag4,
        "fpending": not uplink and flag4,
        "nwk_s_key": rng.randbytes(16),
        "app_s_key": rng.randbytes(16),
    }


def _mtype(f: dict[str, Any]) -> str:
    return ("Confirmed" if f["confirmed"] else "Unconfirmed") + ("DataUp" if f["uplink"] else "DataDown")


def test_data_frames_agree_with_lora_packet(lora_packet: Any) -> None:
    rng = random.Random(SEED)
    frames = [_random_data_frame(rng) for _ in range(N_DATA)]
    built = [phy.build_data_frame(**f) for f in frames]
    decoded = lora_packet.ask(
        [
            {
                "op": "decode",
                "phy": raw.hex(),
                "nwk_s_key": f["nwk_s_key"].hex(),
                "app_s_key": f["app_s_key"].hex(),
                "fcnt32": f["fcnt32"],
            }
            for f, raw in zip(frames, built, strict=True)
        ]
    )
    rebuilt = lora_packet.ask(
        [
            {
                "op": "build_data",
                "mtype": LP_MTYPE[_mtype(f)],
                "dev_addr_be": f"{f['dev_addr']:08x}",
                "fcnt32": f["fcnt32"],
                "fport": f["fport"],
                "payload": f["payload"].hex(),
                "fopts": f["fopts"].hex(),
                "adr": f["adr"],
                "adr_ack_req": f["adr_ack_req"],
                "ack": f["ack"],
                "fpending": f["class_b"] or f["fpending"],
                "nwk_s_key": f["nwk_s_key"].hex(),
                "app_s_key": f["app_s_key"].hex(),
            }
            for f in frames
        ]
    )
    kinds = set()
    for f, raw, lp, lp_built in zip(frames, built, decoded, rebuilt, strict=True):
        where = f"frame {raw.hex()} from {f}"
        assert "error" not in lp, where
        # lora-packet reads Havel's frame as Havel meant it.
        assert lp["mtype"] == LP_MTYPE[_mtype(f)] and lp["dir"] == ("up" if f["uplink"] else "down"), where
        assert lp["dev_addr_be"] == f"{f['dev_addr']:08x}" and lp["fcnt"] == f["fcnt32"] & 0xFFFF, where
        assert lp["fopts"] == f["fopts"].hex() and lp["fport"] == f["fport"], where
        assert (lp["adr"], lp["ack"]) == (f["adr"], f["ack"]), where
        assert lp["adr_ack_req"] == f["adr_ack_req"], where
        assert lp["fpending"] == (f["class_b"] or f["fpending"]), where
        assert lp["mic"] == raw[-4:].hex() and lp["mic_valid"] is True, where
        assert lp.get("plain", "") == f["payload"].hex(), where
        # lora-packet builds the very same bytes from the same fields ...
        assert lp_built == {"phy": raw.hex()}, where
        # ... and Havel reads lora-packet's frame back to the fields and the plaintext.
        out = decode_frame(
            bytes.fromhex(lp_built["phy"]),
            nwk_s_key=f["nwk_s_key"],
            app_s_key=f["app_s_key"],
            fcnt32=f["fcnt32"],
        )
        assert out["mtype"] == _mtype(f) and out["dev_addr"] == lp["dev_addr_be"].upper(), where
        assert (out["fcnt"], out["fcnt32"], out["fport"]) == (lp["fcnt"], f["fcnt32"], f["fport"]), where
        assert out["fopts"] == f["fopts"].hex() and out["frm_payload"] == f["payload"].hex(), where
        assert out["mic"] == lp["mic"].upper() and out["mic_valid"] is True, where
        assert out["fctrl"]["fopts_len"] == len(f["fopts"]), where
        kinds.add(
            (_mtype(f), f["fport"] == 0, bool(f["fopts"]), f["fcnt32"] > 0xFFFF, len(f["payload"]) > 100)
        )
    # The draw covered what the issue asks for: every data type, FPort 0, FOpts, FCnt > 65535, long payloads.
    assert {k[0] for k in kinds} == set(LP_MTYPE)
    assert any(k[1] for k in kinds) and any(k[2] for k in kinds) and any(k[3] for k in kinds)
    assert any(k[4] for k in kinds)


def test_wrong_counter_half_fails_mic_in_both(lora_packet: Any) -> None:
    rng = random.Random(SEED + 1)
    f = _random_data_frame(rng) | {"fcnt32": 0x3_0005}
    raw = phy.build_data_frame(**f)
    lp = lora_packet.ask([{"op": "decode", "phy": raw.hex(), "nwk_s_key": f["nwk_s_key"].hex(), "fcnt32": 5}])
    assert lp[0]["mic_valid"] is False
    assert decode_frame(raw, nwk_s_key=f["nwk_s_key"], fcnt32=5)["mic_valid"] is False


def test_join_requests_agree_with_lora_packet(lora_packet: Any) -> None:
    rng = random.Random(SEED + 2)
    cases = [
        (rng.randrange(1 << 64), rng.randrange(1 << 64), rng.randrange(1 << 16), rng.randbytes(16))
        for _ in range(N_JOIN_REQ)
    ]
    built = [phy.build_join_request(join_eui=j, dev_eui=d, dev_nonce=n, app_key=k) for j, d, n, k in cases]
    decoded = lora_packet.ask(
        [
            {"op": "decode", "phy": raw.hex(), "app_key": c[3].hex()}
            for c, raw in zip(cases, built, strict=True)
        ]
    )
    rebuilt = lora_packet.ask(
        [
            {
                "op": "build_join_request",
                "join_eui_be": f"{j:016x}",
                "dev_eui_be": f"{d:016x}",
                "dev_nonce_be": f"{n:04x}",
                "app_key": k.hex(),
            }
            for j, d, n, k in cases
        ]
    )
    for (j, d, n, k), raw, lp, lp_built in zip(cases, built, decoded, rebuilt, strict=True):
        assert "error" not in lp, raw.hex()
        assert lp["mtype"] == "Join Request" and lp["mic_valid"] is True
        assert (lp["join_eui_be"], lp["dev_eui_be"], lp["dev_nonce_be"]) == (
            f"{j:016x}",
            f"{d:016x}",
            f"{n:04x}",
        )
        assert lp_built == {"phy": raw.hex()}
        out = decode_frame(bytes.fromhex(lp_built["phy"]), app_key=k)
        assert (out["join_eui"], out["dev_eui"], out["dev_nonce"]) == (f"{j:016X}", f"{d:016X}", n)
        assert out["mic_valid"] is True


def test_join_accepts_agree_with_lora_packet(lora_packet: Any) -> None:
    rng = random.Random(SEED + 3)
    cases: list[dict[str, Any]] = []
    for _ in range(N_JOIN_ACC):
        cflist = (
            None if rng.random() < 0.4 else [rng.randrange(1 << 24) * 100 for _ in range(rng.randint(0, 5))]
        )
        cases.append(
            {
                "app_key": rng.randbytes(16),
                "join_nonce": rng.randrange(1 << 24),
                "net_id": rng.randrange(1 << 24),
                "dev_addr": rng.randrange(1 << 32),
                "rx1_dr_offset": rng.randrange(8),
                "rx2_dr": rng.randrange(16),
                "rx_delay": rng.randrange(16),
                "cflist_hz": cflist,
                "dev_nonce": rng.randrange(1 << 16),
            }
        )
    built = [phy.build_join_accept(**{k: v for k, v in c.items() if k != "dev_nonce"}) for c in cases]
    decoded = lora_packet.ask(
        [
            {
                "op": "decode",
                "phy": raw.hex(),
                "app_key": c["app_key"].hex(),
                "dev_nonce_be": f"{c['dev_nonce']:04x}",
            }
            for c, raw in zip(cases, built, strict=True)
        ]
    )
    rebuilt = lora_packet.ask(
        [
            {
                "op": "build_join_accept",
                "app_nonce_be": f"{c['join_nonce']:06x}",
                "net_id_be": f"{c['net_id']:06x}",
                "dev_addr_be": f"{c['dev_addr']:08x}",
                "dl_settings": c["rx1_dr_offset"] << 4 | c["rx2_dr"],
                "rx_delay": c["rx_delay"],
                "cflist": crypto.decrypt_join_accept(c["app_key"], raw)[13:29].hex()
                if c["cflist_hz"] is not None
                else "",
                "app_key": c["app_key"].hex(),
            }
            for c, raw in zip(cases, built, strict=True)
        ]
    )
    for c, raw, lp, lp_built in zip(cases, built, decoded, rebuilt, strict=True):
        where = f"join-accept {raw.hex()}"
        assert "error" not in lp, where
        assert lp["mtype"] == "Join Accept" and lp["mic_valid"] is True, where
        assert (lp["app_nonce_be"], lp["net_id_be"], lp["dev_addr_be"]) == (
            f"{c['join_nonce']:06x}",
            f"{c['net_id']:06x}",
            f"{c['dev_addr']:08x}",
        ), where
        assert (lp["rx1_dr_offset"], lp["rx2_dr"], lp["rx_delay"]) == (
            c["rx1_dr_offset"],
            c["rx2_dr"],
            c["rx_delay"],
        ), where
        assert len(lp["cflist"]) == (0 if c["cflist_hz"] is None else 32), where
        nwk, app = crypto.derive_session_keys(c["app_key"], c["join_nonce"], c["net_id"], c["dev_nonce"])
        assert (lp["nwk_s_key"], lp["app_s_key"]) == (nwk.hex(), app.hex()), where
        assert lp_built == {"phy": raw.hex()}, where
        out = decode_frame(bytes.fromhex(lp_built["phy"]), app_key=c["app_key"], dev_nonce=c["dev_nonce"])
        assert out["mic_valid"] is True and out["mic"] == lp["mic"].upper(), where
        assert (out["join_nonce"], out["net_id"], out["dev_addr"]) == (
            c["join_nonce"],
            lp["net_id_be"].upper(),
            lp["dev_addr_be"].upper(),
        ), where
        assert (out["nwk_s_key"], out["app_s_key"]) == (lp["nwk_s_key"].upper(), lp["app_s_key"].upper()), (
            where
        )
        if c["cflist_hz"] is not None:
            assert out["cflist"] == c["cflist_hz"] + [0] * (5 - len(c["cflist_hz"])), where


def test_proprietary_frames_agree_with_lora_packet(lora_packet: Any) -> None:
    rng = random.Random(SEED + 4)
    frames = [bytes([0xE0]) + rng.randbytes(rng.randint(4, 60)) for _ in range(N_PROP)]
    answers = lora_packet.ask([{"op": "decode", "phy": f.hex()} for f in frames])
    for raw, lp in zip(frames, answers, strict=True):
        out = decode_frame(raw)
        assert lp["mtype"] == out["mtype"] == "Proprietary"
        assert lp["payload"] + lp["mic"] == out["payload"]
