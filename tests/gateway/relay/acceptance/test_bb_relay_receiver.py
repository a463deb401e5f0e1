"""Black-box: the crisis-centre receiver (``havel relay receive``), from docs/relay.md only.

The receiver runs as the crisis staff start it. We play the gateway: our own AX.25 frames (built and
signed by our own code from the specs and the documented signature) through a KISS TNC of our own (a TCP
server the receiver connects to), and our own JSON envelopes on a real Mosquitto (the mesh broker). A
second Mosquitto is the crisis centre's local broker, where we read what the staff see.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import relay_bb_kit as k

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto", path="/usr/sbin:/usr/bin:/usr/local/sbin") is None,
    reason="needs mosquitto",
)

GW = "DB0XYZ-10"
CENTRE = "DB0KST-1"
GW_ID = "gw1"
DEV = "70B3D57ED0000001"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def envelope_body(fcnt: int, level: float | str, at: int, dev: str = DEV, device: str = "pegel-1") -> str:
    body = {
        "class": "alarm",
        "data": {"level": level},
        "dev_eui": dev,
        "device": device,
        "epoch": 0,
        "fcnt": fcnt,
        "received_at": at,
        "units": {"level": "cm"},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


@dataclass
class Receiver:
    folder: Path
    local: k.Broker
    mesh: k.Broker
    tnc: k.KissTnc
    config: Path
    proc: k.Proc
    staff: k.Client  # what the crisis staff see (the local broker)
    gateway: k.Client  # our gateway publishing on the mesh broker
    counter: int = 100

    def next_counter(self) -> int:
        self.counter += 1
        return self.counter

    # ------------------------------------------------------------------------------------- APRS side
    def aprs_alarm_info(
        self, fcnt: int, level: int, at: int | None = None, key: bytes = KEY, counter: int | None = None
    ) -> tuple[bytes, int]:
        at = int(time.time()) if at is None else at
        counter = self.next_counter() if counter is None else counter
        line = f"HA {DEV}-0-{fcnt} {k.base36(at)} level={level}"
        sig = k.signature(key, GW, "aprs", counter, f"{CENTRE:<9}:{line}".encode())
        return f":{CENTRE:<9}:{line} {sig}{{{fcnt % 1000}".encode(), counter

    def send_aprs(
        self, info: bytes, src: str = GW, path: tuple[str, ...] = ("WIDE2-1",), **kw: object
    ) -> bytes:
        frame = k.ax25_ui(src, "APZHVL", info, path, **kw)  # type: ignore[arg-type]
        self.tnc.send(frame)
        return frame

    # ------------------------------------------------------------------------------------- MQTT side
    def mqtt_alarm(
        self,
        fcnt: int,
        level: float | str = 170,
        key: bytes = KEY,
        at: int | None = None,
        counter: int | None = None,
    ) -> str:
        body = envelope_body(fcnt, level, int(time.time()) if at is None else at)
        counter = self.next_counter() if counter is None else counter
        env = {
            "v": 1,
            "sender": GW,
            "sig": k.signature(key, GW, "mqtt", counter, body.encode()),
            "body": body,
        }
        return json.dumps(env)

    def publish(self, payload: bytes | str, topic: str = "alarm", retain: bool = False) -> None:
        self.gateway.publish(f"havel/{GW_ID}/relay/{topic}", payload, retain=retain)

    # ------------------------------------------------------------------------------------- what staff see
    def ups(self) -> list[dict[str, object]]:
        return self.staff.json_on(f"/devices/{DEV}/up")

    def wait_up(self, fcnt: int, timeout: float = 30) -> dict[str, object]:
        return self.staff.wait_json(f"/devices/{DEV}/up", lambda m: m.get("fcnt") == fcnt, timeout)

    def not_strict_json(self) -> list[bytes]:
        """What the staff got that is not valid UTF-8 strict JSON (NaN, Infinity, lone surrogates)."""

        def no_constant(name: str) -> None:
            raise ValueError(name)

        bad = []
        for _topic, payload, _ in list(self.staff.messages):
            try:
                text = payload.decode("utf-8")
                json.loads(text, parse_constant=no_constant)
                if re.search(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}", text):  # a surrogate escape
                    json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")
            except ValueError:
                bad.append(payload)
        return bad

    def fcnts(self) -> list[object]:
        return [m.get("fcnt") for m in self.ups()]

    def stop_counts(self) -> dict[str, int]:
        """Stop the receiver; its last line gives the counters by reason."""
        rc = self.proc.stop()
        text = self.proc.text()
        found = re.findall(r"receiver stopped: (.*)", text)
        assert found, text[-3000:]
        counts = {}
        for part in found[-1].split(", "):
            name, _, value = part.rpartition(" ")
            counts[name] = int(value)
        counts["_rc"] = rc if rc is not None else -1
        return counts


def write_config(
    folder: Path, local: k.Broker, mesh: k.Broker, tnc: k.KissTnc, extra_sender: str = "", name: str = GW
) -> Path:
    data = folder / "rxdata"
    data.mkdir(exist_ok=True)
    key_file = k.write_key(folder / "gw1.key", KEY)
    config = folder / "receiver.toml"
    config.write_text(
        f'data_dir = "{data}"\nprefix = "havel"\n'
        f'[publish]\nhost = "127.0.0.1"\nport = {local.port}\n'
        f'[[sender]]\nname = "{name}"\nkey_file = "{key_file}"\ngateway_id = "{GW_ID}"\n{extra_sender}'
        f'[kiss]\nhost = "127.0.0.1"\nport = {tnc.port}\ncallsign = "{CENTRE}"\nack = true\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mesh.port}\ntopic = "havel/+/relay/#"\n'
        'client_id = "krisenstab-bb"\n'
    )
    return config


def start_receiver(rx: Receiver) -> None:
    rx.proc = k.Proc(["relay", "receive", "--config", str(rx.config), "--no-live"], rx.proc.log)
    rx.proc.start()

    def ready() -> bool:
        assert rx.proc.alive(), rx.proc.text()[-3000:]
        return "receiver ready" in rx.proc.text() and rx.tnc.connected() > 0

    k.wait_for(ready, 60, "the receiver to listen on KISS and MQTT")


@pytest.fixture
def rx(tmp_path: Path) -> Iterator[Receiver]:
    yield from make_receiver(tmp_path)


def make_receiver(tmp_path: Path, extra_sender: str = "", name: str = GW) -> Iterator[Receiver]:
    local = k.Broker(tmp_path / "local")
    mesh = k.Broker(tmp_path / "mesh")
    local.start()
    mesh.start()
    tnc = k.KissTnc()
    config = write_config(tmp_path, local, mesh, tnc, extra_sender, name)
    staff = k.Client(local.port, "havel/#")
    gateway = k.Client(mesh.port, "bb/none")
    proc = k.Proc([], tmp_path / "receiver.log")
    r = Receiver(tmp_path, local, mesh, tnc, config, proc, staff, gateway)
    try:
        start_receiver(r)
        yield r
    finally:
        r.proc.stop()
        staff.close()
        gateway.close()
        tnc.close()
        local.stop()
        mesh.stop()


# ------------------------------------------------------------------------------------------------ tests


def test_signed_alarms_are_republished_and_acked(rx: Receiver) -> None:
    now = int(time.time())
    info, _ = rx.aprs_alarm_info(fcnt=7, level=163, at=now)
    frame = rx.send_aprs(info)
    up = rx.wait_up(7)
    assert up["id"] == f"{DEV}-0-7" and up["dev_eui"] == DEV and up["session_epoch"] == 0
    assert up["buffered"] is False and up["relayed"] is True and up["priority"] == "alarm"
    assert up["data"] == {"level": 163} and up["via"] == "aprs"
    assert up["device"] is None and up["units"] == {}, "APRS carries neither device name nor units"

    # The ack: an AX.25 UI frame from the receiver's own callsign, "ack" + the message id, to the gateway.
    def ack() -> k.Ax25Frame | None:
        for _, _, raw in rx.tnc.snapshot():
            f = k.parse_ax25(raw)
            if f.info.startswith(b":"):
                return f
        return None

    f = k.wait_for(ack, 30, "the ack frame")
    k.check_aprs_ui(f, src=CENTRE, dest=f.dest, path=f.path)
    addressee, text, msg_id = k.parse_message(f.text)
    assert addressee == GW and text == "ack7" and msg_id is None

    # The same alarm over MQTT (a copy over another path) and a digipeater's copy: no second message.
    rx.publish(rx.mqtt_alarm(7, level=163, at=now))
    rx.send_aprs(info, repeated=(True,))
    assert frame != k.ax25_ui(GW, "APZHVL", info, ("WIDE2-1",), repeated=(True,))

    # A signed MQTT alarm of a new reading: republished with the device name and units.
    rx.publish(rx.mqtt_alarm(8, level=170))
    up8 = rx.wait_up(8)
    assert up8["via"] == "mqtt" and up8["device"] == "pegel-1" and up8["units"] == {"level": "cm"}
    assert up8["data"] == {"level": 170}

    # A signed outage report over MQTT: shown as the primary-path state, signed.
    body = json.dumps({"kind": "status", "primary": "down", "at": now, "reason": "no ack"})
    c = rx.next_counter()
    rx.publish(
        json.dumps(
            {"v": 1, "sender": GW, "sig": k.signature(KEY, GW, "mqtt", c, body.encode()), "body": body}
        ),
        topic="event",
    )
    primary = rx.staff.wait_json("/relay/primary")
    assert primary == {"gateway_id": GW_ID, "primary": "down", "at": now, "via": "mqtt", "signed": True} or (
        primary["primary"] == "down" and primary["signed"] is True and primary["gateway_id"] == GW_ID
    ), primary

    # Signed telemetry definitions then a signed report over APRS: scaled by the signed EQNS.
    defs = ["PARM.Pegel1", "UNIT.cm", "EQNS.0,2,0,0,1,0,0,1,0,0,1,0,0,1,0", "BITS.11111111,HV"]
    sig = k.signature(KEY, GW, "aprs", rx.next_counter(), "\n".join(defs).encode())
    for i, text in enumerate(defs):
        payload = f"{text} {sig}" if i == 3 else text
        rx.send_aprs(f":{GW:<9}:{payload}".encode())
    report = "T#001,082,000,000,000,000,00000000"
    rx.send_aprs(f"{report} {k.signature(KEY, GW, 'aprs', rx.next_counter(), report.encode())}".encode())
    tele = rx.staff.wait_json("/relay/telemetry")
    assert tele["definitions"] == "signed" and tele["values"].get("Pegel1") == 164, tele
    assert tele["units"].get("Pegel1") == "cm" and tele["via"] == "aprs" and tele["gateway_id"] == GW_ID

    # Make sure the listeners saw everything, then nothing was republished twice.
    rx.publish(rx.mqtt_alarm(9))
    rx.wait_up(9)
    rx.send_aprs(rx.aprs_alarm_info(fcnt=10, level=171)[0])
    rx.wait_up(10)
    assert sorted(rx.fcnts()) == [7, 8, 9, 10], rx.fcnts()
    counts = rx.stop_counts()
    assert counts["accepted"] >= 4 and counts["forged"] == 0 and counts["replayed"] == 0, counts
    assert counts["duplicate"] + counts["digipeated"] >= 2, counts


def test_forged_replayed_unsigned_and_stale_never_reach_the_staff(rx: Receiver) -> None:
    now = int(time.time())
    # A fresh receiver (no counter state): a recording of 7 hours ago, and a report without a time of
    # its own, are stale until a current message of the sender was accepted.
    rx.send_aprs(rx.aprs_alarm_info(fcnt=6, level=200, at=now - 7 * 3600)[0])
    report = "T#001,082,000,000,000,000,00000000"
    rx.send_aprs(f"{report} {k.signature(KEY, GW, 'aprs', rx.next_counter(), report.encode())}".encode())
    rx.publish(rx.mqtt_alarm(15, level=200, at=now - 7 * 3600))
    # (the listeners run side by side: let all three be refused before a current message is accepted)
    k.wait_for(lambda: rx.proc.text().count("REJECTED stale") >= 3, 30, "three stale rejections in the log")
    rx.send_aprs(rx.aprs_alarm_info(fcnt=1, level=160)[0])
    rx.wait_up(1)
    accepted_counter = rx.counter
    rx.publish(rx.mqtt_alarm(2))
    rx.wait_up(2)
    accepted_mqtt_counter = rx.counter

    # APRS: another key; an unknown station's frame signed with the right key; a replayed counter;
    # no signature at all; a time of 7 hours ago on a receiver without counter state; a rewritten level.
    rx.send_aprs(rx.aprs_alarm_info(fcnt=22, level=200, key=OTHER_KEY)[0])
    rx.send_aprs(rx.aprs_alarm_info(fcnt=3, level=200)[0], src="DB0EVL-1")
    rx.send_aprs(rx.aprs_alarm_info(fcnt=4, level=200, counter=accepted_counter)[0])
    rx.send_aprs(f":{CENTRE:<9}:HA {DEV}-0-5 {k.base36(now)} level=200{{5".encode())
    tampered = rx.aprs_alarm_info(fcnt=11, level=163)[0].replace(b"level=163", b"level=999")
    rx.send_aprs(tampered)
    # Unsigned telemetry definitions must never rescale readings.
    for text in ("PARM.Pegel1", "UNIT.cm", "EQNS.0,100,0,0,1,0,0,1,0,0,1,0,0,1,0", "BITS.11111111,HV"):
        rx.send_aprs(f":{GW:<9}:{text}".encode())

    # MQTT: another key; a replayed counter; no sig; a forged sender; stale; an unsigned status report,
    # the sink's unsigned retained status, and a CONTROL (emergency command) envelope sent to the receiver.
    rx.publish(rx.mqtt_alarm(12, level=200, key=OTHER_KEY))
    rx.publish(rx.mqtt_alarm(13, level=200, counter=accepted_mqtt_counter))
    body = envelope_body(14, 200, now)
    rx.publish(json.dumps({"v": 1, "sender": GW, "body": body}))
    rx.publish(
        json.dumps(
            {
                "v": 1,
                "sender": "DB0EVL-1",
                "sig": k.signature(KEY, "DB0EVL-1", "mqtt", 500, body.encode()),
                "body": body,
            }
        )
    )
    rx.publish(
        json.dumps(
            {"v": 1, "sender": GW, "body": json.dumps({"kind": "status", "primary": "up", "at": now})}
        ),
        topic="event",
    )
    rx.publish(json.dumps({"state": "offline", "gateway_id": GW_ID}), topic="status", retain=True)
    cmd = json.dumps({"at": now, "emergency": "off", "gateway_id": GW_ID})
    rx.publish(
        json.dumps(
            {
                "v": 1,
                "sender": "CONTROL",
                "sig": k.signature(KEY, "CONTROL", "control", 900, cmd.encode()),
                "body": cmd,
            }
        ),
        topic="emergency",
    )

    # Sentinels: a good alarm on each listener after the bad ones; listeners work in order.
    rx.send_aprs(rx.aprs_alarm_info(fcnt=20, level=170)[0])
    rx.publish(rx.mqtt_alarm(21))
    rx.wait_up(20)
    rx.wait_up(21)
    assert rx.staff.json_on("/relay/telemetry") == [], "a report refused as stale was shown"
    report = "T#002,082,000,000,000,000,00000000"
    rx.send_aprs(f"{report} {k.signature(KEY, GW, 'aprs', rx.next_counter(), report.encode())}".encode())
    tele = rx.staff.wait_json("/relay/telemetry")
    assert tele["definitions"] == "none", f"unsigned definitions were used: {tele}"
    assert (
        tele["values"] == {"A1": 82, "A2": 0, "A3": 0, "A4": 0, "A5": 0} or tele["values"].get("A1") == 82
    ), tele

    assert sorted(rx.fcnts()) == [1, 2, 20, 21], f"the staff saw {rx.ups()}"
    assert all(m["data"] != {"level": 999} for m in rx.ups())
    assert rx.staff.json_on("/relay/primary") == [], "an unsigned status changed the primary-path state"
    counts = rx.stop_counts()
    assert counts["forged"] >= 4, counts
    assert counts["replayed"] >= 2, counts
    assert counts["stale"] >= 2, counts
    assert counts["unsigned_status"] >= 1, counts
    assert counts["definitions"] >= 4, counts


def test_a_restarted_receiver_refuses_a_recording(rx: Receiver) -> None:
    info, _ = rx.aprs_alarm_info(fcnt=30, level=165)
    rx.send_aprs(info)
    envelope = rx.mqtt_alarm(31)
    rx.publish(envelope)
    rx.wait_up(30)
    rx.wait_up(31)
    rx.stop_counts()
    rx.staff.messages.clear()
    start_receiver(rx)
    # The recording played back: the same frame and envelope, then a new alarm as the sentinel.
    rx.send_aprs(info)
    rx.publish(envelope)
    rx.send_aprs(rx.aprs_alarm_info(fcnt=32, level=166)[0])
    rx.publish(rx.mqtt_alarm(33))
    rx.wait_up(32)
    rx.wait_up(33)
    assert sorted(rx.fcnts()) == [32, 33], rx.ups()
    counts = rx.stop_counts()
    assert counts["replayed"] + counts["duplicate"] >= 2, counts


def test_poison_never_kills_a_listener(rx: Receiver) -> None:
    now = int(time.time())
    rx.send_aprs(rx.aprs_alarm_info(fcnt=40, level=160)[0])
    rx.publish(rx.mqtt_alarm(41))
    rx.wait_up(40)
    rx.wait_up(41)

    # KISS / AX.25 poison.
    good = rx.aprs_alarm_info(fcnt=42, level=161)[0]
    frame = k.ax25_ui(GW, "APZHVL", good, ("WIDE2-1",))
    kiss_poison = [
        b"\xc0\x00" + frame[:20] + b"\xdb\x41" + frame[20:] + b"\xc0",  # a broken escape inside a frame
        b"\xc0\x00" + frame[:30] + b"\xdb\xc0",  # an escape right before the end
        b"\xc0\x00\x82\xa0\xb4\xc0",  # truncated AX.25 (3 bytes)
        b"\xc0\x00" + frame[:14] + b"\xc0",  # addresses without control/PID
        b"\xc0\x00" + bytes([0x82, 0xA0, 0xB4, 0xA0, 0x8E, 0xAE, 0x60]) * 12 + b"\x03\xf0x\xc0",  # no end bit
        b"\xc0\x00" + frame[:16] + ":DB0KST-1 :HA \udcff\ud800".encode("utf-8", "surrogatepass") + b"\xc0",
        b"\xc0\x00" + frame[:16] + b"\xff\xfe\x00\x80" * 100 + b"\xc0",  # not ASCII
        b"\xc0\x01\x32\xc0",  # a KISS command frame (TXDELAY), not data
        b"\xc0\x00" + k.kiss_escape(frame[:16] + b"A" * 70_000) + b"\xc0",  # huge frame
        b"\x55" * 200_000,  # a long stream without any FEND
    ]
    for chunk in kiss_poison:
        rx.tnc.send_raw(chunk)

    # MQTT poison.
    fcnt = iter(range(70, 100))

    def signed(body: str) -> str:
        body = body.replace('"fcnt":50', f'"fcnt":{next(fcnt)}')
        c = rx.next_counter()
        return json.dumps(
            {"v": 1, "sender": GW, "sig": k.signature(KEY, GW, "mqtt", c, body.encode()), "body": body}
        )

    base = envelope_body(50, 170, now)
    mqtt_poison: list[bytes | str] = [
        b"\xff\xfe\xfd not utf-8",
        "not json at all",
        "[" * 100_000 + "]" * 100_000,  # deep nesting
        '{"v":1,"sender":"' + GW + '","sig":"1.AAAAAAAAAAA","body":"' + "x" * 2_000_000 + '"}',  # huge
        '{"v":1,"sender":"' + GW + '","sig":NaN,"body":NaN}',
        '{"v":1,"sender":"\\ud800","sig":"1.AAAAAAAAAAA","body":"{}"}',  # a lone surrogate escape
        '{"v":1,"sender":"' + GW + '","sig":"1.AAAAAAAAAAA","body":"\\udc80"}',
        "[]",
        '{"v": 1e999, "sender": 5, "sig": [], "body": {}}',
        signed(base.replace('"fcnt":50', '"fcnt":"fifty"')),
        signed(base.replace('"fcnt":50', '"fcnt":' + "9" * 5000)),
        signed(base.replace('"data":{"level":170}', '"data":' + '{"a":' * 5000 + "1" + "}" * 5000)),
        signed("[" * 50_000 + "]" * 50_000),
        signed(base.replace('"dev_eui":"' + DEV + '"', '"dev_eui":"../../#"')),
    ]
    for payload in mqtt_poison:
        rx.publish(payload)

    # Sentinels: a signed alarm on each listener after the poison is still republished.
    rx.send_aprs(rx.aprs_alarm_info(fcnt=60, level=172)[0])
    rx.publish(rx.mqtt_alarm(61))
    rx.wait_up(60, timeout=60)
    rx.wait_up(61, timeout=60)
    assert rx.proc.alive()
    bad = rx.not_strict_json()
    assert bad == [], "the staff got messages that are not strict JSON:\n" + "\n".join(map(repr, bad))
    assert sorted(rx.fcnts()) == [40, 41, 60, 61], rx.ups()
    counts = rx.stop_counts()
    assert counts["_rc"] == 0, rx.proc.text()[-3000:]
    assert counts["malformed"] + counts["oversize"] >= 15, counts
    assert counts.get("error", 0) == 0, counts
    assert "restart" not in rx.proc.text().lower(), rx.proc.text()[-3000:]


@pytest.fixture
def rx_scaled(tmp_path: Path) -> Iterator[Receiver]:
    yield from make_receiver(tmp_path, 'telemetry = [{name = "Pegel1", unit = "cm", b = 2}]\n')


def test_telemetry_scaled_by_the_receiver_config(rx_scaled: Receiver) -> None:
    rx = rx_scaled
    rx.send_aprs(rx.aprs_alarm_info(fcnt=1, level=160)[0])  # a current message first (fresh counter state)
    rx.wait_up(1)
    report = "T#001,082,000,000,000,000,00000000"
    rx.send_aprs(f"{report} {k.signature(KEY, GW, 'aprs', rx.next_counter(), report.encode())}".encode())
    tele = rx.staff.wait_json("/relay/telemetry")
    assert tele["definitions"] == "config" and tele["values"].get("Pegel1") == 164, tele
    assert tele["units"].get("Pegel1") == "cm" and tele["gateway_id"] == GW_ID and tele["station"] == GW, tele
    assert tele["raw"] is not None and tele["via"] == "aprs", tele
    # An unsigned EQNS heard on the channel changes nothing.
    rx.send_aprs(f":{GW:<9}:EQNS.0,50,0,0,1,0,0,1,0,0,1,0,0,1,0".encode())
    report = "T#002,083,000,000,000,000,00000000"
    rx.send_aprs(f"{report} {k.signature(KEY, GW, 'aprs', rx.next_counter(), report.encode())}".encode())
    tele = rx.staff.wait_json("/relay/telemetry", lambda m: m.get("seq") in (2, "002"))
    assert tele["values"].get("Pegel1") == 166 and tele["definitions"] == "config", tele
    counts = rx.stop_counts()
    assert counts["telemetry"] == 2 and counts["definitions"] >= 1, counts


def test_listeners_come_back_after_the_tnc_and_the_mesh_broker_went_away(rx: Receiver) -> None:
    rx.send_aprs(rx.aprs_alarm_info(fcnt=1, level=160)[0])
    rx.publish(rx.mqtt_alarm(2))
    rx.wait_up(1)
    rx.wait_up(2)

    # The TNC drops the connection: the receiver connects again and hears the next alarm.
    rx.tnc.drop_clients()
    k.wait_for(lambda: rx.tnc.connected() > 0, 60, "the receiver to reconnect to the TNC")
    rx.send_aprs(rx.aprs_alarm_info(fcnt=3, level=161)[0])
    rx.wait_up(3)

    # The mesh broker restarts (without persistence: every session is gone): the receiver subscribes
    # again. Alarms are sent until one gets through (one every 2 s, each a new reading).
    rx.mesh.stop()
    rx.mesh.start()
    k.wait_for(rx.gateway.client.is_connected, 60, "our gateway client to reconnect")
    fcnt = 10

    def through() -> bool:
        nonlocal fcnt
        fcnt += 1
        rx.publish(rx.mqtt_alarm(fcnt))
        time.sleep(2)
        return any(isinstance(f, int) and f > 10 for f in rx.fcnts())

    k.wait_for(through, 90, "an alarm over the restarted mesh broker", step=0)
    assert rx.proc.alive()
    counts = rx.stop_counts()
    assert counts["_rc"] == 0 and counts["error"] == 0, counts


def test_an_alarm_accepted_while_the_staff_broker_is_down_arrives_later(rx: Receiver) -> None:
    """The docs do not say it; assumed: an alarm accepted (and acked, so the gateway stops resending it) while
    the crisis centre's own broker is down reaches the staff once the broker is back."""
    rx.send_aprs(rx.aprs_alarm_info(fcnt=1, level=160)[0])
    rx.wait_up(1)
    rx.local.stop()
    rx.send_aprs(rx.aprs_alarm_info(fcnt=2, level=180)[0])
    rx.publish(rx.mqtt_alarm(3))
    k.wait_for(lambda: rx.proc.text().count("ALARM ") >= 3, 30, "the receiver to accept both")
    acks = [k.parse_ax25(r).text for _, _, r in rx.tnc.snapshot()]
    rx.local.start()
    k.wait_for(rx.staff.client.is_connected, 60, "the staff client to reconnect")
    time.sleep(1)
    k.wait_for(lambda: {2, 3} <= set(rx.fcnts()), 60, f"alarms 2 and 3 for the staff (acks sent: {acks})")


