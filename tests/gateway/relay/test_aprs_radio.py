"""End to end over a real AFSK 1200 channel: APRS relay -> KISS -> direwolf A -> audio -> direwolf B ->
KISS -> receiver -> real Mosquitto; acks back the same way. Few frames: 1200 baud is slow."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.mqtt_subscriber import Subscriber

from havel.errors import LegalError
from havel.gateway.relay import aprs, ax25, kiss
from havel.gateway.relay.aprs_config import APRSConfig
from havel.gateway.relay.aprs_relay import APRSRelay
from havel.gateway.relay.emergency import EmergencySwitch
from havel.gateway.relay.lines import encode_line, sign_line
from havel.gateway.relay.receive.config import ReceiverConfig
from havel.gateway.relay.receive.receiver import Receiver
from havel.gateway.relay.record import RelayRecord, format_time
from havel.gateway.relay.signing import CounterStore, Signer, SigningKey

from .conftest import CC_CALL, GW_CALL, needs_direwolf

pytestmark = [needs_direwolf, pytest.mark.slow]

DEV = "70B3D57ED0001234"
NOW = int(time.time())  # a fresh receiver takes only messages stamped after its start (minus 6 h)


def wait_until(cond: Callable[[], Any], timeout: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    return cond()


def alarm(fcnt: int, level: int = 182) -> RelayRecord:
    return RelayRecord(DEV, fcnt, "alarm", NOW + fcnt, {"level": level})


@pytest.fixture
def station(tmp_path: Path, key_file: Path, radio: Any, mosquitto: Any) -> Iterator[dict[str, Any]]:
    """Gateway relay on TNC A, receiver on TNC B publishing into a real broker, a subscriber on it."""
    gw_dir = tmp_path / "gw"
    gw_dir.mkdir()
    switch = EmergencySwitch(gw_dir)
    signer = Signer(SigningKey.load(key_file), GW_CALL, CounterStore(gw_dir / "relay-counter"))
    relay = APRSRelay(
        APRSConfig.from_config({"callsign": GW_CALL, "addressee": CC_CALL, "port": radio.a.kiss_port}),
        signer,
        switch,
    )
    rcfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": mosquitto.port},
            "sender": [{"name": GW_CALL, "key_file": str(key_file), "gateway_id": "gw1"}],
            "kiss": {"port": radio.b.kiss_port, "callsign": CC_CALL, "ack": True},
        }
    )
    receiver = Receiver(rcfg).start()
    assert receiver.kiss is not None and receiver.kiss.connected.wait(10)
    with Subscriber(mosquitto.port, "havel/#") as sub:
        relay.start()
        try:
            yield {
                "relay": relay,
                "receiver": receiver,
                "switch": switch,
                "sub": sub,
                "signer": signer,
                "gw_dir": gw_dir,
            }
        finally:
            relay.stop()
            receiver.stop()


@pytest.mark.timeout(60)
def test_alarm_crosses_the_radio_and_is_acknowledged(station: dict[str, Any], radio: Any) -> None:
    relay: APRSRelay = station["relay"]
    station["switch"].set(True, "test")
    assert relay.offer(alarm(41))
    msgs = station["sub"].wait_for(1, timeout=20)
    assert msgs[0].topic == f"havel/gw1/devices/{DEV}/up"
    got = msgs[0].json()
    assert got["id"] == f"{DEV}-0-41" and got["via"] == "aprs" and got["data"] == {"level": 182}
    assert got["received_at"] == format_time(NOW + 41) and got["priority"] == "alarm"
    # The crisis centre acknowledged over the air: no resend will follow.
    assert wait_until(lambda: relay.stats["acked"] == 1, 15)
    assert relay.stats["sent"] == 1 and relay.stats["resent"] == 0
    # direwolf's own decoding of what it was given equals our codec's rendering, and B heard the same.
    assert radio.a.sent_lines()[0] == relay.sent[0]
    assert relay.sent[0] in radio.b.heard_lines()
    assert radio.b.sent_lines() == [f"{CC_CALL}>APZHVL::{GW_CALL:<9}:ack{relay.sent[0].rsplit('{', 1)[1]}"]


@pytest.mark.timeout(60)
def test_emergency_off_transmits_nothing_until_switched_on(station: dict[str, Any], radio: Any) -> None:
    relay: APRSRelay = station["relay"]
    assert not station["switch"].is_on()
    assert relay.offer(alarm(7))
    time.sleep(4.0)  # longer than a frame takes to cross the channel
    assert relay.stats["held_no_emergency"] == 1 and relay.stats["sent"] == 0
    assert radio.a.sent_lines() == [] and radio.b.heard_lines() == []
    assert station["sub"].messages == []
    # Declared by the person on duty with the CLI: the held alarm goes out.
    from click.testing import CliRunner

    from havel.gateway.relay.cli import relay as relay_cli

    res = CliRunner().invoke(relay_cli, ["emergency", "on", "--data-dir", str(station["gw_dir"])])
    assert res.exit_code == 0, res.output
    msgs = station["sub"].wait_for(1, timeout=20)
    assert msgs[0].json()["id"] == f"{DEV}-0-7"


def _inject(port: int, frames: list[bytes]) -> None:
    """Another station's transmissions: raw frames handed to TNC A."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        for f in frames:
            s.sendall(kiss.encode(f))
        time.sleep(0.5)


