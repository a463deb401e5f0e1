"""``havel relay receive``: the crisis centre's end of the disaster relay.

Listens on the configured paths (a KISS TNC, MQTT, Reticulum), verifies each message's signature and
counter (forgeries and replays are rejected and counted), drops duplicates by message id (a record may
arrive over several paths, and again after a resend), and republishes the rest into a local MQTT broker in
the gateway's json scheme with a ``via`` field naming the path.

Receiver config (TOML)::

    data_dir = "/var/lib/havel-receiver"
    prefix = "havel"
    [publish]                 # the local broker
    host = "127.0.0.1"
    port = 1883
    [[sender]]                # one per gateway
    name = "DB0ABC-10"        # its callsign (APRS source) and envelope sender
    key_file = "gw1.key"
    gateway_id = "gw1"
    [kiss]                    # optional: the TNC (direwolf)
    host = "127.0.0.1"
    port = 8001
    callsign = "DB0KST-1"     # the addressee of the alarms; acks are sent from it
    ack = true
    [mqtt]                    # optional: the crisis-centre broker the gateways publish to
    host = "127.0.0.1"
    port = 1884
    topic = "havel/+/relay/#"
    client_id = "krisenstab-1"  # a persistent session: kept while the receiver restarts

``[publish]`` and ``[mqtt]`` take the keys of the gateway's MQTT settings block
(:class:`havel.gateway.settings.MqttSettings`: ``tls``, ``ca_file``, ``cert_file``, ``key_file``,
``username``, ``password_file`` ...), here with TLS off by default (a broker in the crisis centre's own
network); relative file names are taken from the config file's folder. The old names ``tls_ca``,
``client_cert`` and ``client_key`` still work, with a warning.
    [reticulum]               # optional (havel[reticulum]): an RNS destination
    config_dir = "rns"
    amateur = false           # true: PLAIN destination (amateur radio: no encryption)
    identity_file = "rns.identity"
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import select
import socket
import threading
import time
import tomllib
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from havel.errors import ConfigError, HavelError, LegalError, ReplayError, SecurityError

from ..mqtt import LoopThread, MqttClient
from ..settings import MqttSettings, check, key, read
from . import aprs, ax25, kiss
from .envelope import (
    EnvelopeError,
    RelayRecord,
    UnsignedError,
    check_event,
    finite_number,
    format_time,
    open_body,
    parse_event_line,
    parse_line,
    parse_status_line,
    split_signed_line,
)
from .mqtt_relay import COMMAND_FUTURE_S
from .signing import SigningKey, StaleError, Verifier, identity

log = logging.getLogger("havel.relay.receiver")


@dataclass
class SenderConfig:
    name: str
    key: SigningKey
    gateway_id: str
    telemetry: list[aprs.Channel] = field(default_factory=list)


MQTT_TOPIC = "+/+/relay/#"


@dataclass(frozen=True)
class KissSection:
    """``[kiss]``: the crisis centre's TNC."""

    host: str = key("127.0.0.1")
    port: int = key(8001, lo=1, hi=65535)
    callsign: str | None = key(None)  # the addressee of the alarms; acks are sent from it
    ack: bool = key(True)
    path: tuple[str, ...] = key(())  # digipeater path of the acks
    destination: str = key("APZHVL")


@dataclass(frozen=True)
class ReticulumSection:
    """``[reticulum]``: an RNS destination (havel[reticulum])."""

    config_dir: str  # a Reticulum config without AutoInterface
    amateur: bool  # true: PLAIN destination (amateur radio: no encryption)
    encrypt: bool | None = key(None)  # default: not amateur
    identity_file: str | None = key(None)  # default: rns.identity in data_dir


@dataclass(frozen=True)
class SenderSection:
    """``[[sender]]``: one gateway whose signatures the receiver checks."""

    name: str  # its callsign (APRS source) and envelope sender
    key_file: str  # the shared signing key, relative to the config's folder
    gateway_id: str
    telemetry: tuple[dict[str, Any], ...] = key(())  # {name, unit, b, c} per APRS telemetry channel


def _given(section: type, table: Any, where: str) -> dict[str, Any] | None:
    """The table checked against its section, with only the keys it gives (the listeners apply the
    defaults); None for no table."""
    if table is None:
        return None
    checked: Any = read(section, table, where)
    return {k: getattr(checked, k) for k in table}


def publish_settings(table: Any, base: Path | None = None) -> MqttSettings:
    """``[publish]``: the local broker the receiver republishes into (TLS off by default)."""
    settings, rest = MqttSettings.from_table(table, "publish", base=base, **_defaults(table))
    if rest:
        known = ", ".join(sorted(MqttSettings.key_names()))
        raise ConfigError(f"unknown key 'publish.{sorted(rest)[0]}'", hint=known)
    return settings


