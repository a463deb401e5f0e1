"""What a relayed record looks like on each path, and how the receiver turns it back into the json scheme.

A :class:`RelayRecord` is the part of a gateway record worth a radio frame: message id parts (DevEUI,
session epoch, FCnt32), class, receive time and the data fields the priority rule selected.

- APRS (and the compact form for narrow links): one line of printable ASCII,
  ``H<c> <DEVEUI>-<EPOCH>-<FCNT> <TIME36> <k>=<v>[,<k>=<v>...]`` with ``c`` = ``A`` (alarm) or ``S``
  (state), then the gateway's message id (DevEUI as 16 upper-case hex digits, session epoch and FCnt32
  decimal), receive time as Unix seconds in base 36 (upper case), values as decimal numbers,
  ``true``/``false``, short words, or lists of numbers joined by ``/`` (``probes=24.1/36.2``); nested
  fields by their dotted path (``faults.valve=true``). The signature follows after one space (see
  :mod:`signing`).
- MQTT and Reticulum: a JSON envelope ``{"v": 1, "sender": S, "sig": "COUNTER.TAG", "body": TEXT}`` where
  TEXT is the JSON of the record (the signature covers TEXT's exact bytes).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from havel.errors import InputError, SecurityError

from ..network.reception import format_time as format_rfc3339
from .aprs import OversizeError
from .priority import lookup
from .signing import Signature, Signer, SigningKey, Verifier

CLASS_LETTERS = {"alarm": "A", "state": "S"}
LETTER_CLASSES = {v: k for k, v in CLASS_LETTERS.items()}
_LINE_RE = re.compile(r"^H([AS]) ([0-9A-F]{16})-(\d{1,10})-(\d{1,10}) ([0-9A-Z]{1,8}) (\S+)$")
_KEY_RE = re.compile(r"^[A-Za-z0-9_.]{1,32}$")
_WORD_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,16}$")  # no "/": it separates list elements
_INT_RE = re.compile(r"^[+-]?\d{1,20}$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

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


def json_problem(value: Any) -> str | None:
    """What makes ``value`` unfit for strict JSON (RFC 8259) in UTF-8, or None: a NaN or infinity, text
    with a lone surrogate (``"\\ud800"`` parses, but is not Unicode text), a value JSON has no type for."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return "text that is not Unicode (a lone surrogate)"
        elif isinstance(v, float):
            if not math.isfinite(v):
                return "a number that is not finite"
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
        elif v is not None and not isinstance(v, bool | int):
            return f"a value of type {type(v).__name__}"
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:24]} is beyond a double")
    return value


def strict_json(text: str | bytes) -> Any:
    """``json.loads`` for what JSON (RFC 8259) allows only: no NaN, Infinity or numbers beyond a double,
    no lone surrogates. ValueError otherwise (UnicodeError, a ValueError, for text that is not Unicode)."""
    value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    problem = json_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def finite_number(x: Any) -> float | None:
    """``x`` as a float when it is a JSON number that is finite (and fits a float), else None."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    try:
        f = float(x)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return f if math.isfinite(f) else None


def parse_time(text: str) -> int:
    """RFC 3339 -> Unix seconds."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def format_time(ts: int) -> str:
    """Unix seconds as the gateway writes message times (RFC 3339 UTC with milliseconds, docs/mqtt.md)."""
    return format_rfc3339(datetime.fromtimestamp(ts, UTC))