@pytest.mark.timeout(90)
def test_bad_frames_are_rejected_and_counted(station: dict[str, Any], radio: Any, tmp_path: Path) -> None:
    receiver: Receiver = station["receiver"]
    signer: Signer = station["signer"]
    ctx = aprs.pad_addressee(CC_CALL) + ":"
    good_text = sign_line(signer, "aprs", encode_line(alarm(100)), context=ctx)
    good = ax25.UIFrame.aprs(GW_CALL, "APZHVL", aprs.Message(CC_CALL, good_text, "A1").encode()).encode()
    # A forgery: same layout, tag from a key the receiver does not know.
    other = Signer(SigningKey.generate(), GW_CALL, CounterStore(None))
    forged_text = sign_line(other, "aprs", encode_line(alarm(101, 999)), context=ctx)
    forged = ax25.UIFrame.aprs(GW_CALL, "APZHVL", aprs.Message(CC_CALL, forged_text, "A2").encode()).encode()
    # Another callsign: even correctly signed with our key, it is not a configured sender.
    foreign_signer = Signer(SigningKey.load(tmp_path / "gw.key"), "DL1ABC", CounterStore(None))
    foreign_text = sign_line(foreign_signer, "aprs", encode_line(alarm(102)), context=ctx)
    foreign = ax25.UIFrame.aprs(
        "DL1ABC", "APZHVL", aprs.Message(CC_CALL, foreign_text, "A3").encode()
    ).encode()
    malformed = ax25.UIFrame.aprs(GW_CALL, "APZHVL", b":N0CALL-1:no padding HA x").encode()
    oversize_text = "HA " + "X" * 80
    oversize = ax25.UIFrame.aprs(GW_CALL, "APZHVL", f":{CC_CALL:<9}:{oversize_text}{{A5".encode()).encode()
    _inject(radio.a.kiss_port, [good, forged, foreign, malformed, oversize, good])  # the last: a replay
    msgs = station["sub"].wait_for(1, timeout=20)
    assert wait_until(
        lambda: (
            sum(
                receiver.core.total(k)
                for k in ("accepted", "forged", "foreign", "malformed", "oversize", "replayed")
            )
            >= 6
        ),
        30,
    )
    assert [m.json()["id"] for m in msgs] == [f"{DEV}-0-100"]
    core = receiver.core
    assert (
        core.total("accepted"),
        core.total("forged"),
        core.total("foreign"),
        core.total("malformed"),
        core.total("oversize"),
        core.total("replayed"),
    ) == (1, 1, 1, 1, 1, 1)
    time.sleep(0.5)
    assert len(station["sub"].messages) == 1


@pytest.mark.timeout(90)
def test_tnc_that_disconnects_loses_nothing(station: dict[str, Any], radio: Any) -> None:
    relay: APRSRelay = station["relay"]
    station["switch"].set(True, "test")
    assert wait_until(lambda: relay.stats["tnc_connects"] == 1, 10)
    radio.a.stop()  # the TNC goes away
    assert relay.offer(alarm(55))
    assert wait_until(lambda: relay.stats["tnc_disconnects"] >= 1, 10)
    radio.a.start()  # and comes back on the same port
    msgs = station["sub"].wait_for(1, timeout=30)
    assert msgs[0].json()["id"] == f"{DEV}-0-55"
    assert relay.stats["tnc_connects"] >= 2


