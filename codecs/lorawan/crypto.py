"""LoRaWAN 1.0.x cryptography: MICs, FRMPayload encryption, join-accept encryption, session keys.

All AES-128 over the ``cryptography`` package. Every field is laid out in its on-air (little-endian) order,
as LoRaWAN 1.0.3 sections 4.3.3, 4.4, 6.2.4 and 6.2.5 define the blocks. Cipher and CMAC objects are cached
per key because setting one up costs several times more than the AES itself on short frames; the caches
never expose a key (no repr, no logging).
"""

from __future__ import annotations

import hmac
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from havel.codecs.lorawan.ids import check_key
from havel.errors import FrameError

_CACHE_MAX = 4096
_ecb_enc: dict[bytes, CipherContext] = {}
_ecb_dec: dict[bytes, CipherContext] = {}
_cmacs: dict[bytes, CMAC] = {}
_block = struct.Struct("<B4xBIIxB")  # B0 / A_i: tag | 0x00*4 | Dir | DevAddr | FCnt32 | 0x00 | len-or-i


def _encryptor(key: bytes) -> CipherContext:
    enc = _ecb_enc.get(key)
    if enc is None:
        check_key(key)
        if len(_ecb_enc) >= _CACHE_MAX:
            _ecb_enc.clear()
        # ECB keeps no state between blocks, so one context serves every call with this key.
        enc = _ecb_enc[key] = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 (LoRaWAN defines its blocks on ECB)
    return enc


def _decryptor(key: bytes) -> CipherContext:
    dec = _ecb_dec.get(key)
    if dec is None:
        check_key(key)
        if len(_ecb_dec) >= _CACHE_MAX:
            _ecb_dec.clear()
        dec = _ecb_dec[key] = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    return dec


def aes_encrypt(key: bytes, data: bytes) -> bytes:
    """AES-128-ECB encryption of whole 16-byte blocks."""
    out: bytes = _encryptor(key).update(data)
    return out


def aes_decrypt(key: bytes, data: bytes) -> bytes:
    """AES-128-ECB decryption of whole 16-byte blocks."""
    out: bytes = _decryptor(key).update(data)
    return out


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (RFC 4493) of ``data``, all 16 bytes."""
    base = _cmacs.get(key)
    if base is None:
        check_key(key)
        if len(_cmacs) >= _CACHE_MAX:
            _cmacs.clear()
        base = _cmacs[key] = CMAC(algorithms.AES(key))
    mac = base.copy()  # a copy of a keyed, empty CMAC is far cheaper than keying a new one
    mac.update(data)
    return mac.finalize()


def verify_mic(expected: bytes, got: bytes) -> bool:
    """Compare two MICs in constant time."""
    return hmac.compare_digest(expected, got)


def _check_frame_numbers(dev_addr: int, fcnt32: int) -> None:
    if not 0 <= dev_addr <= 0xFFFFFFFF:
        raise FrameError(f"DevAddr {dev_addr} does not fit in 32 bits")
    if not 0 <= fcnt32 <= 0xFFFFFFFF:
        raise FrameError(f"frame counter {fcnt32} does not fit in 32 bits")


def data_mic(nwk_s_key: bytes, uplink: bool, dev_addr: int, fcnt32: int, msg: bytes) -> bytes:
    """MIC of a data frame: AES-CMAC(NwkSKey, B0 | msg)[0:4], msg = MHDR..FRMPayload (1.0.3 4.4)."""
    _check_frame_numbers(dev_addr, fcnt32)
    if len(msg) > 255:
        raise FrameError(f"message of {len(msg)} bytes is longer than a LoRaWAN frame can be")
    b0 = _block.pack(0x49, 0 if uplink else 1, dev_addr, fcnt32, len(msg))
    return aes_cmac(nwk_s_key, b0 + msg)[:4]


def crypt_frm_payload(key: bytes, uplink: bool, dev_addr: int, fcnt32: int, data: bytes) -> bytes:
    """Encrypt or decrypt (the same XOR) an FRMPayload with the A_i key stream (1.0.3 4.3.3)."""
    if not data:
        return b""
    _check_frame_numbers(dev_addr, fcnt32)
    nblocks = (len(data) + 15) // 16
    if nblocks > 255:
        raise FrameError(f"payload of {len(data)} bytes is longer than a LoRaWAN frame can be")
    direction = 0 if uplink else 1
    if nblocks == 1:  # most sensor payloads: one block, without building a generator and a join
        blocks = _block.pack(0x01, direction, dev_addr, fcnt32, 1)
    else:
        blocks = b"".join(_block.pack(0x01, direction, dev_addr, fcnt32, i) for i in range(1, nblocks + 1))
    stream = aes_encrypt(key, blocks)
    n = len(data)
    # One big-int XOR instead of a per-byte loop: an order of magnitude faster in CPython.
    mixed = int.from_bytes(data, "little") ^ int.from_bytes(stream[:n], "little")
    return mixed.to_bytes(n, "little")


def join_request_mic(app_key: bytes, msg: bytes) -> bytes:
    """MIC of a join-request: AES-CMAC(AppKey, MHDR | JoinEUI | DevEUI | DevNonce)[0:4]."""
    return aes_cmac(app_key, msg)[:4]


def join_accept_mic(app_key: bytes, msg: bytes) -> bytes:
    """MIC of a join-accept over its plaintext MHDR..CFList: AES-CMAC(AppKey, msg)[0:4]."""
    return aes_cmac(app_key, msg)[:4]


def _check_join_accept_len(phy: bytes) -> None:
    if len(phy) not in (17, 33):
        raise FrameError(f"a join-accept has 17 or 33 bytes (with CFList), got {len(phy)}")


def encrypt_join_accept(app_key: bytes, plain_phy: bytes) -> bytes:
    """Encrypt a join-accept (MHDR..MIC in clear) for the air: AES-ECB *decrypt* after MHDR (1.0.3 6.2.5)."""
    _check_join_accept_len(plain_phy)
    return plain_phy[:1] + aes_decrypt(app_key, plain_phy[1:])


def decrypt_join_accept(app_key: bytes, phy: bytes) -> bytes:
    """Recover a join-accept's plaintext as a device does: AES-ECB *encrypt* of everything after MHDR."""
    _check_join_accept_len(phy)
    return phy[:1] + aes_encrypt(app_key, phy[1:])


def derive_session_keys(app_key: bytes, join_nonce: int, net_id: int, dev_nonce: int) -> tuple[bytes, bytes]:
    """(NwkSKey, AppSKey) of LoRaWAN 1.0.x: AES(AppKey, 0x01|0x02 | JoinNonce | NetID | DevNonce | pad16)."""
    if not (0 <= join_nonce < 1 << 24 and 0 <= net_id < 1 << 24 and 0 <= dev_nonce < 1 << 16):
        raise FrameError("JoinNonce and NetID have 24 bits, DevNonce 16 bits")
    tail = join_nonce.to_bytes(3, "little") + net_id.to_bytes(3, "little") + dev_nonce.to_bytes(2, "little")
    blocks = b"\x01" + tail + bytes(7) + b"\x02" + tail + bytes(7)
    keys = aes_encrypt(app_key, blocks)
    return keys[:16], keys[16:]
