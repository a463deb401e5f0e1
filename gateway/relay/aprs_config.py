"""The APRS relay's configuration: ``[[relay.path]] type = "aprs"`` in the gateway config, checked for the
legal guards (a licensed callsign, the APRS resend rule) and the telemetry channels it feeds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from havel.errors import ConfigError, InputError, LegalError
from havel.gateway.relay import aprs, ax25
from havel.gateway.settings import read

MIN_RESEND_S = 30.0
DEFAULT_PATH = ("WIDE2-1",)


@dataclass
class APRSConfig:
    """``[[relay.path]] type = "aprs"`` in the gateway config."""

    callsign: str
    addressee: str
    host: str = "127.0.0.1"
    port: int = 8001
    kiss_port: int = 0
    destination: str = "APZHVL"
    # A fixed rooftop station: one hop through the wide-area digipeaters. WIDE1-1 asks fill-in digipeaters
    # meant for mobiles and adds copies; [] in a local net where the crisis centre hears the gateway.
    path: list[str] = field(default_factory=lambda: list(DEFAULT_PATH))
    resend_s: float = MIN_RESEND_S
    # Between two of our frames the channel stays free this long: the digipeater repeats the frame, the
    # crisis centre acks it, other stations get a turn. A burst (emergency switched on with a backlog)
    # goes out spread at this pace, alarms first, within the airtime budget.
    min_gap_s: float = 5.0
    retries: int = 3
    budget_airtime_s: float = 60.0
    budget_window_s: float = 3600.0
    state_share: float = 0.5
    txdelay_s: float = 0.3
    baud: int = 1200
    # State as APRS telemetry: up to five analog channels, each one data field of one device, e.g.
    # {name = "Pegel1", unit = "cm", dev_eui = "70B3D57ED0000001", field = "level", b = 2.0, c = 0.0}
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    definitions_every_s: float = 3600.0

    @classmethod
    def from_config(cls, d: dict[str, Any], where: str = "relay.path (aprs)") -> APRSConfig:
        """Read a ``[[relay.path]]`` table; errors name the key under ``where`` (``relay.path[0]``)."""
        call = str(d.get("callsign") or "").strip()
        if not call:
            raise LegalError(
                f"{where}: no callsign configured: the APRS relay may not transmit without the "
                "licensed callsign of the station",
                hint='set callsign = "DB0XYZ-10" (club station)',
            )
        try:
            ax25.Address.parse(call)
        except InputError as exc:
            raise ConfigError(f"{where}.callsign: {exc}") from exc
        if "addressee" not in d:
            raise ConfigError(f"{where}.addressee is missing (the crisis centre's callsign)")
        # types, unknown keys and defaults from the dataclass's fields
        cfg = read(cls, {k: v for k, v in d.items() if k not in ("type", "name")}, where)
        for name in ("resend_s", "budget_airtime_s", "budget_window_s", "min_gap_s", "definitions_every_s"):
            v = getattr(cfg, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"{where}.{name} must be a finite number >= 0, not {v!r}")
        if cfg.resend_s < MIN_RESEND_S:
            raise ConfigError(f"{where}.resend_s must be at least {MIN_RESEND_S:g} (APRS resend rule)")
        try:
            # One spelling everywhere (SSID 0 has none): what goes on the air is what is signed.
            cfg.callsign = str(ax25.Address.parse(call))
            cfg.addressee = str(ax25.Address.parse(str(cfg.addressee)))
            aprs.pad_addressee(cfg.addressee)
            cfg.path = [str(ax25.Address.parse(p)) for p in cfg.path]  # e.g. ["WIDE2-1"]
            cfg.destination = str(ax25.Address.parse(str(cfg.destination)))
        except InputError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        cfg.channels()  # validates the telemetry table
        return cfg

    def channels(self) -> list[TelemetryChannel]:
        """The telemetry channels of the config (ConfigError names a bad entry)."""
        if len(self.telemetry) > 5:
            raise ConfigError("relay.path (aprs).telemetry: APRS telemetry has five analog channels")
        out = []
        for i, t in enumerate(self.telemetry):
            where = f"relay.path (aprs).telemetry[{i}]"
            missing = [k for k in ("name", "dev_eui", "field") if k not in t]
            if missing:
                raise ConfigError(f"{where}.{missing[0]} is missing")
            unknown = set(t) - {"name", "unit", "dev_eui", "field", "b", "c"}
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
            ch = aprs.Channel(
                str(t["name"]), str(t.get("unit", "")), 0.0, float(t.get("b", 1.0)), float(t.get("c", 0.0))
            )
            if ch.b == 0:
                raise ConfigError(f"{where}.b must not be 0")
            out.append(TelemetryChannel(ch, str(t["dev_eui"]).upper(), str(t["field"])))
        return out


@dataclass(frozen=True)
class TelemetryChannel:
    """An APRS telemetry channel fed by one data field of one device."""

    channel: aprs.Channel
    dev_eui: str
    field: str