def to_base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _fmt_value(v: Any) -> str:
    if isinstance(v, list) and v and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
        return "/".join(_fmt_value(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    s = str(v)
    if not _WORD_RE.match(s):
        raise EnvelopeError(f"value {s!r} cannot be sent in a compact line")
    return s


def _parse_value(s: str) -> Any:
    if "/" in s:
        return [_parse_value(x) for x in s.split("/")]
    if s in ("true", "false"):
        return s == "true"
    if _INT_RE.match(s):
        return int(s)
    if _FLOAT_RE.match(s):
        f = float(s)
        if math.isfinite(f):
            return f
        raise EnvelopeError(f"the number {s[:24]} is beyond a double")
    try:
        float(s)  # NaN, Infinity, inf, 1_0: words Python would read as numbers, JSON has no such number
    except ValueError:
        return s
    raise EnvelopeError(f"value {s[:24]!r} is not a finite decimal number")


def encode_line(rec: RelayRecord, max_len: int | None = None) -> str:
    """The compact line (without signature); drops trailing fields to fit ``max_len``, at least one stays."""
    head = f"H{CLASS_LETTERS[rec.cls]} {rec.id} {to_base36(rec.received_at)} "
    pairs = []
    for k, v in rec.data.items():
        if not _KEY_RE.match(k):
            continue  # a name the line cannot carry: the JSON paths still have it
        try:
            pairs.append(f"{k}={_fmt_value(v)}")
        except EnvelopeError:
            continue  # e.g. free text with spaces
    if not pairs:
        raise EnvelopeError(f"record {rec.id} has no field a compact line can carry")
    while pairs:
        line = head + ",".join(pairs)
        if max_len is None or len(line) <= max_len:
            return line
        pairs.pop()
    raise OversizeError(
        f"record {rec.id}: even one field does not fit in {max_len} characters",
        hint="give the field a shorter name in the codec or the relay's field list",
    )


def parse_line(line: str) -> RelayRecord:
    """Parse a compact line (without signature)."""
    m = _LINE_RE.match(line)
    if not m:
        raise EnvelopeError(f"not a Havel relay line: {line[:40]!r}")
    data: dict[str, Any] = {}
    for pair in m.group(6).split(","):
        k, eq, v = pair.partition("=")
        if not eq or not _KEY_RE.match(k) or not v:
            raise EnvelopeError(f"malformed field {pair!r} in relay line")
        data[k] = _parse_value(v)
    return RelayRecord(
        m.group(2),
        int(m.group(4)),
        LETTER_CLASSES[m.group(1)],
        int(m.group(5), 36),
        data,
        epoch=int(m.group(3)),
    ).check()


def encode_status_line(state: str, ts: int) -> str:
    """``HP DOWN <TIME36>`` / ``HP UP <TIME36>``: the gateway's primary path changed state at ``ts``."""
    if state not in ("up", "down"):
        raise EnvelopeError(f"primary state must be up or down, not {state!r}")
    return f"HP {state.upper()} {to_base36(ts)}"


def parse_status_line(line: str) -> dict[str, Any]:
    m = re.fullmatch(r"HP (UP|DOWN) ([0-9A-Z]{1,8})", line)
    if not m:
        raise EnvelopeError(f"not a Havel status line: {line[:40]!r}")
    return {"kind": "status", "primary": m.group(1).lower(), "at": int(m.group(2), 36)}


# ------------------------------------------------------------------------------------ gateway events

_EVENT_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_EVENT_ID_RE = re.compile(r"^(.+)-event-([0-9a-f]{12})$")  # the gateway's own id of a stored event
_EVENT_LINE_RE = re.compile(r"^HE ([0-9A-Z]{1,10}) ([0-9A-Z]{1,8}) ([a-z0-9_]{1,32})(?: (\S+))?$")


def event_body(payload: dict[str, Any]) -> dict[str, Any]:
    """The relayed form of a stored gateway event (its outbox payload ``{"id", "event", "gateway_id",
    "at", ...details}``): ``{"kind": "event", "id", "event", "at": <Unix seconds>, "details"}``, details
    only the plain values (text, numbers, true/false) a radio line can carry."""
    try:
        rid, name = str(payload["id"]), str(payload["event"])
        at = parse_time(str(payload["at"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise EnvelopeError(f"event cannot be relayed: {exc}") from exc
    m = _EVENT_ID_RE.match(rid)
    if not m or not _EVENT_RE.match(name):
        raise EnvelopeError(f"event {rid!r} ({name!r}) cannot be relayed: not a gateway event id and name")
    details = {
        k: v
        for k, v in payload.items()
        if k not in ("id", "event", "gateway_id", "at")
        and isinstance(k, str)
        and isinstance(v, str | int | float | bool)
        and not (isinstance(v, float) and not math.isfinite(v))
    }
    return {"kind": "event", "id": rid, "event": name, "at": at, "details": details}


def check_event(body: dict[str, Any], gateway_id: str) -> dict[str, Any]:
    """A received event body, checked (EnvelopeError: malformed); its ``id`` must be ``gateway_id``'s."""
    name, at, details, rid = body.get("event"), body.get("at"), body.get("details", {}), body.get("id")
    if not isinstance(name, str) or not _EVENT_RE.match(name):
        raise EnvelopeError(f"event name {str(name)[:40]!r}")
    if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= MAX_TIME:
        raise EnvelopeError(f"event time {str(at)[:24]} is not Unix seconds 0..{MAX_TIME}")
    if not isinstance(details, dict) or not all(
        isinstance(v, str | int | float | bool) for v in details.values()
    ):
        raise EnvelopeError("event details must be plain values")
    m = _EVENT_ID_RE.match(rid) if isinstance(rid, str) else None
    if m is None or m.group(1) != gateway_id:
        raise EnvelopeError(f"event id {str(rid)[:40]!r} is not an event id of {gateway_id}")
    return {"kind": "event", "id": rid, "event": name, "at": at, "details": details}


def encode_event_line(body: dict[str, Any], max_len: int | None = None) -> str:
    """``HE <ID36> <TIME36> <event>[ k=v,...]``: the event's random id part (12 hex digits) in base 36,
    its time, its name, then as many details as fit in ``max_len``."""
    m = _EVENT_ID_RE.match(str(body["id"]))
    if m is None:
        raise EnvelopeError(f"not a gateway event id: {body['id']!r}")
    head = f"HE {to_base36(int(m.group(2), 16))} {to_base36(int(body['at']))} {body['event']}"
    pairs = []
    for k, v in (body.get("details") or {}).items():
        if not _KEY_RE.match(k):
            continue
        try:
            pairs.append(f"{k}={_fmt_value(v)}")
        except EnvelopeError:
            continue  # free text: the mesh paths carry it
    while pairs and max_len is not None and len(head) + 1 + len(",".join(pairs)) > max_len:
        pairs.pop()
    line = f"{head} {','.join(pairs)}" if pairs else head
    if max_len is not None and len(line) > max_len:
        raise OversizeError(f"event line {line!r} is longer than {max_len} characters")
    return line


def parse_event_line(line: str, gateway_id: str) -> dict[str, Any]:
    """An ``HE`` line (without signature) -> the event body of :func:`check_event`."""
    m = _EVENT_LINE_RE.match(line)
    if not m:
        raise EnvelopeError(f"not a Havel event line: {line[:40]!r}")
    rid = int(m.group(1), 36)
    if rid >= 16**12:
        raise EnvelopeError(f"event id {m.group(1)} is beyond 12 hex digits")
    details: dict[str, Any] = {}
    for pair in (m.group(4) or "").split(",") if m.group(4) else []:
        k, eq, v = pair.partition("=")
        if not eq or not _KEY_RE.match(k) or not v or "/" in v:
            raise EnvelopeError(f"malformed field {pair!r} in event line")
        details[k] = _parse_value(v)
    body = {"id": f"{gateway_id}-event-{rid:012x}", "event": m.group(3), "at": int(m.group(2), 36)}
    return check_event({**body, "details": details}, gateway_id)


def sign_line(signer: Signer, channel: str, line: str, context: str = "") -> str:
    """``line`` + space + signature; ``context`` (e.g. the APRS addressee) is signed but not repeated."""
    sig = signer.sign(channel, (context + line).encode())
    return f"{line} {sig}"


def split_signed_line(text: str) -> tuple[str, Signature]:
    line, sep, sig = text.rpartition(" ")
    if not sep:
        raise EnvelopeError("relay line carries no signature")
    try:
        return line, Signature.parse(sig)
    except SecurityError as exc:
        raise EnvelopeError(str(exc)) from exc


def sign_body(signer: Signer, channel: str, obj: dict[str, Any]) -> bytes:
    """A signed JSON envelope around any JSON object (relay records, emergency commands)."""
    body = json.dumps(obj, separators=(",", ":"), sort_keys=True)
    sig = signer.sign(channel, body.encode())
    return json.dumps(
        {"v": 1, "sender": signer.sender, "sig": str(sig), "body": body}, separators=(",", ":")
    ).encode()


def open_body(verifier: Verifier, channel: str, data: bytes) -> tuple[str, dict[str, Any]]:
    """Verify a JSON envelope -> (sender, body object); see :func:`open_envelope`."""
    sender, inner, _ = open_envelope(verifier, channel, data)
    return sender, inner


def open_envelope(verifier: Verifier, channel: str, data: bytes) -> tuple[str, dict[str, Any], Signature]:
    """Verify a JSON envelope -> (sender, body object, signature).

    Raises EnvelopeError (malformed: not JSON, too deep, wrong types, text that is not Unicode),
    SecurityError (forgery, unknown sender) or ReplayError. The body is read before the signature is
    checked (pure parsing) so that its own time can prove it fresh after a lost counter state.
    """
    try:
        env = strict_json(data)
        if not isinstance(env, dict):
            raise TypeError("not a JSON object")
        if "sig" not in env and "body" in env:
            raise UnsignedError("relay envelope carries no signature ('sig')")
        sender, sig_text, body = env["sender"], env["sig"], env["body"]
        if not all(isinstance(x, str) for x in (sender, sig_text, body)):
            raise TypeError("sender, sig and body must be strings")
        if env.get("v") != 1:
            raise ValueError(f"version {env.get('v')!r}")
        raw_body = body.encode()  # a lone surrogate (valid JSON "\udc80") is not Unicode text
        inner = strict_json(body)  # nor is the escape of one inside the body; no NaN or Infinity
    except (ValueError, KeyError, TypeError, RecursionError, UnicodeError) as exc:
        raise EnvelopeError(f"relay envelope is malformed: {type(exc).__name__}: {str(exc)[:80]}") from exc
    if not isinstance(inner, dict):
        raise EnvelopeError("relay envelope body is not a JSON object")
    try:
        sig = Signature.parse(sig_text)
    except SecurityError as exc:
        raise EnvelopeError(str(exc)) from exc
    at = finite_number(inner.get("received_at", inner.get("at")))
    verifier.verify(sender, channel, sig, raw_body, at=at)
    return sender, inner, sig


def sign_json(signer: Signer, channel: str, rec: RelayRecord) -> bytes:
    """The JSON envelope of a relay record for MQTT and Reticulum."""
    return sign_body(signer, channel, rec.to_dict())


def open_json(verifier: Verifier, channel: str, data: bytes) -> tuple[str, RelayRecord]:
    """Verify and read a relay record's JSON envelope -> (sender, record)."""
    sender, inner = open_body(verifier, channel, data)
    return sender, RelayRecord.from_dict(inner)


__all__ = [
    "EnvelopeError",
    "RelayRecord",
    "Signature",
    "SigningKey",
    "encode_line",
    "open_json",
    "parse_line",
    "sign_json",
    "sign_line",
    "split_signed_line",
]
