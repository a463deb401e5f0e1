"""What the APRS relay puts on the air, and when: telemetry definitions, burst spreading, the digipeater
path, one spelling of the callsign. The relay talks to a KISS peer on a real TCP socket and runs on a
clock the test moves (an hour of definitions without waiting an hour)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from havel.errors import LegalError
from havel.gateway.relay import aprs, ax25
from havel.gateway.relay.aprs_config import APRSConfig
from havel.gateway.relay.aprs_relay import APRSRelay
from havel.gateway.relay.emergency import EmergencySwitch
from havel.gateway.relay.lines import encode_status_line, sign_line
from havel.gateway.relay.receive.config import ReceiverConfig
from havel.gateway.relay.receive.core import ReceiverCore
from havel.gateway.relay.record import RelayRecord
from havel.gateway.relay.signing import CounterStore, Signer, SigningKey

from .conftest import CC_CALL, GW_CALL, FakeTNC

DEV1 = "70B3D57ED0000001"
DEV2 = "70B3D57ED0000002"
TELEMETRY = [
    {"name": "Pegel1", "unit": "cm", "dev_eui": DEV1, "field": "level", "b": 2},
    {"name": "Pegel2", "unit": "cm", "dev_eui": DEV2, "field": "level", "b": 2},
]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def state(dev: str, fcnt: int, level: float) -> RelayRecord:
    return RelayRecord(dev, fcnt, "state", int(time.time()), {"level": level})


@pytest.fixture
def setup(tmp_path: Path, key_file: Path) -> Iterator[dict[str, Any]]:
    tnc = FakeTNC()
    clock = Clock()
    switch = EmergencySwitch(tmp_path)
    relay = APRSRelay(
        APRSConfig.from_config(
            {
                "callsign": GW_CALL,
                "addressee": CC_CALL,
                "port": tnc.port,
                "min_gap_s": 0,
                "budget_airtime_s": 600,
                "telemetry": TELEMETRY,
            }
        ),
        Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None)),
        switch,
        clock=clock,
    )
    relay.start()
    tnc.accept()
    try:
        yield {"tnc": tnc, "clock": clock, "switch": switch, "relay": relay}
    finally:
        relay.stop()
        tnc.close()


def texts(frames: list[ax25.UIFrame]) -> list[str]:
    return [f.info.decode() for f in frames]


def drain(tnc: FakeTNC, expect: int, timeout: float = 10.0) -> list[str]:
    """The next ``expect`` frames (and a short look for any more)."""
    got: list[ax25.UIFrame] = []
    deadline = time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        got += tnc.read(0.5)
    got += tnc.read(0.5)
    return texts(got)


def kinds(infos: list[str]) -> list[str]:
    return [i[11:15] if i.startswith(":") else i[:2] for i in infos]


@pytest.mark.timeout(60)
def test_definitions_survive_values_piling_up_while_emergency_is_off(setup: dict[str, Any]) -> None:
    """Values of two devices, offered back to back while the switch is off: switching on used to send a
    bare T# (the second value had removed the queued definitions)."""
    tnc, relay = setup["tnc"], setup["relay"]
    for n in range(3):
        assert relay.offer(state(DEV1, n, 100 + n))
        assert relay.offer(state(DEV2, n, 50 + n))
    assert tnc.read(1.0) == []  # the switch is off: nothing on the air
    setup["switch"].set(True, "test")
    infos = drain(tnc, 5)
    assert kinds(infos) == ["PARM", "UNIT", "EQNS", "BITS", "T#"]
    assert infos[0] == f":{GW_CALL:<9}:PARM.Pegel1,Pegel2"
    assert infos[2] == f":{GW_CALL:<9}:EQNS.0,2,0,0,2,0,0,1,0,0,1,0,0,1,0"
    assert infos[4].startswith("T#001,051,026,000,000,000,00000000 ")  # the latest values: 102 and 52 cm


