"""APRS relay configuration and what it refuses before anything reaches a TNC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from havel.errors import ConfigError, LegalError
from havel.gateway.relay.aprs_config import APRSConfig
from havel.gateway.relay.aprs_relay import APRSRelay
from havel.gateway.relay.emergency import EmergencySwitch
from havel.gateway.relay.record import RelayRecord
from havel.gateway.relay.signing import CounterStore, Signer, SigningKey

BASE = {"callsign": "N0CALL-10", "addressee": "N0CALL-1"}


@pytest.mark.parametrize(
    "extra",
    [
        {"resend_s": 10},  # APRS: not faster than every 30 s
        {"callsign": "N0CALL-99"},
        {"addressee": "TOOLONGCALL-1"},
        {"colour": "red"},
        {"telemetry": [{"name": f"c{i}", "dev_eui": "70B3D57ED0000001", "field": "level"} for i in range(6)]},
        {"telemetry": [{"name": "c", "field": "level"}]},
        {"telemetry": [{"name": "c", "dev_eui": "70B3D57ED0000001", "field": "level", "b": 0}]},
    ],
)
def test_bad_aprs_config(extra: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        APRSConfig.from_config({**BASE, **extra})


def test_no_callsign_no_relay(tmp_path: Path) -> None:
    with pytest.raises(LegalError):
        APRSConfig.from_config({"addressee": "N0CALL-1"})
    cfg = APRSConfig.from_config(BASE)
    cfg.callsign = ""
    with pytest.raises(LegalError):
        APRSRelay(cfg, Signer(SigningKey.generate(), "", CounterStore(None)), EmergencySwitch(tmp_path))


def test_signing_identity_must_be_the_callsign(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        APRSRelay(
            APRSConfig.from_config(BASE),
            Signer(SigningKey.generate(), "DL1ABC", CounterStore(None)),
            EmergencySwitch(tmp_path),
        )


def test_oversize_record_is_refused_not_truncated_into_nonsense(tmp_path: Path) -> None:
    relay = APRSRelay(
        APRSConfig.from_config(BASE),
        Signer(SigningKey.generate(), "N0CALL-10", CounterStore(None)),
        EmergencySwitch(tmp_path),
    )
    huge = RelayRecord("70B3D57ED0001234", 1, "alarm", 1795683600, {"a_very_long_field_name_for_aprs": 1})
    assert not relay.offer(huge) and relay.stats["oversize"] == 1
    two = RelayRecord("70B3D57ED0001234", 2, "alarm", 1795683600, {"level": 163, "water_temperature": 12.4})
    assert relay.offer(two) and relay.pending() == 1  # fits after leaving out the second field
    assert not relay.offer(RelayRecord("70B3D57ED0001234", 3, "background", 1795683600, {"level": 1}))
