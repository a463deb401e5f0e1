"""The gateway daemon's cost per uplink in CPU instructions, counted by valgrind: the same on a busy machine.

Usage: .venv/bin/python bench/gateway_instructions.py [--small 4000] [--large 12000] [--devices 250] [--paho]
                                                     [--json]

``bench/gateway_e2e.py`` measures time, and on a shared machine the same code gives figures up to 30 % apart
from one minute to the next: too coarse to tell whether a change saved 3 %. Here the daemon runs the same
end-to-end job (``havel gateway run`` with its MQTT sink, a real Mosquitto, the same pre-built frames as
GWMP datagrams) under valgrind's callgrind, which counts the instructions it executes. Two runs, of
``--small`` and ``--large`` uplinks; the difference of their totals divided by the difference of their sizes
is the cost of one more uplink, without the start and the stop. Counts vary by up to about 1 % between runs
(the batches the daemon forms depend a little on timing); a change that moves the figure by more is real.

250 devices, so that the uplinks counted (the 17th to the 48th of each device) are past the 20 an ADR decision
needs, as in the long timed run. Under callgrind the daemon runs about 50 times slower, so its batches are as
large as they get (the load the gateway sees when it falls behind). Both runs take about two minutes together.
Needs valgrind (``apt-get install valgrind``); without it the script says so and stops. Prints figures;
asserts nothing.

``--paho`` also counts paho-mqtt by itself publishing as many ready messages of the stored messages' size
with QoS 1 to the same kind of broker until every PUBACK is in (``gateway_e2e.paho_alone``, one thread
driving ``loop()``), the same way (two runs, the difference): the floor for a gateway that publishes
through paho's public API, one message per uplink. About a minute more.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gateway_e2e as e2e  # noqa: E402

PATIENCE = 40.0  # the daemon under callgrind: every wait of the end-to-end bench, this many times longer


def instructions(path: Path) -> int:
    """The total instruction count of a callgrind output file (its ``summary:`` or ``totals:`` line)."""
    text = path.read_text(errors="replace")
    m = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
    if m is None:
        raise SystemExit(f"{path}: no instruction total in the callgrind output")
    return int(m.group(1))


def count(frames: int, devices: int, per_datagram: int, valgrind: str) -> tuple[int, dict[str, object]]:
    """Instructions the daemon executed in a whole run of ``frames`` uplinks (start and stop included)."""
    datagrams = e2e.push_datagrams([e2e.uplink_frame(k, devices) for k in range(frames)], per_datagram)
    tmp = Path(tempfile.mkdtemp(prefix="havel-bench-"))
    out = tmp / "callgrind.out"
    wrap = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"]
    try:
        run = e2e.run_once(tmp, datagrams, frames, devices, 256, 0, 0, None, wrap=wrap, patience=PATIENCE)
        if run["accepted"] != frames:
            raise SystemExit(f"only {run['accepted']} of {frames} uplinks accepted under callgrind")
        return instructions(out), run
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the database and the callgrind output (megabytes)


def paho_count(messages: int, size: int, valgrind: str) -> int:
    """Instructions of a whole process that starts paho-mqtt and publishes ``messages`` of ``size`` bytes
    with QoS 1 to a local Mosquitto until the last PUBACK (the broker runs outside valgrind)."""
    tmp = Path(tempfile.mkdtemp(prefix="havel-bench-paho-"))
    out = tmp / "callgrind.out"
    script = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "import gateway_e2e as e2e\n"
        "from support.mosquitto import Mosquitto\n"
        "with Mosquitto(max_inflight=0) as broker:\n"
        "    broker.start()\n"
        "    e2e.paho_alone(broker.port, int(sys.argv[3]), b'x' * int(sys.argv[4]), threaded=False)\n"
    )
    cmd = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", script]
    try:
        subprocess.run(
            [*cmd, str(HERE), str(e2e.REPO / "tests"), str(messages), str(size)],
            check=True,
            capture_output=True,
            timeout=40 * 120,
        )
        return instructions(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=4000)
    ap.add_argument("--large", type=int, default=12000)
    ap.add_argument("--devices", type=int, default=250)
    ap.add_argument("--per-datagram", type=int, default=8)
    ap.add_argument("--paho", action="store_true", help="also count paho-mqtt alone (see the docstring)")
    ap.add_argument("--paho-size", type=int, default=520, help="bytes per message for --paho")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed (apt-get install valgrind): no instruction counts")
        return 0
    if args.large <= args.small:
        raise SystemExit("--large must be more uplinks than --small")
    small, _ = count(args.small, args.devices, args.per_datagram, valgrind)
    large, _ = count(args.large, args.devices, args.per_datagram, valgrind)
    per_uplink = (large - small) / (args.large - args.small)
    result = {
        "daemon_instructions_per_uplink": round(per_uplink),
        "small_run": {"uplinks": args.small, "instructions": small},
        "large_run": {"uplinks": args.large, "instructions": large},
        "devices": args.devices,
        "per_datagram": args.per_datagram,
    }
    if args.paho:
        p_small = paho_count(args.small, args.paho_size, valgrind)
        p_large = paho_count(args.large, args.paho_size, valgrind)
        paho = (p_large - p_small) / (args.large - args.small)
        result["paho_alone_instructions_per_message"] = round(paho)
        result["daemon_vs_paho_alone"] = round(per_uplink / paho, 2)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"gateway daemon under callgrind, GWMP to MQTT PUBACK, {args.devices} devices, "
        f"{args.per_datagram} rxpk per PUSH_DATA"
    )
    print(f"  {args.small:,} uplinks: {small:,} instructions in all (start and stop included)")
    print(f"  {args.large:,} uplinks: {large:,} instructions in all")
    extra = args.large - args.small
    print(f"  per uplink: {per_uplink:,.0f} instructions (the difference, over {extra:,} uplinks)")
    if args.paho:
        paho = result["paho_alone_instructions_per_message"]
        print(
            f"  paho-mqtt alone, {args.paho_size}-byte QoS 1 messages to their PUBACK: {paho:,} instructions "
            f"per message; the daemon per uplink is {result['daemon_vs_paho_alone']}x that"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
