"""Plumbing for the black-box relay tests, written from docs/relay.md and the public specs only.

- the signature (HMAC-SHA256, truncated, base64url) exactly as docs/relay.md "Signature format" states it;
- KISS framing (KISS TNC protocol: FEND/FESC/TFEND/TFESC) with a strict decoder;
- AX.25 2.2 UI frames: address fields (callsign shifted left one bit, SSID byte with the reserved bits,
  C/H bit, extension bit), control/PID, built and checked from the AX.25 2.2 specification;
- APRS 1.0.1 message (ch. 14) and telemetry (ch. 13) formats;
- a KISS TNC of our own as a TCP server, Mosquitto on a free loopback port, an MQTT v5 subscriber,
  the real ``havel`` command (daemon and receiver), LoRaWAN frames built with lora-packet under Node.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
HAVEL = REPO / ".venv" / "bin" / "havel"
LORA_PACKET = REPO / "tools" / "npm" / "node_modules" / "lora-packet"
HOST = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def registered_port() -> int:
    """A free TCP port on 127.0.0.1 in 20000..49151: direwolf refuses ports above 49151."""
    for _ in range(200):
        port = random.randint(20000, 49151)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in 20000..49151")


def wait_for(
    cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition", step: float = 0.05
) -> Any:
    """Poll ``cond`` until it returns something truthy (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def havel(*args: str, stdin: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HAVEL), *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


# ------------------------------------------------------------------------------------------- signature

B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = B36[r] + out
        if n == 0:
            return out


def unbase36(s: str) -> int:
    assert re.fullmatch(r"[0-9A-Z]+", s), s
    return int(s, 36)


def read_key(path: Path) -> bytes:
    """The key file: 64 hex digits and a line feed; the HMAC key is the 32 bytes they decode to."""
    text = path.read_text()
    assert re.fullmatch(r"[0-9a-fA-F]{64}\n", text), repr(text)
    return bytes.fromhex(text.strip())


def tag(key: bytes, sender: str, channel: str, counter: int, body: bytes) -> str:
    msg = b"HVR1\x00" + sender.encode() + b"\x00" + channel.encode() + b"\x00" + str(counter).encode()
    msg += b"\x00" + body
    digest = hmac.new(key, msg, hashlib.sha256).digest()[:8]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def signature(key: bytes, sender: str, channel: str, counter: int, body: bytes) -> str:
    return f"{counter}.{tag(key, sender, channel, counter, body)}"


def verify(key: bytes, sender: str, channel: str, sig: str, body: bytes) -> int:
    """The counter of a signature that verifies; AssertionError otherwise."""
    m = re.fullmatch(r"(0|[1-9][0-9]*)\.([A-Za-z0-9_-]{11})", sig)
    assert m, f"signature {sig!r} is not counter.tag"
    counter = int(m.group(1))
    want = tag(key, sender, channel, counter, body)
    assert hmac.compare_digest(want, m.group(2)), f"tag of {body!r} does not verify ({sig})"
    return counter


# ------------------------------------------------------------------------------------------------ KISS

FEND, FESC, TFEND, TFESC = 0xC0, 0xDB, 0xDC, 0xDD


def kiss_escape(data: bytes) -> bytes:
    return data.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")


def kiss_frame(ax25: bytes, port: int = 0) -> bytes:
    return bytes([FEND]) + kiss_escape(bytes([port << 4 | 0])) + kiss_escape(ax25) + bytes([FEND])


class KissError(ValueError):
    pass


def kiss_unescape(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == FESC:
            if i + 1 >= len(data) or data[i + 1] not in (TFEND, TFESC):
                raise KissError(f"broken escape at {i} in {data.hex()}")
            out.append(FEND if data[i + 1] == TFEND else FESC)
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


class KissSplitter:
    """Splits a KISS byte stream into (type byte, payload) frames, strictly (bad escapes raise)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        frames = []
        while True:
            start = self.buf.find(FEND)
            if start < 0:
                self.buf.clear()
                return frames
            end = self.buf.find(FEND, start + 1)
            if end < 0:
                del self.buf[:start]
                return frames
            raw = bytes(self.buf[start + 1 : end])
            del self.buf[:end]
            if not raw:
                continue  # back-to-back FENDs
            body = kiss_unescape(raw)
            frames.append((body[0], body[1:]))


# ----------------------------------------------------------------------------------------------- AX.25


def ax25_address(call: str, last: bool, bit7: bool) -> bytes:
    base, _, ssid = call.partition("-")
    assert re.fullmatch(r"[A-Z0-9]{1,6}", base), call
    n = int(ssid) if ssid else 0
    assert 0 <= n <= 15
    out = bytes(ord(c) << 1 for c in base.ljust(6))
    return out + bytes([(0x80 if bit7 else 0) | 0x60 | n << 1 | (1 if last else 0)])


def ax25_ui(
    src: str, dest: str, info: bytes, path: tuple[str, ...] = (), repeated: tuple[bool, ...] = ()
) -> bytes:
    """An AX.25 2.x UI command frame (C bit set on the destination, clear on the source)."""
    addrs = ax25_address(dest, False, True) + ax25_address(src, not path, False)
    for i, digi in enumerate(path):
        h = repeated[i] if i < len(repeated) else False
        addrs += ax25_address(digi, i == len(path) - 1, h)
    return addrs + b"\x03\xf0" + info


@dataclass
class Ax25Frame:
    dest: str
    src: str
    path: list[str]
    dest_c: bool
    src_c: bool
    h_bits: list[bool]
    control: int
    pid: int
    info: bytes
    raw: bytes = b""

    @property
    def text(self) -> str:
        return self.info.decode("ascii")


def _decode_address(chunk: bytes) -> tuple[str, int, bool, bool]:
    chars = ""
    for b in chunk[:6]:
        assert b & 1 == 0, f"callsign byte {b:#x} has bit 0 set (extension bit inside a callsign)"
        chars += chr(b >> 1)
    assert re.fullmatch(r"[A-Z0-9]{1,6} *", chars), (
        f"callsign {chars!r}: upper-case letters/digits, space-padded"
    )
    ssid_byte = chunk[6]
    assert ssid_byte & 0x60 == 0x60, f"SSID byte {ssid_byte:#x}: reserved bits 6-5 must be 1"
    ssid = (ssid_byte >> 1) & 0x0F
    call = chars.rstrip()
    name = call if ssid == 0 else f"{call}-{ssid}"
    return name, ssid, bool(ssid_byte & 0x80), bool(ssid_byte & 1)


def parse_ax25(frame: bytes) -> Ax25Frame:
    """Decode and check an AX.25 UI frame (no flags, no FCS, as KISS carries it); AssertionError if bad."""
    assert len(frame) >= 16, f"frame of {len(frame)} bytes is too short"
    addrs: list[tuple[str, int, bool, bool]] = []
    pos = 0
    while True:
        assert pos + 7 <= len(frame), "address field runs past the end of the frame"
        addrs.append(_decode_address(frame[pos : pos + 7]))
        pos += 7
        if addrs[-1][3]:
            break
        assert len(addrs) < 10, "more than 8 digipeaters"
    assert len(addrs) >= 2, "a frame needs a destination and a source"
    assert pos + 2 <= len(frame), "no control/PID"
    control, pid = frame[pos], frame[pos + 1]
    info = frame[pos + 2 :]
    assert len(info) <= 256, f"information field of {len(info)} bytes exceeds N1 = 256"
    return Ax25Frame(
        dest=addrs[0][0],
        src=addrs[1][0],
        path=[a[0] for a in addrs[2:]],
        dest_c=addrs[0][2],
        src_c=addrs[1][2],
        h_bits=[a[2] for a in addrs[2:]],
        control=control,
        pid=pid,
        info=info,
        raw=frame,
    )


def check_aprs_ui(f: Ax25Frame, src: str, dest: str, path: list[str]) -> None:
    """What every frame of the gateway must be: a UI command from our callsign, plain printable ASCII."""
    assert f.control == 0x03, f"control {f.control:#x} is not UI (0x03, P/F clear)"
    assert f.pid == 0xF0, f"PID {f.pid:#x} is not 0xF0 (no layer 3)"
    assert f.src == src, f"source {f.src} is not the station callsign {src} (identification)"
    assert f.dest == dest, f.dest
    assert f.path == path, f.path
    assert f.dest_c and not f.src_c, "AX.25 2.x command: C bit set on destination, clear on source"
    assert not any(f.h_bits), "a frame we send has no has-been-repeated bits set"
    assert all(0x20 <= b < 0x7F for b in f.info), f"information field not printable ASCII: {f.info!r}"


MSG_RE = re.compile(r":(?P<addr>[A-Za-z0-9 -]{9}):(?P<text>[^{]*)(?:\{(?P<id>[A-Za-z0-9]{1,5}))?")
TELEMETRY_RE = re.compile(r"T#(?P<seq>\d{3}),(?P<a>\d{3}(?:,\d{3}){4}),(?P<bits>[01]{8})(?P<comment>.*)")


def parse_message(info: str) -> tuple[str, str, str | None]:
    """An APRS 1.0.1 message: (addressee, text, message id or None)."""
    m = MSG_RE.fullmatch(info)
    assert m, f"not an APRS message: {info!r}"
    text = m.group("text")
    assert len(text) <= 67, f"message text of {len(text)} characters (APRS allows 67): {text!r}"
    assert not set(text) & set("|~{"), f"message text holds | ~ or {{: {text!r}"
    return m.group("addr").rstrip(), text, m.group("id")


# ------------------------------------------------------------------------------------------ KISS TNC


class KissTnc:
    """A KISS TNC as a TCP server (what direwolf's KISSPORT offers): records every frame its clients send
    and can send frames "heard on the air" to every connected client."""

    def __init__(self) -> None:
        self.server = socket.create_server((HOST, 0))
        self.port = int(self.server.getsockname()[1])
        self.frames: list[tuple[float, int, bytes]] = []  # (monotonic time, type byte, AX.25 bytes)
        self.errors: list[str] = []
        self.clients: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.clients.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        splitter = KissSplitter()
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                with self.lock:
                    if conn in self.clients:
                        self.clients.remove(conn)
                return
            try:
                got = splitter.feed(data)
            except KissError as e:
                with self.lock:
                    self.errors.append(str(e))
                continue
            with self.lock:
                for typ, payload in got:
                    self.frames.append((time.monotonic(), typ, payload))

    def connected(self) -> int:
        with self.lock:
            return len(self.clients)

    def drop_clients(self) -> None:
        """Cut every client connection (a TNC restarted, a KISS-TCP bridge lost); keep listening."""
        with self.lock:
            clients, self.clients = self.clients, []
        for c in clients:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()

    def send_raw(self, data: bytes) -> None:
        with self.lock:
            clients = list(self.clients)
        assert clients, "no KISS client connected"
        for c in clients:
            c.sendall(data)

    def send(self, ax25: bytes) -> None:
        self.send_raw(kiss_frame(ax25))

    def snapshot(self) -> list[tuple[float, int, bytes]]:
        with self.lock:
            return list(self.frames)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.server.close()
        with self.lock:
            for c in self.clients:
                with contextlib.suppress(OSError):
                    c.close()


# ------------------------------------------------------------------------------------------- broker


class Broker:
    """Mosquitto on a free loopback port (anonymous), stoppable and startable on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} {HOST}\nallow_anonymous true\nuser root\npersistence false\n"
            "max_queued_messages 10000\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

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


class Client:
    """An MQTT v5 client that records what it receives on ``topic`` and can publish raw bytes."""

    def __init__(self, port: int, topic: str = "#", client_id: str = "") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.topic = topic
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"bb-{os.getpid()}-{id(self)}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda c, *_: c.subscribe(self.topic, qos=1)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect(HOST, port, keepalive=30, properties=Properties(PacketTypes.CONNECT))
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 20, "SUBACK")

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(20)

    def on(self, topic_suffix: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t.endswith(topic_suffix)]

    def json_on(self, topic_suffix: str) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.on(topic_suffix)]

    def wait_json(
        self, suffix: str, where: Callable[[dict[str, Any]], bool] = bool, timeout: float = 30.0
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m for m in self.json_on(suffix) if where(m)), None)

        return wait_for(found, timeout, f"a message on ...{suffix}")

    def close(self) -> None:
        self.client.loop_stop()
        with contextlib.suppress(Exception):
            self.client.disconnect()