@pytest.mark.timeout(60)
def test_definitions_go_again_an_hour_after_they_were_sent_and_with_every_emergency(
    setup: dict[str, Any],
) -> None:
    tnc, relay, clock, switch = setup["tnc"], setup["relay"], setup["clock"], setup["switch"]
    switch.set(True, "test")
    clock.t = 1000.0
    relay.offer(state(DEV1, 1, 100))
    relay.offer(state(DEV2, 1, 60))  # back to back: must not drop the definitions
    assert kinds(drain(tnc, 5)) == ["PARM", "UNIT", "EQNS", "BITS", "T#"]
    for minute in range(10, 60, 10):  # reports within the hour: no definitions
        clock.t = 1000.0 + 60 * minute
        relay.offer(state(DEV1, minute, 100))
        relay.offer(state(DEV2, minute, 60))
        assert kinds(drain(tnc, 1)) == ["T#"]
    clock.t = 1000.0 + 3600  # an hour after they were sent
    relay.offer(state(DEV1, 99, 101))
    assert kinds(drain(tnc, 5)) == ["PARM", "UNIT", "EQNS", "BITS", "T#"]
    # A new emergency starts with the definitions, whatever the hour says.
    switch.set(False, "test")
    clock.t += 60
    relay.offer(state(DEV1, 100, 102))
    assert wait_for_held(relay)
    switch.set(True, "test")
    assert kinds(drain(tnc, 5)) == ["PARM", "UNIT", "EQNS", "BITS", "T#"]
    assert relay.stats["definitions_sent"] == 12


def wait_for_held(relay: APRSRelay, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if relay.stats["held_no_emergency"] >= 1:
            return True
        time.sleep(0.05)
    return False


def test_signed_definitions_rescale_and_forged_ones_do_not(tmp_path: Path, key_file: Path) -> None:
    """One forged EQNS from anyone used to rescale signed readings (a signed 100 cm became 1000)."""
    cfg = ReceiverConfig.from_dict(
        {
            "data_dir": str(tmp_path / "cc"),
            "kiss": {"port": 1, "callsign": CC_CALL},
            "sender": [{"name": GW_CALL, "key_file": str(key_file), "gateway_id": "gw1"}],
        }
    )
    published: list[tuple[str, bytes]] = []
    core = ReceiverCore(cfg, lambda t, p: published.append((t, p)))
    signer = Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None))
    ch = [aprs.Channel("Pegel1", "cm", 0, 2, 0)]

    def frame(info: str, path: tuple[str, ...] = ()) -> bytes:
        return ax25.UIFrame.aprs(GW_CALL, "APZHVL", info, list(path)).encode()

    def report(count: int) -> bytes:
        t = aprs.Telemetry(count % 1000, (count, 0, 0, 0, 0)).encode()
        return frame(f"{t} {signer.sign('aprs', t.encode())}")

    # first a timed message, so this first-started receiver has a counter epoch
    status = encode_status_line("down", int(time.time()))
    text = sign_line(signer, "aprs", status, context=aprs.pad_addressee(CC_CALL) + ":")
    assert core.handle_ax25(frame(aprs.Message(CC_CALL, text, "1").encode())) == "1"
    core.handle_ax25(report(50))
    assert core.telemetry[GW_CALL]["definitions"] == "none"  # raw counts, honestly labelled
    assert core.telemetry[GW_CALL]["values"] == {"A1": 50.0, "A2": 0.0, "A3": 0.0, "A4": 0.0, "A5": 0.0}
    defs = [m.text for m in aprs.definition_messages(GW_CALL, ch)]
    sig = signer.sign("aprs", aprs.definitions_body(defs).encode())
    for text in [*defs[:3], f"{defs[3]} {sig}"]:
        core.handle_ax25(frame(aprs.Message(GW_CALL, text).encode()))
    assert core.total("definitions_signed") == 1
    core.handle_ax25(report(50))
    assert core.telemetry[GW_CALL]["values"] == {"Pegel1": 100.0}
    assert core.telemetry[GW_CALL]["definitions"] == "signed"
    # Anyone can transmit with our callsign as source: a forged EQNS (and a BITS that claims it).
    core.handle_ax25(frame(aprs.Message(GW_CALL, "EQNS.0,20,0,0,1,0,0,1,0,0,1,0,0,1,0").encode()))
    forged_bits = f"{defs[3]} {sig.counter + 100}.AAAAAAAAAAA"
    core.handle_ax25(frame(aprs.Message(GW_CALL, forged_bits).encode()))
    core.handle_ax25(report(50))
    assert core.telemetry[GW_CALL]["values"] == {"Pegel1": 100.0}  # still the signed scale
    assert core.total("forged") == 1
    # A digipeater's copy of the signed BITS is not a replay attack.
    digi = ("DB0DIG*", "WIDE2*")
    core.handle_ax25(frame(aprs.Message(GW_CALL, f"{defs[3]} {sig}").encode(), digi))
    assert core.total("digipeated") == 1 and core.total("replayed") == 0