@pytest.fixture
def rx_ssid0(tmp_path: Path) -> Iterator[Receiver]:
    yield from make_receiver(tmp_path, name="db0xyz-0")


def test_a_sender_configured_as_lower_case_ssid_0_matches_its_frames(rx_ssid0: Receiver) -> None:
    rx = rx_ssid0
    line = f"HA {DEV}-0-5 {k.base36(int(time.time()))} level=163"
    sig = k.signature(KEY, "DB0XYZ", "aprs", 7, f"{CENTRE:<9}:{line}".encode())
    rx.send_aprs(f":{CENTRE:<9}:{line} {sig}{{5".encode(), src="DB0XYZ")
    up = rx.wait_up(5)
    assert up["via"] == "aprs" and up["data"] == {"level": 163}
    body = envelope_body(6, 170, int(time.time()))
    env = {
        "v": 1,
        "sender": "DB0XYZ",
        "sig": k.signature(KEY, "DB0XYZ", "mqtt", 8, body.encode()),
        "body": body,
    }
    rx.publish(json.dumps(env))
    rx.wait_up(6)


def _status_envelope(rx: Receiver, primary: str, at: int) -> str:
    body = json.dumps({"kind": "status", "primary": primary, "at": at, "reason": "test"})
    c = rx.next_counter()
    return json.dumps(
        {"v": 1, "sender": GW, "sig": k.signature(KEY, GW, "mqtt", c, body.encode()), "body": body}
    )


