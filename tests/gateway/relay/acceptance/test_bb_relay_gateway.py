"""Black-box: what the real gateway daemon puts on the air when its platform broker is gone.

Written from docs/relay.md, the AX.25 2.2 and APRS 1.0.1 specifications only. The daemon runs as an
operator starts it (``havel gateway run``) with a ``[relay]`` section whose APRS path points at a KISS TNC
of our own (a TCP server in this test); its primary sink's Mosquitto is stopped; the emergency is declared
with ``havel relay emergency on``; uplinks are LoRaWAN frames built by lora-packet and sent over GWMP UDP.
Every frame the TNC receives is checked with our own AX.25/KISS checker and our own signature verifier.
"""

from __future__ import annotations

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
    shutil.which("mosquitto", path="/usr/sbin:/usr/bin:/usr/local/sbin") is None
    or shutil.which("node") is None,
    reason="needs mosquitto and node",
)

CALL = "DB0XYZ-10"
CENTRE = "DB0KST-1"
DEV_EUI = "70B3D57ED0000001"
DEV_ADDR = "26011F3A"
NWK = "44024241ed4ce9a68c6a8bc055233fd3"
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

    def uplink(self, fcnt: int, level: int) -> None:
        phy = k.lora_uplink(self.folder, DEV_ADDR, NWK, APP, fcnt, k.water_readings(level))
        k.push_data(self.udp, phy, token=fcnt)

    def emergency(self, state: str) -> str:
        r = k.havel("relay", "emergency", state, "--config", str(self.config))
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    def frames(self) -> list[k.Ax25Frame]:
        return [k.parse_ax25(raw) for _, _, raw in self.tnc.snapshot()]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    broker = k.Broker(tmp_path / "broker")
    broker.start()
    tnc = k.KissTnc()
    data = tmp_path / "data"
    data.mkdir()
    udp, http = k.free_port(k.socket.SOCK_DGRAM), k.free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "gw1"\ndata_dir = "{data}"\n'
        f'[udp]\nbind = "127.0.0.1"\nport = {udp}\n'
        f'[http]\nbind = "127.0.0.1"\nport = {http}\n'
        '[relay]\nprimary = "platform"\nkey_file = "relay.key"\ndown_after_s = 1\n'
        "rules = [\n"
        '  {name = "flood", class = "alarm", codec = "water", field = "level", op = ">=", value = 150},\n'
        '  {name = "levels", class = "state", codec = "water", fields = ["level"]},\n]\n'
        f'[[relay.path]]\ntype = "aprs"\ncallsign = "{CALL}"\naddressee = "{CENTRE}"\n'
        f'host = "127.0.0.1"\nport = {tnc.port}\nmin_gap_s = 0.2\n'
        f'telemetry = [{{name = "Pegel1", unit = "cm", dev_eui = "{DEV_EUI}", field = "level", b = 2}}]\n'
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
        "pegel-1",
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
        lambda: rig.metric('relay_messages{path="aprs",what="held_no_emergency"}') >= 1,
        60,
        "the APRS relay to hold its records (held_no_emergency)",
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