def test_burst_is_spread_when_emergency_is_switched_on(tmp_path: Path, key_file: Path) -> None:
    """Switching on with a backlog used to put eight frames on the air at once."""
    tnc = FakeTNC()
    clock = Clock()
    switch = EmergencySwitch(tmp_path)
    relay = APRSRelay(
        APRSConfig.from_config({"callsign": GW_CALL, "addressee": CC_CALL, "port": tnc.port}),
        Signer(SigningKey.load(key_file), GW_CALL, CounterStore(None)),
        switch,
        clock=clock,
    )
    relay.start()
    try:
        tnc.accept()
        for n in range(4):
            assert relay.offer(RelayRecord(DEV1, n, "alarm", int(time.time()), {"level": 160 + n}))
        switch.set(True, "test")
        first = tnc.read(5)
        assert len(first) == 1
        assert tnc.read(1.5) == []  # the channel stays free for min_gap_s (5 s of the relay's clock)
        sent = list(first)
        for _ in range(3):
            clock.t += relay.cfg.min_gap_s
            sent += tnc.read(5)
        assert len(sent) == 4
        # a fixed station's default path: one hop through the wide-area digipeaters
        assert all([str(a) for a in f.path] == ["WIDE2-1"] for f in sent)
    finally:
        relay.stop()
        tnc.close()


def test_callsign_with_ssid_zero_is_written_and_signed_one_way() -> None:
    """callsign = "DB0XYZ-0" went out as DB0XYZ but was signed as DB0XYZ-0: every message looked forged."""
    cfg = APRSConfig.from_config({"callsign": "db0xyz-0", "addressee": "DB0KST-0", "path": ["wide2-1"]})
    assert (cfg.callsign, cfg.addressee, cfg.path) == ("DB0XYZ", "DB0KST", ["WIDE2-1"])
    assert APRSConfig.from_config({"callsign": "DB0XYZ-10", "addressee": "DB0KST-1"}).path == ["WIDE2-1"]
    signer = Signer(SigningKey.generate(), "DB0XYZ-0", CounterStore(None))
    APRSRelay(cfg, signer, EmergencySwitch(Path("/nonexistent")))  # the same identity: accepted


def test_relay_validation_refuses_an_aprs_path_without_callsign() -> None:
    """`havel gateway check` said "config ok" for it; run refused it. The check now runs this function."""
    from havel.gateway.relay.component import validate

    with pytest.raises(LegalError):
        validate({"path": [{"type": "aprs", "addressee": "DB0KST-1"}]}, ["platform"])
    with pytest.raises(LegalError):
        validate({"path": [{"type": "aprs", "callsign": " ", "addressee": "DB0KST-1"}]}, ["platform"])
    validate({"path": [{"type": "aprs", "callsign": "DB0XYZ-10", "addressee": "DB0KST-1"}]}, ["platform"])