def test_primary_state_state_records_and_the_senders_own_gateway_id(rx: Receiver) -> None:
    now = int(time.time())
    rx.publish(_status_envelope(rx, "down", now), topic="event")
    k.wait_for(lambda: rx.staff.json_on("/relay/primary"), 30, "the signed outage report")
    # An older report (by its at) delivered later does not replace the one shown.
    rx.publish(_status_envelope(rx, "up", now - 100), topic="event")
    # The right sender on the topic of another gateway: shown under the sender's own gateway id.
    rx.gateway.publish("havel/evil/relay/alarm", rx.mqtt_alarm(5))
    # A state record keeps its class.
    body = envelope_body(6, 120, now).replace('"class":"alarm"', '"class":"state"')
    c = rx.next_counter()
    state = {"v": 1, "sender": GW, "sig": k.signature(KEY, GW, "mqtt", c, body.encode()), "body": body}
    rx.publish(json.dumps(state), topic="state")
    # A frame of another station on the channel is foreign.
    rx.send_aprs(b">just a status", src="DL1ABC-7")
    rx.send_aprs(rx.aprs_alarm_info(fcnt=9, level=170)[0])
    rx.publish(rx.mqtt_alarm(10))
    rx.wait_up(9)
    rx.wait_up(10)
    shown = rx.staff.json_on("/relay/primary")
    assert [m["primary"] for m in shown] == ["down"] and shown[0]["signed"] is True, shown
    assert {t.split("/")[1] for t, _, _ in rx.staff.messages} == {GW_ID}, rx.staff.messages
    assert {m["fcnt"]: m["priority"] for m in rx.ups()} == {5: "alarm", 6: "state", 9: "alarm", 10: "alarm"}
    counts = rx.stop_counts()
    assert counts["foreign"] == 1 and counts["status"] == 2, counts


