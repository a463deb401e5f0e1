"""End-to-end gateway throughput: GWMP datagrams in, MQTT PUBACK from a local Mosquitto out.

Usage: .venv/bin/python bench/gateway_e2e.py [--devices 1000] [--frames 150000] [--per-datagram 8] [--no-adr]
                                             [--window 256] [--cpu 0] [--broker-inflight 0]
                                             [--no-default-broker] [--repeat 1] [--json]

Setup: a real Mosquitto on loopback, the real daemon as its own process (``havel gateway run``) pinned to one
CPU core (``--cpu``; the sender and the broker are pinned to the other cores, so that the scheduler cannot put
them on the daemon's), 1,000 ABP devices in its registry, and
pre-built uplink frames (temperature payloads, FCnt 1.. per device, round robin over the devices, with the ADR
bit set as the kits' firmware sets it; ``--no-adr`` without). A packet forwarder sends them as PUSH_DATA with
``--per-datagram`` rxpk each, keeping at most ``--window`` datagrams without PUSH_ACK (so no datagram is
dropped for lack of socket buffer: this measures the sustained rate, not a burst into the kernel). The clock
stops when the daemon's MQTT sink has counted a PUBACK for every uplink (its /status ``acked``), i.e. each
record is committed with its frame counter, published with QoS 1, acknowledged by the broker, and acknowledged
in the outbox.

The broker: the main run gives Mosquitto ``max_inflight_messages 0`` (``--broker-inflight``), no Receive
Maximum limit, as ``bench/outbox.py`` does; the baseline, paho-mqtt publishing alone, runs against that same
broker (paho 2.2 ignores a broker's Receive Maximum, so against Mosquitto's default of 20 it would still keep
1,000 messages in flight while the gateway, as MQTT 5 section 4.9 requires, keeps 20). A second run against
Mosquitto's default (20) is printed next to it (``--no-default-broker`` skips it): there the gateway waits for
PUBACKs 20 messages at a time, and the round trips through the broker bound the rate. paho runs on the
daemon's core, with at most 30,000 messages (given more at once, paho slows down on its own queue).

The goals (printed next to the figures): >= 5,000 uplinks/s sustained end to end, and the daemon's CPU per
uplink <= 2.5x paho's alone per message. The rate is the sustained one: by default 150,000 uplinks (150 per
device), about 25 s at the goal, so that the start (the first batches, the caches filling) and the tail (the
intake done, the last PUBACKs coming in: a few tenths of a second) are a small part of it. ``--frames
30000``, the earlier default, takes about three seconds; in three paired runs on the shared test machine it
gave 5-14 % more than the sustained run, which is the stricter figure.

Then, in this process, the cost of each stage per uplink (the same frames, one stage at a time): GWMP
parsing, the frame layer (parse, MIC, decrypt), the payload codec, the whole network-server flush (counter,
record, outbox put, one commit per batch), the intake journal, and the outbox fetch+ack of the forwarder.
Prints uplinks/s end to end, the daemon's CPU time per uplink (from /proc: the machine is shared, so this says
what one core of its own would give) and where the time goes; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.gateway_run import register_abp  # noqa: E402
from support.mosquitto import Mosquitto  # noqa: E402

from havel.codecs.lorawan import phy  # noqa: E402
from havel.gateway import db  # noqa: E402
from havel.gateway.backends.semtech_udp import gwmp  # noqa: E402
from havel.gateway.backends.semtech_udp.rxpk import RxPacket, parse_rxpk, rxpk_to_json  # noqa: E402
from havel.gateway.registry import Registry  # noqa: E402

NWK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
PAYLOAD = bytes.fromhex("1200f1013d4cba")  # temperature: 2 probes, humidity, battery
EUI0, ADDR0, GW = 0x70B3D57ED0100000, 0x26100000, 0xAA555A0000BEBC01
# the goals the figures are held to: sustained uplinks/s end to end on one core, and the daemon's CPU per
# uplink over that of paho-mqtt alone publishing the same QoS 1 messages from one thread in the same run
GOAL_UPLINKS_PER_S = 5_000
GOAL_CPU_VS_PAHO = 2.5


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register_devices(conn: Any, n: int) -> Registry:
    """``n`` ABP temperature devices (DevEUI EUI0+i, DevAddr ADDR0+i) in the registry, in one commit."""
    reg: Registry = register_abp(
        conn, n, dev_eui=EUI0, dev_addr=ADDR0, nwk_s_key=NWK, app_s_key=APP, prefix="bench"
    )
    return reg


def uplink_frame(k: int, devices: int, *, adr: bool = True) -> bytes:
    """The k-th pre-built uplink: round robin over the ABP devices of :func:`register_devices`, FCnt
    rising, a temperature payload, the ADR bit set as the kits' firmware sets it."""
    return phy.build_data_frame(
        uplink=True,
        confirmed=False,
        dev_addr=ADDR0 + (k % devices),
        fcnt32=1 + k // devices,
        fport=1,
        payload=PAYLOAD,
        adr=adr,
        nwk_s_key=NWK,
        app_s_key=APP,
    )


