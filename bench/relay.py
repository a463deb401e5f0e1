"""Disaster relay figures: APRS bytes and airtime per alarm, the hourly budget, latency per path, drain time.

Usage: .venv/bin/python bench/relay.py [--alarms 3] [--ip-alarms 20] [--backlog-devices 1000]
       [--backlog-interval-s 300] [--skip-radio] [--skip-rns] [--json]

Real parts only: two direwolf TNCs over the paced AFSK 1200 audio channel (tools/direwolf/harness.py), a
real Mosquitto per broker (tests/support/mosquitto.py), two Reticulum instances on loopback (subprocesses),
the gateway's outbox, forwarder and MQTT sink. Measures
  - an alarm on the APRS path: AX.25 bytes, KISS bytes, computed airtime at 1200 bd, and the audio the
    modem actually produced (samples streamed by the pacer, TX delay included);
  - how many alarms the default APRS budget (60 s of airtime per hour, ack frames on the same channel)
    allows per hour;
  - latency from offering an alarm at the gateway to the MQTT message at the crisis centre's broker, per
    path (APRS over direwolf, MQTT, Reticulum plain and encrypted);
  - drain time of a one-hour backlog (--backlog-devices devices, one reading per --backlog-interval-s)
    from the outbox to the platform's broker after recovery.
Figures from one run on one machine; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.mosquitto import Mosquitto  # noqa: E402
from support.mqtt_subscriber import Subscriber  # noqa: E402

from havel.gateway import db  # noqa: E402
from havel.gateway.backends.semtech_udp import gwmp  # noqa: E402
from havel.gateway.backends.semtech_udp.rxpk import RxPacket, rxpk_to_json  # noqa: E402
from havel.gateway.delivery import Delivery  # noqa: E402
from havel.gateway.outbox import Outbox  # noqa: E402
from havel.gateway.relay import aprs, ax25, kiss  # noqa: E402
from havel.gateway.relay.aprs_config import APRSConfig  # noqa: E402
from havel.gateway.relay.aprs_relay import APRSRelay  # noqa: E402
from havel.gateway.relay.budget import afsk_airtime_s  # noqa: E402
from havel.gateway.relay.emergency import EmergencySwitch  # noqa: E402
from havel.gateway.relay.lines import encode_line, sign_line  # noqa: E402
from havel.gateway.relay.receive.config import ReceiverConfig  # noqa: E402
from havel.gateway.relay.receive.receiver import Receiver  # noqa: E402
from havel.gateway.relay.record import RelayRecord  # noqa: E402
from havel.gateway.relay.signing import CounterStore, Signer, SigningKey  # noqa: E402
from havel.gateway.sinks.mqtt import MqttSink  # noqa: E402

GW, CC = "N0CALL-10", "N0CALL-1"
DEV = "70B3D57ED0001234"


def harness() -> Any:
    spec = importlib.util.spec_from_file_location("dw_harness", REPO / "tools" / "direwolf" / "harness.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def alarm(i: int) -> RelayRecord:
    return RelayRecord(DEV, 1000 + i, "alarm", int(time.time()), {"level": 163 + i})


def frame_figures(key: SigningKey) -> dict[str, Any]:
    signer = Signer(key, GW, CounterStore(None))
    signer.counters._next = 123456  # a realistic counter after months of operation
    text = sign_line(signer, "aprs", encode_line(alarm(0)), context=aprs.pad_addressee(CC) + ":")
    info = aprs.Message(CC, text, "1A2B").encode()
    frame = ax25.UIFrame.aprs(GW, "APZHVL", info, ["WIDE1-1"]).encode()
    ack = ax25.UIFrame.aprs(
        CC, "APZHVL", aprs.Message(GW, "", "1A2B", kind="ack").encode(), ["WIDE1-1"]
    ).encode()
    t_alarm = afsk_airtime_s(len(frame), txdelay_s=0.3)
    t_ack = afsk_airtime_s(len(ack), txdelay_s=0.3)
    budget_s = 60.0
    return {
        "info_chars": len(info),
        "ax25_bytes": len(frame),
        "kiss_bytes": len(kiss.encode(frame)),
        "ack_ax25_bytes": len(ack),
        "airtime_alarm_s": round(t_alarm, 3),
        "airtime_ack_s": round(t_ack, 3),
        "budget_airtime_s_per_h": budget_s,
        "alarms_per_h_gateway_budget": int(budget_s // t_alarm),
        "alarms_per_h_with_acks_on_channel": int(budget_s // (t_alarm + t_ack)),
        "example_tnc2": ax25.UIFrame.decode(frame).tnc2(),
    }


def wait_msgs(sub: Subscriber, n: int, timeout: float) -> list[Any]:
    return sub.wait_for(n, timeout)


def latency_aprs(tmp: Path, key_file: Path, broker: Mosquitto, n: int) -> dict[str, Any]:
    h = harness()
    work = Path(tempfile.mkdtemp(prefix="dwb"))
    link = h.RadioLink(work, GW, CC).start()
    try:
        gw_dir = tmp / "gw-aprs"
        gw_dir.mkdir()
        switch = EmergencySwitch(gw_dir)
        switch.set(True, "bench")
        relay = APRSRelay(
            # min_gap_s 0: the figure is the path's latency, not the spacing the relay keeps between frames
            APRSConfig.from_config(
                {"callsign": GW, "addressee": CC, "port": link.a.kiss_port, "min_gap_s": 0}
            ),
            Signer(SigningKey.load(key_file), GW, CounterStore(None)),
            switch,
        )
        rcfg = ReceiverConfig.from_dict(
            {
                "data_dir": str(tmp / "cc-aprs"),
                "publish": {"port": broker.port},
                "sender": [{"name": GW, "key_file": str(key_file), "gateway_id": "gw1"}],
                "kiss": {"port": link.b.kiss_port, "callsign": CC},
            }
        )
        lat: list[float] = []
        with Receiver(rcfg) as rx, Subscriber(broker.port, "havel/gw1/devices/#") as sub:
            assert rx.kiss is not None and rx.kiss.connected.wait(10)
            relay.start()
            try:
                for i in range(n):
                    audio0 = link.pacers[0].bytes_audio
                    t0 = time.monotonic()
                    relay.offer(alarm(i))
                    wait_msgs(sub, i + 1, 30)
                    lat.append(time.monotonic() - t0)
                    deadline = time.monotonic() + 15
                    while relay.stats["acked"] < i + 1 and time.monotonic() < deadline:
                        time.sleep(0.05)
                    audio_s = (link.pacers[0].bytes_audio - audio0) / h.BYTES_PER_S
            finally:
                relay.stop()
        return {
            "latency_s": lat,
            "median_s": statistics.median(lat),
            "acked": relay.stats["acked"],
            "audio_s_last_alarm_incl_txdelay_0.2s": round(audio_s, 3),
        }
    finally:
        link.close()
        shutil.rmtree(work, ignore_errors=True)


def latency_mqtt(tmp: Path, key_file: Path, broker: Mosquitto, crisis: Mosquitto, n: int) -> dict[str, Any]:
    from havel.gateway.relay.mqtt_relay import MQTTRelay

    rcfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp / "cc-mqtt"),
            "publish": {"port": broker.port},
            "sender": [{"name": GW, "key_file": str(key_file), "gateway_id": "gw1"}],
            "mqtt": {"port": crisis.port, "topic": "havel/+/relay/#"},
        }
    )

    async def run(sub: Subscriber) -> list[float]:
        relay = MQTTRelay(
            {"host": "127.0.0.1", "port": crisis.port, "tls": False, "max_inflight": 20},
            Signer(SigningKey.load(key_file), GW, CounterStore(None)),
            "gw1",
        )
        await relay.start()
        while not relay.connected:
            await asyncio.sleep(0.02)
        lat = []
        for i in range(n):
            t0 = time.monotonic()
            relay.offer(alarm(i))
            await asyncio.to_thread(wait_msgs, sub, i + 1, 10)
            lat.append(time.monotonic() - t0)
        await relay.stop()
        return lat

    with Receiver(rcfg) as rx, Subscriber(broker.port, "havel/gw1/devices/#") as sub:
        assert rx.mqtt is not None and rx.mqtt.subscribed.wait(10)
        lat = asyncio.run(run(sub))
    return {"n": n, "median_s": statistics.median(lat), "max_s": max(lat)}


def latency_rns(tmp: Path, key_file: Path, broker: Mosquitto, n: int, amateur: bool) -> dict[str, Any]:
    from havel.gateway.relay.reticulum_relay import ReticulumConfig, ReticulumRelay

    port = harness().free_port()
    base = (
        "[reticulum]\n  enable_transport = No\n  share_instance = No\n"
        "[logging]\n  loglevel = 2\n[interfaces]\n"
    )
    cc, gw = tmp / f"rns-cc-{amateur}", tmp / f"rns-gw-{amateur}"
    cc.mkdir()
    gw.mkdir()
    (cc / "config").write_text(
        base + f"  [[s]]\n    type = TCPServerInterface\n    enabled = yes\n"
        f"    listen_ip = 127.0.0.1\n    listen_port = {port}\n"
    )
    (gw / "config").write_text(
        base + f"  [[c]]\n    type = TCPClientInterface\n    enabled = yes\n"
        f"    target_host = 127.0.0.1\n    target_port = {port}\n"
    )
    rcfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp / f"cc-rns-{amateur}"),
            "publish": {"port": broker.port},
            "sender": [{"name": GW, "key_file": str(key_file), "gateway_id": "gw1"}],
            "reticulum": {"config_dir": str(cc), "amateur": amateur},
        }
    )
    with Receiver(rcfg) as rx, Subscriber(broker.port, "havel/gw1/devices/#") as sub:
        conf: dict[str, Any] = {"config_dir": str(gw), "amateur": amateur}
        if not amateur:
            conf["destination"] = rx.rns.destination_hash
        relay = ReticulumRelay(
            ReticulumConfig.from_config(conf), Signer(SigningKey.load(key_file), GW, CounterStore(None))
        )
        relay.start()
        lat = []
        try:
            for i in range(n):
                t0 = time.monotonic()
                relay.offer(alarm(i))
                wait_msgs(sub, i + 1, 20)
                lat.append(time.monotonic() - t0)
        finally:
            relay.stop()
    return {"n": n, "median_s": statistics.median(lat), "max_s": max(lat), "first_s": lat[0]}


def latency_uplink(tmp: Path, key_file: Path, crisis: Mosquitto, n: int, radio: bool) -> dict[str, Any]:
    """A water-level alarm uplink (GWMP PUSH_DATA) into the real gateway daemon while its platform broker is
    down -> relay manager -> APRS (direwolf pair) and MQTT -> receiver -> crisis broker. Per path: the time
    from the PUSH_DATA datagram to the receiver's verified arrival (duplicates included)."""
    import socket

    from havel.codecs.lorawan import phy
    from havel.codecs.payload import get_codec
    from havel.gateway.config import from_dict
    from havel.gateway.daemon import Gateway
    from havel.gateway.network.sessions import Device, Session
    from havel.gateway.registry import Registry

    h = harness()
    data = tmp / "gw-uplink"
    data.mkdir()
    shutil.copy(key_file, data / "relay.key")
    nwk, app = bytes(range(16)), bytes(range(16, 32))
    dev_eui, dev_addr = 0x70B3D57ED0000042, 0x260B0042
    conn = db.open_db(data / "havel.db")
    Registry(conn).add(Device("pegel-42", dev_eui, "water", "abp", session=Session(dev_addr, nwk, app)))
    conn.close()
    udp_port = h.free_port(socket.SOCK_DGRAM)
    link = h.RadioLink(Path(tempfile.mkdtemp(prefix="dwu")), GW, CC).start() if radio else None
    paths: list[dict[str, Any]] = [
        {"type": "mqtt", "host": "127.0.0.1", "port": crisis.port, "tls": False, "max_inflight": 20}
    ]
    if link is not None:
        paths.append(
            {"type": "aprs", "callsign": GW, "addressee": CC, "port": link.a.kiss_port, "min_gap_s": 0}
        )
    with Mosquitto() as platform:
        cfg = from_dict(
            {
                "gateway": {"id": "gw1", "data_dir": str(data)},
                "udp": {"port": udp_port},
                "http": {"port": 0},
                "forwarder": {"down_after_s": 1.0, "up_after_s": 1.0},
                "sink": [
                    {
                        "type": "mqtt",
                        "name": "platform",
                        "host": "127.0.0.1",
                        "port": platform.port,
                        "tls": False,
                        "max_inflight": 20,
                        "reconnect_min_s": 0.2,
                        "reconnect_max_s": 1.0,
                    }
                ],
                "relay": {
                    "emergency": True,
                    "down_after_s": 1.0,
                    "up_after_s": 2.0,
                    "rules": [
                        {
                            "name": "flood",
                            "class": "alarm",
                            "codec": "water",
                            "field": "level",
                            "op": ">=",
                            "value": 150,
                        }
                    ],
                    "path": paths,
                },
            }
        )
        rx_cfg: dict[str, Any] = {
            "data_dir": str(tmp / "cc-uplink"),
            "publish": {"port": crisis.port},
            "sender": [{"name": GW, "key_file": str(key_file), "gateway_id": "gw1"}],
            "mqtt": {"port": crisis.port, "topic": "havel/+/relay/#"},
        }
        if link is not None:
            rx_cfg["kiss"] = {"port": link.b.kiss_port, "callsign": CC}
        payload = get_codec("water").encode(
            {
                "alarm": True,
                "alarm_level": 2,
                "rising_fast": False,
                "level": 163,
                "distance": 2410,
                "water_temperature": 12.4,
                "battery": 3600,
            },
            fport=1,
        )

        async def run(rx: Receiver) -> dict[str, list[float]]:
            gw = Gateway(cfg)
            await gw.start()
            lat: dict[str, list[float]] = {"mqtt": [], "aprs": []}
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                comp = gw.components.relay
                await gw.components.northbound.forwarder.wait_state("platform", "up", 10)
                platform.stop()
                while not comp.detector.down:
                    await asyncio.sleep(0.05)
                for i in range(n):
                    frame = phy.build_data_frame(
                        uplink=True,
                        confirmed=False,
                        dev_addr=dev_addr,
                        fcnt32=i + 1,
                        fport=1,
                        payload=payload,
                        nwk_s_key=nwk,
                        app_s_key=app,
                    )
                    heard = RxPacket(frame, 1000 + i, 868_100_000, "SF7BW125", rssi=-80, lsnr=7.5)
                    rxpk = rxpk_to_json(heard)
                    t0 = time.time()
                    sock.sendto(
                        gwmp.encode_push_data(2, i + 1, 0xAA555A0000000001, rxpk=[rxpk]),
                        ("127.0.0.1", udp_port),
                    )
                    msg_id = f"{dev_eui:016X}-{i + 1}"
                    want = {"mqtt"} | ({"aprs"} if link is not None else set())
                    deadline = time.monotonic() + 30
                    got: dict[str, float] = {}
                    while set(got) != want and time.monotonic() < deadline:
                        got = {via: t for mid, via, t in list(rx.core.arrivals) if mid == msg_id}
                        await asyncio.sleep(0.01)
                    for via, t in got.items():
                        lat[via].append(t - t0)
                    if link is not None:  # let the ack come back before the next alarm
                        await asyncio.sleep(1.5)
            finally:
                sock.close()
                await gw.stop()
            return lat

        try:
            with Receiver(ReceiverConfig.from_dict(rx_cfg)) as rx:
                rx.wait_ready()
                lat = asyncio.run(run(rx))
        finally:
            if link is not None:
                link.close()
                shutil.rmtree(link.a.workdir, ignore_errors=True)
    out: dict[str, Any] = {}
    for via, values in lat.items():
        if values:
            out[f"{via}_median_s"] = statistics.median(values)
            out[f"{via}_all_s"] = values
    return out


