"""Persistent storage for the MAC: a tiny Store interface and a torn-write-proof Record on top.

Store (what a backend provides; FileStore is the one for boards, host/memstore.py the simulator):
    read(name) -> bytes or None      whole value, None when absent
    write(name, data)                replace the value; a power cut may leave it torn

Record keeps one value in two slots (name.a, name.b), each `seq u32 | len u16 | data | crc32`.
A save goes to the slot that does *not* hold the newest good copy, so a brown-out during the
write can only destroy the copy being written; load() returns the newest copy whose CRC holds.
`damaged` then says whether a slot held something unreadable: it may have been a newer copy (a
bit flip after a completed write), so a counter taken from the older one must skip ahead.
"""

import binascii
import struct

_HDR = "<IH"
_HDR_LEN = 6


class FileStore:
    """Values as files in a directory of the board's filesystem (LittleFS does wear levelling)."""

    def __init__(self, directory="/lw"):
        import os

        self._dir = directory
        try:
            os.mkdir(directory)
        except OSError:
            pass  # exists (errno numbers differ between ports, so do not test them)

    def read(self, name):
        try:
            with open(self._dir + "/" + name, "rb") as f:
                return f.read()
        except OSError:
            return None

    def write(self, name, data):
        with open(self._dir + "/" + name, "wb") as f:
            f.write(data)


def _crc(data):
    return binascii.crc32(data) & 0xFFFFFFFF


class Record:
    """One value stored in two alternating, CRC-checked slots."""

    def __init__(self, store, name):
        self._store = store
        self._names = (name + ".a", name + ".b")
        self.seq = 0
        self._slot = 1  # slot of the newest good copy; first save goes to slot 0
        self.damaged = False  # load() found a slot with bytes that are not a valid copy

    def _parse(self, raw):
        if raw is None or len(raw) < _HDR_LEN + 4:
            return None
        seq, n = struct.unpack_from(_HDR, raw, 0)
        if len(raw) != _HDR_LEN + n + 4:
            return None
        body = memoryview(raw)[: _HDR_LEN + n]
        if struct.unpack_from("<I", raw, _HDR_LEN + n)[0] != _crc(body):
            return None
        return seq, bytes(raw[_HDR_LEN : _HDR_LEN + n])

    def load(self):
        """The newest intact value, or None when neither slot holds one."""
        best = None
        self.damaged = False
        for i in (0, 1):
            raw = self._store.read(self._names[i])
            got = self._parse(raw)
            if got is None:
                if raw is not None:
                    self.damaged = True
            elif best is None or got[0] > best[0]:
                best = (got[0], got[1], i)
        if best is None:
            return None
        self.seq, self._slot = best[0], best[2]
        return best[1]

    def save(self, data):
        """Write data as the newest value (into the other slot than the newest good copy)."""
        seq = (self.seq + 1) & 0xFFFFFFFF
        buf = bytearray(_HDR_LEN + len(data) + 4)
        struct.pack_into(_HDR, buf, 0, seq, len(data))
        buf[_HDR_LEN : _HDR_LEN + len(data)] = data
        struct.pack_into("<I", buf, _HDR_LEN + len(data), _crc(memoryview(buf)[: _HDR_LEN + len(data)]))
        slot = 1 - self._slot
        self._store.write(self._names[slot], buf)
        # only after the write returned is the new copy the newest one
        self.seq, self._slot = seq, slot
