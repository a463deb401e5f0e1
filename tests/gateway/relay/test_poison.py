"""Poison input for every subscription and every KISS input of the gateway's relay and the receiver.

Each listener gets malformed, deeply nested, huge, NaN, wrong-typed, lone-surrogate and non-UTF-8 input
over the real transport (Mosquitto on loopback, a TCP socket speaking KISS), then a good signed message:
the good one must still go through, and every bad one is counted under its reason.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from support.mqtt_subscriber import Subscriber

from havel.gateway.mqtt import LoopThread
from havel.gateway.relay import aprs, ax25, kiss
from havel.gateway.relay.aprs_config import APRSConfig
from havel.gateway.relay.aprs_relay import APRSRelay
from havel.gateway.relay.emergency import EmergencySwitch
from havel.gateway.relay.envelope import sign_body, sign_json
from havel.gateway.relay.lines import encode_line, sign_line
from havel.gateway.relay.mqtt_relay import MQTTRelay
from havel.gateway.relay.receive.config import ReceiverConfig
from havel.gateway.relay.receive.receiver import Receiver
from havel.gateway.relay.record import RelayRecord
from havel.gateway.relay.signing import CounterStore, Signer, SigningKey

from .conftest import CC_CALL, GW_CALL, FakeTNC

DEV = "70B3D57ED0001234"
SIG = "1.AAAAAAAAAAA"


def wait_until(cond: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    return cond()


def envelope(body: Any, sender: Any = "gw1", sig: Any = SIG, v: Any = 1) -> bytes:
    return json.dumps({"v": v, "sender": sender, "sig": sig, "body": body}).encode()


# Unsigned JSON-ish input a listener must count and drop (each one is "malformed").
POISON: dict[str, bytes] = {
    "lone surrogate in body": b'{"v":1,"sender":"gw1","sig":"1.AAAAAAAAAAA","body":"\\udc80"}',
    "lone surrogate in sender": b'{"v":1,"sender":"\\ud800","sig":"1.AAAAAAAAAAA","body":"{}"}',
    "deeply nested text": b"[" * 200_000,
    "deeply nested body": envelope("[" * 100_000),
    "huge": b'{"v":1,"body":"' + b"x" * 1_000_000 + b'"}',
    "NaN body": b'{"v":1,"sender":"gw1","sig":"1.AAAAAAAAAAA","body":NaN}',
    "NaN inside": envelope('{"dev_eui":NaN}'),
    "wrong types": envelope({"a": 1}, sender=["gw1"], sig=7),
    "wrong version": envelope("{}", v="1"),
    "not UTF-8": b"\xff\xfe\x00\xc0",
    "empty": b"",
    "array": b"[]",
    "null": b"null",
    "number": b"1e999999",
    "huge integer time": envelope('{"at":1' + "0" * 400 + ',"kind":"status","primary":"down"}'),
}


def publish_all(port: int, topic: str, payloads: list[bytes]) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        for p in payloads:
            pub.publish(topic, p, qos=1).wait_for_publish(10)
    finally:
        pub.loop_stop()
        pub.disconnect()


def receiver_config(tmp_path: Path, key_file: Path, port: int, **extra: Any) -> ReceiverConfig:
    return ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": port},
            "sender": [{"name": "gw1", "key_file": str(key_file), "gateway_id": "gw1"}],
            "mqtt": {"port": port, "topic": "havel/+/relay/#", "client_id": "cc-poison"},
            **extra,
        }
    )


@pytest.mark.timeout(90)
def test_receiver_mqtt_listener_survives_poison_and_acknowledges_it(
    tmp_path: Path, key_file: Path, mosquitto: Any
) -> None:
    """One poison message used to kill the listener thread: later signed alarms were not republished, and
    the unacknowledged poison came back after every restart."""
    signer = Signer(SigningKey.load(key_file), "gw1", CounterStore(None))
    good = sign_json(signer, "mqtt", RelayRecord(DEV, 5, "alarm", int(time.time()), {"level": 170}))
    poison = list(POISON.values())
    with Subscriber(mosquitto.port, "havel/gw1/devices/#") as sub:
        rx = Receiver(receiver_config(tmp_path, key_file, mosquitto.port)).start()
        try:
            assert rx.mqtt is not None and rx.mqtt.subscribed.wait(10)
            for topic in ("alarm", "state", "event", "status"):
                publish_all(mosquitto.port, f"havel/gw1/relay/{topic}", poison)
            publish_all(mosquitto.port, "havel/gw1/relay/alarm", [good, good])  # QoS 1 may deliver twice
            got = sub.wait_for(1, 20)
            n = 4 * len(poison)
            # forged: well-formed, but not signed by gw1; unsigned: an envelope without "sig"
            judged = ("malformed", "forged", "unsigned_status", "unsigned")
            assert wait_until(lambda: sum(rx.core.total(k) for k in judged) == n, 20)
            assert rx.core.total("malformed") >= 3 * len(poison) - 4
        finally:
            rx.stop()
    assert got[0].json()["id"] == f"{DEV}-0-5" and rx.core.total("accepted") == 1
    assert rx.core.total("duplicate") == 1 and rx.core.total("replayed") == 0  # a second delivery, no attack
    assert rx.core.total("error") == 0  # each one was read and judged, none reached the catch-all
    assert rx.core.status == {}  # nothing unsigned became the primary-path state
    # Everything was acknowledged: the same persistent session gets nothing again after a restart.
    rx2 = Receiver(receiver_config(tmp_path, key_file, mosquitto.port)).start()
    try:
        assert rx2.mqtt is not None and rx2.mqtt.subscribed.wait(10)
        time.sleep(1.5)  # what the broker kept for the session would arrive now
        assert sum(rx2.core.total(k) for k in rx2.core.COUNTERS) == 0
    finally:
        rx2.stop()


@pytest.mark.timeout(60)
def test_a_handler_that_raises_does_not_stop_the_receiver_listener(
    tmp_path: Path, key_file: Path, mosquitto: Any
) -> None:
    """Should an exception escape the listener's handler anyway (here: a bug put in on purpose, in the
    core and in its error counting), the message is acknowledged, the error is counted in the health
    output, and the next alarm is handled on the same connection."""
    signer = Signer(SigningKey.load(key_file), "gw1", CounterStore(None))
    rx = Receiver(receiver_config(tmp_path, key_file, mosquitto.port)).start()
    try:
        assert rx.mqtt is not None and rx.mqtt.subscribed.wait(10)
        core = rx.mqtt.core
        handle, count, broken = core.handle_envelope, core.count, threading.Event()

        def explode(*args: Any) -> None:
            core.handle_envelope = handle  # type: ignore[method-assign]
            broken.set()
            raise RuntimeError("a bug in a handler")

        def explode_count(*args: Any) -> None:
            core.count = count  # type: ignore[method-assign]
            raise RuntimeError("a bug in the error counting")

        core.handle_envelope = explode  # type: ignore[method-assign]
        core.count = explode_count  # type: ignore[method-assign]
        connects = rx.mqtt.mqtt.connects
        with Subscriber(mosquitto.port, "havel/gw1/devices/#") as sub:
            publish_all(mosquitto.port, "havel/gw1/relay/alarm", [b"anything"])
            assert broken.wait(10)
            assert wait_until(lambda: rx.health()["mqtt"]["handler_errors"] == 1, 15)
            rec = RelayRecord(DEV, 6, "alarm", int(time.time()), {"level": 171})
            publish_all(mosquitto.port, "havel/gw1/relay/alarm", [sign_json(signer, "mqtt", rec)])
            assert sub.wait_for(1, 20)[0].json()["id"] == f"{DEV}-0-6"
        assert rx.mqtt.mqtt.connects == connects and rx.health()["mqtt"]["connected"]
    finally:
        rx.stop()
    # the broken message was acknowledged: the persistent session does not deliver it again
    rx2 = Receiver(receiver_config(tmp_path, key_file, mosquitto.port)).start()
    try:
        assert rx2.mqtt is not None and rx2.mqtt.subscribed.wait(10)
        time.sleep(1.5)  # what the broker kept for the session would arrive now
        assert sum(rx2.core.total(k) for k in rx2.core.COUNTERS) == 0
    finally:
        rx2.stop()


@pytest.mark.timeout(60)
def test_unsigned_status_never_becomes_the_primary_state(
    tmp_path: Path, key_file: Path, mosquitto: Any
) -> None:
    """The MQTT sink's retained relay/status is unsigned: anyone on the mesh broker can write it."""
    signer = Signer(SigningKey.load(key_file), "gw1", CounterStore(None))
    rx = Receiver(receiver_config(tmp_path, key_file, mosquitto.port)).start()
    try:
        assert rx.mqtt is not None and rx.mqtt.subscribed.wait(10)
        down = sign_body(signer, "mqtt", {"kind": "status", "primary": "down", "at": int(time.time())})
        publish_all(mosquitto.port, "havel/gw1/relay/event", [down])
        assert wait_until(lambda: rx.core.status.get("gw1", {}).get("primary") == "down", 10)
        forged = json.dumps({"state": "online", "primary": "up", "gateway_id": "gw1"}).encode()
        publish_all(mosquitto.port, "havel/gw1/relay/status", [forged])
        assert wait_until(lambda: rx.core.total("unsigned_status") == 1, 10)
        assert rx.core.status["gw1"]["primary"] == "down" and rx.core.status["gw1"]["signed"] is True
        assert rx.core.link_status["gw1"]["state"] == "online"
    finally:
        rx.stop()