# ------------------------------------------------------------------------------------------ lora-packet

_LP_SCRIPT = r"""
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const lp = require(process.env.LORA_PACKET);
const r = JSON.parse(process.argv[2]);
const hex = (s) => Buffer.from(s, "hex");
const msb = Buffer.alloc(2); msb.writeUInt16BE(Math.floor(r.fcnt / 65536) & 0xffff);
const p = lp.fromFields({
  MType: "Unconfirmed Data Up", DevAddr: hex(r.dev_addr), FCtrl: {ADR: false, ADRACKReq: false, ACK: false},
  FCnt: r.fcnt % 65536, FPort: r.fport, payload: hex(r.payload),
}, hex(r.app_s_key), hex(r.nwk_s_key), undefined, msb);
process.stdout.write(p.getPHYPayload().toString("hex"));
"""


def lora_uplink(
    folder: Path, dev_addr: str, nwk_s_key: str, app_s_key: str, fcnt: int, payload: bytes, fport: int = 1
) -> bytes:
    """An unconfirmed data uplink PHYPayload built by lora-packet."""
    script = folder / "lp_uplink.mjs"
    if not script.exists():
        script.write_text(_LP_SCRIPT)
    req = {
        "dev_addr": dev_addr,
        "nwk_s_key": nwk_s_key,
        "app_s_key": app_s_key,
        "fcnt": fcnt,
        "fport": fport,
        "payload": payload.hex(),
    }
    out = subprocess.run(
        ["node", str(script), json.dumps(req)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=dict(os.environ, LORA_PACKET=str(LORA_PACKET)),
    )
    return bytes.fromhex(out.stdout)


def water_readings(level_cm: int, alarm: bool = False) -> bytes:
    """The water node's FPort 1 `readings` (docs/payloads.md): version 1, level, distance, temp, battery."""
    first = 0x10 | (0x08 if alarm else 0)
    return (
        bytes([first])
        + level_cm.to_bytes(2, "big", signed=True)
        + (1570).to_bytes(2, "big")
        + (140).to_bytes(2, "big", signed=True)
        + bytes([3580 // 20])
    )


def push_data(udp_port: int, phy: bytes, eui: str = "AA555A0000000101", token: int = 1, **extra: Any) -> None:
    """One GWMP v2 PUSH_DATA with one rxpk; waits for its PUSH_ACK."""
    rxpk = {
        "tmst": 1_000_000 + token * 3_000_000,
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
        **extra,
    }
    tok = token.to_bytes(2, "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.settimeout(2)
        datagram = b"\x02" + tok + b"\x00" + bytes.fromhex(eui) + json.dumps({"rxpk": [rxpk]}).encode()
        for _ in range(10):
            s.sendto(datagram, (HOST, udp_port))
            with contextlib.suppress(TimeoutError):
                ack, _ = s.recvfrom(64)
                if ack[:4] == b"\x02" + tok + b"\x01":
                    return
        raise AssertionError("no PUSH_ACK")


# ---------------------------------------------------------------------------------------------- daemon


@dataclass
class Proc:
    """A ``havel`` process with its log file."""

    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [str(HAVEL), *self.args], stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, **self.env)
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metrics(port: int) -> dict[str, float]:
    code, body = http_get(port, "/metrics")
    assert code == 200, body
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def write_key(path: Path, key: bytes) -> Path:
    path.write_text(key.hex() + "\n")
    path.chmod(0o600)
    return path


def direwolf_decode(frames: list[bytes], folder: Path, timeout: float = 60.0) -> list[str]:
    """Hand AX.25 frames to a real direwolf over KISS and return how it prints them as it transmits them
    (``SRC>DEST,PATH:info``): an independent decoder of the frames. Audio goes to ALSA's null device."""
    folder.mkdir(parents=True, exist_ok=True)
    # direwolf 1.6 takes TCP ports 1024..49151 only (it silently falls back to 8001/8000 otherwise)
    kiss_port, agw_port, audio_port = registered_port(), registered_port(), free_port(socket.SOCK_DGRAM)
    conf = folder / "direwolf.conf"
    conf.write_text(
        f"ADEVICE UDP:{audio_port} null\nARATE 48000\nACHANNELS 1\nCHANNEL 0\nMYCALL N0CALL\nMODEM 1200\n"
        f"KISSPORT {kiss_port}\nAGWPORT {agw_port}\n"
    )
    log = folder / "direwolf.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["direwolf", "-c", str(conf), "-t", "0"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(
            lambda: f"client application 0 on port {kiss_port}" in log.read_text(errors="replace"),
            30,
            "direwolf",
        )
        with socket.create_connection((HOST, kiss_port), timeout=10) as s:
            for frame in frames:
                s.sendall(kiss_frame(frame))

            def printed() -> list[str] | None:
                lines = [
                    line.split("] ", 1)[1]
                    for line in log.read_text(errors="replace").splitlines()
                    if line.startswith("[0L] ")
                ]
                return lines if len(lines) >= len(frames) else None

            return wait_for(printed, timeout, "direwolf to transmit every frame")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
