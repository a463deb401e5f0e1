"""Black-box: what the real gateway daemon puts on the air when its platform broker is gone.

Written from docs/relay.md, the AX.25 2.2 and APRS 1.0.1 specifications only. The daemon runs as an
operator starts it (``havel gateway run``) with a ``[relay]`` section whose APRS path points at a KISS TNC
of our own (a TCP server in this test); its primary sink's Mosquitto is stopped; the emergency is declared
with ``havel relay emergency on``; uplinks are LoRaWAN frames built by lora-packet and sent over GWMP UDP.
Every frame the TNC receives is checked with our own AX.25/KISS checker and our own signature verifier.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from havel.gateway import runlock

sys.path.insert(0, str(Path(__file__).resolve().parent))

import relay_bb_kit as k

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto", path="/usr/sbin:/usr/bin:/usr/local/sbin") is None
    or shutil.which("node") is None,
    reason="needs mosquitto and node",
)

CALL = "DB0XYZ-10"
CENTRE = "DB0KST-1"
DEV_EUI = "70B3D57ED0000001"
DEV_ADDR = "26011F3A"
NWK = "44024241ed4ce9a68c6a8bc055233fd3"
RULES = (
    '  {name = "flood", class = "alarm", codec = "water", field = "level", op = ">=", value = 150},\n'
    '  {name = "levels", class = "state", codec = "water", fields = ["level"]},\n'
)
APP = "ec925802ae430ca77fd3dd73cb2cc588"


@dataclass
class Rig:
    folder: Path
    broker: k.Broker
    tnc: k.KissTnc
    daemon: k.Proc
    config: Path
    data: Path
    udp: int
    http: int
    key: bytes

    def metric(self, what: str) -> float:
        """A relay counter; the docs name them relay_*, the daemon prefixes havel_gateway_ (both accepted)."""
        m = k.metrics(self.http)
        return m.get(what, m.get(f"havel_gateway_{what}", 0.0))

    def uplink(self, fcnt: int, level: int, **rxpk: object) -> None:
        phy = k.lora_uplink(self.folder, DEV_ADDR, NWK, APP, fcnt, k.water_readings(level))
        k.push_data(self.udp, phy, token=fcnt, **rxpk)

    def emergency(self, state: str) -> str:
        r = k.havel("relay", "emergency", state, "--config", str(self.config))
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    def frames(self) -> list[k.Ax25Frame]:
        return [k.parse_ax25(raw) for _, _, raw in self.tnc.snapshot()]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path)


def make_rig(
    tmp_path: Path,
    relay_extra: str = "",
    paths_extra: str = "",
    call: str = CALL,
    aprs_extra: str = "",
    rules: str = RULES,
    telemetry_dev: str = DEV_EUI,
    device_name: str = "pegel-1",
    udp_extra: str = "",
) -> Iterator[Rig]:
    broker = k.Broker(tmp_path / "broker")
    broker.start()
    tnc = k.KissTnc()
    data = tmp_path / "data"
    data.mkdir()
    udp, http = k.free_port(k.socket.SOCK_DGRAM), k.free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "gw1"\ndata_dir = "{data}"\n'
        f'[udp]\nbind = "127.0.0.1"\nport = {udp}\n{udp_extra}'
        f'[http]\nbind = "127.0.0.1"\nport = {http}\n'
        '[relay]\nprimary = "platform"\nkey_file = "relay.key"\ndown_after_s = 1\n'
        f"{relay_extra}\n"
        f"rules = [\n{rules}]\n"
        f'[[relay.path]]\ntype = "aprs"\ncallsign = "{call}"\naddressee = "{CENTRE}"\n{aprs_extra}'
        f'host = "127.0.0.1"\nport = {tnc.port}\nmin_gap_s = 0.2\n'
        'telemetry = [{name = "Pegel1", unit = "cm", '
        f'dev_eui = "{telemetry_dev}", field = "level", b = 2}}]\n'
        f"{paths_extra}\n"
        f'[[sink]]\ntype = "mqtt"\nname = "platform"\nhost = "127.0.0.1"\nport = {broker.port}\ntls = false\n'
    )
    r = k.havel("relay", "keygen", str(data / "relay.key"))
    assert r.returncode == 0, r.stderr
    assert (data / "relay.key").stat().st_mode & 0o077 == 0, "the key file must be 0600"
    key = k.read_key(data / "relay.key")
    nwk = k.write_key(tmp_path / "nwk.key", bytes.fromhex(NWK))
    app = k.write_key(tmp_path / "app.key", bytes.fromhex(APP))
    r = k.havel(
        "device",
        "add",
        "--name",
        device_name,
        "--dev-eui",
        DEV_EUI,
        "--codec",
        "water",
        "--abp",
        "--dev-addr",
        DEV_ADDR,
        "--nwk-s-key-file",
        str(nwk),
        "--app-s-key-file",
        str(app),
        "--config",
        str(config),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    daemon = k.Proc(["gateway", "run", "--config", str(config)], tmp_path / "daemon.log")
    daemon.start()
    rig = Rig(tmp_path, broker, tnc, daemon, config, data, udp, http, key)
    try:

        def up() -> bool:
            assert daemon.alive(), daemon.text()[-3000:]
            try:
                return rig.metric("relay_primary_down") == 0 and tnc.connected() > 0
            except OSError:
                return False

        k.wait_for(up, 60, "the daemon's /metrics and its KISS connection")
        yield rig
    finally:
        daemon.stop()
        tnc.close()
        broker.stop()


def test_nothing_on_the_air_before_the_emergency_then_valid_signed_frames(rig: Rig) -> None:
    # The platform broker goes away: the primary path is down after down_after_s.
    rig.broker.stop()
    k.wait_for(lambda: rig.metric("relay_primary_down") == 1, 60, "relay_primary_down 1")
    t_down = time.time()

    # A state reading, then a flood alarm (level >= 150), while the emergency switch is off.
    rig.uplink(1, 80)
    rig.uplink(2, 163)
    k.wait_for(
        lambda: (
            rig.metric('relay_messages{path="aprs",what="held_no_emergency"}') >= 1
            and rig.metric('relay_messages{path="aprs",what="offered"}') >= 2
        ),
        60,
        "both records offered to the APRS relay and held (held_no_emergency)",
    )
    time.sleep(1.0)  # a transmission would follow the offer within min_gap_s (0.2 s)
    assert rig.tnc.snapshot() == [], "the relay transmitted without a declared emergency"
    assert "off" in k.havel("relay", "emergency", "status", "--config", str(rig.config)).stdout

    # Declared: the backlog goes out, one frame per gap.
    rig.emergency("on")
    k.wait_for(lambda: any(f.info.startswith(b"T#") for f in rig.frames()), 60, "the telemetry report")
    k.wait_for(lambda: any(b":HA " in f.info for f in rig.frames()), 60, "the alarm")
    frames = rig.frames()
    assert not rig.tnc.errors, rig.tnc.errors

    for typ, f in zip([t for _, t, _ in rig.tnc.snapshot()], frames, strict=False):
        assert typ == 0x00, f"KISS type byte {typ:#x}: port 0, data frame"
        k.check_aprs_ui(f, src=CALL, dest="APZHVL", path=["WIDE2-1"])

    counters: list[int] = []
    alarm = status = None
    defs: dict[str, str] = {}
    report_index = defs_index = None
    for i, f in enumerate(frames):
        info = f.text
        if info.startswith("T#"):
            m = k.TELEMETRY_RE.fullmatch(info)
            assert m, f"not an APRS 1.0.1 telemetry report: {info!r}"
            assert m.group("comment").startswith(" ") and m.group("comment").count(" ") == 1, info
            body, _, sig = info.rpartition(" ")
            counters.append(k.verify(rig.key, CALL, "aprs", sig, body.encode()))
            counts = [int(x) for x in m.group("a").split(",")]
            assert all(0 <= c <= 255 for c in counts)
            assert counts[0] == 40, f"level 80 cm with b = 2 is 40 counts, got {counts}"
            report_index = report_index if report_index is not None else i
            continue
        addressee, text, msg_id = k.parse_message(info)
        if addressee == CALL:  # telemetry definitions the station addresses to itself
            kind = text[:5]
            assert kind in ("PARM.", "UNIT.", "EQNS.", "BITS."), text
            assert msg_id is None, "definitions carry no message id"
            defs[kind] = text
            defs_index = i if kind == "BITS." else defs_index
            continue
        assert addressee == CENTRE, info
        assert msg_id is not None, f"alarms and outage reports are acknowledged messages: {info!r}"
        line, _, sig = text.rpartition(" ")
        counters.append(k.verify(rig.key, CALL, "aprs", sig, f"{CENTRE:<9}:{line}".encode()))
        parts = line.split(" ")
        if parts[0] == "HA":
            alarm = parts
        elif parts[0] == "HP":
            status = parts

    # The alarm: HA <DevEUI>-<epoch>-<fcnt> <time base 36> level=163, signed.
    assert alarm is not None, [f.text for f in frames]
    assert alarm[1] == f"{DEV_EUI}-0-2", alarm
    assert abs(k.unbase36(alarm[2]) - t_down) < 600, alarm
    assert alarm[3] == "level=163", alarm
    # The outage report: HP DOWN <time>, signed.
    assert status is not None and status[1] == "DOWN", [f.text for f in frames]
    assert abs(k.unbase36(status[2]) - t_down) < 600, status

    # The definitions: all four, before the first report, in the documented order, signed as a set.
    assert list(defs) == ["PARM.", "UNIT.", "EQNS.", "BITS."], defs
    assert report_index is not None and defs_index is not None and defs_index < report_index
    assert defs["PARM."] == "PARM.Pegel1" and defs["UNIT."] == "UNIT.cm"
    assert defs["EQNS."] == "EQNS.0,2,0,0,1,0,0,1,0,0,1,0,0,1,0"
    bits, _, sig = defs["BITS."].rpartition(" ")
    assert bits == "BITS.11111111,HV"
    signed = "\n".join([defs["PARM."], defs["UNIT."], defs["EQNS."], bits]).encode()
    counters.append(k.verify(rig.key, CALL, "aprs", sig, signed))
    assert len(bits.partition(",")[2] + " " + sig) <= 23, "the BITS title APRS allows is 23 characters"

    # Counters are never reused.
    assert len(set(counters)) == len(counters), counters

    # An independent decoder: direwolf prints each frame as it would transmit it.
    if shutil.which("direwolf"):
        raws = [raw for _, _, raw in rig.tnc.snapshot()]
        printed = k.direwolf_decode(raws, rig.folder / "direwolf")
        assert printed == [f"{CALL}>APZHVL,WIDE2-1:{f.text}" for f in frames], printed

    # The crisis centre acks the alarm: the relay counts it.
    alarm_frame = next(f for f in frames if b":HA " in f.info)
    msg_id = k.parse_message(alarm_frame.text)[2]
    rig.tnc.send(k.ax25_ui(CENTRE, "APZHVL", f":{CALL:<9}:ack{msg_id}".encode()))
    k.wait_for(lambda: rig.metric('relay_messages{path="aprs",what="acked"}') >= 1, 30, "the ack to count")

    # The emergency ends: a new alarm is held again, nothing more goes on the air.
    rig.emergency("off")
    held = rig.metric('relay_messages{path="aprs",what="held_no_emergency"}')
    sent_before = len(rig.tnc.snapshot())
    rig.uplink(3, 170)
    k.wait_for(
        lambda: rig.metric('relay_messages{path="aprs",what="held_no_emergency"}') > held,
        60,
        "the new alarm to be held",
    )
    time.sleep(1.0)
    new = [k.parse_ax25(raw).text for _, _, raw in rig.tnc.snapshot()[sent_before:]]
    assert new == [], f"transmitted after the emergency was switched off: {new}"


@dataclass
class MeshRig:
    rig: Rig
    mesh: k.Broker
    watch: k.Client  # everything the gateway publishes on the mesh broker
    receiver_config: Path

    def state(self) -> str:
        """'on' or 'off', as `havel relay emergency status` says."""
        r = k.havel("relay", "emergency", "status", "--config", str(self.rig.config))
        assert r.returncode == 0, r.stdout + r.stderr
        found = re.search(r"emergency (on|off)\b", r.stdout, re.IGNORECASE)
        assert found, r.stdout
        return found.group(1).lower()

    def commands(self, what: str) -> float:
        return self.rig.metric(f'relay_messages{{path="emergency_commands",what="{what}"}}')

    def command(
        self,
        state: str,
        at: float,
        counter: int,
        key: bytes | None = None,
        sender: str = "CONTROL",
        gateway_id: str = "gw1",
        body: str | None = None,
    ) -> str:
        if body is None:
            body = json.dumps({"at": at, "emergency": state, "gateway_id": gateway_id})
        sig = k.signature(self.rig.key if key is None else key, sender, "control", counter, body.encode())
        return json.dumps({"v": 1, "sender": sender, "sig": sig, "body": body})

    def send(self, payload: str | bytes) -> None:
        self.watch.publish("havel/gw1/relay/emergency", payload)


@pytest.fixture
def mesh_rig(tmp_path: Path) -> Iterator[MeshRig]:
    mesh = k.Broker(tmp_path / "mesh")
    mesh.start()
    watch = k.Client(mesh.port, "havel/#")
    path = (
        f'[[relay.path]]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {mesh.port}\ntls = false\n'
        "emergency_commands = true\n"
    )
    gen = make_rig(tmp_path, paths_extra=path)
    rig = next(gen)
    try:
        # The crisis centre's receiver config: the same key, the mesh broker.
        rxdata = tmp_path / "rxdata"
        rxdata.mkdir()
        key_file = k.write_key(tmp_path / "gw1.key", rig.key)
        rc = tmp_path / "receiver.toml"
        rc.write_text(
            f'data_dir = "{rxdata}"\nprefix = "havel"\n[publish]\nhost = "127.0.0.1"\nport = {mesh.port}\n'
            f'[[sender]]\nname = "{CALL}"\nkey_file = "{key_file}"\ngateway_id = "gw1"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {mesh.port}\ntopic = "havel/+/relay/#"\n'
            'client_id = "krisenstab-cmd"\n'
        )
        m = MeshRig(rig, mesh, watch, rc)
        # The command listener subscribes once the path is connected; a command sent before is kept
        # by nobody (no session yet), so wait for the gateway's retained link status on the mesh broker.
        k.wait_for(lambda: watch.on("/relay/status"), 60, "the MQTT relay path's status on the mesh broker")
        yield m
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)
        watch.close()
        mesh.stop()


def test_mqtt_path_envelopes_verify_and_emergency_commands_follow_the_rules(mesh_rig: MeshRig) -> None:
    m, rig = mesh_rig, mesh_rig.rig
    rig.broker.stop()
    k.wait_for(lambda: rig.metric("relay_primary_down") == 1, 60, "relay_primary_down 1")
    rig.uplink(1, 163)

    # The MQTT relay path carries the outage report and the alarm as signed envelopes (no emergency needed).
    def verified(suffix: str) -> dict[str, object] | None:
        for raw in m.watch.on(suffix):
            env = json.loads(raw)
            assert set(env) == {"v", "sender", "sig", "body"} and env["v"] == 1, env
            assert env["sender"] == CALL, "sender: the APRS callsign when the gateway has an APRS path"
            k.verify(rig.key, CALL, "mqtt", env["sig"], env["body"].encode("utf-8"))
            return json.loads(env["body"])
        return None

    event = k.wait_for(lambda: verified("/relay/event"), 60, "the signed outage report")
    assert event["kind"] == "status" and event["primary"] == "down", event
    alarm = k.wait_for(lambda: verified("/relay/alarm"), 60, "the signed alarm envelope")
    assert alarm["class"] == "alarm" and alarm["dev_eui"] == DEV_EUI and alarm["fcnt"] == 1, alarm
    assert alarm["data"] == {"level": 163} and alarm["device"] == "pegel-1" and alarm["epoch"] == 0, alarm
    assert rig.tnc.snapshot() == [], "APRS transmitted without an emergency"
    assert m.state() == "off"

    # The crisis centre declares the emergency over the mesh: the switch goes on, APRS transmits.
    r = k.havel("relay", "emergency", "on", "--receiver-config", str(m.receiver_config), "--gateway", "gw1")
    assert r.returncode == 0, r.stdout + r.stderr
    k.wait_for(lambda: m.state() == "on", 30, "the switch to go on by command")
    k.wait_for(lambda: any(b":HA " in f.info for f in rig.frames()), 60, "the alarm on APRS")
    sent = m.watch.on("/relay/emergency")
    assert sent, "the CLI's command was not seen on the mesh broker"
    cli_env = json.loads(sent[0])
    assert cli_env["sender"] == "CONTROL"
    cli_counter = k.verify(rig.key, "CONTROL", "control", cli_env["sig"], cli_env["body"].encode())
    cli_body = json.loads(cli_env["body"])
    assert cli_body["emergency"] == "on" and cli_body["gateway_id"] == "gw1", cli_body
    t_on = float(cli_body["at"])

    def refused(what: str, payload: str | bytes) -> None:
        before = m.commands(what)
        m.send(payload)
        k.wait_for(lambda: m.commands(what) > before, 30, f"a command refused as {what}")
        assert m.state() == "on", f"a {what} command changed the switch: {m.state()}"

    other = bytes(32 - i for i in range(32))
    refused("replayed", sent[0])
    refused("forged", m.command("off", t_on + 1, cli_counter + 10, key=other))
    refused("forged", m.command("off", t_on + 1, cli_counter + 11, sender=CALL))
    refused("stale", m.command("off", t_on - 60, cli_counter + 12))
    refused("future", m.command("off", time.time() + 3600, cli_counter + 13))
    refused("not_ours", m.command("off", t_on + 1, cli_counter + 14, gateway_id="gw2"))
    refused("malformed", m.command("maybe", t_on + 1, cli_counter + 15))
    refused(
        "malformed",
        m.command("off", 0, cli_counter + 16, body='{"at": NaN, "emergency": "off", "gateway_id": "gw1"}'),
    )
    refused("malformed", b"\xff\xfe not an envelope")
    refused("malformed", "[" * 100_000 + "]" * 100_000)
    refused("malformed", m.command("off", 0, cli_counter + 18, body='{"at": 1e999, "emergency": "off"}'))
    huge = json.dumps({"v": 1, "sender": "CONTROL", "sig": "9.AAAAAAAAAAA", "body": "x" * 2_000_000})
    refused("malformed", huge)

    # A newer command applies; an older counter delivered after it is reordered.
    m.send(m.command("off", t_on + 2, cli_counter + 100))
    k.wait_for(lambda: m.state() == "off", 30, "the switch to go off by command")
    before = m.commands("reordered")
    m.send(m.command("on", t_on + 3, cli_counter + 50))
    k.wait_for(lambda: m.commands("reordered") > before, 30, "a command refused as reordered")
    assert m.state() == "off"

    # Switched on at the gateway: a command stamped before that change is stale.
    t_local = time.time()
    rig.emergency("on")
    before = m.commands("stale")
    m.send(m.command("off", t_local - 2, cli_counter + 200))
    k.wait_for(lambda: m.commands("stale") > before, 30, "a command older than the local change: stale")
    assert m.state() == "on"
    assert rig.daemon.alive()


@pytest.fixture
def rig_config_on(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path, relay_extra="emergency = true")


def test_an_unreadable_switch_file_is_off_even_when_the_config_says_on(rig_config_on: Rig) -> None:
    rig = rig_config_on
    state_file = rig.data / "relay-emergency.json"
    # "The file wins" and "an unreadable state file counts as OFF": half-written JSON, as a power cut leaves.
    state_file.write_text('{"emergency": "on", "at": ')
    rig.broker.stop()
    k.wait_for(lambda: rig.metric("relay_primary_down") == 1, 60, "relay_primary_down 1")
    rig.uplink(1, 163)
    k.wait_for(
        lambda: (
            rig.metric('relay_messages{path="aprs",what="held_no_emergency"}') >= 1
            and rig.metric('relay_messages{path="aprs",what="offered"}') >= 1
        ),
        60,
        "the alarm offered to the APRS relay and held",
    )
    time.sleep(1.0)
    assert rig.tnc.snapshot() == [], "transmitted with an unreadable emergency state file"
    status = k.havel("relay", "emergency", "status", "--config", str(rig.config)).stdout
    assert re.search(r"emergency off\b", status, re.IGNORECASE), status

    # The person on duty declares it: the file is written anew and the alarm goes out.
    assert "ON" in rig.emergency("on").upper()
    k.wait_for(lambda: any(b":HA " in f.info for f in rig.frames()), 60, "the alarm on APRS")

    # And ends it, although the config still says on: a later alarm is held.
    rig.emergency("off")
    held = rig.metric('relay_messages{path="aprs",what="held_no_emergency"}')
    sent = len(rig.tnc.snapshot())
    rig.uplink(2, 170)
    k.wait_for(
        lambda: rig.metric('relay_messages{path="aprs",what="held_no_emergency"}') > held,
        60,
        "the second alarm to be held",
    )
    time.sleep(1.0)
    assert [k.parse_ax25(r).text for _, _, r in rig.tnc.snapshot()[sent:]] == []


@pytest.fixture
def rig_ssid0(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path, call="db0xyz-0", aprs_extra="path = []\n")


def test_callsign_in_lower_case_with_ssid_0_goes_on_the_air_normalised(rig_ssid0: Rig) -> None:
    rig = rig_ssid0
    rig.broker.stop()
    k.wait_for(lambda: rig.metric("relay_primary_down") == 1, 60, "relay_primary_down 1")
    rig.emergency("on")
    rig.uplink(1, 163)
    k.wait_for(lambda: any(b":HA " in f.info for f in rig.frames()), 60, "the alarm")
    for _, _, raw in rig.tnc.snapshot():
        f = k.parse_ax25(raw)
        k.check_aprs_ui(f, src="DB0XYZ", dest="APZHVL", path=[])
        assert raw[13] & 0x1E == 0 and raw[13] & 1 == 1, "source SSID 0, last address (no digipeater path)"
        if b":HA " in f.info or b":HP " in f.info:
            _, text, _ = k.parse_message(f.text)
            line, _, sig = text.rpartition(" ")
            k.verify(rig.key, "DB0XYZ", "aprs", sig, f"{CENTRE:<9}:{line}".encode())


def test_a_reading_older_than_max_age_is_not_relayed(rig: Rig) -> None:
    rig.broker.stop()
    k.wait_for(lambda: rig.metric("relay_primary_down") == 1, 60, "relay_primary_down 1")
    rig.emergency("on")
    # A concentrator with GPS stamps the frame (rxpk time + tmms): 7 hours ago, beyond max_age_s (6 h).
    old = time.time() - 7 * 3600
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(old)) + ".000000Z"
    rig.uplink(1, 163, time=stamp, tmms=int((old - 315964800 + 18) * 1000))
    rig.uplink(2, 164)
    k.wait_for(lambda: any(b"-0-2 " in f.info for f in rig.frames()), 60, "the current alarm")
    assert not any(b"-0-1 " in f.info for f in rig.frames()), [f.text for f in rig.frames()]
    # It was received and stored all the same (it waits in the outbox for the platform).
    status = json.loads(k.http_get(rig.http, "/status")[1])
    assert status["uplinks"]["accepted"] == 2 and status["relay"]["too_old"] == 1, status


def test_the_aprs_path_survives_poison_from_the_tnc_and_a_dropped_connection(rig: Rig) -> None:
    rig.broker.stop()
    k.wait_for(lambda: rig.metric("relay_primary_down") == 1, 60, "relay_primary_down 1")
    rig.emergency("on")
    rig.uplink(1, 163)
    k.wait_for(lambda: any(b":HA " in f.info for f in rig.frames()), 60, "the alarm")
    alarm = next(f for f in rig.frames() if b":HA " in f.info)
    msg_id = k.parse_message(alarm.text)[2]

    # What the channel may deliver through the TNC: broken KISS, truncated AX.25, a huge frame, bytes that
    # are not text, an ack that is not ours; then the real ack, which must still be counted.
    ack = k.ax25_ui(CENTRE, "APZHVL", f":{CALL:<9}:ack{msg_id}".encode())
    for chunk in (
        b"\xc0\x00" + ack[:10] + b"\xdb\x41" + ack[10:] + b"\xc0",
        b"\xc0\x00\x82\xa0\xc0",
        b"\xc0\x00" + ack[:15] + b"\xc0",
        b"\xc0\x00" + k.kiss_escape(ack[:16] + b"X" * 70_000) + b"\xc0",
        b"\xc0\x00" + ack[:16] + b"\xff\xfe\xed\xa0\x80" * 50 + b"\xc0",
        k.kiss_frame(k.ax25_ui("DL1ABC", "APRS", f":{CALL:<9}:ack{msg_id}".encode())),
        b"\x55" * 100_000,
    ):
        rig.tnc.send_raw(chunk)
    rig.tnc.send(ack)
    k.wait_for(
        lambda: rig.metric('relay_messages{path="aprs",what="acked"}') >= 1, 60, "the ack after poison"
    )
    assert rig.daemon.alive()

    # The TNC connection drops: the relay connects again and the next alarm goes out on it.
    rig.tnc.drop_clients()
    k.wait_for(lambda: rig.tnc.connected() > 0, 60, "the relay to reconnect to the TNC")
    before = len(rig.tnc.snapshot())
    rig.uplink(2, 170)
    k.wait_for(
        lambda: any(b"-0-2 " in k.parse_ax25(r).info for _, _, r in rig.tnc.snapshot()[before:]),
        60,
        "the next alarm over the new connection",
    )
    assert rig.metric('relay_messages{path="aprs",what="tnc_connects"}') >= 2


def test_emergency_status_reports_the_config_switch_the_daemon_transmits_on(rig_config_on: Rig) -> None:
    """docs/relay.md: "The emergency switch is on when the gateway config says `emergency = true` under
    `[relay]`, or when the state file says so." With `emergency = true` and no state file the daemon
    transmits, so `havel relay emergency status` must say on: the person on duty must never be told the
    station is silent while it is on the air."""
    rig = rig_config_on
    assert not (rig.data / "relay-emergency.json").exists()
    rig.broker.stop()
    k.wait_for(lambda: rig.metric("relay_primary_down") == 1, 60, "relay_primary_down 1")
    rig.uplink(1, 163)
    k.wait_for(lambda: rig.metric('relay_messages{path="aprs",what="offered"}') >= 1, 60, "the offer")
    k.wait_for(lambda: any(":HA " in f.text for f in rig.frames()), 60, "the alarm on the air")
    status = k.havel("relay", "emergency", "status", "--config", str(rig.config)).stdout
    assert re.search(r"emergency on\b", status, re.IGNORECASE), status


def test_a_command_with_a_lone_surrogate_is_malformed_and_the_unknown_sender_hint_fits(
    mesh_rig: MeshRig,
) -> None:
    """docs/relay.md: `malformed` = ... "not Unicode text": a signed command whose gateway_id holds a lone
    surrogate escape is malformed, not `not_ours`. A command from a sender without a key is forged, and
    the gateway's log says what fits there (commands come from CONTROL), not the receiver's [[sender]]."""
    m = mesh_rig
    r = k.havel("relay", "emergency", "on", "--receiver-config", str(m.receiver_config), "--gateway", "gw1")
    assert r.returncode == 0, r.stderr
    k.wait_for(lambda: m.state() == "on", 30, "on")
    body = '{"at": ' + str(int(time.time()) + 1) + ', "emergency": "off", "gateway_id": "gw1\\ud800"}'
    before = m.commands("malformed")
    m.send(m.command("off", 0, 1000, body=body))
    k.wait_for(lambda: m.commands("malformed") > before or m.commands("not_ours") > 0, 30, "counted")
    assert m.commands("malformed") > before and m.commands("not_ours") == 0, "counted as not_ours"
    forged = m.commands("forged")
    m.send(m.command("off", time.time() + 2, 1001, sender=CALL))
    k.wait_for(lambda: m.commands("forged") > forged, 30, "a command of an unknown sender refused")
    k.wait_for(lambda: "unknown sender" in m.rig.daemon.text(), 30, "the refusal in the daemon's log")
    line = next(x for x in m.rig.daemon.text().splitlines() if "unknown sender" in x)
    assert "CONTROL" in line and "[[sender]]" not in line and "[senders]" not in line, line
    assert m.state() == "on"


def test_held_no_emergency_counts_every_held_frame(rig: Rig) -> None:
    """docs/relay.md: `held_no_emergency` counts each frame that waits for the emergency switch: three
    alarms held while it is off count three (not only the one at the head of the queue)."""
    rig.broker.stop()
    k.wait_for(lambda: rig.metric("relay_primary_down") == 1, 60, "relay_primary_down 1")
    for fcnt in (1, 2, 3):
        rig.uplink(fcnt, 160 + fcnt)
    k.wait_for(lambda: rig.metric('relay_messages{path="aprs",what="offered"}') >= 3, 60, "three offers")
    # the outage report and the three alarms wait (telemetry only when due)
    k.wait_for(
        lambda: rig.metric('relay_messages{path="aprs",what="held_no_emergency"}') >= 4, 60, "all held"
    )
    assert rig.tnc.snapshot() == [], "transmitted without an emergency"
    rig.emergency("on")
    k.wait_for(lambda: sum(b":HA " in f.info for f in rig.frames()) >= 3, 90, "the three alarms on the air")


@pytest.fixture
def rig_silent(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path, relay_extra="emergency = true", udp_extra="silent_after_s = 1\n")


def test_an_alarm_class_gateway_event_is_relayed_signed_and_read_by_the_receiver(rig_silent: Rig) -> None:
    """docs/relay.md: during an outage the gateway's alarm-class events (here its packet forwarder falling
    silent) go out on the relay paths: on APRS as a signed `HE` line to the crisis centre, which the
    receiver republishes on `<prefix>/<gateway_id>/events` under the event's own id."""
    from havel.gateway.relay.receive.config import ReceiverConfig
    from havel.gateway.relay.receive.core import ReceiverCore

    rig = rig_silent
    rig.broker.stop()
    k.wait_for(lambda: rig.metric("relay_primary_down") == 1, 60, "relay_primary_down 1")
    rig.uplink(1, 120)  # the forwarder is heard once, then falls silent
    event = k.wait_for(
        lambda: next((f for f in rig.frames() if ":HE " in f.text and "forwarder_silent" in f.text), None),
        60,
        "the forwarder_silent event on the air",
    )
    m = re.fullmatch(rf":{CENTRE:<9}:(HE \S+ \S+ forwarder_silent(?: \S+)?) (\S+)\{{\w+", event.text)
    assert m, event.text
    k.verify(rig.key, CALL, "aprs", m.group(2), f"{CENTRE:<9}:{m.group(1)}".encode())

    # The crisis centre's receiver reads the very frame (its core; the listeners are tested elsewhere).
    key_file = k.write_key(rig.folder / "gw1.key", rig.key)
    cfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(rig.folder / "rx"),
            "sender": [{"name": CALL, "key_file": str(key_file), "gateway_id": "gw1"}],
            "kiss": {"callsign": CENTRE},
        }
    )
    published: list[tuple[str, bytes]] = []
    core = ReceiverCore(cfg, lambda topic, payload: published.append((topic, payload)))
    raw = next(r for _, _, r in rig.tnc.snapshot() if b"forwarder_silent" in r)
    assert core.handle_ax25(raw), "the event was not acknowledged"
    assert core.handle_ax25(raw) is None  # the same frame again: a replay, not a second event
    assert [t for t, _ in published] == ["havel/gw1/events"], published
    msg = json.loads(published[0][1])
    assert msg["event"] == "forwarder_silent" and msg["relayed"] is True and msg["via"] == "aprs", msg
    assert re.fullmatch(r"gw1-event-[0-9a-f]{12}", msg["id"]), msg
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", msg["at"]), msg

    # the id the gateway stored the event under: the platform gets it under the same id after the outage
    # (the daemon writes SQLite in batches: asked to commit, as the CLI does, it soon holds the event)
    def stored() -> list[str]:
        runlock.ask_to_commit(rig.data)
        db = sqlite3.connect(f"file:{rig.data / 'havel.db'}?mode=ro", uri=True)
        try:
            return [row[0] for row in db.execute("SELECT id FROM outbox WHERE kind = 'event'")]
        finally:
            db.close()

    k.wait_for(lambda: msg["id"] in stored(), 30, "the event's id in the database", step=0.5)


def test_every_metric_docs_relay_names_is_on_the_daemons_metrics_page(mesh_rig: MeshRig) -> None:
    """docs/relay.md names the relay's metrics; each one (and each path/what it spells out) must be what
    the daemon exports on /metrics (the page once named them without the havel_gateway_ prefix)."""
    doc = (Path(__file__).resolve().parents[4] / "docs" / "relay.md").read_text()
    names = set(re.findall(r"\bhavel_gateway_[a-z_]+", doc))
    assert "havel_gateway_relay_primary_down" in names and len(names) >= 4, names
    keys = list(k.metrics(mesh_rig.rig.http))
    missing = [n for n in sorted(names) if not any(key == n or key.startswith(n + "{") for key in keys)]
    assert missing == [], f"named in docs/relay.md, not on /metrics: {missing}"
    for path, what in re.findall(r'relay_messages\{path="?([\w.]+)"?,what="?([\w.]+)"?\}', doc):
        found = [
            key
            for key in keys
            if key.startswith("havel_gateway_relay_messages{")
            and (path == "..." or f'path="{path}"' in key)
            and (what == "..." or f'what="{what}"' in key)
        ]
        assert found, f'relay_messages{{path="{path}",what="{what}"}} is not on /metrics'