# ------------------------------------------------------------------------------ the gateway's listeners


@pytest.fixture
def command_relay(
    tmp_path: Path, key_file: Path, mosquitto: Any
) -> Iterator[tuple[MQTTRelay, EmergencySwitch]]:
    gw_dir = tmp_path / "gw"
    gw_dir.mkdir()
    switch = EmergencySwitch(gw_dir)
    relay = MQTTRelay(
        {"host": "127.0.0.1", "port": mosquitto.port, "tls": False, "emergency_commands": True},
        Signer(SigningKey.load(key_file), "gw1", CounterStore(None)),
        "gw1",
        switch=switch,
        data_dir=gw_dir,
    )
    loop = LoopThread("test-relay")  # the relay's MQTT clients run in an event loop, as in the gateway
    loop.run(relay.start(), 10)
    try:
        assert relay.commands is not None and wait_until(lambda: relay.commands.subscribed, 10)
        yield relay, switch
    finally:
        loop.run(relay.stop(), 10)
        loop.close()


def control_signer(key_file: Path, tmp_path: Path) -> Signer:
    return Signer(SigningKey.load(key_file), "CONTROL", CounterStore(tmp_path / "control-counter"))


@pytest.mark.timeout(60)
def test_emergency_command_listener_survives_poison(
    command_relay: tuple[MQTTRelay, EmergencySwitch], key_file: Path, tmp_path: Path, mosquitto: Any
) -> None:
    relay, switch = command_relay
    assert relay.commands is not None
    topic = "havel/gw1/relay/emergency"
    poison = [p.replace(b'"gw1"', b'"CONTROL"') for p in POISON.values()]
    publish_all(mosquitto.port, topic, poison)
    signer = control_signer(key_file, tmp_path)
    huge = sign_body(signer, "control", {"emergency": "on", "gateway_id": "gw1", "at": 10**400})
    nan = sign_body(signer, "control", {"emergency": "on", "gateway_id": "gw1", "at": float("nan")})
    on = sign_body(signer, "control", cmd("on", time.time()))
    publish_all(mosquitto.port, topic, [huge, nan, on])  # signed, but not a time
    assert wait_until(switch.is_on, 15)
    stats = relay.commands.stats
    n = len(poison) + 2
    # forged: an unknown key; stale: the signed ones without a usable time, on this first start
    assert stats["malformed"] + stats["forged"] + stats["stale"] == n == stats["rejected"]
    assert stats["malformed"] >= n - 5 and stats["error"] == 0 and stats["applied"] == 1
    assert relay.health()["emergency_commands"]["handler_errors"] == 0


