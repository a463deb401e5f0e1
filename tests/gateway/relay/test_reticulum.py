"""The Reticulum relay between two real Reticulum instances on loopback (subprocesses, configs written
here: share_instance = No, no AutoInterface), plain on an interface marked amateur, encrypted otherwise."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.mqtt_subscriber import Subscriber

from havel.errors import LegalError
from havel.gateway.relay.envelope import sign_json
from havel.gateway.relay.receive.config import ReceiverConfig
from havel.gateway.relay.receive.receiver import Receiver
from havel.gateway.relay.record import RelayRecord
from havel.gateway.relay.reticulum_relay import ReticulumConfig, ReticulumRelay, available
from havel.gateway.relay.signing import CounterStore, Signer, SigningKey

from .conftest import GW_CALL, load_harness

pytestmark = pytest.mark.skipif(not available(), reason="the havel[reticulum] extra (rns) is not installed")

DEV = "70B3D57ED00000AA"

COMMON = """[reticulum]
  enable_transport = No
  share_instance = No
  panic_on_interface_error = No
[logging]
  loglevel = 4
[interfaces]
"""

NOW = int(time.time())  # a fresh receiver takes only messages stamped after its start (minus 6 h)


def write_configs(tmp_path: Path) -> tuple[Path, Path]:
    port = load_harness().free_port()
    cc, gw = tmp_path / "rns-cc", tmp_path / "rns-gw"
    cc.mkdir()
    gw.mkdir()
    (cc / "config").write_text(
        COMMON
        + f"""  [[crisis centre]]
    type = TCPServerInterface
    enabled = yes
    listen_ip = 127.0.0.1
    listen_port = {port}
"""
    )
    (gw / "config").write_text(
        COMMON
        + f"""  [[mesh to crisis centre]]
    type = TCPClientInterface
    enabled = yes
    target_host = 127.0.0.1
    target_port = {port}