def _defaults(table: Any) -> dict[str, Any]:
    """The receiver's defaults: TLS off; with the old ``tls_ca`` spelling the port stays 1883, as before."""
    old = isinstance(table, dict) and "tls_ca" in table
    return {"tls": False, "port": 1883} if old else {"tls": False}


def listen_settings(table: Any, base: Path | None = None) -> tuple[MqttSettings, str]:
    """``[mqtt]``: the broker the gateways publish to, and the topic filter (TLS off by default; a
    persistent session kept one day)."""
    settings, rest = MqttSettings.from_table(
        table,
        "mqtt",
        base=base,
        session_expiry_s=86400,
        **_defaults(table),
        client_id=f"havel-relay-receiver-{socket.gethostname()}",
    )
    topic = rest.pop("topic", MQTT_TOPIC)
    if rest:
        known = sorted(MqttSettings.key_names() | {"topic"})
        raise ConfigError(f"unknown key 'mqtt.{sorted(rest)[0]}'", hint=", ".join(known))
    if not isinstance(topic, str) or not topic:
        raise ConfigError(f"mqtt.topic must be a non-empty string, not {topic!r}")
    return settings, topic


@dataclass
class ReceiverConfig:
    data_dir: Path
    prefix: str = "havel"
    publish: MqttSettings = field(default_factory=lambda: publish_settings({}))
    senders: list[SenderConfig] = field(default_factory=list)
    kiss: dict[str, Any] | None = None
    mqtt: MqttSettings | None = None
    reticulum: dict[str, Any] | None = None
    mqtt_topic: str = MQTT_TOPIC

    @classmethod
    def load(cls, path: str | Path) -> ReceiverConfig:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text())
        except OSError as exc:
            raise ConfigError(f"receiver config {p} cannot be read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
        return cls.from_dict(raw, base=p.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base: Path = Path()) -> ReceiverConfig:
        known = {"data_dir", "prefix", "publish", "sender", "kiss", "mqtt", "reticulum"}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(
                f"receiver config: unknown key(s) {', '.join(sorted(unknown))}",
                hint=f"known: {', '.join(sorted(known))}",
            )
        if "data_dir" not in raw:
            raise ConfigError("receiver config: data_dir is missing")
        check(str, raw["data_dir"], "data_dir")
        check(str, raw.get("prefix", "havel"), "prefix")
        for section in ("publish", "kiss", "mqtt", "reticulum"):
            if raw.get(section) is not None and not isinstance(raw[section], dict):
                raise ConfigError(f"receiver config: [{section}] must be a table")
        if not isinstance(raw.get("sender") or [], list):
            raise ConfigError("receiver config: sender must be a list of [[sender]] tables")
        senders = []
        for i, s in enumerate(raw.get("sender") or []):
            if not isinstance(s, dict):
                raise ConfigError(f"receiver config: sender[{i}] must be a table")
            for need in ("name", "key_file", "gateway_id"):
                if need not in s:
                    raise ConfigError(f"receiver config: sender[{i}].{need} is missing")
            read(SenderSection, s, f"sender[{i}]")  # types (telemetry entries are checked below)
            channels = []
            for j, t in enumerate(s.get("telemetry") or []):
                try:
                    b, c = float(t.get("b", 1.0)), float(t.get("c", 0.0))
                    ch = aprs.Channel(str(t["name"]), str(t.get("unit", "")), 0.0, b, c)
                    if not (math.isfinite(ch.b) and math.isfinite(ch.c)) or ch.b == 0:
                        raise ValueError("b and c must be finite numbers, b not 0")
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise ConfigError(f"receiver config: sender[{i}].telemetry[{j}]: {exc}") from exc
                channels.append(ch)
            senders.append(
                SenderConfig(
                    identity(str(s["name"])),
                    SigningKey.load(base / s["key_file"]),
                    str(s["gateway_id"]),
                    channels,
                )
            )
        if not senders:
            raise ConfigError("receiver config: no [[sender]]: nothing could be verified")
        k = _given(KissSection, raw.get("kiss"), "kiss")
        rns = _given(ReticulumSection, raw.get("reticulum"), "reticulum")
        if k is not None and k.get("ack", True) and not k.get("callsign"):
            raise LegalError(
                "receiver config: kiss.callsign is missing: acks may not be sent without the "
                "station's licensed callsign",
                hint="set kiss.callsign, or ack = false",
            )
        if not raw.get("kiss") and not raw.get("mqtt") and not raw.get("reticulum"):
            raise ConfigError("receiver config: no path to listen on ([kiss], [mqtt] or [reticulum])")
        mqtt_settings, topic = listen_settings(raw["mqtt"], base) if raw.get("mqtt") else (None, MQTT_TOPIC)
        return cls(
            Path(base / raw["data_dir"]),
            str(raw.get("prefix", "havel")),
            publish_settings(raw.get("publish") or {}, base),
            senders,
            k,
            mqtt_settings,
            rns,
            topic,
        )


@dataclass(frozen=True)
class Delivered:
    """One republished record (for the live table and the tests)."""

    via: str
    record: RelayRecord
    gateway_id: str
    at: float


# APRS data type identifiers (APRS 1.0.1, chapter 5) of what a station sends besides messages (":") and
# telemetry ("T"): positions, status, objects, items, weather, Mic-E, capabilities, queries, raw GPS.
APRS_OTHER_TYPES = {bytes([c]) for c in b"!=/@>;)_`'<?$"}

# A frame heard again within this time, byte for byte, with a digipeater's has-been-repeated bit set, is
# a digipeater's copy of one already accepted, not an attack.
DIGIPEAT_WINDOW_S = 600.0
DEFINITION_CANDIDATES = 4  # heard PARM/UNIT/EQNS texts kept per sender and kind until a signed BITS


class ReceiverCore:
    """Verification, dedup and republishing; no sockets of its own (the listeners feed it).

    Every ``handle_*`` method takes outside input and never raises: what it cannot read is counted under
    a reason (``malformed``, ``forged``, ...) and dropped.
    """

    COUNTERS = (
        "status",
        "accepted",
        "events",
        "duplicate",
        "digipeated",
        "forged",
        "replayed",
        "stale",
        "foreign",
        "malformed",
        "oversize",
        "unknown",
        "telemetry",
        "definitions",
        "definitions_signed",
        "unsigned_status",
        "unsigned",
        "future",
        "error",
    )

    def __init__(
        self,
        cfg: ReceiverConfig,
        publish: Callable[[str, bytes], None],
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.publish = publish
        self.wall = wall  # the clock a status report's own time is checked against (future limit)
        self.senders = {s.name: s for s in cfg.senders}
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.verifier = Verifier(
            {s.name: s.key for s in cfg.senders}, state_path=cfg.data_dir / "receiver-counters.json"
        )
        self.own_call = identity(str((cfg.kiss or {}).get("callsign", ""))) if cfg.kiss else ""
        self._seen: OrderedDict[str, str] = OrderedDict()  # message id -> first path
        self._lock = threading.Lock()
        self.stats: dict[str, dict[str, int]] = {}
        self.latest: deque[Delivered] = deque(maxlen=50)
        # (message id, path, time.time()) of every verified arrival, duplicates included: latency per path
        self.arrivals: deque[tuple[str, str, float]] = deque(maxlen=10_000)
        # gateway id -> its primary path (up/down) from signed reports only: what the staff see
        self.status: dict[str, dict[str, Any]] = {}
        # gateway id -> the MQTT sink's retained online/offline status (unsigned: shown, never trusted)
        self.link_status: dict[str, dict[str, Any]] = {}
        # sender -> the PARM/UNIT/EQNS/BITS fields of its last signed definition set
        self.definitions: dict[str, dict[str, list[str]]] = {}
        self._heard_defs: dict[str, dict[str, deque[str]]] = {}  # sender -> kind -> recent unsigned texts
        self.telemetry: dict[str, dict[str, Any]] = {}  # sender -> last report
        self._recent: OrderedDict[tuple[str, bytes], float] = OrderedDict()  # accepted APRS frames
        self._observers: list[Callable[[str, dict[str, Any]], None]] = []

    def observe(self, fn: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``fn(kind, info)`` after each change, from the listener's thread:

        - ``"count"``: ``{"via", "what"}``, every message counted (accepted, or rejected with its reason);
        - ``"accepted"``: ``{"delivered": Delivered}``, a verified record republished for the first time;
        - ``"primary"``: the signed primary-path view of a gateway (as published on ``relay/primary``).

        An observer that fails is logged; it never costs the receiver a message.
        """
        self._observers.append(fn)

    def _notify(self, kind: str, info: dict[str, Any]) -> None:
        for fn in list(self._observers):
            try:
                fn(kind, info)
            except Exception:
                log.exception("receiver: an observer failed on %s", kind)

    def count(self, via: str, what: str) -> None:
        with self._lock:
            per = self.stats.setdefault(via, dict.fromkeys(self.COUNTERS, 0))
            per[what] = per.get(what, 0) + 1
        self._notify("count", {"via": via, "what": what})

    def total(self, what: str) -> int:
        with self._lock:
            return sum(per.get(what, 0) for per in self.stats.values())

    # -------------------------------------------------------------------------------- APRS

    def handle_ax25(self, payload: bytes, via: str = "aprs") -> str | None:
        """One frame from the TNC. Returns the APRS message id to acknowledge, if any. Never raises."""
        try:
            return self._ax25(payload, via)
        except Exception:  # a bug must not cost the listener: count it, keep serving
            self.count(via, "error")
            log.exception("receiver: frame %r could not be handled", payload[:80])
            return None

    def _ax25(self, payload: bytes, via: str) -> str | None:
        try:
            frame = ax25.UIFrame.decode(payload)
        except HavelError:
            self.count(via, "malformed")
            return None
        sender = str(frame.source)
        if sender not in self.senders:
            self.count(via, "foreign")  # other stations share the channel: not ours, not an error
            log.info("ignored frame from %s (not a configured sender)", sender)
            return None
        if frame.info.startswith(b"T#"):
            self._telemetry(via, sender, frame)
            return None
        if frame.info[:1] in APRS_OTHER_TYPES:
            # the station's own APRS traffic (its position beacon, status text): not for us, not an error
            self.count(via, "foreign")
            log.info("ignored non-message frame from %s: %r", sender, frame.info[:40])
            return None
        try:
            info = frame.info.decode("ascii")
            msg = aprs.parse_message(info)
        except aprs.OversizeError:
            self.count(via, "oversize")
            log.warning("oversize APRS message from %s rejected", sender)
            return None
        except (HavelError, UnicodeDecodeError):
            self.count(via, "malformed")
            log.warning("malformed APRS frame from %s: %r", sender, frame.info[:80])
            return None
        if msg.kind == "message" and msg.addressee == sender and msg.text[:5] in aprs.DEFINITION_PREFIXES:
            self._definition(via, sender, frame, msg.text)
            return None
        if msg.kind != "message" or (self.own_call and msg.addressee != self.own_call):
            self.count(via, "unknown")
            return None
        try:
            line, sig = split_signed_line(msg.text)
            gateway_id = self.senders[sender].gateway_id
            if line.startswith("HP "):
                status = parse_status_line(line)
                at: float | None = status["at"]
            elif line.startswith("HE "):
                event = parse_event_line(line, gateway_id)
                at = event["at"]
            else:
                rec = parse_line(line)
                at = rec.received_at
            body = (aprs.pad_addressee(msg.addressee) + ":" + line).encode()
            self.verifier.verify(sender, "aprs", sig, body, at=at)
        except (SecurityError, ReplayError, HavelError) as exc:
            self._reject_frame(via, sender, frame, exc)
            return None
        self._remember(sender, frame)
        if line.startswith("HP "):
            self._status(via, gateway_id, status)
            return msg.msgno
        if line.startswith("HE "):
            self._event(via, gateway_id, event)
            return msg.msgno
        self._deliver(via, rec, self.senders[sender].gateway_id)
        return msg.msgno

    def _remember(self, sender: str, frame: ax25.UIFrame | bytes) -> None:
        """An accepted frame (or envelope): a digipeater's copy of it, or a second delivery, may follow."""
        now = time.monotonic()
        with self._lock:
            self._recent[(sender, frame if isinstance(frame, bytes) else frame.info)] = now
            while self._recent and (
                len(self._recent) > 1000 or next(iter(self._recent.values())) < now - DIGIPEAT_WINDOW_S
            ):
                self._recent.popitem(last=False)

    def _reject_frame(self, via: str, sender: str, frame: ax25.UIFrame, exc: Exception) -> None:
        """A rejected APRS frame; a digipeater's copy of an accepted one is counted apart (not an attack)."""
        if isinstance(exc, ReplayError) and not isinstance(exc, StaleError):
            with self._lock:
                heard = self._recent.get((sender, frame.info))
            repeated = [str(a) for a in frame.path if a.flag]
            if heard is not None and repeated and time.monotonic() - heard < DIGIPEAT_WINDOW_S:
                self.count(via, "digipeated")
                log.info("digipeated duplicate from %s via %s (already accepted)", sender, ",".join(repeated))
                return
        self._reject(via, f"frame from {sender}", exc)

    def _definition(self, via: str, sender: str, frame: ax25.UIFrame, text: str) -> None:
        """PARM./UNIT./EQNS. are kept as candidates; a signed BITS. adopts the set its signature covers.

        Unsigned definitions are never used: one forged EQNS would rescale signed readings.
        """
        kind = text[:4]
        if kind != "BITS":
            with self._lock:
                per_kind = self._heard_defs.setdefault(sender, {})
                q = per_kind.setdefault(kind, deque(maxlen=DEFINITION_CANDIDATES))
                if text in q:
                    q.remove(text)
                q.append(text)
            self.count(via, "definitions")
            return
        try:
            bits, sig = split_signed_line(text)
        except EnvelopeError:
            self.count(via, "definitions")  # a BITS without signature (another tool): heard, not used
            return
        with self._lock:
            heard: dict[str, list[str]] = {
                k: list(reversed(q)) for k, q in self._heard_defs.get(sender, {}).items()
            }
        last: Exception = SecurityError(f"definitions from {sender}: PARM, UNIT and EQNS not all heard")
        for parm in heard.get("PARM", []):
            for unit in heard.get("UNIT", []):
                for eqns in heard.get("EQNS", []):
                    body = aprs.definitions_body([parm, unit, eqns, bits])
                    try:
                        self.verifier.verify(sender, "aprs", sig, body.encode())
                    except SecurityError as exc:
                        last = exc
                        continue
                    except ReplayError as exc:
                        self._reject_frame(via, sender, frame, exc)
                        return
                    self._remember(sender, frame)
                    self.definitions[sender] = {
                        k: aprs.parse_definition(t)[1]
                        for k, t in (("PARM", parm), ("UNIT", unit), ("EQNS", eqns), ("BITS", bits))
                    }
                    self.count(via, "definitions_signed")
                    log.info("signed telemetry definitions from %s: %s / %s / %s", sender, parm, unit, eqns)
                    return
        self._reject_frame(via, sender, frame, last)

    def _telemetry(self, via: str, sender: str, frame: ax25.UIFrame) -> None:
        """A signed ``T#`` report: values from trusted definitions, published on .../relay/telemetry."""
        try:
            info = frame.info.decode("ascii")
            t = aprs.parse_telemetry(info)
            line, sig = split_signed_line(info)
            self.verifier.verify(sender, "aprs", sig, line.encode())
        except (HavelError, UnicodeDecodeError) as exc:  # SecurityError and ReplayError are HavelErrors
            if isinstance(exc, UnicodeDecodeError):
                exc = EnvelopeError("telemetry is not ASCII")
            self._reject_frame(via, sender, frame, exc)
            return
        self._remember(sender, frame)
        channels, source = self._channels(sender)
        values: dict[str, float] = {}
        units: dict[str, str] = {}
        for ch, raw in zip(channels, t.analog, strict=False):
            if ch.name:
                values[ch.name] = round(ch.value(raw), 6)
                units[ch.name] = ch.unit
        self.count(via, "telemetry")
        gateway_id = self.senders[sender].gateway_id
        body = {
            "gateway_id": gateway_id,
            "station": sender,
            "seq": t.seq,
            "values": values,
            "units": units,
            "raw": list(t.analog),
            "definitions": source,
            "via": via,
            "at": time.time(),
        }
        self.telemetry[sender] = body
        self.publish(f"{self.cfg.prefix}/{gateway_id}/relay/telemetry", json.dumps(body).encode())

    def _channels(self, sender: str) -> tuple[list[aprs.Channel], str]:
        """The receiver's own definitions for the sender if configured, else signed ones heard on the air;
        without either, the raw counts as A1..A5."""
        configured = self.senders[sender].telemetry
        if configured:
            return configured, "config"
        d = self.definitions.get(sender)
        if d is None:
            return [aprs.Channel(f"A{i + 1}") for i in range(5)], "none"
        names, units, eqns = d.get("PARM", []), d.get("UNIT", []), d.get("EQNS", [])
        out = []
        for i in range(5):
            try:
                a, b, c = (float(x) for x in eqns[3 * i : 3 * i + 3])
                if not all(math.isfinite(x) for x in (a, b, c)):
                    raise ValueError("not finite")
            except ValueError:
                a, b, c = 0.0, 1.0, 0.0
            name = names[i] if i < len(names) else ""  # signed definitions name the channels in use
            out.append(aprs.Channel(name, units[i] if i < len(units) else "", a, b, c))
        return out, "signed"

    # -------------------------------------------------------------------------------- envelopes

    def handle_envelope(self, data: bytes, via: str, channel: str) -> bool:
        """One JSON envelope from MQTT or Reticulum; True when delivered (new or duplicate). Never raises."""
        try:
            return self._envelope(data, via, channel)
        except Exception:
            self.count(via, "error")
            log.exception("receiver: %s envelope %r could not be handled", via, data[:80])
            return False

    def _envelope(self, data: bytes, via: str, channel: str) -> bool:
        try:
            sender, body = open_body(self.verifier, channel, data)
            gateway_id = self.senders[identity(sender)].gateway_id
            if body.get("kind") == "status":
                self._status(via, gateway_id, body)
                self._remember(f"{via}-envelope", data)
                return True
            if body.get("kind") == "event":
                event = check_event(body, gateway_id)
                self._remember(f"{via}-envelope", data)
                self._event(via, gateway_id, event)
                return True
            rec = RelayRecord.from_dict(body)
        except HavelError as exc:
            if self._delivered_twice(f"{via}-envelope", data, exc):
                # QoS 1 may deliver a message twice (a resend after a reconnect): not an attack
                self.count(via, "duplicate")
                log.info("%s envelope delivered twice (already accepted)", via)
                return True
            self._reject(via, f"{via} envelope", exc)
            return False
        self._remember(f"{via}-envelope", data)
        self._deliver(via, rec, gateway_id)
        return True

    def _delivered_twice(self, key: str, data: bytes, exc: Exception) -> bool:
        """The very bytes of a message accepted within the last minutes, refused only for its counter."""
        if not isinstance(exc, ReplayError) or isinstance(exc, StaleError):
            return False
        with self._lock:
            heard = self._recent.get((key, data))
        return heard is not None and time.monotonic() - heard < DIGIPEAT_WINDOW_S

    def _reject(self, via: str, what: str, exc: Exception) -> None:
        """Count one rejected frame under its reason (forged, replayed, stale or malformed) and say why."""
        if isinstance(exc, SecurityError):
            reason = "forged"
        elif isinstance(exc, UnsignedError):
            reason = "unsigned"
        elif isinstance(exc, StaleError):
            reason = "stale"
        elif isinstance(exc, ReplayError):
            reason = "replayed"
        elif isinstance(exc, aprs.OversizeError):
            reason = "oversize"
        else:
            reason = "malformed"
        self.count(via, reason)
        log.warning("REJECTED %s %s: %s", reason, what, exc)

    def _status(self, via: str, gateway_id: str, body: dict[str, Any]) -> None:
        """A signed report of a gateway's primary path (up/down), from any relay path."""
        state = body.get("primary")
        at = finite_number(body.get("at"))
        if state not in ("up", "down") or at is None:
            self.count(via, "malformed")
            return
        if at > self.wall() + COMMAND_FUTURE_S:
            # a wrong clock at the gateway: shown, it would stand for good (older reports never replace
            # a newer one), hiding every correctly stamped report after it
            self.count(via, "future")
            ahead = at - self.wall()
            log.warning("REJECTED future status report of %s: stamped %.0f s ahead", gateway_id, ahead)
            return
        self.count(via, "status")
        view = {"gateway_id": gateway_id, "primary": state, "at": at, "via": via, "signed": True}
        with self._lock:
            old = self.status.get(gateway_id)
            if old is not None and old["at"] > at:
                return  # an older report arriving late over a slower path: the newer one stands
            self.status[gateway_id] = view
        log.warning("gateway %s reports its primary path %s (via %s)", gateway_id, state, via)
        self.publish(f"{self.cfg.prefix}/{gateway_id}/relay/primary", json.dumps(view).encode())
        self._notify("primary", dict(view))

    def _event(self, via: str, gateway_id: str, event: dict[str, Any]) -> None:
        """A signed alarm-class gateway event (mains lost, battery low, ...): republished once per id on
        ``<prefix>/<gateway_id>/events`` as the gateway writes its events, plus ``relayed`` and ``via``."""
        with self._lock:
            first = self._seen.get(event["id"])
            if first is None:
                self._seen[event["id"]] = via
        if first is not None:
            self.count(via, "duplicate")
            return
        self.count(via, "events")
        message = {
            **event["details"],
            "id": event["id"],
            "event": event["event"],
            "gateway_id": gateway_id,
            "at": format_time(event["at"]),
            "relayed": True,
            "via": via,
        }
        log.warning("EVENT %s of gateway %s via %s: %s", event["event"], gateway_id, via, event["details"])
        self.publish(f"{self.cfg.prefix}/{gateway_id}/events", json.dumps(message, allow_nan=False).encode())

    def handle_status(self, topic: str, data: bytes, via: str = "mqtt") -> None:
        """A gateway's retained MQTT link status (online/offline): unsigned, so only logged and shown as
        the broker link; it never changes the signed primary-path state the staff see. Never raises."""
        try:
            body = json.loads(data)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            parts = topic.split("/")
            gateway_id = parts[-3] if len(parts) >= 3 else "?"
            state = body.get("state", body.get("status"))
            view = {"state": str(state)[:16] if state is not None else None, "at": time.time()}
        except (ValueError, TypeError, RecursionError, UnicodeError):
            self.count(via, "malformed")
            return
        except Exception:
            self.count(via, "error")
            log.exception("receiver: status on %r could not be handled", topic)
            return
        if gateway_id not in {s.gateway_id for s in self.senders.values()}:
            self.count(via, "foreign")
            return
        self.count(via, "unsigned_status")
        with self._lock:
            self.link_status[gateway_id] = view
        log.info("gateway %s broker link (unsigned): %s", gateway_id, view["state"])

    def _deliver(self, via: str, rec: RelayRecord, gateway_id: str) -> None:
        try:  # strict JSON (no NaN or Infinity) before anything is counted: one reason per message
            text = json.dumps(rec.to_json_scheme(via), separators=(",", ":"), allow_nan=False).encode()
        except (ValueError, OverflowError, TypeError) as exc:
            self._reject(via, f"record {rec.id}", EnvelopeError(f"cannot be written as JSON: {exc}"))
            return
        self.arrivals.append((rec.id, via, time.time()))
        with self._lock:
            first = self._seen.get(rec.id)
            if first is None:
                self._seen[rec.id] = via
                while len(self._seen) > 100_000:
                    self._seen.popitem(last=False)
        if first is not None:
            self.count(via, "duplicate")
            log.info("duplicate %s via %s (first via %s)", rec.id, via, first)
            return
        self.count(via, "accepted")
        topic = f"{self.cfg.prefix}/{gateway_id}/devices/{rec.dev_eui}/up"
        self.publish(topic, text)
        delivered = Delivered(via, rec, gateway_id, time.time())
        self.latest.append(delivered)
        self._notify("accepted", {"delivered": delivered})
        log.warning("%s %s from %s via %s: %s", rec.cls.upper(), rec.id, gateway_id, via, rec.data)


class Publisher:
    """QoS 1 publisher into the crisis centre's local broker (reconnects by itself). It runs in an MQTT
    loop thread (``loop``, or its own); calling it from any thread queues the message there, in order."""

    def __init__(
        self, cfg: MqttSettings | dict[str, Any], client_id: str | None = None, loop: LoopThread | None = None
    ) -> None:
        s = cfg if isinstance(cfg, MqttSettings) else publish_settings(cfg)
        cid = client_id or s.client_id or f"havel-relay-publisher-{uuid.uuid4().hex[:8]}"
        # a clean session the broker forgets when we leave: what we publish is acknowledged or re-sent by us
        once = dataclasses.replace(s, client_id=cid, clean_start=True, session_expiry_s=0)
        self._own_loop = loop is None
        self.loop = loop or LoopThread("receiver-publisher")
        self.mqtt = MqttClient(once, name="receiver publisher", client_id=cid)
        self.host, self.port = self.mqtt.host, self.mqtt.port

    def start(self) -> None:
        self.loop.run(self.mqtt.start(), 10)

    def __call__(self, topic: str, payload: bytes) -> None:
        self.mqtt.publish_threadsafe(topic, payload)

    def stop(self) -> None:
        try:
            self.loop.run(self.mqtt.stop(), 10)
        finally:
            if self._own_loop:
                self.loop.close()


class KissListener:
    """Reads frames from a KISS TNC over TCP (reconnecting), feeds the core, sends acks.

    Whatever the TNC sends (broken escapes, truncated frames, noise) is counted and dropped; an
    unexpected error restarts the connection (counted in ``restarts``) instead of ending the thread.
    """

    def __init__(self, core: ReceiverCore, cfg: dict[str, Any]) -> None:
        self.core = core
        self.host = str(cfg.get("host", "127.0.0.1"))
        self.port = int(cfg.get("port", 8001))
        self.callsign = identity(str(cfg.get("callsign", "")))
        self.ack = bool(cfg.get("ack", True))
        self.path = list(cfg.get("path") or [])
        self.destination = str(cfg.get("destination", "APZHVL"))
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="receiver-kiss", daemon=True)
        self.connected = threading.Event()
        self.acks_sent = 0
        self.restarts = 0
        self._dec = kiss.Decoder()
        self._kiss_errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                self._session()
            except Exception:
                self.restarts += 1
                log.exception("receiver: KISS listener failed; reconnecting (%d restarts)", self.restarts)
                self._halt.wait(1.0)

    def _session(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5)
        except OSError:
            self._halt.wait(1.0)
            return
        self.connected.set()
        self._dec = kiss.Decoder()
        self._kiss_errors = 0
        try:
            while not self._halt.is_set():
                r, _, _ = select.select([sock], [], [], 0.2)
                if not r:
                    continue
                data = sock.recv(4096)
                if not data:
                    raise ConnectionResetError("TNC closed the connection")
                for fr in self._dec.feed(data):
                    if fr.command != kiss.CMD_DATA:
                        continue
                    msgno = self.core.handle_ax25(fr.payload)
                    if msgno and self.ack and self.callsign:
                        self._send_ack(sock, fr.payload, msgno)
                while self._kiss_errors < self._dec.errors:  # broken escapes, oversize frames
                    self._kiss_errors += 1
                    self.core.count("aprs", "malformed")
        except OSError as exc:
            log.warning("receiver: TNC connection lost: %s", exc)
        finally:
            self.connected.clear()
            with contextlib.suppress(OSError):
                sock.close()

    def _send_ack(self, sock: socket.socket, payload: bytes, msgno: str) -> None:
        src = ax25.UIFrame.decode(payload).source
        info = aprs.Message(str(src), "", msgno, kind="ack").encode()
        frame = ax25.UIFrame.aprs(self.callsign, self.destination, info, self.path)
        sock.sendall(kiss.encode(frame.encode()))
        self.acks_sent += 1

    def health(self) -> dict[str, Any]:
        return {"connected": self.connected.is_set(), "restarts": self.restarts, "acks_sent": self.acks_sent}


class MqttListener:
    """Subscribes to the relay topic on a broker the gateways can reach (e.g. over the Freifunk mesh).

    A persistent MQTT v5 session (stable ``client_id``, clean_start False from the first connect, a
    session expiry of ``session_expiry_s``, default one day): what the gateways publish while the
    receiver restarts is kept by the broker and delivered when it is back.

    A message is acknowledged (PUBACK) once it is handled, also when it cannot be read (it is counted
    and dropped: a message never acknowledged would come back after every restart). The client runs in an
    MQTT loop thread (``loop``, or its own): messages are handled one after the other there, so :meth:`stop`
    comes between two messages, and the PUBACK of the last one handled goes out ahead of the DISCONNECT
    (otherwise the broker would deliver it again at the next start, and the crisis staff would see it
    rejected as a replay). Should a handler raise anyway, the message is still acknowledged, the error is
    counted (``handler_errors``) and the next message is handled as usual.
    """

    def __init__(
        self,
        core: ReceiverCore,
        cfg: MqttSettings | dict[str, Any],
        topic: str = MQTT_TOPIC,
        loop: LoopThread | None = None,
    ) -> None:
        self.core = core
        if isinstance(cfg, MqttSettings):
            s = cfg
        else:
            s, topic = listen_settings(cfg)
        self.topic = topic
        self._own_loop = loop is None
        self.loop = loop or LoopThread("receiver-mqtt")
        self.subscribed = threading.Event()
        self.mqtt = MqttClient(s, name="receiver", client_id=str(s.client_id), manual_ack=True)
        self.mqtt.on_subscribed = self.subscribed.set
        self.mqtt.subscribe(topic, self._on_message)
        self.host, self.port, self.keepalive_s = self.mqtt.host, self.mqtt.port, s.keepalive_s
        self.clean_start, self.session_expiry_s = s.clean_start, s.session_expiry_s

    @property
    def connected(self) -> bool:
        return self.mqtt.connected

    def start(self) -> None:
        self.loop.run(self.mqtt.start(), 10)

    def stop(self) -> None:
        try:
            self.loop.run(self.mqtt.stop(), 10)
        finally:
            if self._own_loop:
                self.loop.close()

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        try:
            last = msg.topic.rsplit("/", 1)[-1]
            if last == "status":  # the MQTT sink's retained online/offline status (unsigned)
                self.core.handle_status(msg.topic, bytes(msg.payload))
            elif last in ("alarm", "state", "event"):
                self.core.handle_envelope(bytes(msg.payload), "mqtt", "mqtt")
            # anything else under relay/ (our own relay/primary, telemetry, emergency commands) is not input
        except Exception:  # the core counts what it cannot read; this is for a bug in between
            self.core.count("mqtt", "error")
            log.exception("receiver: message on %r could not be handled", msg.topic)

    def health(self) -> dict[str, Any]:
        return {
            "subscribed": self.subscribed.is_set(),
            "connected": self.connected,
            "handler_errors": self.mqtt.handler_errors,
        }


class Receiver:
    """All listeners plus the publisher, started and stopped together."""

    def __init__(self, cfg: ReceiverConfig) -> None:
        self.cfg = cfg
        self.loop = LoopThread("receiver-mqtt")  # the publisher's and the listener's MQTT clients
        self.publisher = Publisher(cfg.publish, loop=self.loop)
        self.core = ReceiverCore(cfg, self.publisher)
        self.kiss = KissListener(self.core, cfg.kiss) if cfg.kiss else None
        self.mqtt = MqttListener(self.core, cfg.mqtt, cfg.mqtt_topic, self.loop) if cfg.mqtt else None
        self.rns: Any = None
        if cfg.reticulum:
            from .reticulum_relay import ReticulumListener  # optional extra

            self.rns = ReticulumListener(self.core, cfg.reticulum, cfg.data_dir)

    def start(self) -> Receiver:
        self.publisher.start()
        for part in (self.kiss, self.mqtt, self.rns):
            if part is not None:
                part.start()
        return self

    def stop(self) -> None:
        for part in (self.kiss, self.mqtt, self.rns):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        with contextlib.suppress(Exception):
            self.publisher.stop()
        self.loop.close()

    def wait_ready(self, timeout: float = 10.0) -> list[str]:
        """Wait until every listener is connected (TNC, MQTT subscription, RNS node); the ready ones."""
        deadline = time.monotonic() + timeout
        ready: list[str] = []
        if self.kiss is not None and self.kiss.connected.wait(max(0.0, deadline - time.monotonic())):
            ready.append("kiss")
        if self.mqtt is not None and self.mqtt.subscribed.wait(max(0.0, deadline - time.monotonic())):
            ready.append("mqtt")
        if self.rns is not None and self.rns.destination_hash:
            ready.append(f"reticulum {self.rns.destination_hash}")
        return ready

    def health(self) -> dict[str, Any]:
        """The listeners' state (connected, restarts) and the counters, for the status output."""
        out: dict[str, Any] = {"counters": {k: self.core.total(k) for k in self.core.COUNTERS}}
        for name, part in (("kiss", self.kiss), ("mqtt", self.mqtt), ("reticulum", self.rns)):
            if part is not None:
                out[name] = part.health()
        if self.core.verifier.state_lost:
            out["counter_state"] = "lost: accepting only messages stamped after the start"
        return out

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
