"""Signatures and counters of relayed messages, and the compact/JSON envelopes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from havel.errors import ConfigError, ReplayError, SecurityError
from havel.gateway.relay.envelope import open_json, sign_json
from havel.gateway.relay.lines import encode_line, encode_status_line, parse_line, parse_status_line
from havel.gateway.relay.record import EnvelopeError, RelayRecord
from havel.gateway.relay.signing import CounterStore, Signature, Signer, SigningKey, Verifier

KEY = SigningKey(bytes(range(32)))
REC = RelayRecord("70B3D57ED0001234", 4711, "alarm", 1795683600, {"level": 163, "fault": True})


def test_tag_is_hmac_sha256_truncated(tmp_path: Path) -> None:
    import base64
    import hashlib
    import hmac

    sig = Signer(KEY, "N0CALL-10", CounterStore(None)).sign("aprs", b"body")
    mac = hmac.new(bytes(range(32)), b"HVR1\0N0CALL-10\0aprs\0" + b"1\0body", hashlib.sha256).digest()
    assert sig == Signature(1, base64.urlsafe_b64encode(mac[:8]).decode().rstrip("="))
    assert len(sig.tag) == 11 and Signature.parse(str(sig)) == sig


def test_key_file_is_private_and_redacted(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    KEY.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "redacted" in repr(SigningKey.load(path)) and bytes(range(32)).hex() not in repr(KEY)
    os.chmod(path, 0o644)
    with pytest.raises(SecurityError):
        SigningKey.load(path)
    (tmp_path / "bad.key").write_text("zz")
    os.chmod(tmp_path / "bad.key", 0o600)
    with pytest.raises(ConfigError):
        SigningKey.load(tmp_path / "bad.key")
    with pytest.raises(ConfigError):
        SigningKey(b"short")


def test_counter_survives_restart_without_reuse(tmp_path: Path) -> None:
    path = tmp_path / "ctr"
    a = CounterStore(path, reserve=4)
    used = [a.next() for _ in range(6)]
    b = CounterStore(path, reserve=4)  # a power cut after 6: the reserved block is skipped
    assert b.next() > max(used)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_verifier_forgery_replay_window(tmp_path: Path) -> None:
    signer = Signer(KEY, "N0CALL-10", CounterStore(None))
    (tmp_path / "state.json").write_text("{}")  # a receiver that has run before (see the lost-state test)
    v = Verifier({"N0CALL-10": KEY}, window=4, state_path=tmp_path / "state.json")
    sigs = [signer.sign("aprs", b"m%d" % i) for i in range(8)]
    v.verify("N0CALL-10", "aprs", sigs[1], b"m1")
    v.verify("N0CALL-10", "aprs", sigs[0], b"m0")  # reordered paths: still fresh
    with pytest.raises(ReplayError):
        v.verify("N0CALL-10", "aprs", sigs[1], b"m1")
    with pytest.raises(SecurityError):
        v.verify("N0CALL-10", "aprs", sigs[2], b"tampered")
    with pytest.raises(SecurityError):  # the same frame on another path is another message
        v.verify("N0CALL-10", "mqtt", sigs[2], b"m2")
    with pytest.raises(SecurityError):
        v.verify("DL1ABC", "aprs", sigs[2], b"m2")
    v.verify("N0CALL-10", "aprs", sigs[7], b"m7")
    with pytest.raises(ReplayError):  # fell out of the window
        v.verify("N0CALL-10", "aprs", sigs[2], b"m2")
    # After a restart nothing at or below the saved high mark is accepted.
    v2 = Verifier({"N0CALL-10": KEY}, window=4, state_path=tmp_path / "state.json")
    with pytest.raises(ReplayError):
        v2.verify("N0CALL-10", "aprs", sigs[6], b"m6")


def test_compact_line_round_trip_and_fit() -> None:
    line = encode_line(REC)
    assert line == "HA 70B3D57ED0001234-0-4711 TP3QC0 level=163,fault=true"
    assert parse_line(line) == RelayRecord(REC.dev_eui, REC.fcnt, "alarm", REC.received_at, REC.data)
    assert encode_line(REC, max_len=47) == "HA 70B3D57ED0001234-0-4711 TP3QC0 level=163"
    from havel.gateway.relay.aprs import OversizeError

    with pytest.raises(OversizeError):
        encode_line(REC, max_len=30)


@pytest.mark.parametrize(
    "line",
    [
        "HX 70B3D57ED0001234 1 A k=1",
        "HA 70B3 1 A k=1",
        "HA 70B3D57ED0001234 1 A k",
        "HA 70B3D57ED0001234 1 A",
    ],
)
def test_compact_line_malformed(line: str) -> None:
    with pytest.raises(EnvelopeError):
        parse_line(line)


def test_json_envelope(tmp_path: Path) -> None:
    signer = Signer(KEY, "N0CALL-10", CounterStore(None))
    data = sign_json(signer, "mqtt", REC)
    v = Verifier({"N0CALL-10": KEY})
    sender, rec = open_json(v, "mqtt", data)
    assert sender == "N0CALL-10" and rec == REC
    with pytest.raises(ReplayError):
        open_json(v, "mqtt", data)
    env = json.loads(data)
    env["body"] = env["body"].replace("163", "999")
    env["sig"] = str(signer.sign("mqtt", b"x"))
    with pytest.raises(SecurityError):
        open_json(v, "mqtt", json.dumps(env).encode())
    for bad in (b"not json", b'{"v": 2}', b'{"v":1,"sender":"N0CALL-10","sig":"x","body":"{}"}'):
        with pytest.raises(EnvelopeError):
            open_json(v, "mqtt", bad)


def test_nested_and_list_fields_travel_in_the_compact_line() -> None:
    payload = {
        "dev_eui": "70B3D57ED0000005",
        "session_epoch": 2,
        "fcnt": 9,
        "received_at": "2026-11-26T09:00:00Z",
        "data": {"faults": {"valve": True, "flow_meter": False}, "probes": [24.1, 36.5]},
    }
    rec = RelayRecord.from_payload(payload, "alarm", ["faults.valve", "probes"])
    line = encode_line(rec)
    assert line.endswith(" faults.valve=true,probes=24.1/36.5")
    assert parse_line(line).data == {"faults.valve": True, "probes": [24.1, 36.5]}


def test_record_from_json_scheme_payload() -> None:
    payload = {
        "dev_eui": "70b3d57ed0001234",
        "session_epoch": 3,
        "fcnt": 5,
        "received_at": "2026-11-26T09:00:00.123Z",
        "device": "pegel-1",
        "data": {"level": 163, "battery_mv": 3300},
        "units": {"level": "cm"},
    }
    rec = RelayRecord.from_payload(payload, "alarm", ["level"])
    assert rec.id == "70B3D57ED0001234-3-5" and rec.data == {"level": 163} and rec.units == {"level": "cm"}
    out = rec.to_json_scheme("aprs")
    assert out["received_at"] == "2026-11-26T09:00:00.000Z"  # the relay carries whole seconds
    assert out["via"] == "aprs" and out["device"] == "pegel-1"


def test_status_line() -> None:
    assert encode_status_line("down", 1795683600) == "HP DOWN TP3QC0"
    assert parse_status_line("HP UP TP3QC0") == {"kind": "status", "primary": "up", "at": 1795683600}
    for bad in ("HP SIDEWAYS TP3QC0", "HP DOWN", "HA DOWN TP3QC0"):
        with pytest.raises(EnvelopeError):
            parse_status_line(bad)
    with pytest.raises(EnvelopeError):
        encode_status_line("sideways", 1)


def test_nested_state_is_flattened_and_uncarriable_fields_are_left_out() -> None:
    payload = {
        "dev_eui": "70B3D57ED0000007",
        "session_epoch": 0,
        "fcnt": 3,
        "received_at": "2026-11-26T09:00:00Z",
        "data": {
            "valve_open": True,
            "mode": "auto",
            "note": "two words",
            "water_used": None,
            "interlock": {"reservoir_low": False},
        },
    }
    rec = RelayRecord.from_payload(payload, "state")
    assert rec.data == {
        "valve_open": True,
        "mode": "auto",
        "note": "two words",
        "interlock.reservoir_low": False,
    }
    line = encode_line(rec)
    assert line.endswith(" valve_open=true,mode=auto,interlock.reservoir_low=false")
    with pytest.raises(EnvelopeError):
        encode_line(RelayRecord("70B3D57ED0000007", 4, "state", 1, {"note": "two words"}))


def test_counter_state_survives_a_torn_file_and_is_fsynced(tmp_path: Path, monkeypatch: Any) -> None:
    """A torn state file (power cut in the middle of a write) neither stops the receiver with a raw
    JSONDecodeError nor makes recorded messages acceptable again: the second copy has the counters."""
    state = tmp_path / "receiver-counters.json"
    state.write_text("{}")
    signer = Signer(KEY, "N0CALL-10", CounterStore(None))
    sigs = [signer.sign("aprs", b"m%d" % i) for i in range(3)]
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    v = Verifier({"N0CALL-10": KEY}, state_path=state)
    for i, sig in enumerate(sigs):
        v.verify("N0CALL-10", "aprs", sig, b"m%d" % i)
    assert len(synced) >= 3 * 2  # every save: the file and its directory, for both copies
    state.write_text(state.read_text()[:7])  # torn
    v2 = Verifier({"N0CALL-10": KEY}, state_path=state)
    assert not v2.state_lost
    with pytest.raises(ReplayError):
        v2.verify("N0CALL-10", "aprs", sigs[2], b"m2")
    assert list(tmp_path.glob("receiver-counters.json.damaged-*"))  # kept for a look, and logged


@pytest.mark.parametrize("damage", ["deleted", "garbage", "wrong types"])
def test_lost_counter_state_accepts_only_fresh_messages(tmp_path: Path, damage: str) -> None:
    """With both copies gone or damaged, a recording is not accepted again: only a message stamped after
    the start (minus the relay's maximum age) opens a new counter epoch, and nothing below it is taken."""
    import time

    from havel.gateway.relay.signing import FRESH_GRACE_S, StaleError

    state = tmp_path / "receiver-counters.json"
    signer = Signer(KEY, "N0CALL-10", CounterStore(None))
    old = [signer.sign("mqtt", b"old%d" % i) for i in range(3)]
    v = Verifier({"N0CALL-10": KEY}, state_path=state)
    v.verify("N0CALL-10", "mqtt", old[0], b"old0", at=time.time())
    for copy in (state, state.with_name(state.name + ".1")):
        if damage == "deleted":
            copy.unlink()
        else:
            copy.write_text("\x00\x01{" if damage == "garbage" else '{"N0CALL-10|mqtt": "9"}')
    v2 = Verifier({"N0CALL-10": KEY}, state_path=state)
    assert v2.state_lost
    now = time.time()
    with pytest.raises(StaleError):  # a recorded message from before the start: not provably new
        v2.verify("N0CALL-10", "mqtt", old[1], b"old1", at=now - FRESH_GRACE_S - 60)
    with pytest.raises(StaleError):  # no time of its own
        v2.verify("N0CALL-10", "mqtt", old[1], b"old1")
    fresh = signer.sign("mqtt", b"fresh")
    v2.verify("N0CALL-10", "mqtt", fresh, b"fresh", at=now)
    with pytest.raises(ReplayError):  # below the new epoch
        v2.verify("N0CALL-10", "mqtt", old[2], b"old2", at=now)
    later = signer.sign("mqtt", b"later")
    v2.verify("N0CALL-10", "mqtt", later, b"later")  # the epoch is set: counters decide again


def test_ssid_zero_is_one_identity_on_both_sides() -> None:
    """DB0XYZ-0 goes on the air as DB0XYZ: signer and verifier both use that spelling."""
    from havel.gateway.relay.signing import identity

    assert identity("db0xyz-0") == "DB0XYZ" and identity("DB0XYZ-10") == "DB0XYZ-10"
    assert identity("potsdam-roof-1") == "POTSDAM-ROOF-1"  # not a callsign: upper case only
    signer = Signer(KEY, "DB0XYZ-0", CounterStore(None))
    assert signer.sender == "DB0XYZ"
    sig = signer.sign("aprs", b"x")
    (Verifier({"DB0XYZ-0": KEY})).verify("DB0XYZ", "aprs", sig, b"x")
    Verifier({"DB0XYZ": KEY}).verify("DB0XYZ-0", "aprs", sig, b"x")
