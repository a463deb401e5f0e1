"""Plumbing for the black-box gateway tests, written from the documents only (README, docs/gateway.md,
docs/mqtt.md, the example config and the CLI's --help): a real Mosquitto, the real daemon as a subprocess,
a scripted packet forwarder speaking GWMP over real UDP, an MQTT v5 subscriber, and LoRaWAN frames built
and read by the public lora-packet library (``lorapacket_helper.mjs`` under Node).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
HAVEL = REPO / ".venv" / "bin" / "havel"
LORA_PACKET = REPO / "tools" / "npm" / "node_modules" / "lora-packet"
HOST = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for(
    cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition", step: float = 0.05
) -> Any:
    """Poll ``cond`` until it returns something truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def havel(*args: str, stdin: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the ``havel`` command as an operator would."""
    return subprocess.run(
        [str(HAVEL), *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


# --------------------------------------------------------------------------------------------- broker


class Broker:
    """Mosquitto on a fixed loopback port, with persistence so that sessions survive ``stop``/``start``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        conf = folder / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {HOST}\nallow_anonymous true\nuser root\npersistence true\n"
            f"persistence_location {folder}/\nautosave_interval 1\nmax_queued_messages 100000\n"
        )
        self.conf = conf

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        log = (self.folder / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stdout=log, stderr=log)
        wait_for(self._accepts, 20, "mosquitto to listen")

    def _accepts(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"mosquitto exited: {(self.folder / 'mosquitto.log').read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=1):
            return True
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


# ----------------------------------------------------------------------------------------- subscriber


class Subscriber:
    """An MQTT v5 client with a persistent session that records every message it gets."""

    def __init__(self, port: int, topic: str = "#", client_id: str = "bb-subscriber") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.topic = topic
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.reconnect_delay_set(0.2, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(HOST, port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 20, "the test subscriber's SUBACK")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(20)

    def json_on(self, suffix: str) -> list[dict[str, Any]]:
        """Every JSON message whose topic ends with ``suffix``, in order of arrival."""
        with self.lock:
            items = [p for t, p, _ in self.messages if t.endswith(suffix)]
        return [json.loads(p) for p in items]

    def wait_json(
        self,
        suffix: str,
        count: int = 1,
        timeout: float = 30.0,
        where: Callable[[dict[str, Any]], bool] = bool,
    ) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            got = [m for m in self.json_on(suffix) if where(m)]
            return got if len(got) >= count else None

        return wait_for(enough, timeout, f"{count} message(s) on ...{suffix}")

    def close(self) -> None:
        self.client.loop_stop()
        with contextlib.suppress(Exception):
            self.client.disconnect()


# -------------------------------------------------------------------------------------- lora-packet


class LoraPacket:
    """The lora-packet library in a Node process (one JSON request per line)."""

    def __init__(self) -> None:
        env = dict(os.environ, LORA_PACKET=str(LORA_PACKET))
        self.proc = subprocess.Popen(
            ["node", str(HERE / "lorapacket_helper.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lock = threading.Lock()

    def call(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self.lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        answer = json.loads(line)
        assert answer.pop("ok"), answer.get("error")
        return answer

    def uplink(self, dev: Device, fcnt: int, payload: str, fport: int = 1, **flags: Any) -> bytes:
        answer = self.call(
            op="uplink",
            dev_addr=dev.dev_addr,
            fcnt=fcnt,
            fport=fport,
            payload=payload,
            nwk_s_key=dev.nwk_s_key,
            app_s_key=dev.app_s_key,
            **flags,
        )
        return bytes.fromhex(answer["phy"])

    def join_request(self, dev: Device, dev_nonce: int) -> bytes:
        answer = self.call(
            op="join_request",
            join_eui=dev.join_eui,
            dev_eui=dev.dev_eui,
            dev_nonce=f"{dev_nonce:04x}",
            app_key=dev.app_key,
        )
        return bytes.fromhex(answer["phy"])

    def join_accept(self, dev: Device, phy: bytes, dev_nonce: int) -> dict[str, Any]:
        return self.call(op="join_accept", phy=phy.hex(), app_key=dev.app_key, dev_nonce=f"{dev_nonce:04x}")

    def downlink(self, dev: Device, phy: bytes) -> dict[str, Any]:
        return self.call(op="downlink", phy=phy.hex(), nwk_s_key=dev.nwk_s_key, app_s_key=dev.app_s_key)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Device:
    """A scripted node: its identity and keys (hex strings, big-endian as printed on a label)."""

    def __init__(self, name: str, dev_eui: str, codec: str = "water", **keys: str) -> None:
        self.name = name
        self.dev_eui = dev_eui
        self.codec = codec
        self.dev_addr: str = keys.get("dev_addr", "")
        self.nwk_s_key: str = keys.get("nwk_s_key", "")
        self.app_s_key: str = keys.get("app_s_key", "")
        self.join_eui: str = keys.get("join_eui", "")
        self.app_key: str = keys.get("app_key", "")


def water_payload(level_cm: int, distance_mm: int = 1570, temp_dc: int = 140, battery_mv: int = 3580) -> str:
    """FPort 1 `readings` of the water node, as docs/payloads.md lays it out (version 1, no alarm)."""
    return (
        bytes([0x10])
        + level_cm.to_bytes(2, "big", signed=True)
        + distance_mm.to_bytes(2, "big")
        + temp_dc.to_bytes(2, "big", signed=True)
        + bytes([battery_mv // 20])
    ).hex()


# -------------------------------------------------------------------------------------------- daemon


class Gateway:
    """The real daemon (``havel gateway run --config FILE``) in its own folder."""

    def __init__(
        self, folder: Path, broker_port: int, gateway_id: str = "gw1", extra: str = "", udp: str = ""
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.data_dir = folder / "data"
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.http_port = free_port()
        self.gateway_id = gateway_id
        self.config = folder / "gateway.toml"
        self.config.write_text(
            f'[gateway]\nid = "{gateway_id}"\ndata_dir = "{self.data_dir}"\n'
            f'[udp]\nbind = "127.0.0.1"\nport = {self.udp_port}\n{udp}\n'
            f'[http]\nbind = "127.0.0.1"\nport = {self.http_port}\n'
            f"{extra}\n"
            f'[[sink]]\ntype = "mqtt"\nname = "platform"\nhost = "127.0.0.1"\nport = {broker_port}\n'
            "tls = false\ncommands = true\n"
        )
        self.log = folder / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return havel(*args, "--config", str(self.config), stdin=stdin)

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [str(HAVEL), "gateway", "run", "--config", str(self.config)], stdout=out, stderr=out
        )
        wait_for(self._healthy, 60, "the daemon's /healthz")

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
        try:
            self.http("/healthz")
        except OSError:
            return False
        return True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.http_port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def status(self) -> dict[str, Any]:
        code, body = self.http("/status")
        assert code == 200, (code, body)
        return json.loads(body)

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as {'name{labels}': value}."""
        code, body = self.http("/metrics")
        assert code == 200
        out: dict[str, float] = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def metric(self, key: str) -> float:
        return self.metrics().get(key, 0.0)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


# ------------------------------------------------------------------------------------------ forwarder


class Forwarder:
    """A scripted Semtech UDP packet forwarder (GWMP v2) for one gateway EUI."""

    def __init__(self, udp_port: int, eui: str = "AA555A0000000101") -> None:
        self.addr = (HOST, udp_port)
        self.eui = bytes.fromhex(eui)
        self.eui_hex = eui
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.token = 0
        self.inbox: list[bytes] = []
        self.tmst = 1_000_000

    def _next_token(self) -> bytes:
        self.token = (self.token + 1) & 0xFFFF
        return self.token.to_bytes(2, "big")

    def rxpk(self, phy: bytes, **over: Any) -> dict[str, Any]:
        self.tmst = (self.tmst + 3_000_000) & 0xFFFFFFFF
        pk: dict[str, Any] = {
            "tmst": self.tmst,
            "chan": 0,
            "rfch": 0,
            "freq": 868.1,
            "stat": 1,
            "modu": "LORA",
            "datr": "SF7BW125",
            "codr": "4/5",
            "rssi": -87,
            "lsnr": 7.5,
            "size": len(phy),
            "data": base64.b64encode(phy).decode(),
        }
        pk.update(over)
        return pk

    def send_raw(self, datagram: bytes) -> None:
        self.sock.sendto(datagram, self.addr)

    def push(self, rxpks: list[dict[str, Any]] | None = None, body: bytes | None = None) -> bytes:
        """Send one PUSH_DATA; returns its token."""
        token = self._next_token()
        if body is None:
            body = json.dumps({"rxpk": rxpks or []}).encode()
        self.send_raw(b"\x02" + token + b"\x00" + self.eui + body)
        return token

    def push_acked(self, rxpks: list[dict[str, Any]], timeout: float = 20.0) -> None:
        """PUSH_DATA, then wait for its PUSH_ACK (resent, as a careful test, if none came)."""
        token = self.push(rxpks)
        wait_for(lambda: self.take(lambda d: d[:4] == b"\x02" + token + b"\x01"), timeout, "PUSH_ACK")

    def pull(self) -> bytes:
        token = self._next_token()
        self.send_raw(b"\x02" + token + b"\x02" + self.eui)
        return token

    def pull_acked(self, timeout: float = 20.0) -> None:
        token = self.pull()
        wait_for(lambda: self.take(lambda d: d[:4] == b"\x02" + token + b"\x04"), timeout, "PULL_ACK")

    def tx_ack(self, token: bytes, error: str = "NONE") -> None:
        body = json.dumps({"txpk_ack": {"error": error}}).encode()
        self.send_raw(b"\x02" + token + b"\x05" + self.eui + body)

    def pull_resp(self, timeout: float = 20.0, ack: str | None = "NONE") -> dict[str, Any]:
        """The next PULL_RESP's txpk, answered with a TX_ACK carrying ``ack`` (None: no TX_ACK)."""
        datagram = wait_for(lambda: self.take(lambda d: len(d) > 4 and d[3] == 3), timeout, "PULL_RESP")
        txpk = json.loads(datagram[4:])["txpk"]
        if ack is not None:
            self.tx_ack(datagram[1:3], ack)
        txpk["_phy"] = base64.b64decode(txpk["data"] + "=" * (-len(txpk["data"]) % 4))
        return txpk

    def take(self, match: Callable[[bytes], bool]) -> bytes | None:
        self._drain()
        for i, d in enumerate(self.inbox):
            if match(d):
                return self.inbox.pop(i)
        return None

    def _drain(self) -> None:
        while True:
            try:
                d, _ = self.sock.recvfrom(65536)
            except (BlockingIOError, TimeoutError):
                return
            self.inbox.append(d)

    def close(self) -> None:
        self.sock.close()


def key_file(folder: Path, name: str, key_hex: str) -> Path:
    """A key file as the docs ask for it: 32 hex digits, mode 0600."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(key_hex + "\n")
    path.chmod(0o600)
    return path


def add_device(gw: Gateway, dev: Device, folder: Path) -> None:
    """``havel device add`` with the keys from 0600 files."""
    keys = folder / "keys"
    args = ["device", "add", "--name", dev.name, "--dev-eui", dev.dev_eui, "--codec", dev.codec]
    if dev.app_key:
        f = key_file(keys, f"{dev.name}.appkey", dev.app_key)
        args += ["--otaa", "--join-eui", dev.join_eui, "--app-key-file", str(f)]
    else:
        nwk = key_file(keys, f"{dev.name}.nwk", dev.nwk_s_key)
        app = key_file(keys, f"{dev.name}.app", dev.app_s_key)
        args += [
            "--abp",
            "--dev-addr",
            dev.dev_addr,
            "--nwk-s-key-file",
            str(nwk),
            "--app-s-key-file",
            str(app),
        ]
    r = gw.cli(*args)
    assert r.returncode == 0, r.stdout + r.stderr


def abp_device(n: int = 1) -> Device:
    return Device(
        f"pegel-abp-{n}",
        f"70B3D57ED00100{n:02X}",
        dev_addr=f"2601{n:04X}",
        nwk_s_key=f"{n:02x}" + "44024241ed4ce9a68c6a8bc055233f",
        app_s_key=f"{n:02x}" + "ec925802ae430ca77fd3dd73cb2cc5",
    )


def otaa_device(n: int = 1) -> Device:
    return Device(
        f"pegel-otaa-{n}",
        f"70B3D57ED00200{n:02X}",
        join_eui="70B3D57ED0000000",
        app_key=f"{n:02x}" + "112233445566778899aabbccddeeff",
    )