def test_counter_state_survives_a_damaged_copy_and_a_lost_state_refuses_old_recordings(rx: Receiver) -> None:
    data = rx.folder / "rxdata"
    recent, _ = rx.aprs_alarm_info(fcnt=1, level=160)
    rx.send_aprs(recent)
    rx.wait_up(1)
    old, _ = rx.aprs_alarm_info(fcnt=2, level=161, at=int(time.time()) - 7 * 3600)
    rx.send_aprs(old)  # accepted: the counter state is known, the counter is new
    rx.wait_up(2)
    rx.stop_counts()
    assert (data / "receiver-counters.json").exists() and (data / "receiver-counters.json.1").exists()

    # One copy damaged (a power cut in the middle of a write): set aside, the other copy is used.
    (data / "receiver-counters.json").write_bytes(b'{"DB0XYZ-10": {"aprs": 1')
    rx.staff.messages.clear()
    start_receiver(rx)
    rx.send_aprs(recent)
    rx.send_aprs(old)
    rx.send_aprs(rx.aprs_alarm_info(fcnt=3, level=162)[0])
    rx.wait_up(3)
    assert sorted(rx.fcnts()) == [3], rx.ups()
    counts = rx.stop_counts()
    assert counts["replayed"] == 2, counts
    assert list(data.glob("receiver-counters.json.damaged-*")), sorted(p.name for p in data.iterdir())

    # Both copies lost: a recording of 7 hours ago is stale; a current message is accepted again.
    for name in ("receiver-counters.json", "receiver-counters.json.1"):
        (data / name).write_bytes(b"\x00" * 10)
    rx.staff.messages.clear()
    start_receiver(rx)
    rx.send_aprs(old)
    k.wait_for(lambda: "REJECTED stale" in rx.proc.text().rpartition("receiver ready")[2], 30, "old refused")
    rx.send_aprs(rx.aprs_alarm_info(fcnt=4, level=163)[0])
    rx.wait_up(4)
    assert 2 not in rx.fcnts(), rx.ups()
    counts = rx.stop_counts()
    assert counts["stale"] >= 1, counts


