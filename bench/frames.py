"""Frame-layer throughput: decode + MIC check + decrypt, Havel against lora-packet on the same frames.

Usage: .venv/bin/python bench/frames.py [--seconds 1] [--rounds 3] [--devices 256] [--json]

Builds one set of uplink frames (devices with their own keys, 10-51 byte payloads, some FOpts, some 32-bit
counters above 65535), then measures for a fixed wall time, single-threaded, in alternating rounds (best of
each kept):
  - Havel, network-server path: phy.parse, fcnt.reconstruct, crypto.data_mic + verify_mic, crypt_frm_payload;
  - Havel, CLI path: decode.decode_frame (the full JSON-ready dict, MAC commands included);
  - lora-packet 0.9.3 (Node.js, tools/npm): fromWire, verifyMIC, decrypt, timed inside Node so that no
    inter-process cost is counted against it.
Prints frames/s for each and the ratio of Havel's network-server path to lora-packet (target >= 4x).
Figures from one run on one machine; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from havel.codecs.lorawan import crypto, fcnt, phy
from havel.codecs.lorawan.decode import decode_frame

REPO = Path(__file__).resolve().parent.parent
ORACLE = REPO / "tests" / "codecs" / "lorawan" / "lora_packet_oracle.mjs"

Frame = tuple[bytes, bytes, bytes, int]  # phy, NwkSKey, AppSKey, FCnt32


def make_frames(devices: int, per_device: int, seed: int = 1) -> list[Frame]:
    """Uplinks as sensor nodes send them: each device its own keys, counters running, a few MAC answers."""
    rng = random.Random(seed)
    frames: list[Frame] = []
    for dev in range(devices):
        nwk, app = rng.randbytes(16), rng.randbytes(16)
        dev_addr = 0x26000000 | dev
        start = rng.choice([0, 1000, 65530, 200_000])
        for i in range(per_device):
            fcnt32 = start + i
            fopts = rng.choice([b"", b"", b"", bytes.fromhex("0307"), bytes.fromhex("06ff1e")])
            raw = phy.build_data_frame(
                uplink=True,
                confirmed=rng.random() < 0.1,
                dev_addr=dev_addr,
                fcnt32=fcnt32,
                fport=rng.choice([1, 2, 10]),
                payload=rng.randbytes(rng.randint(10, 51)),
                fopts=fopts,
                adr=True,
                nwk_s_key=nwk,
                app_s_key=app,
            )
            frames.append((raw, nwk, app, fcnt32))
    rng.shuffle(frames)
    return frames


def havel_ns_path(frames: list[Frame], seconds: float) -> tuple[float, int]:
    """Frames/s of parse + 32-bit counter + MIC check + decrypt; also the count of valid MICs in one pass."""
    valid = 0
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        valid = 0
        for raw, nwk, app, fc in frames:
            frame = phy.parse(raw)
            assert isinstance(frame, phy.DataFrame)
            fcnt32 = fcnt.reconstruct(fc - 1 if fc else None, frame.fcnt16)
            mic = crypto.data_mic(nwk, frame.uplink, frame.dev_addr, fcnt32, frame.msg)
            if crypto.verify_mic(mic, frame.mic):
                valid += 1
                crypto.crypt_frm_payload(
                    app if frame.fport else nwk, frame.uplink, frame.dev_addr, fcnt32, frame.frm_payload
                )
        n += len(frames)
    return n / (time.perf_counter() - t0), valid


def havel_cli_path(frames: list[Frame], seconds: float) -> float:
    """Frames/s of decode.decode_frame, the JSON object of `havel frame decode`."""
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for raw, nwk, app, fc in frames:
            decode_frame(raw, nwk_s_key=nwk, app_s_key=app, fcnt32=fc)
        n += len(frames)
    return n / (time.perf_counter() - t0)


class LoraPacket:
    """lora-packet in one Node.js process (tests/codecs/lorawan/lora_packet_oracle.mjs), timed inside Node."""

    def __init__(self, frames: list[Frame]) -> None:
        node = shutil.which("node")
        if node is None:
            sys.exit("bench/frames.py: Node.js is missing (tools/bootstrap.sh installs it)")
        self.node_version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        self.proc = subprocess.Popen(
            [node, str(ORACLE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.frames = [
            {"phy": raw.hex(), "nwk_s_key": nwk.hex(), "app_s_key": app.hex(), "fcnt32": fc}
            for raw, nwk, app, fc in frames
        ]
        self.version = self._ask({"op": "version"})["version"]

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            sys.exit(f"bench/frames.py: lora-packet failed: {answer['error']}")
        return answer

    def run(self, seconds: float) -> dict[str, Any]:
        """One timed run: frames/s, frames done, valid MICs."""
        return self._ask({"op": "bench", "seconds": seconds, "frames": self.frames})

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.0, help="wall time per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    parser.add_argument("--devices", type=int, default=256)
    parser.add_argument("--per-device", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    frames = make_frames(args.devices, args.per_device)
    lp = LoraPacket(frames)
    # Rounds alternate between the implementations and the best of each is kept, so that load from other
    # processes on a shared machine skews the ratio as little as possible.
    lp_rate = ns_rate = cli_rate = 0.0
    try:
        for _ in range(args.rounds):
            lp_run = lp.run(args.seconds)
            if lp_run["mic_valid"] != lp_run["frames"]:
                sys.exit("bench/frames.py: lora-packet rejected MICs of Havel's frames")
            lp_rate = max(lp_rate, lp_run["frames_per_s"])
            rate, valid = havel_ns_path(frames, args.seconds)
            if valid != len(frames):
                sys.exit(f"bench/frames.py: Havel accepted {valid} of {len(frames)} MICs")
            ns_rate = max(ns_rate, rate)
            cli_rate = max(cli_rate, havel_cli_path(frames, args.seconds))
    finally:
        lp.close()
    result = {
        "frames": len(frames),
        "devices": args.devices,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "python": platform.python_version(),
        "node": lp.node_version,
        "lora_packet": lp.version,
        "havel_ns_frames_per_s": round(ns_rate),
        "havel_decode_frame_per_s": round(cli_rate),
        "lora_packet_frames_per_s": round(lp_rate),
        "ratio_ns": round(ns_rate / lp_rate, 2),
        "ratio_decode_frame": round(cli_rate / lp_rate, 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{len(frames)} uplinks of {args.devices} devices (10-51 B payloads), best of {args.rounds} x "
        f"{args.seconds:g} s, "
        f"Python {result['python']}, Node {result['node']}"
    )
    print(f"{'path':58} {'frames/s':>10} {'vs lora-packet':>15}")
    print(f"{'Havel: parse + FCnt32 + MIC check + decrypt':58} {ns_rate:>10,.0f} {result['ratio_ns']:>14}x")
    print(
        f"{'Havel: decode_frame (full JSON dict, MAC commands)':58} {cli_rate:>10,.0f} "
        f"{result['ratio_decode_frame']:>14}x"
    )
    print(f"{'lora-packet ' + lp.version + ': fromWire + verifyMIC + decrypt':58} {lp_rate:>10,.0f} {1:>14}x")
    print(f"target: Havel >= 4x lora-packet -> {'met' if result['ratio_ns'] >= 4 else 'NOT met'}")


if __name__ == "__main__":
    main()