def cmd(action: str, at: float, gateway_id: str = "gw1") -> dict[str, Any]:
    return {"emergency": action, "gateway_id": gateway_id, "at": int(at)}


@pytest.mark.timeout(60)
def test_reordered_or_stale_emergency_commands_are_refused(
    command_relay: tuple[MQTTRelay, EmergencySwitch], key_file: Path, tmp_path: Path, mosquitto: Any
) -> None:
    """An older signed "on" delivered after a newer "off" used to switch the emergency back on."""
    relay, switch = command_relay
    assert relay.commands is not None
    signer = control_signer(key_file, tmp_path)
    t = time.time()
    first_on = sign_body(signer, "control", cmd("on", t - 90))
    older_on = sign_body(signer, "control", cmd("on", t - 60))
    newer_off = sign_body(signer, "control", cmd("off", t - 30))
    publish_all(mosquitto.port, "havel/gw1/relay/emergency", [first_on])
    assert wait_until(switch.is_on, 15)
    publish_all(mosquitto.port, "havel/gw1/relay/emergency", [newer_off, older_on])  # the mesh reordered them
    assert wait_until(lambda: relay.commands.stats["reordered"] == 1, 15)  # type: ignore[union-attr]
    assert not switch.is_on() and relay.commands.stats["applied"] == 2
    # The person on duty at the gateway switches on; a command signed before that is stale.
    switch.set(True, "cli")
    stale_off = sign_body(signer, "control", cmd("off", t - 10))
    far_future = sign_body(signer, "control", cmd("off", t + 86400))
    publish_all(mosquitto.port, "havel/gw1/relay/emergency", [stale_off, far_future])
    assert wait_until(lambda: relay.commands.stats["future"] == 1, 15)  # type: ignore[union-attr]
    assert relay.commands.stats["stale"] == 1 and switch.is_on()
    # A fresh command applies, and the refusals were counted for /metrics.
    publish_all(
        mosquitto.port, "havel/gw1/relay/emergency", [sign_body(signer, "control", cmd("off", time.time()))]
    )
    assert wait_until(lambda: not switch.is_on(), 15)
    assert relay.commands.stats["rejected"] == 3


