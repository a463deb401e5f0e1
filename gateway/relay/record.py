"""A relayed record: the part of a gateway record worth a radio frame (message id parts DevEUI, session epoch
and FCnt32; class; receive time; the data fields the priority rule selected), and its JSON form."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from havel.errors import InputError
from havel.gateway.network.reception import format_time as format_rfc3339
from havel.gateway.relay.priority import lookup
from havel.gateway.relay.strictjson import json_problem

CLASS_LETTERS = {"alarm": "A", "state": "S"}
LETTER_CLASSES = {v: k for k, v in CLASS_LETTERS.items()}

# The ranges of a relayed record's numbers: what the gateway can have written. Beyond them a record is
# malformed (a negative or 40-bit FCnt would make an id no gateway ever gives; a time beyond the year 9999
# cannot be written as RFC 3339).
MAX_FCNT = 2**32 - 1  # FCnt32
MAX_EPOCH = 2**32 - 1
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z


class EnvelopeError(InputError):
    """A relayed message that cannot be read."""


class UnsignedError(EnvelopeError):
    """A relay envelope without a signature (counted apart from malformed ones: another tool's message)."""


@dataclass(frozen=True)
class RelayRecord:
    """A record as relayed: enough to rebuild its json-scheme message and its id."""

    dev_eui: str  # 16 hex digits, upper case
    fcnt: int
    cls: str  # "alarm" | "state"
    received_at: int  # Unix seconds
    data: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    units: dict[str, str] = field(default_factory=dict)
    epoch: int = 0  # the device's session epoch (joins accepted; 0 for ABP): FCnt restarts with each join

    def check(self) -> RelayRecord:
        """``self`` when every field is in range and JSON can carry it, else EnvelopeError (malformed)."""
        for name, value, hi in (
            ("fcnt", self.fcnt, MAX_FCNT),
            ("epoch", self.epoch, MAX_EPOCH),
            ("received_at", self.received_at, MAX_TIME),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
                raise EnvelopeError(f"relay record: {name} {str(value)[:24]} is not an integer 0..{hi}")
        if self.device is not None and not isinstance(self.device, str):
            raise EnvelopeError("relay record: device must be text")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.units.items()):
            raise EnvelopeError("relay record: units must map names to text")
        problem = json_problem({"data": self.data, "device": self.device, "units": self.units})
        if problem:
            raise EnvelopeError(f"relay record: {problem}")
        return self

    @property
    def id(self) -> str:
        """The gateway's message id, ``<DevEUI>-<SessionEpoch>-<FCnt32>``: the platform deduplicates on it."""
        return f"{self.dev_eui}-{self.epoch}-{self.fcnt}"

    @classmethod
    def from_payload(
        cls, payload: dict[str, Any], klass: str, fields: list[str] | None = None
    ) -> RelayRecord:
        """Take the relay's view of a json-scheme message (the outbox payload)."""
        try:
            dev_eui = str(payload["dev_eui"]).upper()
            fcnt = int(payload["fcnt"])
            # required: a record without it (stored by an older gateway, id <DevEUI>-<FCnt32>) would be
            # relayed under a different id than the primary delivers; it waits for the primary instead
            epoch = int(payload["session_epoch"])
            received = parse_time(str(payload["received_at"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise EnvelopeError(f"record cannot be relayed: {exc}") from exc
        data = dict(payload.get("data") or {})
        if fields:
            picked = {}
            for f in fields:
                found, v = lookup(data, f)
                if found:
                    picked[f] = v
            data = picked
        # One level of dotted names (faults.valve), no absent readings: what a compact line can carry.
        data = {k: v for k, v in _flatten(data).items() if v is not None}
        units = {k: v for k, v in (payload.get("units") or {}).items() if k in data}
        return cls(dev_eui, fcnt, klass, received, data, payload.get("device"), units, epoch)

    def to_json_scheme(self, via: str) -> dict[str, Any]:
        """The message the receiver republishes: the gateway's json scheme plus ``via`` and ``relayed``."""
        return {
            "id": self.id,
            "device": self.device,
            "dev_eui": self.dev_eui,
            "session_epoch": self.epoch,
            "fcnt": self.fcnt,
            "received_at": format_time(self.received_at),
            "buffered": False,
            "relayed": True,
            "priority": self.cls,
            "data": self.data,
            "units": self.units,
            "via": via,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "dev_eui": self.dev_eui,
            "epoch": self.epoch,
            "fcnt": self.fcnt,
            "class": self.cls,
            "received_at": self.received_at,
            "data": self.data,
            "device": self.device,
            "units": self.units,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RelayRecord:
        try:
            dev_eui = str(d["dev_eui"]).upper()
            if not re.fullmatch(r"[0-9A-F]{16}", dev_eui):
                raise ValueError(f"dev_eui {dev_eui!r}")
            klass = str(d["class"])
            if klass not in CLASS_LETTERS:
                raise ValueError(f"class {klass!r}")
            data = d.get("data") or {}
            units = d.get("units") or {}
            if not isinstance(data, dict) or not isinstance(units, dict):
                raise ValueError("data and units must be objects")
            at = d["received_at"]
            # a whole number of seconds; a float such as 1.7e9 is taken when it is one
            if isinstance(at, float) and math.isfinite(at) and at.is_integer() and 0 <= at <= MAX_TIME:
                at = int(at)
            rec = cls(dev_eui, d["fcnt"], klass, at, data, d.get("device"), units, d["epoch"])
        except (KeyError, ValueError, TypeError) as exc:
            raise EnvelopeError(f"relay record is malformed: {exc}") from exc
        return rec.check()


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(_flatten(v, name))
        else:
            out[name] = v
    return out


def parse_time(text: str) -> int:
    """RFC 3339 -> Unix seconds."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def format_time(ts: int) -> str:
    """Unix seconds as the gateway writes message times (RFC 3339 UTC with milliseconds, docs/mqtt.md)."""
    return format_rfc3339(datetime.fromtimestamp(ts, UTC))