def test_only_accepted_messages_are_acked(rx: Receiver) -> None:
    """The docs do not say it; assumed: an ack is a transmission of the crisis centre's station, so what is
    refused (forged, unsigned, a recording played back) is not acked."""
    recorded, _ = rx.aprs_alarm_info(fcnt=1, level=160)
    rx.send_aprs(recorded)
    rx.wait_up(1)
    k.wait_for(lambda: len(rx.tnc.snapshot()) >= 1, 30, "the first ack")
    rx.send_aprs(rx.aprs_alarm_info(fcnt=2, level=200, key=OTHER_KEY)[0])
    rx.send_aprs(f":{CENTRE:<9}:HA {DEV}-0-3 {k.base36(int(time.time()))} level=200{{3".encode())
    rx.send_aprs(recorded, path=())  # played back, heard directly this time (not a digipeater copy)
    rx.send_aprs(rx.aprs_alarm_info(fcnt=5, level=161)[0])
    rx.wait_up(5)
    k.wait_for(lambda: len(rx.tnc.snapshot()) >= 2, 30, "the sentinel's ack")
    time.sleep(1)
    acks = [k.parse_ax25(r).text for _, _, r in rx.tnc.snapshot()]
    assert sorted(acks) == sorted([f":{GW:<9}:ack1", f":{GW:<9}:ack5"]), acks