"""
    )
    return cc, gw


@pytest.mark.timeout(90)
@pytest.mark.parametrize("amateur", [True, False], ids=["amateur-plain", "freifunk-encrypted"])
def test_alarm_over_reticulum(tmp_path: Path, key_file: Path, mosquitto: Any, amateur: bool) -> None:
    cc_dir, gw_dir = write_configs(tmp_path)
    rcfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": mosquitto.port},
            "sender": [{"name": GW_CALL, "key_file": str(key_file), "gateway_id": "gw1"}],
            "reticulum": {"config_dir": str(cc_dir), "amateur": amateur},
        }
    )
    with Subscriber(mosquitto.port, "havel/#") as sub, Receiver(rcfg) as rx:
        assert rx.rns is not None and rx.rns.destination_hash
        conf: dict[str, Any] = {"config_dir": str(gw_dir), "amateur": amateur}
        if not amateur:
            conf["destination"] = rx.rns.destination_hash
        cfg = ReticulumConfig.from_config(conf)
        assert cfg.encrypt is (not amateur)
        relay = ReticulumRelay(cfg, Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None)))
        relay.start()
        try:
            assert relay.offer(RelayRecord(DEV, 9, "alarm", NOW, {"level": 201}))
            msgs = sub.wait_for(1, timeout=30)
            relay.publish_status({"primary": "down", "at": 1795683601, "reason": "test"})
            deadline = time.monotonic() + 10
            while "gw1" not in rx.core.status and time.monotonic() < deadline:
                time.sleep(0.05)
            assert rx.core.status["gw1"]["primary"] == "down" and rx.core.status["gw1"]["via"] == "reticulum"
        finally:
            relay.stop()
    got = msgs[0].json()
    assert msgs[0].topic == f"havel/gw1/devices/{DEV}/up"
    assert got["id"] == f"{DEV}-0-9" and got["via"] == "reticulum" and got["data"] == {"level": 201}


def test_encryption_refused_on_amateur_interfaces(tmp_path: Path) -> None:
    _, gw = write_configs(tmp_path)
    with pytest.raises(LegalError):
        ReticulumConfig.from_config({"config_dir": str(gw), "amateur": True, "encrypt": True})
    assert ReticulumConfig.from_config({"config_dir": str(gw), "amateur": True}).encrypt is False


@pytest.mark.timeout(60)
def test_relay_starts_while_the_mesh_is_down(tmp_path: Path, key_file: Path) -> None:
    """No receiver reachable at boot: the relay is ready at once (the path is looked for per packet)."""
    _, gw_dir = write_configs(tmp_path)  # the client points at a port where nobody listens
    cfg = ReticulumConfig.from_config({"config_dir": str(gw_dir), "amateur": False, "destination": "ab" * 16})
    relay = ReticulumRelay(cfg, Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None)))
    t0 = time.monotonic()
    relay.start()
    try:
        assert time.monotonic() - t0 < 15
        assert relay.offer(RelayRecord(DEV, 1, "alarm", NOW, {"level": 190}))
    finally:
        relay.stop()


def test_access_codes_refused_on_amateur_interfaces(tmp_path: Path) -> None:
    cc, _ = write_configs(tmp_path)
    text = (cc / "config").read_text()
    (cc / "config").write_text(text + "    network_name = notfunk\n    passphrase = secret\n")
    with pytest.raises(LegalError):
        ReticulumConfig.from_config({"config_dir": str(cc), "amateur": True})
    assert ReticulumConfig.from_config(
        {"config_dir": str(cc), "amateur": False, "destination": "ab" * 16}
    ).encrypt


# Unsigned packets anyone on the interface can send (each fits one PLAIN packet).
RNS_POISON = [
    b'{"v":1,"sender":"N0CALL-10","sig":"1.AAAAAAAAAAA","body":"\\udc80"}',
    b'{"v":1,"sender":"\\ud800","sig":"1.AAAAAAAAAAA","body":"{}"}',
    b"[" * 400,
    json.dumps({"v": 1, "sender": "N0CALL-10", "sig": "1.AAAAAAAAAAA", "body": "[" * 300}).encode(),
    b'{"v":1,"sender":"N0CALL-10","sig":"1.AAAAAAAAAAA","body":NaN}',
    b'{"v":1,"sender":["x"],"sig":7,"body":{}}',
    b"\xff\xfe\x00\xc0",
    b"[]",
    b"null",
    b"x",
]


@pytest.mark.timeout(120)
def test_reticulum_listener_survives_poison_and_a_dead_helper(
    tmp_path: Path, key_file: Path, mosquitto: Any
) -> None:
    """Junk packets are counted and dropped; a helper process that dies is started again (counted in the
    receiver's health), and alarms arrive after it."""
    import os
    import signal
    import subprocess
    import sys

    cc_dir, gw_dir = write_configs(tmp_path)
    rcfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": mosquitto.port},
            "sender": [{"name": GW_CALL, "key_file": str(key_file), "gateway_id": "gw1"}],
            "reticulum": {"config_dir": str(cc_dir), "amateur": True},
        }
    )
    signer = Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None))
    fcnt = 0

    def send(payload: bytes) -> None:
        assert sender.stdin is not None
        sender.stdin.write(payload.hex() + "\n")
        sender.stdin.flush()

    def alarm() -> bytes:
        nonlocal fcnt
        fcnt += 1
        return sign_json(signer, "rns", RelayRecord(DEV, fcnt, "alarm", int(time.time()), {"level": 200}))

    def until_delivered(count: int, timeout: float) -> None:
        """PLAIN packets sent while the interface (re)connects are lost: send alarms until one arrives."""
        deadline = time.monotonic() + timeout
        while len(sub.messages) < count and time.monotonic() < deadline:
            send(alarm())
            sub_wait = time.monotonic() + 2
            while len(sub.messages) < count and time.monotonic() < sub_wait:
                time.sleep(0.05)
        assert len(sub.messages) >= count

    cmd = [sys.executable, "-m", "havel.gateway.relay.rns_node", "send", "--config-dir", str(gw_dir)]
    with Subscriber(mosquitto.port, "havel/gw1/devices/#") as sub, Receiver(rcfg) as rx:
        sender = subprocess.Popen(
            [*cmd, "--plain"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        try:
            assert rx.rns is not None
            assert sender.stdout is not None and sender.stdout.readline().startswith("HVRNS READY")
            until_delivered(1, 40)
            for p in RNS_POISON:
                send(p)
            before = len(sub.messages)
            send(alarm())
            sub.wait_for(before + 1, timeout=30)
            deadline = time.monotonic() + 10
            judged = ("malformed", "forged")
            while sum(rx.core.total(k) for k in judged) < len(RNS_POISON) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sum(rx.core.total(k) for k in judged) == len(RNS_POISON)
            assert rx.core.total("error") == 0
            pid = rx.rns.node_pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 40
            while rx.health()["reticulum"]["restarts"] < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert rx.health()["reticulum"] == {
                "running": True,
                "restarts": 1,
                "destination": rx.rns.destination_hash,
            }
            until_delivered(len(sub.messages) + 1, 60)  # the sender's interface reconnects on its own
        finally:
            if sender.stdin is not None:
                sender.stdin.close()
            try:
                sender.wait(10)
            except subprocess.TimeoutExpired:
                sender.kill()
                sender.wait(5)


@pytest.mark.timeout(120)
def test_gateway_relay_restarts_its_dead_helper(tmp_path: Path, key_file: Path, mosquitto: Any) -> None:
    """The gateway's sending helper dies in an outage: it is started again and alarms go on."""
    import os
    import signal

    cc_dir, gw_dir = write_configs(tmp_path)
    rcfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": mosquitto.port},
            "sender": [{"name": GW_CALL, "key_file": str(key_file), "gateway_id": "gw1"}],
            "reticulum": {"config_dir": str(cc_dir), "amateur": True},
        }
    )
    relay = ReticulumRelay(
        ReticulumConfig.from_config({"config_dir": str(gw_dir), "amateur": True}),
        Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None)),
    )
    fcnt = 0

    def until_delivered(sub: Subscriber, count: int, timeout: float) -> None:
        nonlocal fcnt
        deadline = time.monotonic() + timeout
        while len(sub.messages) < count and time.monotonic() < deadline:
            fcnt += 1
            relay.offer(RelayRecord(DEV, fcnt, "alarm", int(time.time()), {"level": 200}))
            step = time.monotonic() + 2
            while len(sub.messages) < count and time.monotonic() < step:
                time.sleep(0.05)
        assert len(sub.messages) >= count

    with Subscriber(mosquitto.port, "havel/gw1/devices/#") as sub, Receiver(rcfg):
        relay.start()
        try:
            until_delivered(sub, 1, 40)
            pid = relay.node_pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 40
            while relay.stats["restarts"] < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert relay.stats["restarts"] == 1 and relay.node_pid != pid
            until_delivered(sub, len(sub.messages) + 1, 60)
        finally:
            relay.stop()