def test_relay_refuses_to_start_without_callsign() -> None:
    with pytest.raises(LegalError):
        APRSConfig.from_config({"addressee": CC_CALL})
    with pytest.raises(LegalError):
        APRSConfig.from_config({"callsign": "  ", "addressee": CC_CALL})


@pytest.mark.timeout(90)
def test_state_goes_as_signed_telemetry_with_definitions(
    tmp_path: Path, key_file: Path, radio: Any, mosquitto: Any
) -> None:
    gw_dir = tmp_path / "gw-tlm"
    gw_dir.mkdir()
    switch = EmergencySwitch(gw_dir)
    switch.set(True, "test")
    cfg = APRSConfig.from_config(
        {
            "callsign": GW_CALL,
            "addressee": CC_CALL,
            "port": radio.a.kiss_port,
            "min_gap_s": 1,
            "telemetry": [{"name": "Pegel1", "unit": "cm", "dev_eui": DEV, "field": "level", "b": 2}],
        }
    )
    relay = APRSRelay(cfg, Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None)), switch)
    rcfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": mosquitto.port},
            "sender": [{"name": GW_CALL, "key_file": str(key_file), "gateway_id": "gw1"}],
            "kiss": {"port": radio.b.kiss_port, "callsign": CC_CALL},
        }
    )
    with Receiver(rcfg) as rx, Subscriber(mosquitto.port, "havel/gw1/relay/telemetry") as sub:
        assert rx.kiss is not None and rx.kiss.connected.wait(10)
        relay.start()
        try:
            # As in an outage: the signed report that the primary is down comes first (it also opens the
            # counter epoch of this first-started receiver), then the state.
            relay.publish_status({"primary": "down", "at": time.time()})
            assert relay.offer(RelayRecord(DEV, 12, "state", NOW, {"level": 163}))
            msg = sub.wait_for(1, timeout=60)[0].json()
        finally:
            relay.stop()
    assert msg["values"] == {"Pegel1": 164.0} and msg["units"] == {"Pegel1": "cm"}  # 163 cm in 2 cm steps
    assert msg["definitions"] == "signed" and msg["via"] == "aprs" and msg["raw"][0] == 82
    sent = list(relay.sent)
    assert sent[0].split(":", 3)[3].startswith("HP DOWN ")
    assert [line.split(":", 3)[3][:5] for line in sent[1:5]] == ["PARM.", "UNIT.", "EQNS.", "BITS."]
    assert sent[5].split(":", 1)[1].startswith("T#001,082,000,000,000,000,00000000 ")
    assert rx.core.total("definitions") == 3 and rx.core.total("definitions_signed") == 1
    assert rx.core.total("telemetry") == 1