def test_a_state_line_without_message_id_is_republished_and_not_acked(rx: Receiver) -> None:
    line = f"HS {DEV}-0-11 {k.base36(int(time.time()))} level=120"
    sig = k.signature(KEY, GW, "aprs", rx.next_counter(), f"{CENTRE:<9}:{line}".encode())
    rx.send_aprs(f":{CENTRE:<9}:{line} {sig}".encode())
    up = rx.wait_up(11)
    assert up["priority"] == "state" and up["data"] == {"level": 120} and up["via"] == "aprs", up
    rx.send_aprs(rx.aprs_alarm_info(fcnt=12, level=170)[0])
    rx.wait_up(12)
    k.wait_for(lambda: rx.tnc.snapshot(), 30, "the alarm's ack")
    acks = [k.parse_ax25(r).text for _, _, r in rx.tnc.snapshot()]
    assert acks == [f":{GW:<9}:ack12"], acks


def test_a_device_name_beyond_ascii_is_signed_as_utf8_and_shown_as_it_is(rx: Receiver) -> None:
    now = int(time.time())
    for fcnt, ascii_only in ((13, True), (14, False)):
        body = envelope_body(fcnt, 170, now, device="Pegel Brücke ✓")
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only)
        c = rx.next_counter()
        env = {
            "v": 1,
            "sender": GW,
            "sig": k.signature(KEY, GW, "mqtt", c, body.encode("utf-8")),
            "body": body,
        }
        rx.publish(json.dumps(env, ensure_ascii=ascii_only).encode("utf-8"))
    for fcnt in (13, 14):
        assert rx.wait_up(fcnt)["device"] == "Pegel Brücke ✓"