def drain(tmp: Path, broker: Mosquitto, devices: int, interval_s: int) -> dict[str, Any]:
    per_dev = 3600 // interval_s
    conn = db.open_db(tmp / "drain.db")
    outbox = Outbox(conn, sinks=["platform"])
    t_rx = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    records = []
    for k in range(per_dev):
        for d in range(devices):
            dev = f"70B3D57E{d:08X}"
            payload = {
                "id": f"{dev}-1-{k}",  # <DevEUI>-<SessionEpoch>-<FCnt32>
                "dev_eui": dev,
                "session_epoch": 1,
                "fcnt": k,
                "received_at": t_rx,
                "codec": "water",
                "data": {"level": 100 + k},
                "units": {"level": "cm"},
                "rx": [],
                "raw": "00",
            }
            records.append(
                {
                    "id": f"{dev}-1-{k}",
                    "kind": "up",
                    "dev_eui": dev,
                    "fcnt32": k,
                    "received_at": t_rx,
                    "priority": "background",
                    "payload": payload,
                }
            )
    for i in range(0, len(records), 1000):
        outbox.put_many(records[i : i + 1000])

    async def run() -> float:
        sink = MqttSink.from_config(
            {
                "type": "mqtt",
                "name": "platform",
                "host": "127.0.0.1",
                "tls": False,
                "port": broker.port,
                "gateway_id": "gw1",
                "max_inflight": 20,
            }
        )
        fwd = Delivery(outbox, [sink])
        t0 = time.monotonic()
        await fwd.start()
        await fwd.wait_idle(600, "platform")
        dt = time.monotonic() - t0
        await fwd.stop(2)
        return dt

    dt = asyncio.run(run())
    conn.close()
    return {
        "records": len(records),
        "devices": devices,
        "drain_s": round(dt, 2),
        "records_per_s": round(len(records) / dt),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alarms", type=int, default=3)
    ap.add_argument("--ip-alarms", type=int, default=20)
    ap.add_argument("--backlog-devices", type=int, default=1000)
    ap.add_argument("--backlog-interval-s", type=int, default=300)
    ap.add_argument("--skip-radio", action="store_true")
    ap.add_argument("--skip-rns", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)  # the receiver logs every alarm as a warning
    out: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="havel-relay-bench"))
    atexit.register(shutil.rmtree, tmp, True)  # keys, databases and logs of the run
    key_file = tmp / "k.key"
    key = SigningKey.generate()
    key.save(key_file)
    out["aprs_frame"] = frame_figures(key)
    with Mosquitto() as broker, Mosquitto() as crisis:
        if not args.skip_radio and shutil.which("direwolf"):
            out["latency_aprs"] = latency_aprs(tmp, key_file, broker, args.alarms)
        out["latency_mqtt"] = latency_mqtt(tmp, key_file, broker, crisis, args.ip_alarms)
        out["latency_uplink_to_crisis_centre"] = latency_uplink(
            tmp, key_file, crisis, args.alarms, radio=not args.skip_radio and bool(shutil.which("direwolf"))
        )
        if not args.skip_rns and importlib.util.find_spec("RNS"):
            out["latency_rns_plain"] = latency_rns(tmp, key_file, broker, args.ip_alarms, True)
            out["latency_rns_encrypted"] = latency_rns(tmp, key_file, broker, args.ip_alarms, False)
        out["drain"] = drain(tmp, crisis, args.backlog_devices, args.backlog_interval_s)
    shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for section, figures in out.items():
            print(f"{section}:")
            for k, v in figures.items():
                if isinstance(v, float):
                    v = round(v, 3)
                elif isinstance(v, list):
                    v = [round(x, 3) for x in v]
                print(f"  {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