class FakeClock:
    """The relay's clock, moved by the test: 30 s resend pauses without waiting 30 s."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.timeout(60)
def test_unacknowledged_alarm_is_resent_at_30s_pace_then_given_up(
    tmp_path: Path, key_file: Path, radio: Any, mosquitto: Any
) -> None:
    gw_dir = tmp_path / "gw-resend"
    gw_dir.mkdir()
    switch = EmergencySwitch(gw_dir)
    switch.set(True, "test")
    clock = FakeClock()
    cfg = APRSConfig.from_config(
        {"callsign": GW_CALL, "addressee": CC_CALL, "port": radio.a.kiss_port, "retries": 1}
    )
    relay = APRSRelay(
        cfg, Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None)), switch, clock=clock
    )
    # A receiver that does not acknowledge (ack = false): it sees the resend as a duplicate, not a replay.
    rcfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": mosquitto.port},
            "sender": [{"name": GW_CALL, "key_file": str(key_file), "gateway_id": "gw1"}],
            "kiss": {"port": radio.b.kiss_port, "ack": False},
        }
    )
    with Receiver(rcfg) as rx:
        assert rx.kiss is not None and rx.kiss.connected.wait(10)
        relay.start()
        try:
            relay.offer(alarm(300))
            assert wait_until(lambda: len(radio.b.heard_lines()) == 1, 15)
            clock.t = 29.0
            time.sleep(1.5)
            assert relay.stats["resent"] == 0  # not faster than every 30 s
            clock.t = 30.5
            assert wait_until(lambda: len(radio.b.heard_lines()) == 2, 15)
            clock.t = 61.0
            assert wait_until(lambda: relay.stats["gave_up"] == 1, 5)
        finally:
            relay.stop()
        assert wait_until(lambda: rx.core.total("duplicate") == 1, 5)
    first, second = radio.a.sent_lines()
    assert first.rsplit("{", 1)[1] == second.rsplit("{", 1)[1]  # same APRS message id
    assert first.split(" ")[-1] != second.split(" ")[-1]  # a fresh signature counter
    assert (rx.core.total("accepted"), rx.core.total("replayed")) == (1, 0)
    assert len(radio.a.sent_lines()) == 2


@pytest.mark.timeout(60)
def test_airtime_budget_is_never_exceeded(tmp_path: Path, key_file: Path, radio: Any) -> None:
    gw_dir = tmp_path / "gw-budget"
    gw_dir.mkdir()
    switch = EmergencySwitch(gw_dir)
    switch.set(True, "test")
    # Room for two alarm frames (about 1.1 s each) per hour, no more.
    cfg = APRSConfig.from_config(
        {
            "callsign": GW_CALL,
            "addressee": CC_CALL,
            "port": radio.a.kiss_port,
            "budget_airtime_s": 2.5,
            "budget_window_s": 3600,
        }
    )
    relay = APRSRelay(cfg, Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None)), switch)
    relay.start()
    try:
        for i in range(3):
            relay.offer(alarm(400 + i))
        assert wait_until(lambda: relay.stats["budget_wait"] >= 1 and relay.stats["sent"] == 2, 15)
        time.sleep(2.0)
        assert relay.stats["sent"] == 2 and relay.budget.used() <= 2.5
    finally:
        relay.stop()
    assert wait_until(lambda: len(radio.b.heard_lines()) == 2, 10)
    time.sleep(1.5)
    assert len(radio.a.sent_lines()) == 2 and len(radio.b.heard_lines()) == 2


@pytest.mark.timeout(90)
def test_ssid_zero_callsign_and_digipeated_copies_over_the_air(
    tmp_path: Path, key_file: Path, radio: Any, mosquitto: Any
) -> None:
    """A gateway configured as "N0CALL-0" goes on the air as N0CALL and signs as N0CALL (it used to sign
    as N0CALL-0: every message was rejected as forged). A digipeater's copy of an accepted frame is
    counted as digipeated; the same frame replayed without a digipeater's mark is a replay."""
    gw_dir = tmp_path / "gw0"
    gw_dir.mkdir()
    switch = EmergencySwitch(gw_dir)
    switch.set(True, "test")
    cfg = APRSConfig.from_config(
        {"callsign": "N0CALL-0", "addressee": CC_CALL, "port": radio.a.kiss_port, "path": []}
    )
    relay = APRSRelay(cfg, Signer(SigningKey.load(key_file), "N0CALL-0", CounterStore(None)), switch)
    rcfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "publish": {"port": mosquitto.port},
            "sender": [{"name": "N0CALL-0", "key_file": str(key_file), "gateway_id": "gw1"}],
            "kiss": {"port": radio.b.kiss_port, "callsign": CC_CALL, "ack": False},
        }
    )
    with Receiver(rcfg) as rx, Subscriber(mosquitto.port, "havel/gw1/devices/#") as sub:
        assert rx.kiss is not None and rx.kiss.connected.wait(10)
        relay.start()
        try:
            assert relay.offer(alarm(300))
            assert sub.wait_for(1, timeout=30)[0].json()["id"] == f"{DEV}-0-300"
        finally:
            relay.stop()
        assert relay.sent[0].startswith("N0CALL>APZHVL:")
        info = relay.sent[0].split(":", 1)[1].encode()
        copy = ax25.UIFrame.aprs("N0CALL", "APZHVL", info, ["DB0DIG*", "WIDE2*"]).encode()
        replay = ax25.UIFrame.aprs("N0CALL", "APZHVL", info).encode()
        _inject(radio.a.kiss_port, [copy])
        assert wait_until(lambda: rx.core.total("digipeated") == 1, 30)
        _inject(radio.a.kiss_port, [replay])
        assert wait_until(lambda: rx.core.total("replayed") == 1, 30)
        assert rx.core.total("accepted") == 1 and rx.core.total("forged") == 0
