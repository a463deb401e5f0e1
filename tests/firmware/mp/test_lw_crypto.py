"""lw.crypto: AES-CMAC on cryptolib.aes(key, 1) and the LoRaWAN 1.0.x MIC/cipher/key derivation.

Vectors: FIPS-197 C.1, RFC 4493 section 4, and published LoRaWAN frames (lora-packet test suite,
TTN OTAA example, brocaar/lorawan test suite) as collected in /work/shared/vectors/lorawan-public.json.
"""

import cryptolib
from lw import crypto, session
from lw import join as lwjoin

from mptest import raises, unhex

RFC_KEY = unhex("2b7e151628aed2a6abf7158809cf4f3c")
RFC_MSG = unhex(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)


def test_aes_fips197():
    a = cryptolib.aes(unhex("000102030405060708090a0b0c0d0e0f"), 1)
    assert a.encrypt(unhex("00112233445566778899aabbccddeeff")) == unhex("69c4e0d86a7b0430d8cdb78070b4c55a")


def test_cmac_rfc4493_all_lengths():
    a = crypto.aes_key(RFC_KEY)
    assert crypto.cmac(a, b"") == unhex("bb1d6929e95937287fa37d129b756746")
    assert crypto.cmac(a, RFC_MSG[:16]) == unhex("070a16b46b4d4144f79bdd9dd04a287c")
    assert crypto.cmac(a, RFC_MSG[:40]) == unhex("dfa66747de9ae63030ca32611497c827")
    assert crypto.cmac(a, RFC_MSG) == unhex("51f0bebf7e3b9d92fc49741779363cfe")
    # the same message split into parts (B0 | msg in the MAC) gives the same tag
    assert crypto.cmac(a, RFC_MSG[:7], RFC_MSG[7:40]) == unhex("dfa66747de9ae63030ca32611497c827")


def test_aes_key_rejects_wrong_length():
    raises(ValueError, crypto.aes_key, b"short")


def test_data_mic_and_payload_lora_packet_vector():
    phy = unhex("40F17DBE4900020001954378762B11FF0D")
    nwk = crypto.aes_key(unhex("44024241ed4ce9a68c6a8bc055233fd3"))
    app = crypto.aes_key(unhex("ec925802ae430ca77fd3dd73cb2cc588"))
    assert crypto.data_mic(nwk, True, 0x49BE7DF1, 2, phy[:-4]) == unhex("2B11FF0D")
    assert crypto.crypt_payload(app, True, 0x49BE7DF1, 2, phy[9:13]) == b"test"
    # a wrong 32-bit counter (same 16 low bits) gives another MIC
    assert crypto.data_mic(nwk, True, 0x49BE7DF1, 0x10002, phy[:-4]) != unhex("2B11FF0D")


def test_crypt_payload_is_its_own_inverse_over_blocks():
    app = crypto.aes_key(unhex("ec925802ae430ca77fd3dd73cb2cc588"))
    data = bytes(range(40))
    enc = crypto.crypt_payload(app, False, 0x01020304, 70000, data)
    assert enc != data
    assert crypto.crypt_payload(app, False, 0x01020304, 70000, enc) == data
    out = bytearray(45)
    crypto.crypt_payload_into(app, False, 0x01020304, 70000, data, out, 5)
    assert bytes(out[5:]) == enc


def test_join_request_mic_ttn_example():
    phy = unhex("00DC0000D07ED5B3701E6FEDF57CEEAF0085CC587FE913")
    app = crypto.aes_key(unhex("B6B53F4A168A7A88BDF7EA135CE9CFCA"))
    assert crypto.join_mic(app, phy[:-4]) == unhex("587FE913")


def test_join_accept_decrypt_mic_and_keys_ttn_example():
    key = unhex("B6B53F4A168A7A88BDF7EA135CE9CFCA")
    phy = unhex("204DD85AE608B87FC4889970B7D2042C9E72959B0057AED6094B16003DF12DE145")
    plain = lwjoin.decrypt_join_accept(crypto.aes_key(key), phy)
    assert crypto.equal(crypto.join_mic(crypto.aes_key(key), plain[:-4]), plain[-4:])
    assert plain[7:11] == unhex("432E0126")  # DevAddr 26012E43, little-endian on air
    nwk, app = session.session_keys(key, plain[1:4], plain[4:7], 0xCC85)  # on-air 85 CC
    assert nwk == unhex("2C96F7028184BB0BE8AA49275290D4FC")
    assert app == unhex("F3A5C8F0232A38C144029C165865802C")


def test_join_accept_without_cflist_brocaar():
    key = unhex("00112233445566778899aabbccddeeff")
    plain = lwjoin.decrypt_join_accept(crypto.aes_key(key), unhex("20493eeb51fba2116f810edb3742975142"))
    assert plain == unhex("20c70b5701112280190302000043485bbc")
    assert crypto.join_mic(crypto.aes_key(key), plain[:-4]) == unhex("43485BBC")
    raises(ValueError, lwjoin.decrypt_join_accept, crypto.aes_key(key), unhex("20493eeb51"))


def test_session_keys_lora_packet_vector():
    # JoinNonce 376338, NetID aabbcc, DevNonce f18e (big-endian as printed) -> on-air little-endian
    nwk, app = session.session_keys(
        unhex("98929b92c49edba9676d646d3b612456"), unhex("386337"), unhex("ccbbaa"), 0xF18E
    )
    assert nwk == unhex("4e3d6e6afbcc67af2ba3c8e8ec4acf4b")
    assert app == unhex("610897aa6f1460623443b527d3ac6a9d")


def test_equal_constant_time_compare():
    assert crypto.equal(b"\x01\x02\x03\x04", b"\x01\x02\x03\x04")
    assert not crypto.equal(b"\x01\x02\x03\x04", b"\x01\x02\x03\x05")
    assert not crypto.equal(b"\x01\x02\x03", b"\x01\x02\x03\x04")


def test_host_cryptolib_refuses_mixed_directions_like_the_real_one():
    a = cryptolib.aes(RFC_KEY, 1)
    a.encrypt(bytes(16))
    raises(OSError, a.decrypt, bytes(16))


def test_downlink_direction_vector_from_host_layer():
    """A confirmed downlink (FCnt 0x10005, FOpts DevStatusReq, FPort 3) built by the host frame layer
    havel.codecs.lorawan (on the `cryptography` package), frozen here: direction byte 1 in B0/A_i."""
    from lw import frames

    phy = unhex("a0f17dbe4921050006032393e9e4ebc820ccc532d60354")
    nwk = crypto.aes_key(unhex("44024241ed4ce9a68c6a8bc055233fd3"))
    app = crypto.aes_key(unhex("ec925802ae430ca77fd3dd73cb2cc588"))
    assert crypto.data_mic(nwk, False, 0x49BE7DF1, 0x10005, phy[:-4]) == phy[-4:]
    d = frames.parse_data_down(phy, 0x49BE7DF1, 0x10000, nwk, app)
    assert d.confirmed and d.ack and d.fcnt32 == 0x10005 and d.fopts == b"\x06"
    assert d.fport == 3 and d.payload == b"down-test"