# ------------------------------------------------------------------------------ KISS inputs


def kiss_poison() -> list[bytes]:
    """Byte streams a TNC link may carry: broken escapes, truncated AX.25, huge frames, wrong frames."""
    # from the gateway's callsign, so the receiver reads past the "foreign station" check
    addr = ax25.Address("APZHVL", 0, True).encode(last=False) + ax25.Address("N0CALL", 10).encode(last=True)
    return [
        b"\xc0\x00\x82\xa0\xdb\x41\xc0",  # FESC followed by a plain byte
        b"\xc0\x00\x82\xa0\xb4\xdb\xc0",  # FESC right before the end
        b"\xc0\x00\x82\xa0\xb4\xc0",  # truncated address field
        b"\xc0\x00" + addr[:13] + b"\xc0",  # an address cut short
        b"\xc0\x00" + b"\x82" * 5000 + b"\xc0",  # larger than any frame
        b"\xc0\x00" + addr + b"\x3f\xf0hi\xc0",  # not a UI frame
        b"\xc0\x00" + addr + b"\x03\xcfhi\xc0",  # another layer 3
        b"\xc0\x00" + addr + b"\x03\xf0\xff\xfe\x80\xc0",  # info not ASCII
        b"\xc0\x00" + addr + b"\x03\xf0T#999,999,999,999,999,999,11111111\xc0",
        b"\xc0\x00" + addr + b"\x03\xf0:N0CALL-10:EQNS.nan,inf,1e999,x\xc0",  # an unsigned definition
        b"\xc0\x00" + addr + b"\x03\xf0:" + b"{" * 3000 + b"\xc0",
        b"\xc0\xc0\xc0",  # empty frames
        b"\x00\x01\x02 noise between frames",
        b"\xc0\x0f\x01\x02\xc0",  # a command other than data
    ]


