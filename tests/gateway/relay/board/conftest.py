"""Fixtures of the crisis-centre board tests: a real receiver on a real Mosquitto, its board served on
loopback, and a gateway stand-in that signs envelopes exactly as docs/relay.md describes (its own HMAC
code, not the package's signer), with a key the test generates."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from support.mosquitto import Mosquitto

from havel.gateway.relay.board import Board, alarm_rules
from havel.gateway.relay.receive.config import ReceiverConfig
from havel.gateway.relay.receive.receiver import Receiver
from havel.web import serve

SENDER = "DB0XYZ-10"
GATEWAY = "potsdam-roof-1"
RULES = """\
[relay]
rules = [
  {name = "flood", class = "alarm", codec = "water", field = "level", op = ">=", value = 150},
  {name = "levels", class = "state", codec = "water", fields = ["level"]},
]
"""


def write_key(path: Path, key: bytes) -> None:
    """A key file as `havel relay keygen` writes it: 64 hex digits and a line feed, mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")


def signature(key: bytes, sender: str, channel: str, counter: int, body: bytes) -> str:
    """docs/relay.md, "Signature format": base64url(HMAC-SHA256(key, "HVR1" 0 sender 0 channel 0 counter
    0 body)[0:8]) without padding, after the counter and a dot."""
    msg = b"\0".join([b"HVR1", sender.encode(), channel.encode(), str(counter).encode(), body])
    tag = hmac.new(key, msg, hashlib.sha256).digest()[:8]
    return f"{counter}." + base64.urlsafe_b64encode(tag).rstrip(b"=").decode()


@dataclass
class Gateway:
    """Publishes on the mesh broker as a gateway's MQTT relay path does."""

    key: bytes
    client: mqtt.Client
    counter: int = 0
    sent: list[str] = field(default_factory=list)

    def envelope(self, body: dict[str, Any], key: bytes | None = None, sender: str = SENDER) -> bytes:
        self.counter += 1
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        sig = signature(key or self.key, sender, "mqtt", self.counter, text.encode())
        return json.dumps({"v": 1, "sender": sender, "sig": sig, "body": text}).encode()

    def publish(self, kind: str, payload: bytes) -> float:
        """Publish on <prefix>/<gateway>/relay/<kind>; the time just before it left."""
        at = time.time()
        self.client.publish(f"havel/{GATEWAY}/relay/{kind}", payload, qos=1).wait_for_publish(10)
        return at

    @staticmethod
    def record(
        dev_eui: str, fcnt: int, level: float, klass: str, at: float, device: str | None = "pegel-1"
    ) -> dict[str, Any]:
        return {
            "class": klass,
            "data": {"level": level},
            "dev_eui": dev_eui,
            "device": device,
            "epoch": 1,
            "fcnt": fcnt,
            "received_at": int(at),
            "units": {"level": "cm"},
        }

    def reading(self, dev_eui: str, fcnt: int, level: float, klass: str, at: float, **kw: Any) -> float:
        return self.publish(klass, self.envelope(self.record(dev_eui, fcnt, level, klass, at, **kw)))

    def primary(self, state: str, at: float) -> float:
        body = {"kind": "status", "primary": state, "at": int(at), "reason": "sink platform"}
        return self.publish("event", self.envelope(body))


@dataclass
class BoardEnv:
    url: str
    port: int
    board: Board
    rx: Receiver
    broker: Mosquitto
    gateway: Gateway


@pytest.fixture
def board_env(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[BoardEnv]:
    key = secrets.token_bytes(32)
    write_key(tmp_path / "gw.key", key)
    (tmp_path / "gateway.toml").write_text(RULES)
    conf = tmp_path / "receiver.toml"
    conf.write_text(
        f"""
data_dir = "data"
prefix = "havel"
[publish]
host = "127.0.0.1"
port = {mosquitto.port}
[[sender]]
name = "{SENDER}"
key_file = "gw.key"
gateway_id = "{GATEWAY}"
[mqtt]
host = "127.0.0.1"
port = {mosquitto.port}
topic = "havel/+/relay/#"
client_id = "board-test-{uuid.uuid4().hex[:8]}"
"""
    )
    rx = Receiver(ReceiverConfig.load(conf)).start()
    assert rx.wait_ready(30) == ["mqtt"]
    board = Board(rx, alarm_rules(tmp_path / "gateway.toml")).start()
    srv = serve(board.app, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"gw-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    port = srv.server_address[1]
    try:
        yield BoardEnv(f"http://127.0.0.1:{port}/", port, board, rx, mosquitto, Gateway(key, client))
    finally:
        client.disconnect()
        client.loop_stop()
        board.stop()
        srv.shutdown()
        srv.server_close()
        rx.stop()