def rxpk_of(frame: bytes, *, tmst: int) -> dict[str, Any]:
    """The rxpk a concentrator reports for ``frame`` heard at SF7 on 868.1 MHz."""
    rx = RxPacket(frame, tmst % (1 << 32), 868_100_000, "SF7BW125", rssi=-90, lsnr=5.5)
    return rxpk_to_json(rx)


def push_datagrams(frames: list[bytes], per_datagram: int) -> list[bytes]:
    """``frames`` as a packet forwarder sends them: PUSH_DATA (protocol 2) of ``per_datagram`` rxpk each,
    tokens counting up."""
    rxpk = [rxpk_of(f, tmst=1000 + k) for k, f in enumerate(frames)]
    n = per_datagram
    return [
        gwmp.encode_push_data(2, (i // n) & 0xFFFF, GW, rxpk=rxpk[i : i + n]) for i in range(0, len(rxpk), n)
    ]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of a process so far (Linux /proc; zeros where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        return dict(json.loads(r.read()))


def stage_costs(
    frames: list[bytes], datagrams: list[bytes], devices: int, per_datagram: int
) -> dict[str, float]:
    """Microseconds per uplink of each pipeline stage, measured one at a time in this process, with the
    garbage collector set as ``havel gateway run`` sets it (otherwise collections of this process's own
    objects would be charged to the stages)."""
    import random
    from datetime import UTC, datetime

    from havel.codecs.lorawan import crypto, fcnt
    from havel.codecs.payload import get_codec
    from havel.gateway.config import NetworkConfig
    from havel.gateway.journal import Journal
    from havel.gateway.network.reception import reception
    from havel.gateway.network.server import NetworkServer
    from havel.gateway.outbox import Outbox
    from havel.gateway.process import tune_gc

    n = len(frames)
    out: dict[str, float] = {}
    tune_gc()

    def timed(name: str, fn: Any) -> None:
        t = time.perf_counter()
        fn()
        out[name] = (time.perf_counter() - t) / n * 1e6

    def gwmp_parse() -> None:
        for d in datagrams:
            for o in gwmp.parse(d).payload["rxpk"]:
                parse_rxpk(o)

    def frame_layer() -> None:
        for f in frames:
            fr = phy.parse(f)
            assert isinstance(fr, phy.DataFrame)
            c = fcnt.reconstruct(None, fr.fcnt16)
            crypto.verify_mic(crypto.data_mic(NWK, True, fr.dev_addr, c, fr.msg), fr.mic)
            crypto.crypt_frm_payload(APP, True, fr.dev_addr, c, fr.frm_payload)

    codec = get_codec("temperature")
    codec.use_compiled()  # what the daemon does
    timed("GWMP datagram + rxpk parsing", gwmp_parse)
    timed("frame layer: parse, MIC, decrypt", frame_layer)
    timed(
        "payload codec (struct fast path; construct fallback)",
        lambda: [codec.decode(PAYLOAD, 1) for _ in range(n)],
    )
    tmp = Path(tempfile.mkdtemp(prefix="havel-bench-stages-"))
    conn = db.open_db(tmp / "havel.db")
    reg = register_devices(conn, devices)
    outbox = Outbox(conn, sinks=["platform"])
    journal = Journal(conn)
    ns = NetworkServer(reg, outbox, NetworkConfig(), rng=random.Random(1), journal=journal)
    now = datetime.now(UTC)
    rxs = [
        RxPacket(data=f, tmst=k, freq_hz=868_100_000, datr="SF7BW125", lsnr=5.5, rssi=-90)
        for k, f in enumerate(frames)
    ]

    def journal_io() -> None:
        # as the daemon journals: one row per datagram (its rxpk as a mask), forgotten when they are stored
        at = now.timestamp()
        for b in range(0, len(datagrams), 64):
            batch = datagrams[b : b + 64]
            counts = [len(gwmp.parse(d).payload["rxpk"]) for d in batch]
            with db.unit_of_work(conn):
                seqs = journal.add_datagrams(
                    [(GW, d, at, (1 << c) - 1) for d, c in zip(batch, counts, strict=True)]
                )
            with db.unit_of_work(conn):
                journal.forget(
                    [Journal.datagram_id(s, i) for s, c in zip(seqs, counts, strict=True) for i in range(c)]
                )

    def flush() -> None:
        for b in range(0, n, 500):
            for rx in rxs[b : b + 500]:
                ns.receive(reception(GW, rx, now), 0.0)
            ns.flush(1.0, now, force=True)

    def fetch_ack() -> None:
        while True:
            recs = outbox.fetch("platform", 500)
            if not recs:
                return
            outbox.ack("platform", [r.id for r in recs])

    t = time.perf_counter()
    journal_io()
    out["intake journal: add + forget"] = (time.perf_counter() - t) / (len(datagrams) * per_datagram) * 1e6
    timed("network server flush (500 per commit)", flush)
    timed("outbox fetch + ack (forwarder side)", fetch_ack)
    conn.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def paho_alone(port: int, n: int, payload: bytes, threaded: bool) -> tuple[float, float]:
    """The baseline: paho-mqtt by itself publishing ``n`` ready messages with QoS 1 to the same broker
    (1,000 in flight), until the last PUBACK -> (messages/s, CPU us per message of this process). With
    ``threaded`` paho runs its own network thread (``loop_start``, the usual way), else this thread drives
    ``loop()`` itself. No storage, no parsing, no crypto: only the MQTT client's own cost."""
    import paho.mqtt.client as mqtt

    acked = 0

    def on_publish(client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        nonlocal acked
        acked += 1

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-baseline", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    if threaded:
        client.loop_start()
    try:
        t, c = time.perf_counter(), time.process_time()
        deadline = time.monotonic() + 120
        for k in range(n):
            client.publish(f"havel/bench/devices/{EUI0 + k % 1000:016X}/up", payload, qos=1)
            if not threaded and k % 100 == 99:
                client.loop(0)
        while acked < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"baseline: only {acked} of {n} PUBACKs")
            if threaded:
                time.sleep(0.005)
            else:
                client.loop(0.01)
        return n / (time.perf_counter() - t), (time.process_time() - c) / n * 1e6
    finally:
        client.disconnect()
        if threaded:
            client.loop_stop()


@contextmanager
def running_daemon(
    tmp: Path,
    udp: int,
    http: int,
    broker_port: int,
    cpu: int,
    wrap: Sequence[str] = (),
    patience: float = 1.0,
    extra: str = "",
) -> Iterator[Any]:
    """``havel gateway run`` as its own process (pinned to CPU ``cpu`` where it can be) with an MQTT sink
    "platform" to the broker at ``broker_port``, data in ``tmp/data``; yields the process once that sink
    is up, terminates it at the end. ``wrap``: a command the daemon runs under (valgrind, for
    ``bench/gateway_instructions.py``), ``patience``: how many times longer to wait for it, ``extra``: more
    config tables (TOML text)."""
    cfg = tmp / "gateway.toml"
    cfg.write_text(f"""
[gateway]
id = "bench"
data_dir = "{tmp / "data"}"
[udp]
port = {udp}
max_datagrams_per_s = 1000000  # (the bench measures the daemon, not the per-source rate limit)
[http]
port = {http}
[log]
level = "warning"
[outbox]
quota_mb = 0
[[sink]]
type = "mqtt"
name = "platform"
host = "127.0.0.1"
port = {broker_port}
tls = false
{extra}""")
    cmd = [sys.executable, "-m", "havel", "gateway", "run", "--config", str(cfg)]
    if os.environ.get("HAVEL_PROFILE"):  # where the daemon's time goes: cProfile output file
        cmd[1:1] = ["-m", "cProfile", "-o", os.environ["HAVEL_PROFILE"]]
    cmd = [*wrap, *cmd]
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and cpu < (os.cpu_count() or 1):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    with open(tmp / "gateway.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            deadline = time.monotonic() + 30 * patience
            while True:
                try:
                    st = status(http)
                    if st["sinks"].get("platform", {}).get("state") == "up":
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"gateway did not come up: {(tmp / 'gateway.log').read_text()[-2000:]}")
                time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            proc.wait(30 * patience)


def run_once(
    tmp: Path,
    datagrams: list[bytes],
    frames: int,
    devices: int,
    window: int,
    cpu_core: int,
    broker_inflight: int | None,
    baseline_size: int | None,
    wrap: Sequence[str] = (),
    patience: float = 1.0,
) -> dict[str, Any]:
    """One measured run against a fresh Mosquitto (``broker_inflight``: its max_inflight_messages, None for
    its default): the daemon's end-to-end rate, intake rate and CPU time; with ``baseline_size`` also paho
    alone on the same broker (messages of that size; 0 = the stored messages' average size). ``wrap`` and
    ``patience``: see :func:`running_daemon`."""
    udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    with Mosquitto(max_inflight=broker_inflight) as broker:
        broker.start()
        # the broker and this process (the packet forwarder) on the other cores, so that the daemon has its
        # core to itself: on a 2-core machine the scheduler would otherwise put them on its core now and then
        if broker.pid is not None:
            pin(broker.pid, other_cores(cpu_core))
        pin(0, other_cores(cpu_core))
        conn = db.open_db(tmp / "data" / "havel.db")
        register_devices(conn, devices)
        conn.close()
        with running_daemon(tmp, udp, http, broker.port, cpu_core, wrap, patience) as proc:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.connect(("127.0.0.1", udp))
            sock.settimeout(5 * patience)
            t0 = time.perf_counter()
            c0 = cpu_seconds(proc.pid)
            inflight = 0
            acked = 0
            for dg in datagrams:
                while inflight >= window:
                    sock.recv(16)
                    inflight -= 1
                    acked += 1
                sock.send(dg)
                inflight += 1
            while inflight:
                sock.recv(16)
                inflight -= 1
                acked += 1
            t_sent = time.perf_counter()
            while True:
                st = status(http)
                done = st["sinks"]["platform"]["acked"]
                if done >= frames:
                    break
                if time.perf_counter() - t_sent > 120 * patience:
                    raise SystemExit(f"only {done} of {frames} acknowledged after {120 * patience:.0f} s")
                time.sleep(0.02)
            t_end = time.perf_counter()
            c1 = cpu_seconds(proc.pid)
        out: dict[str, Any] = {
            "e2e": frames / (t_end - t0),
            "intake": frames / (t_sent - t0),
            "seconds": t_end - t0,
            "cpu_user": c1[0] - c0[0],
            "cpu_sys": c1[1] - c0[1],
            "accepted": st["uplinks"]["accepted"],
            "push_acks": acked,
        }
        if baseline_size is not None:
            # the same number of messages of the same size, published by paho alone (in this process)
            size = baseline_size or 520
            sample = next((tmp / "data").glob("*.db"), None)
            if not baseline_size and sample is not None:
                import sqlite3

                with sqlite3.connect(sample) as c:
                    row = c.execute("SELECT avg(length(payload)) FROM outbox").fetchone()
                    size = int(row[0] or size)
            # paho on the daemon's core, the broker still on the others: the same conditions
            pin(0, {cpu_core})
            try:
                # (at most 30,000: paho given far more at once slows down on its own queue)
                n = min(frames, 30_000)
                out["base"] = paho_alone(broker.port, n, b"x" * size, threaded=False)
                out["threaded"] = paho_alone(broker.port, n, b"x" * size, threaded=True)
            finally:
                pin(0, other_cores(cpu_core))
    return out


def other_cores(cpu: int) -> set[int]:
    """Every core this process may use but ``cpu`` (all of them where there is no other)."""
    if not hasattr(os, "sched_getaffinity"):
        return set()
    cores = set(range(os.cpu_count() or 1))
    return (cores - {cpu}) or cores


def pin(pid: int, cores: set[int]) -> None:
    """Run process ``pid`` (0: this one) on ``cores`` only, where the OS allows it."""
    if cores and hasattr(os, "sched_setaffinity"):
        with suppress(OSError):  # (a process that ended meanwhile, or a container that forbids it)
            os.sched_setaffinity(pid, cores)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=150_000)
    ap.add_argument("--per-datagram", type=int, default=8)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--broker-inflight",
        type=int,
        default=0,
        help="Mosquitto's max_inflight_messages for the main run, also the Receive Maximum it gives the "
        "gateway (default 0: no limit, as paho, the baseline, ignores it anyway)",
    )
    ap.add_argument(
        "--no-default-broker",
        action="store_true",
        help="skip the second run against Mosquitto's default Receive Maximum (20)",
    )
    ap.add_argument("--no-adr", action="store_true", help="frames without the ADR bit (the kits set it)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure the main run this many times, each with its own baseline, and report the median run "
        "with every run listed (a shared machine's speed changes from minute to minute)",
    )
    args = ap.parse_args()

    t = time.perf_counter()
    frames = [uplink_frame(k, args.devices, adr=not args.no_adr) for k in range(args.frames)]
    n = args.per_datagram
    datagrams = push_datagrams(frames, n)
    build_s = time.perf_counter() - t

    def run(inflight: int | None, baseline: int | None) -> dict[str, Any]:
        tmp = Path(tempfile.mkdtemp(prefix="havel-bench-"))
        try:
            return run_once(
                tmp, datagrams, args.frames, args.devices, args.window, args.cpu, inflight, baseline
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # the daemon's database: up to about 90 MB a run

    runs = [run(args.broker_inflight, 0) for _ in range(max(1, args.repeat))]
    main_run = sorted(runs, key=lambda r: r["e2e"])[len(runs) // 2]  # the median (upper, for an even count)
    rm20 = None if args.no_default_broker else run(None, None)
    stages = stage_costs(
        frames[: min(len(frames), 10_000)], datagrams[: min(len(datagrams), 10_000 // n)], args.devices, n
    )
    e2e, intake = main_run["e2e"], main_run["intake"]
    cpu_sys = main_run["cpu_sys"]
    cpu = main_run["cpu_user"] + cpu_sys
    (base_rate, base_cpu), (thr_rate, thr_cpu) = main_run["base"], main_run["threaded"]
    result: dict[str, Any] = {
        "stages_us_per_uplink": {k: round(v, 1) for k, v in stages.items()},
        "devices": args.devices,
        "uplinks": args.frames,
        "per_datagram": n,
        "broker_max_inflight": args.broker_inflight,
        "accepted": main_run["accepted"],
        "push_acks": main_run["push_acks"],
        "e2e_uplinks_per_s": round(e2e),
        "intake_uplinks_per_s": round(intake),
        "seconds": round(main_run["seconds"], 3),
        "gateway_cpu_us_per_uplink": round(cpu / args.frames * 1e6, 1),
        "gateway_cpu_system_us_per_uplink": round(cpu_sys / args.frames * 1e6, 1),
        "build_s": round(build_s, 2),
        "gateway_cpu": args.cpu,
        "baseline_paho_alone_msgs_per_s": round(base_rate),
        "baseline_paho_alone_cpu_us_per_msg": round(base_cpu, 1),
        "e2e_vs_paho_alone": round(e2e / base_rate, 3),
        # the daemon's CPU per uplink over paho's own per message (the same messages, QoS 1, same core)
        "cpu_vs_paho_alone": round(cpu / args.frames * 1e6 / base_cpu, 2) if base_cpu > 0 else None,
        "baseline_paho_threaded_msgs_per_s": round(thr_rate),
        "baseline_paho_threaded_cpu_us_per_msg": round(thr_cpu, 1),
    }
    if len(runs) > 1:
        result["runs"] = [
            {
                "e2e_uplinks_per_s": round(r["e2e"]),
                "gateway_cpu_us_per_uplink": round((r["cpu_user"] + r["cpu_sys"]) / args.frames * 1e6, 1),
                "baseline_paho_alone_msgs_per_s": round(r["base"][0]),
                "e2e_vs_paho_alone": round(r["e2e"] / r["base"][0], 3),
            }
            for r in runs
        ]
    if rm20 is not None:
        result["default_broker_e2e_uplinks_per_s"] = round(rm20["e2e"])
        result["default_broker_cpu_us_per_uplink"] = round(
            (rm20["cpu_user"] + rm20["cpu_sys"]) / args.frames * 1e6, 1
        )
    if args.json:
        print(json.dumps(result))
        return 0
    limit = f"Receive Maximum {args.broker_inflight}" if args.broker_inflight else "no Receive Maximum limit"
    print(
        f"{args.frames} uplinks from {args.devices} devices, {n} rxpk per PUSH_DATA, gateway pinned to "
        f"CPU {args.cpu}; Mosquitto with {limit}"
    )
    if len(runs) > 1:
        print(f"  {len(runs)} runs, the median one below; each (end to end, daemon CPU, paho alone, ratio):")
        for r in runs:
            r_cpu = (r["cpu_user"] + r["cpu_sys"]) / args.frames * 1e6
            print(
                f"    {r['e2e']:10,.0f} uplinks/s  {r_cpu:6.1f} us/uplink  paho {r['base'][0]:8,.0f} msg/s  "
                f"{r['e2e'] / r['base'][0]:.2f}x"
            )
    print(f"  GWMP intake (PUSH_ACKed):          {intake:10,.0f} uplinks/s")
    print(f"  end to end (MQTT PUBACK, outbox):  {e2e:10,.0f} uplinks/s  ({main_run['seconds']:.2f} s total)")
    if cpu > 0:
        print(
            f"  gateway CPU time:                  {cpu / args.frames * 1e6:10.1f} us per uplink "
            f"(= {args.frames / cpu:,.0f} uplinks/s on a core of its own; "
            f"{cpu_sys / args.frames * 1e6:.1f} us of it in the kernel: socket calls, fsync)"
        )
    print("  baselines in this process: paho alone publishing as many ready messages, QoS 1:")
    print(
        f"    one thread driving loop():   {base_rate:10,.0f} msg/s  ({base_cpu:.1f} us CPU/msg); "
        f"the gateway end to end is {e2e / base_rate:.2f}x that"
    )
    if cpu > 0 and base_cpu > 0:
        print(
            f"    the gateway's CPU per uplink is {cpu / args.frames * 1e6 / base_cpu:.2f}x paho's CPU per "
            "message (one loop() thread)"
        )
    print(
        f"    paho's own network thread:   {thr_rate:10,.0f} msg/s  ({thr_cpu:.1f} us CPU/msg); "
        f"the gateway end to end is {e2e / thr_rate:.2f}x that"
    )
    if rm20 is not None:
        rm20_cpu = (rm20["cpu_user"] + rm20["cpu_sys"]) / args.frames * 1e6
        print(
            f"  against Mosquitto's default Receive Maximum (20), which the gateway honours (MQTT 5 flow "
            f"control; paho ignores it): {rm20['e2e']:,.0f} uplinks/s, {rm20_cpu:.1f} us CPU per uplink"
        )
    print(f"  accepted {main_run['accepted']:.0f} of {args.frames}")
    rate_goal = "met" if e2e >= GOAL_UPLINKS_PER_S else "NOT met"
    cpu_goal = "not measured"
    if cpu > 0 and base_cpu > 0:
        ratio = cpu / args.frames * 1e6 / base_cpu
        cpu_goal = f"{ratio:.2f}x: {'met' if ratio <= GOAL_CPU_VS_PAHO else 'NOT met'}"
    print(
        f"  goals: end to end >= {GOAL_UPLINKS_PER_S:,} uplinks/s (here {e2e:,.0f}: {rate_goal}); the "
        f"daemon's CPU per uplink <= {GOAL_CPU_VS_PAHO}x paho alone's per message (here {cpu_goal})"
    )
    print("  cost per uplink of each stage, measured alone in this process (GC set as in the daemon):")
    for k, v in stages.items():
        print(f"    {k:<42} {v:8.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