def test_a_digipeater_copy_heard_alone_is_accepted(rx: Receiver) -> None:
    """Only a copy of a frame already accepted is dropped as digipeated: when the direct copy was not
    heard, the digipeater's copy (has-been-repeated bit set) is the alarm."""
    info, _ = rx.aprs_alarm_info(fcnt=15, level=175)
    rx.send_aprs(info, repeated=(True,))
    up = rx.wait_up(15)
    assert up["data"] == {"level": 175} and up["via"] == "aprs"
    rx.send_aprs(info)  # the direct copy, late
    rx.send_aprs(rx.aprs_alarm_info(fcnt=16, level=176)[0])
    rx.wait_up(16)
    assert sorted(rx.fcnts()) == [15, 16], rx.ups()


def _signed(rx: Receiver, body: str) -> str:
    c = rx.next_counter()
    return json.dumps(
        {"v": 1, "sender": GW, "sig": k.signature(KEY, GW, "mqtt", c, body.encode()), "body": body}
    )


def test_signed_nan_and_infinity_are_malformed_never_republished(rx: Receiver) -> None:
    """docs/relay.md: a message it cannot read (not JSON, ... wrong types) is counted under its reason and
    dropped. NaN/Infinity are not JSON (RFC 8259): republished as the bare tokens NaN and Infinity they
    would break JSON.parse and other strict parsers of the crisis centre's tools."""
    now = int(time.time())
    for n, fields in enumerate(("level=NaN", "level=Infinity", "level=1e999")):
        line = f"HA {DEV}-0-{43 + n} {k.base36(now)} {fields}"
        sig = k.signature(KEY, GW, "aprs", rx.next_counter(), f"{CENTRE:<9}:{line}".encode())
        rx.send_aprs(f":{CENTRE:<9}:{line} {sig}{{P{n}".encode())
    for n, value in enumerate(("NaN", "Infinity", "1e999")):
        body = envelope_body(70 + n, 170, now).replace('"level":170', f'"level":{value}')
        rx.publish(_signed(rx, body))
    rx.send_aprs(rx.aprs_alarm_info(fcnt=60, level=172)[0])
    rx.publish(rx.mqtt_alarm(61))
    rx.wait_up(60)
    rx.wait_up(61)
    bad = rx.not_strict_json()
    assert bad == [], "the staff got messages that are not strict JSON:\n" + "\n".join(map(repr, bad))
    assert sorted(rx.fcnts()) == [60, 61], rx.ups()
    counts = rx.stop_counts()
    assert counts["malformed"] == 6 and counts["error"] == 0, counts


def test_a_signed_lone_surrogate_is_malformed(rx: Receiver) -> None:
    """docs/relay.md: malformed includes "not Unicode text": also the JSON escape of a lone surrogate
    (\\ud800) inside a signed body."""
    now = int(time.time())
    body = envelope_body(73, 170, now).replace('"device":"pegel-1"', '"device":"\\ud800"')
    rx.publish(_signed(rx, body))
    rx.publish(rx.mqtt_alarm(61))
    rx.wait_up(61)
    assert 73 not in rx.fcnts(), rx.ups()
    bad = rx.not_strict_json()
    assert bad == [], "the staff got text that is not Unicode:\n" + "\n".join(map(repr, bad))
    counts = rx.stop_counts()
    assert counts["malformed"] == 1 and counts["error"] == 0, counts