@pytest.mark.timeout(60)
def test_receiver_kiss_listener_survives_poison(tmp_path: Path, key_file: Path, mosquitto: Any) -> None:
    tnc = FakeTNC()
    cfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": mosquitto.port},
            "sender": [{"name": GW_CALL, "key_file": str(key_file), "gateway_id": "gw1"}],
            "kiss": {"port": tnc.port, "callsign": CC_CALL},
        }
    )
    signer = Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None))
    text = sign_line(
        signer,
        "aprs",
        encode_line(RelayRecord(DEV, 9, "alarm", int(time.time()), {"level": 190})),
        context=aprs.pad_addressee(CC_CALL) + ":",
    )
    good = ax25.UIFrame.aprs(GW_CALL, "APZHVL", aprs.Message(CC_CALL, text, "B1").encode())
    rx = Receiver(cfg)
    try:
        with Subscriber(mosquitto.port, "havel/gw1/devices/#") as sub:
            rx.start()
            tnc.accept()
            for chunk in kiss_poison():
                tnc.send(chunk)
            tnc.send(kiss.encode(good.encode()))
            assert sub.wait_for(1, 20)[0].json()["id"] == f"{DEV}-0-9"
        acks = tnc.read(10)  # the ack still goes back over the same connection
        assert [f.info for f in acks] == [f":{GW_CALL:<9}:ackB1".encode()]
        # every frame but the empty ones, the non-data one and the unsigned EQNS (heard, never used)
        assert rx.core.total("malformed") == 11 and rx.core.total("definitions") == 1
        assert rx.core.total("error") == 0 and rx.core.definitions == {}
        assert rx.health()["kiss"]["restarts"] == 0
    finally:
        rx.stop()
        tnc.close()


@pytest.mark.timeout(60)
def test_gateway_aprs_relay_survives_poison_from_its_tnc(tmp_path: Path, key_file: Path) -> None:
    tnc = FakeTNC()
    switch = EmergencySwitch(tmp_path)
    switch.set(True, "test")
    relay = APRSRelay(
        APRSConfig.from_config({"callsign": GW_CALL, "addressee": CC_CALL, "port": tnc.port, "min_gap_s": 0}),
        Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None)),
        switch,
    )
    relay.start()
    try:
        tnc.accept()
        assert relay.offer(RelayRecord(DEV, 10, "alarm", int(time.time()), {"level": 191}))
        sent = tnc.read(10)
        msgno = sent[0].info.decode().rsplit("{", 1)[1]
        for chunk in kiss_poison():
            tnc.send(chunk)
        ack = ax25.UIFrame.aprs(CC_CALL, "APZHVL", aprs.Message(GW_CALL, "", msgno, kind="ack").encode())
        tnc.send(kiss.encode(ack.encode()))
        assert wait_until(lambda: relay.stats["acked"] == 1, 10)
        # broken escapes and the huge frame at the KISS layer; the rest are not acks for us
        assert relay.stats["rx_malformed"] == 3 and relay.stats["rx_other"] == 9
        assert relay.stats["restarts"] == 0 and relay.stats["tnc_connects"] == 1
        # still transmitting on the same connection
        assert relay.offer(RelayRecord(DEV, 11, "alarm", int(time.time()), {"level": 192}))
        assert tnc.read(10)[0].info.startswith(f":{CC_CALL:<9}:HA {DEV}-0-11 ".encode())
    finally:
        relay.stop()
        tnc.close()


@pytest.mark.parametrize(
    "change",
    [
        {"publish": "localhost"},
        {"kiss": ["x"]},
        {"sender": {"name": "gw1"}},
        {"sender": ["gw1"]},
        {
            "sender": [
                {
                    "name": "gw1",
                    "gateway_id": "gw1",
                    "key_file": "k",
                    "telemetry": [{"name": "x", "b": "two"}],
                }
            ]
        },
        {
            "sender": [
                {"name": "gw1", "gateway_id": "gw1", "key_file": "k", "telemetry": [{"name": "x", "b": 0}]}
            ]
        },
        {"sender": [{"name": "gw1", "gateway_id": "gw1", "key_file": "k", "telemetry": [{"b": 2}]}]},
        {
            "sender": [
                {
                    "name": "gw1",
                    "gateway_id": "gw1",
                    "key_file": "k",
                    "telemetry": [{"name": "x", "c": "nan"}],
                }
            ]
        },
    ],
)
def test_receiver_config_poison_is_a_config_error(tmp_path: Path, change: dict[str, Any]) -> None:
    from havel.errors import ConfigError

    SigningKey.generate().save(tmp_path / "k")
    raw: dict[str, Any] = {
        "data_dir": "cc",
        "mqtt": {"port": 1},
        "sender": [{"name": "gw1", "key_file": "k", "gateway_id": "gw1"}],
        **change,
    }
    with pytest.raises(ConfigError):
        ReceiverConfig.from_dict(raw, base=tmp_path)
