"""Published vectors: LoRaWAN frames (lora-packet, TTN, brocaar), RFC 4493 AES-CMAC, FIPS-197 AES, airtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from havel.codecs.lorawan import crypto, eu868, phy
from havel.codecs.lorawan.decode import decode_frame

DATA = Path(__file__).parent / "data"


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


PUBLIC = _load("lorawan_public.json")["vectors"]
CMAC = _load("rfc4493_cmac.json")
AES = _load("fips197_aes.json")["vectors"]
AIRTIME = _load("airtime.json")["vectors"]


def _kind(kind: str) -> list[dict[str, Any]]:
    return [v for v in PUBLIC if v["kind"] == kind]


def _key(vector: dict[str, Any], name: str) -> bytes:
    return bytes.fromhex(vector[name])


@pytest.mark.parametrize("v", _kind("data"), ids=lambda v: v["name"])
def test_published_data_frames(v: dict[str, Any]) -> None:
    exp = v["expect"]
    out = decode_frame(
        bytes.fromhex(v["phy_payload"]), nwk_s_key=_key(v, "nwk_s_key"), app_s_key=_key(v, "app_s_key")
    )
    assert out["mtype"] == exp["mtype"]
    assert out["dev_addr"] == exp["dev_addr_be"]
    assert out["fcnt"] == exp["fcnt"]
    assert out["fport"] == exp["fport"]
    assert out["mic"] == exp["mic"]
    assert out["mic_valid"] is exp["mic_valid"]
    assert out["frm_payload"] == exp["frm_payload_plain"]
    assert out["encrypted"] is False
    # The same frame built from its fields is the published one, byte for byte.
    frame = phy.parse(bytes.fromhex(v["phy_payload"]))
    assert isinstance(frame, phy.DataFrame)
    rebuilt = phy.build_data_frame(
        uplink=frame.uplink,
        confirmed=frame.confirmed,
        dev_addr=frame.dev_addr,
        fcnt32=frame.fcnt16,
        fport=frame.fport,
        payload=bytes.fromhex(exp["frm_payload_plain"]),
        fopts=frame.fopts,
        nwk_s_key=_key(v, "nwk_s_key"),
        app_s_key=_key(v, "app_s_key"),
    )
    assert rebuilt.hex().upper() == v["phy_payload"].upper()


@pytest.mark.parametrize("v", _kind("join_request"), ids=lambda v: v["name"])
def test_published_join_requests(v: dict[str, Any]) -> None:
    exp = v["expect"]
    out = decode_frame(bytes.fromhex(v["phy_payload"]), app_key=_key(v, "app_key"))
    assert out["mtype"] == "JoinRequest"
    assert out["join_eui"] == exp["join_eui_be"]
    assert out["dev_eui"] == exp["dev_eui_be"]
    assert out["dev_nonce"] == int.from_bytes(bytes.fromhex(exp["dev_nonce_wire"]), "little")
    assert out["mic"] == exp["mic"]
    assert out["mic_valid"] is exp["mic_valid"]
    rebuilt = phy.build_join_request(
        join_eui=int(exp["join_eui_be"], 16),
        dev_eui=int(exp["dev_eui_be"], 16),
        dev_nonce=out["dev_nonce"],
        app_key=_key(v, "app_key"),
    )
    assert rebuilt.hex().upper() == v["phy_payload"].upper()


@pytest.mark.parametrize("v", _kind("join_accept"), ids=lambda v: v["name"])
def test_published_join_accepts(v: dict[str, Any]) -> None:
    exp = v["expect"]
    app_key = _key(v, "app_key")
    dev_nonce = None
    if "dev_nonce_wire" in v:
        dev_nonce = int.from_bytes(bytes.fromhex(v["dev_nonce_wire"]), "little")
    out = decode_frame(bytes.fromhex(v["phy_payload"]), app_key=app_key, dev_nonce=dev_nonce)
    assert out["mtype"] == "JoinAccept"
    assert out["dev_addr"] == exp["dev_addr_be"]
    assert out["net_id"] == exp["net_id_be"]
    assert out["mic_valid"] is exp["mic_valid"]
    for name in ("join_nonce", "rx_delay"):
        if name in exp:
            assert out[name] == exp[name]
    if "mic" in exp:
        assert out["mic"] == exp["mic"]
    if "nwk_s_key" in exp:
        assert out["nwk_s_key"] == exp["nwk_s_key"].upper()
        assert out["app_s_key"] == exp["app_s_key"].upper()
    plain = crypto.decrypt_join_accept(app_key, bytes.fromhex(v["phy_payload"]))
    if "plaintext" in exp:
        assert plain.hex() == exp["plaintext"]
    # Encrypting the plaintext again gives the frame on the air; building from the fields too.
    assert crypto.encrypt_join_accept(app_key, plain).hex() == v["phy_payload"].lower()
    fields = phy.parse_join_accept(plain)
    rebuilt = phy.build_join_accept(
        app_key=app_key,
        join_nonce=fields.join_nonce,
        net_id=fields.net_id,
        dev_addr=fields.dev_addr,
        rx1_dr_offset=fields.rx1_dr_offset,
        rx2_dr=fields.rx2_dr,
        rx_delay=fields.rx_delay,
        cflist_hz=fields.cflist_hz,
    )
    assert rebuilt.hex() == v["phy_payload"].lower()


@pytest.mark.parametrize("v", _kind("session_keys"), ids=lambda v: v["name"])
def test_published_session_keys(v: dict[str, Any]) -> None:
    nwk, app = crypto.derive_session_keys(
        _key(v, "app_key"), int(v["join_nonce_be"], 16), int(v["net_id_be"], 16), int(v["dev_nonce_be"], 16)
    )
    assert nwk.hex() == v["expect"]["nwk_s_key"]
    assert app.hex() == v["expect"]["app_s_key"]


@pytest.mark.parametrize("v", _kind("airtime"), ids=lambda v: v["name"])
def test_published_airtime(v: dict[str, Any]) -> None:
    assert v["cr"] == "4/5"
    got = eu868.airtime_us(
        v["phy_len"],
        v["sf"],
        v["bw_khz"],
        cr=1,
        preamble=v["preamble"],
        crc=v["crc"],
        explicit_header=v["explicit_header"],
        ldro=v["ldro"],
    )
    assert got == v["expect"]["airtime_us"]


def test_published_vectors_cover_every_kind() -> None:
    assert {v["kind"] for v in PUBLIC} == {"data", "join_request", "join_accept", "session_keys", "airtime"}


@pytest.mark.parametrize("ex", CMAC["examples"], ids=lambda e: e["name"])
def test_rfc4493_aes_cmac(ex: dict[str, str]) -> None:
    key = bytes.fromhex(CMAC["key"])
    assert crypto.aes_cmac(key, bytes.fromhex(ex["message"])).hex() == ex["mac"]


def test_rfc4493_subkey_input() -> None:
    # L = AES-128(K, 0^128), from which RFC 4493 derives K1 and K2.
    assert crypto.aes_encrypt(bytes.fromhex(CMAC["key"]), bytes(16)).hex() == CMAC["aes_128_zero_block"]


@pytest.mark.parametrize("v", AES, ids=lambda v: v["name"])
def test_fips197_aes(v: dict[str, str]) -> None:
    key = bytes.fromhex(v["key"])
    assert crypto.aes_encrypt(key, bytes.fromhex(v["plaintext"])).hex() == v["ciphertext"]
    assert crypto.aes_decrypt(key, bytes.fromhex(v["ciphertext"])).hex() == v["plaintext"]


@pytest.mark.parametrize("v", AIRTIME, ids=lambda v: f"{v['phy_len']}B-SF{v['sf']}-{v['airtime_us']}")
def test_airtime_check_values(v: dict[str, Any]) -> None:
    got = eu868.airtime_us(
        v["phy_len"],
        v["sf"],
        v["bw_khz"],
        cr=v["cr"],
        crc=v["crc"],
        explicit_header=v["explicit_header"],
        ldro=v["ldro"],
    )
    assert got == v["airtime_us"]
