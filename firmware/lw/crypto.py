"""LoRaWAN 1.0.x security on one primitive: AES-128-ECB encrypt from `cryptolib.aes(key, 1)`.

AES-CMAC (RFC 4493) is written here on top of it; so are the data-frame MIC and FRMPayload
cipher (LoRaWAN 1.0.2 sections 4.3.3 and 4.4) and the join MICs (6.2.4; the session keys of
6.2.5 are in lw/session.py, loaded for a join). All multi-byte fields go in on-air
(little-endian) order. Callers pass key *objects* made with `aes_key(key)` so a session does
the key expansion once; no AES object is used for decrypt, so the real cryptolib's "one
direction per object" rule is never hit.
"""

import struct

import cryptolib

_ECB = 1


def aes_key(key):
    """An AES-128-ECB encryptor for `key` (16 bytes)."""
    if len(key) != 16:
        raise ValueError("AES-128 key must be 16 bytes")
    return cryptolib.aes(bytes(key), _ECB)


def _dbl(b):
    """Doubling in GF(2^128) (RFC 4493 subkey step), on a 16-byte bytearray in place."""
    carry = b[0] & 0x80
    for i in range(15):
        b[i] = ((b[i] << 1) | (b[i + 1] >> 7)) & 0xFF
    b[15] = (b[15] << 1) & 0xFF
    if carry:
        b[15] ^= 0x87


def cmac(aes, *parts):
    """AES-CMAC over the concatenation of `parts` (bytes-like) with the encryptor `aes`. 16 bytes."""
    k = bytearray(16)
    aes.encrypt(bytes(16), k)
    _dbl(k)  # K1
    total = 0
    for p in parts:
        total += len(p)
    n_blocks = (total + 15) // 16 or 1
    complete = total and total % 16 == 0
    if not complete:
        _dbl(k)  # K2
    x = bytearray(16)
    blk = bytearray(16)
    pos = 0  # bytes gathered in blk
    done = 0  # full blocks processed
    for p in parts:
        for byte in p:
            blk[pos] = byte
            pos += 1
            if pos == 16 and done < n_blocks - 1:
                for i in range(16):
                    x[i] ^= blk[i]
                aes.encrypt(x, x)
                done += 1
                pos = 0
    # last block: complete -> xor K1; else pad 0x80 00.. and xor K2
    if not complete:
        blk[pos] = 0x80
        for i in range(pos + 1, 16):
            blk[i] = 0
    for i in range(16):
        x[i] ^= blk[i] ^ k[i]
    aes.encrypt(x, x)
    return bytes(x)


def _block(b0, uplink, dev_addr, fcnt32, last):
    """The 16-byte B0/A_i block: b0 | 0000 | dir | DevAddr LE | FCnt32 LE | 00 | last."""
    blk = bytearray(16)
    blk[0] = b0
    blk[5] = 0 if uplink else 1
    struct.pack_into("<II", blk, 6, dev_addr & 0xFFFFFFFF, fcnt32 & 0xFFFFFFFF)
    blk[15] = last
    return blk


def data_mic(nwk_aes, uplink, dev_addr, fcnt32, msg):
    """MIC (4 bytes) of a data frame; msg = MHDR..FRMPayload."""
    return cmac(nwk_aes, _block(0x49, uplink, dev_addr, fcnt32, len(msg)), msg)[:4]


def crypt_payload(aes, uplink, dev_addr, fcnt32, data):
    """Encrypt/decrypt (the same XOR) FRMPayload `data`; returns new bytes."""
    out = bytearray(len(data))
    crypt_payload_into(aes, uplink, dev_addr, fcnt32, data, out, 0)
    return bytes(out)


def crypt_payload_into(aes, uplink, dev_addr, fcnt32, data, dst, off):
    """crypt_payload() writing into dst[off:] (the uplink buffer): no allocation per byte."""
    n = len(data)
    a = _block(0x01, uplink, dev_addr, fcnt32, 0)
    s = bytearray(16)
    i = 0
    while i < n:
        a[15] = i // 16 + 1
        aes.encrypt(a, s)
        j = 0
        while j < 16 and i < n:
            dst[off + i] = data[i] ^ s[j]
            i += 1
            j += 1


def join_mic(app_aes, msg):
    """MIC of a join-request (MHDR|JoinEUI|DevEUI|DevNonce) or of a decrypted join-accept
    (MHDR|JoinNonce|NetID|DevAddr|DLSettings|RxDelay|CFList)."""
    return cmac(app_aes, msg)[:4]


def equal(a, b):
    """Compare two MICs without an early exit (no timing hint on how many bytes matched)."""
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0
