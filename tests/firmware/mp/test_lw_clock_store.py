"""lw.clock.SysClock on the runtime's real ticks, and lw.store.FileStore on a real filesystem
(the wasm interpreter's in-memory FS, or the host's /tmp under CPython)."""

import os
import random
import time

from lw.clock import SysClock
from lw.store import FileStore, Record


def _dir():
    return "/tmp/havel_lw_%d" % random.getrandbits(24)


def _cleanup(d):
    for n in os.listdir(d):
        os.remove(d + "/" + n)
    os.rmdir(d)


def test_sysclock_counts_milliseconds_and_keeps_a_base():
    c = SysClock(base_ms=5000)
    t0 = c.now_ms()
    assert t0 >= 5000
    c.sleep_ms(3)
    time.sleep_ms(2)
    assert c.now_ms() - t0 >= 5
    c.sleep_ms(-1)  # nothing to wait for


def test_filestore_roundtrip_and_missing():
    d = _dir()
    st = FileStore(d)
    assert st.read("nothing") is None
    st.write("k", b"\x00\x01value")
    assert st.read("k") == b"\x00\x01value"
    FileStore(d)  # the directory exists already: fine
    assert FileStore(d).read("k") == b"\x00\x01value"
    _cleanup(d)


def test_record_on_filestore_survives_a_truncated_slot():
    d = _dir()
    st = FileStore(d)
    rec = Record(st, "lwstate")
    rec.save(b"first-state")
    rec.save(b"second-state")
    # a power cut while the third save rewrites slot a: the file is cut short
    rec.save(b"third-state!")
    names = sorted(os.listdir(d))
    assert names == ["lwstate.a", "lwstate.b"]
    with open(d + "/lwstate.a", "rb") as f:
        whole = f.read()
    with open(d + "/lwstate.a", "wb") as f:
        f.write(whole[:9])
    assert Record(FileStore(d), "lwstate").load() == b"second-state"
    _cleanup(d)
