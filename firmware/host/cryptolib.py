"""Host stand-in for MicroPython's `cryptolib` (AES-128, ECB mode only), in pure Python.

The WebAssembly MicroPython build and CPython lack `cryptolib`; boards have it, and there the real
module is used (host/ is never flashed). Behaves like the real one where the MAC depends on it:
`aes(key, 1)` gives an object with `encrypt(in[, out])`/`decrypt(in[, out])` working on whole
16-byte blocks, and one object cannot be used for both directions (the real one raises too).
"""

MODE_ECB = 1

_SBOX = bytes.fromhex(
    "637c777bf26b6fc53001672bfed7ab76ca82c97dfa5947f0add4a2af9ca472c0"
    "b7fd9326363ff7cc34a5e5f171d8311504c723c31896059a071280e2eb27b275"
    "09832c1a1b6e5aa0523bd6b329e32f8453d100ed20fcb15b6acbbe394a4c58cf"
    "d0efaafb434d338545f9027f503c9fa851a3408f929d38f5bcb6da2110fff3d2"
    "cd0c13ec5f974417c4a77e3d645d197360814fdc222a908846eeb814de5e0bdb"
    "e0323a0a4906245cc2d3ac629195e479e7c8376d8dd54ea96c56f4ea657aae08"
    "ba78252e1ca6b4c6e8dd741f4bbd8b8a703eb5664803f60e613557b986c11d9e"
    "e1f8981169d98e949b1e87e9ce5528df8ca1890dbfe6426841992d0fb054bb16"
)
_INV = bytearray(256)
for _i in range(256):
    _INV[_SBOX[_i]] = _i
_INV_SBOX = bytes(_INV)


def _xt(a):
    a <<= 1
    return (a ^ 0x1B) & 0xFF if a & 0x100 else a


def _mul(a, b):
    r = 0
    while b:
        if b & 1:
            r ^= a
        a = _xt(a)
        b >>= 1
    return r


def _expand(key):
    w = bytearray(key)
    rcon = 1
    for i in range(16, 176, 4):
        t0, t1, t2, t3 = w[i - 4], w[i - 3], w[i - 2], w[i - 1]
        if i % 16 == 0:
            t0, t1, t2, t3 = _SBOX[t1] ^ rcon, _SBOX[t2], _SBOX[t3], _SBOX[t0]
            rcon = _xt(rcon)
        w.append(w[i - 16] ^ t0)
        w.append(w[i - 15] ^ t1)
        w.append(w[i - 14] ^ t2)
        w.append(w[i - 13] ^ t3)
    return bytes(w)


def _enc_block(rk, src, s):
    for i in range(16):
        s[i] = src[i] ^ rk[i]
    for rnd in range(1, 11):
        # SubBytes + ShiftRows (state is column-major: byte r + 4c)
        t = bytes(_SBOX[s[(i + 4 * (i % 4)) % 16]] for i in range(16))
        o = 16 * rnd
        if rnd == 10:
            for i in range(16):
                s[i] = t[i] ^ rk[o + i]
            return
        for c in range(0, 16, 4):
            a0, a1, a2, a3 = t[c], t[c + 1], t[c + 2], t[c + 3]
            x = a0 ^ a1 ^ a2 ^ a3
            s[c] = a0 ^ x ^ _xt(a0 ^ a1) ^ rk[o + c]
            s[c + 1] = a1 ^ x ^ _xt(a1 ^ a2) ^ rk[o + c + 1]
            s[c + 2] = a2 ^ x ^ _xt(a2 ^ a3) ^ rk[o + c + 2]
            s[c + 3] = a3 ^ x ^ _xt(a3 ^ a0) ^ rk[o + c + 3]


def _dec_block(rk, src, s):
    for i in range(16):
        s[i] = src[i] ^ rk[160 + i]
    for rnd in range(9, -1, -1):
        # InvShiftRows + InvSubBytes
        t = bytes(_INV_SBOX[s[(i - 4 * (i % 4)) % 16]] for i in range(16))
        o = 16 * rnd
        if rnd == 0:
            for i in range(16):
                s[i] = t[i] ^ rk[i]
            return
        u = bytes(t[i] ^ rk[o + i] for i in range(16))
        for c in range(0, 16, 4):
            a0, a1, a2, a3 = u[c], u[c + 1], u[c + 2], u[c + 3]
            s[c] = _mul(a0, 14) ^ _mul(a1, 11) ^ _mul(a2, 13) ^ _mul(a3, 9)
            s[c + 1] = _mul(a0, 9) ^ _mul(a1, 14) ^ _mul(a2, 11) ^ _mul(a3, 13)
            s[c + 2] = _mul(a0, 13) ^ _mul(a1, 9) ^ _mul(a2, 14) ^ _mul(a3, 11)
            s[c + 3] = _mul(a0, 11) ^ _mul(a1, 13) ^ _mul(a2, 9) ^ _mul(a3, 14)


class aes:
    """AES-128 in ECB mode (mode 1); other modes are not provided by this stand-in."""

    def __init__(self, key, mode, iv=None):
        if mode != MODE_ECB:
            raise ValueError("host cryptolib: only ECB (mode 1) is provided")
        if len(key) != 16:
            raise ValueError("key")
        self._rk = _expand(bytes(key))
        self._dir = 0
        self._blk = bytearray(16)

    def _run(self, direction, data, out):
        if self._dir and self._dir != direction:
            raise OSError("can't encrypt & decrypt")  # as MicroPython's own aes object
        self._dir = direction
        n = len(data)
        if n % 16:
            raise ValueError("blksize")
        dst = bytearray(n) if out is None else out
        blk = self._blk
        fn = _enc_block if direction == 1 else _dec_block
        mv = memoryview(data)
        for i in range(0, n, 16):
            fn(self._rk, mv[i : i + 16], blk)
            dst[i : i + 16] = blk
        return bytes(dst) if out is None else None

    def encrypt(self, data, out=None):
        return self._run(1, data, out)

    def decrypt(self, data, out=None):
        return self._run(2, data, out)
