"""Provisioning figures: flashing a full bundle and `havel kit build` over the virtual board at 115200 baud.

The virtual board paces both directions like a UART at the given rate (10 bits a byte), so the times
include the line. Printed:
  - bundle size (files, bytes) and mpy-cross build time;
  - full flash on an empty board: seconds, bytes sent/received, exec calls; a no-change re-flash;
  - `havel kit build --kit air` end to end (board found, flash, check, register, label);
  - an estimate for real hardware: wire time at 115200 baud from the bytes counted, plus the measured
    per-call protocol overhead, plus an assumed per-call latency of a real board (stated below).

Run: .venv/bin/python bench/provisioning.py [--baud 115200] [--kit air]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from serial.tools.list_ports_common import ListPortInfo

from havel.provisioning import bundle, flash, kitbuild
from havel.provisioning.kits import REPO, firmware_dir, load_kit
from havel.provisioning.settings import Settings
from havel.provisioning.transport import Board

sys.path.insert(0, str(REPO / "tools" / "vboard"))
import scenario
from vboard import VirtualBoard

# A real board answers a small raw-REPL exec in a few ms (compile + run on the MCU) and a USB-serial
# bridge adds latency per direction (CP210x/CH340 on Linux: about 1-4 ms). Assumed, not measured here.
REAL_BOARD_MS_PER_CALL = 8.0


def spec_for(fw: Path, app: str) -> tuple[dict[str, Any] | None, str]:
    if (fw / "bundle.json").exists():
        return None, "firmware/bundle.json"
    # Until firmware/bundle.json exists: every firmware module except host/ (an upper bound).
    pats = sorted({p.relative_to(fw).parts[0] for p in fw.rglob("*.py") if "host" not in p.parts})
    return {"apps": {app: pats}}, "all of firmware/ except host/ (no bundle.json yet)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--kit", default="air")
    args = ap.parse_args()
    kit = load_kit(args.kit)
    board_def = kit.board()
    work = Path(tempfile.mkdtemp(prefix="havel-bench-"))
    key = Ed25519PrivateKey.generate()
    fw = firmware_dir()
    spec, spec_note = spec_for(fw, kit.app)
    t0 = time.monotonic()
    bdir = work / "bundle"
    radios = [board_def.radio.chip] if board_def.radio else None
    manifest = bundle.build_bundle(fw, kit.app, bdir, signing_key=key, spec=spec, radios=radios)
    t_build = time.monotonic() - t0
    sources = bundle.app_sources(fw, spec or bundle.load_spec(fw), kit.app, radios)
    src_bytes = sum((fw / p).stat().st_size for p in sources)
    print(
        f"bundle for app '{kit.app}' ({spec_note}): {len(manifest.files)} files, "
        f"{manifest.total_bytes} bytes .mpy/.py (from {src_bytes} bytes of source), "
        f"built and signed in {t_build:.2f} s"
    )

    sc = scenario.build(kit, board_def, set())
    with VirtualBoard(sc, work, baud=args.baud) as vb:
        with Board(vb.path, timeout=30) as link:
            t0 = time.monotonic()
            link.call("fsutil", "hv_info")
            t_first = time.monotonic() - t0
            # Per-call round trip of a tiny call (protocol overhead at this baud rate)
            n, t0 = 20, time.monotonic()
            b0 = link.bytes_out + link.bytes_in
            for _ in range(n):
                link.call("fsutil", "hv_sha256", "nothing")
            per_call = (time.monotonic() - t0) / n
            per_call_bytes = (link.bytes_out + link.bytes_in - b0) / n
            rep = flash.flash_bundle(link, bdir, manifest)
            rep2 = flash.flash_bundle(link, bdir, manifest)
        wire = (rep.bytes_out + rep.bytes_in) * 10 / args.baud
        print(
            f"virtual board at {args.baud} baud: first call (loads fsutil.py) {t_first * 1000:.0f} ms; "
            f"a small call {per_call * 1000:.1f} ms round trip, {per_call_bytes:.0f} bytes on the wire"
        )
        print(
            f"full flash: {len(rep.copied)} files, payload {rep.payload_bytes} bytes; "
            f"sent {rep.bytes_out} bytes, received {rep.bytes_in} bytes, {rep.calls} calls; "
            f"{rep.seconds:.2f} s "
            f"(wire time alone {wire:.2f} s, protocol/VM overhead {rep.seconds - wire:.2f} s)"
        )
        print(
            f"re-flash, nothing changed: {rep2.seconds:.2f} s, {rep2.bytes_out + rep2.bytes_in} bytes, "
            f"{rep2.calls} calls"
        )
        overhead_per_call_vm = max(0.0, (rep.seconds - wire) / max(rep.calls, 1))

    # kit build end to end, fresh board, at the same baud rate
    kb = work / "kb"
    kb.mkdir()
    with VirtualBoard(sc, kb, baud=args.baud) as vb:
        pub = work / "city.pub"
        pub.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        settings = Settings(
            registry=work / "registry.json",
            state_dir=work / "state",
            label_dir=work / "labels",
            trusted_keys=[pub],
            join_eui=0x70B3D57ED0000000,
        )

        def ports() -> list[ListPortInfo]:
            p = ListPortInfo(vb.path, skip_link_detection=True)
            p.vid, p.pid = 0x10C4, 0xEA60
            return [p]

        con = Console(file=open("/dev/null", "w"))  # noqa: SIM115
        t0 = time.monotonic()
        res = kitbuild.build(
            kitbuild.BuildOptions(kit=kit.name, bundle_dir=bdir),
            settings,
            confirm=lambda q: True,
            passphrase=lambda: "bench",
            console=con,
            list_ports=ports,
        )
        t_kit = time.monotonic() - t0
        assert res.ok, res.steps
        fr = res.flash_report
        assert fr is not None
        print(
            f"havel kit build --kit {kit.name}: {t_kit:.2f} s end to end on the virtual board "
            f"(flash {fr.seconds:.2f} s, check + register + label {t_kit - fr.seconds:.2f} s)"
        )

    real_flash = wire + rep.calls * (REAL_BOARD_MS_PER_CALL / 1000 + overhead_per_call_vm)
    check_time = t_kit - fr.seconds  # dominated by the sensor protocol's own waits, the same on hardware
    print(
        f"estimate on real hardware at {args.baud} baud: flash {real_flash:.1f} s (= wire {wire:.1f} s + "
        f"{rep.calls} calls x ({REAL_BOARD_MS_PER_CALL:.0f} ms assumed board/USB latency + "
        f"{overhead_per_call_vm * 1000:.1f} ms host overhead)), "
        f"kit build about {real_flash + check_time:.0f} s without a MicroPython install (target: under 120 s)"
    )
    image = 1_700_000  # bytes of an ESP32-S3 MicroPython 1.2x image, about
    print(
        f"plus, when MicroPython must be installed: esptool at 460800 baud writes {image} bytes in at most "
        f"{image * 10 / 460800:.0f} s uncompressed (esptool compresses, typically half that) "
        "plus about 10 s erase"
    )
    print(
        json.dumps(
            {
                "files": len(manifest.files),
                "bundle_bytes": manifest.total_bytes,
                "flash_s": round(rep.seconds, 2),
                "bytes_out": rep.bytes_out,
                "bytes_in": rep.bytes_in,
                "calls": rep.calls,
                "kit_build_s": round(t_kit, 2),
                "estimate_real_flash_s": round(real_flash, 1),
                "estimate_real_kit_build_s": round(real_flash + check_time, 1),
            }
        )
    )

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