def test_an_infinite_fcnt_is_malformed_not_an_internal_error(rx: Receiver) -> None:
    """docs/relay.md: wrong types are counted as malformed: "fcnt": 1e999 as well (no traceback)."""
    now = int(time.time())
    body = envelope_body(50, 170, now).replace('"fcnt":50', '"fcnt":1e999')
    rx.publish(_signed(rx, body))
    rx.publish(rx.mqtt_alarm(61))
    rx.wait_up(61)
    counts = rx.stop_counts()
    assert counts["error"] == 0 and counts["malformed"] >= 1, counts
    assert "Traceback" not in rx.proc.text(), rx.proc.text()[-2000:]


def test_received_at_has_milliseconds(rx: Receiver) -> None:
    """docs/relay.md: the receiver publishes 'the gateway's json scheme (see docs/mqtt.md)'; docs/mqtt.md:
    `received_at` is RFC 3339 UTC with milliseconds (2026-11-26T09:00:00.123Z)."""
    rx.publish(rx.mqtt_alarm(8))
    up = rx.wait_up(8)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(up["received_at"])), up["received_at"]
    rx.send_aprs(rx.aprs_alarm_info(fcnt=9, level=172)[0])
    up = rx.wait_up(9)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(up["received_at"])), up["received_at"]


def test_numbers_out_of_range_are_malformed(rx: Receiver) -> None:
    """docs/mqtt.md: the id is <DevEUI>-<SessionEpoch>-<FCnt32>, FCnt32 the full 32-bit frame counter.
    A signed body with "fcnt": -5 or 2**40 is refused as malformed, as "epoch": -1 is; so is a line whose
    FCnt has ten digits beyond 2**32-1."""
    now = int(time.time())
    for fcnt in (-5, 2**40):
        rx.publish(_signed(rx, envelope_body(fcnt, 170, now)))
    rx.publish(_signed(rx, envelope_body(7, 170, now).replace('"epoch":0', '"epoch":-1')))
    line = f"HA {DEV}-0-9999999999 {k.base36(now)} level=170"
    sig = k.signature(KEY, GW, "aprs", rx.next_counter(), f"{CENTRE:<9}:{line}".encode())
    rx.send_aprs(f":{CENTRE:<9}:{line} {sig}{{R1".encode())
    rx.send_aprs(rx.aprs_alarm_info(fcnt=60, level=172)[0])
    rx.publish(rx.mqtt_alarm(61))
    rx.wait_up(60)
    rx.wait_up(61)
    assert sorted(rx.fcnts()) == [60, 61], [m["id"] for m in rx.ups()]
    counts = rx.stop_counts()
    assert counts["malformed"] == 4 and counts["error"] == 0, counts


def test_a_received_at_out_of_range_is_malformed_and_counted_once(rx: Receiver) -> None:
    """docs/relay.md: a message it cannot read (wrong types ...) is counted under its reason (malformed):
    a received_at of 10**15, 2**63 or -10**12 too, once each (not as error and accepted besides)."""
    rx.send_aprs(rx.aprs_alarm_info(fcnt=1, level=160)[0])
    rx.wait_up(1)
    for n, at in enumerate((10**15, 2**63, -(10**12))):
        body = envelope_body(10 + n, 170, 0).replace('"received_at":0', f'"received_at":{at}')
        rx.publish(_signed(rx, body))
    rx.publish(rx.mqtt_alarm(61))
    rx.wait_up(61)
    counts = rx.stop_counts()
    assert counts["error"] == 0 and counts["malformed"] == 3 and counts["accepted"] == 2, counts
    assert "Traceback" not in rx.proc.text(), rx.proc.text()[-2000:]


def test_unsigned_envelopes_and_the_senders_beacon_are_counted_by_what_they_are(rx: Receiver) -> None:
    """docs/relay.md: an envelope without a signature is counted `unsigned` (not malformed); the
    configured station's own position beacon is `foreign` (not ours, not an error)."""
    now = int(time.time())
    rx.publish(json.dumps({"v": 1, "sender": GW, "body": envelope_body(14, 200, now)}))
    rx.send_aprs(b"!5224.00N/01303.00E#Havel relay DB0XYZ")  # from the configured sender GW
    rx.send_aprs(rx.aprs_alarm_info(fcnt=60, level=172)[0])
    rx.publish(rx.mqtt_alarm(61))
    rx.wait_up(60)
    rx.wait_up(61)
    counts = rx.stop_counts()
    assert counts["unsigned"] == 1 and counts["foreign"] == 1 and counts["malformed"] == 0, counts


def test_a_status_report_stamped_far_ahead_is_not_shown_and_freezes_nothing(rx: Receiver) -> None:
    """docs/relay.md: status reports take the limit of commands: stamped more than 600 s ahead, refused
    (`future`); a later, correctly stamped report is shown."""
    now = int(time.time())
    rx.publish(_status_envelope(rx, "down", 10**15), topic="event")
    rx.publish(_status_envelope(rx, "up", now), topic="event")
    shown = rx.staff.wait_json("/relay/primary", lambda m: True, 30)
    assert shown["primary"] == "up" and shown["at"] == now, shown
    rx.publish(_status_envelope(rx, "down", now + 5), topic="event")
    rx.staff.wait_json("/relay/primary", lambda m: m.get("primary") == "down", 30)
    assert [m["primary"] for m in rx.staff.json_on("/relay/primary")] == ["up", "down"]
    counts = rx.stop_counts()
    assert counts["future"] == 1 and counts["status"] == 2, counts
