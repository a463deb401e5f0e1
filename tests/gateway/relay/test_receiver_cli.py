"""``havel relay receive`` as the crisis centre runs it: a real process, a real broker, signed input."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from support.mqtt_subscriber import Subscriber

from havel.gateway.relay.envelope import sign_body, sign_json
from havel.gateway.relay.record import RelayRecord
from havel.gateway.relay.signing import CounterStore, Signer, SigningKey

NOW = int(time.time())  # a fresh receiver takes only messages stamped after its start (minus 6 h)


@pytest.mark.timeout(60)
def test_receive_command_verifies_dedups_and_republishes(
    tmp_path: Path, key_file: Path, mosquitto: Any
) -> None:
    conf = tmp_path / "receiver.toml"
    conf.write_text(f"""data_dir = "cc"
prefix = "havel"
[publish]
port = {mosquitto.port}
[[sender]]
name = "gw1"
key_file = "{key_file}"
gateway_id = "gw1"
[mqtt]
port = {mosquitto.port}
topic = "havel/+/relay/#"
""")
    proc = subprocess.Popen(
        [sys.executable, "-m", "havel", "relay", "receive", "--config", str(conf), "--no-live"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stderr is not None
        said = [proc.stderr.readline() for _ in range(2)]
        assert "no readable counter state" in said[0]  # a first start says what it accepts
        assert "receiver ready: listening on mqtt" in said[1]
        signer = Signer(SigningKey.load(key_file), "gw1", CounterStore(None))
        rec = RelayRecord("70B3D57ED0001234", 77, "alarm", NOW, {"level": 170})
        good = sign_json(signer, "mqtt", rec)
        forged = sign_json(Signer(SigningKey.generate(), "gw1", CounterStore(None)), "mqtt", rec)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        with Subscriber(mosquitto.port, "havel/gw1/devices/#") as sub:
            for payload in (forged, good, good, b"{not json"):
                pub.publish("havel/gw1/relay/alarm", payload, qos=1).wait_for_publish(5)
            try:
                got = sub.wait_for(1, 10)
            except TimeoutError:
                proc.send_signal(signal.SIGTERM)
                print(proc.communicate(timeout=10)[1])
                raise
            sub.wait_quiet(0.5, 3)
        pub.loop_stop()
        pub.disconnect()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0
    assert (
        len(sub.messages) == 1
        and got[0].json()["id"] == "70B3D57ED0001234-0-77"
        and got[0].json()["via"] == "mqtt"
    )
    # the second copy of the same bytes: a second delivery (QoS 1 allows it), dropped and counted
    assert "accepted 1" in err and "forged 1" in err and "duplicate 1" in err and "malformed 1" in err


def test_live_table_shows_latest_alarms(tmp_path: Path, key_file: Path) -> None:
    from types import SimpleNamespace

    from rich.console import Console

    from havel.gateway.relay.cli import _table
    from havel.gateway.relay.receive.config import ReceiverConfig
    from havel.gateway.relay.receive.core import ReceiverCore

    cfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "mqtt": {"port": 1},
            "sender": [{"name": "gw1", "key_file": str(key_file), "gateway_id": "gw1"}],
        }
    )
    published: list[tuple[str, bytes]] = []
    core = ReceiverCore(cfg, lambda topic, payload: published.append((topic, payload)))
    signer = Signer(SigningKey.load(key_file), "gw1", CounterStore(None))
    for fcnt, level in ((5, 171), (6, 180)):
        rec = RelayRecord("70B3D57ED0001234", fcnt, "alarm", NOW, {"level": level})
        assert core.handle_envelope(sign_json(signer, "mqtt", rec), "mqtt", "mqtt")
    status = sign_body(signer, "mqtt", {"kind": "status", "primary": "down", "at": NOW})
    assert core.handle_envelope(status, "mqtt", "mqtt")
    console = Console(record=True, width=140)
    console.print(_table(SimpleNamespace(core=core)))
    text = console.export_text()
    assert "level=180" in text and "level=171" in text and "accepted: 2" in text
    assert "GW1: primary down" not in text and "gw1: primary down (signed, via mqtt)" in text
    assert text.index("level=180") < text.index("level=171")  # newest first
    assert [t for t, _ in published] == ["havel/gw1/devices/70B3D57ED0001234/up"] * 2 + [
        "havel/gw1/relay/primary"
    ]


@pytest.mark.timeout(60)
def test_receiver_restart_keeps_what_arrived_meanwhile(
    tmp_path: Path, key_file: Path, mosquitto: Any
) -> None:
    from havel.gateway.relay.receive.config import ReceiverConfig
    from havel.gateway.relay.receive.receiver import Receiver

    cfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": mosquitto.port},
            "sender": [{"name": "gw1", "key_file": str(key_file), "gateway_id": "gw1"}],
            "mqtt": {"port": mosquitto.port, "topic": "havel/+/relay/#", "client_id": "cc-listener"},
        }
    )
    signer = Signer(SigningKey.load(key_file), "gw1", CounterStore(None))
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        with Subscriber(mosquitto.port, "havel/gw1/devices/#") as sub:
            with Receiver(cfg) as rx:
                assert rx.wait_ready() == ["mqtt"]
                first = sign_json(
                    signer, "mqtt", RelayRecord("70B3D57ED0001234", 1, "alarm", NOW, {"level": 160})
                )
                pub.publish("havel/gw1/relay/alarm", first, qos=1).wait_for_publish(5)
                sub.wait_for(1, 10)
            # the receiver is down: the broker keeps its session
            second = sign_json(
                signer, "mqtt", RelayRecord("70B3D57ED0001234", 2, "alarm", 1795683660, {"level": 175})
            )
            pub.publish("havel/gw1/relay/alarm", second, qos=1).wait_for_publish(5)
            pub.publish("havel/gw1/relay/alarm", first, qos=1).wait_for_publish(
                5
            )  # and a replay of the first
            with Receiver(cfg) as rx2:
                got = sub.wait_for(2, 10)
                sub.wait_quiet(0.5, 3)
                replayed = rx2.core.total("replayed")
    finally:
        pub.loop_stop()
        pub.disconnect()
    assert [m.json()["fcnt"] for m in got] == [1, 2] and len(sub.messages) == 2
    assert replayed == 1  # the counter state survived the restart


class _SlowCore:
    """Stands in for ReceiverCore: counts the envelopes handed to it; the first one takes until released."""

    def __init__(self) -> None:
        import threading

        self.handled: list[bytes] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def handle_envelope(self, data: bytes, via: str, kind: str) -> bool:
        self.entered.set()
        self.release.wait(10)
        self.handled.append(data)
        return True

    def handle_status(self, topic: str, data: bytes) -> None:
        pass


@pytest.mark.timeout(60)
def test_a_stop_while_a_message_is_handled_acknowledges_it_first(mosquitto: Any) -> None:
    """A receiver stopped in the middle of handling a relayed alarm sends its PUBACK before the DISCONNECT:
    the broker does not deliver it again at the next start (where it would be rejected as a replay)."""
    import threading
    import time

    from havel.gateway.relay.receive.mqtt_listener import MqttListener

    cfg = {"port": mosquitto.port, "topic": "havel/+/relay/#", "client_id": "cc-stop-test"}
    first = _SlowCore()
    listener = MqttListener(first, cfg)  # type: ignore[arg-type]
    listener.start()
    assert listener.subscribed.wait(10)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        pub.publish("havel/gw1/relay/alarm", b"envelope-1", qos=1).wait_for_publish(5)
        assert first.entered.wait(10)
        stopper = threading.Thread(target=listener.stop)
        stopper.start()
        time.sleep(0.3)  # the stop is under way while the message is still being handled
        first.release.set()
        stopper.join(10)
        assert first.handled == [b"envelope-1"]
        again = _SlowCore()
        again.release.set()
        listener2 = MqttListener(again, cfg)  # type: ignore[arg-type]
        listener2.start()
        assert listener2.subscribed.wait(10)
        time.sleep(1.0)  # anything the broker kept for the session would arrive now
        listener2.stop()
        assert again.handled == []
    finally:
        pub.loop_stop()
        pub.disconnect()
