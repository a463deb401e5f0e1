"""APRS frames from the TNC, checked before the receiver accepts them: the sender is one of ours, the
message is addressed to us, its signature and counter verify. Signed telemetry reports are scaled by
signed (or configured) definitions and published; unsigned definitions are never used."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from havel.errors import HavelError, ReplayError, SecurityError
from havel.gateway.relay import aprs, ax25
from havel.gateway.relay.events import parse_event_line
from havel.gateway.relay.lines import parse_line, parse_status_line, split_signed_line
from havel.gateway.relay.record import EnvelopeError
from havel.gateway.relay.signing import StaleError, identity

if TYPE_CHECKING:
    from havel.gateway.relay.receive.core import ReceiverCore

log = logging.getLogger("havel.relay.receiver")

# APRS data type identifiers (APRS 1.0.1, chapter 5) of what a station sends besides messages (":") and
# telemetry ("T"): positions, status, objects, items, weather, Mic-E, capabilities, queries, raw GPS.
APRS_OTHER_TYPES = {bytes([c]) for c in b"!=/@>;)_`'<?$"}

DEFINITION_CANDIDATES = 4  # heard PARM/UNIT/EQNS texts kept per sender and kind until a signed BITS


class AprsFrames:
    """The APRS side of a :class:`~.core.ReceiverCore`: what it accepts goes to the core's
    ``accept_status``, ``accept_event`` and ``deliver``, what it rejects to its ``reject``."""

    def __init__(self, core: ReceiverCore) -> None:
        self.core = core
        cfg = core.cfg
        self.own_call = identity(str((cfg.kiss or {}).get("callsign", ""))) if cfg.kiss else ""
        self._lock = threading.Lock()
        # sender -> the PARM/UNIT/EQNS/BITS fields of its last signed definition set
        self.definitions: dict[str, dict[str, list[str]]] = {}
        self._heard_defs: dict[str, dict[str, deque[str]]] = {}  # sender -> kind -> recent unsigned texts
        self.telemetry: dict[str, dict[str, Any]] = {}  # sender -> last report

    def handle(self, payload: bytes, via: str = "aprs") -> str | None:
        """One frame from the TNC. Returns the APRS message id to acknowledge, if any. Never raises."""
        try:
            return self._ax25(payload, via)
        except Exception:  # a bug must not cost the listener: count it, keep serving
            self.core.count(via, "error")
            log.exception("receiver: frame %r could not be handled", payload[:80])
            return None

    def _ax25(self, payload: bytes, via: str) -> str | None:
        try:
            frame = ax25.UIFrame.decode(payload)
        except HavelError:
            self.core.count(via, "malformed")
            return None
        sender = str(frame.source)
        if sender not in self.core.senders:
            self.core.count(via, "foreign")  # other stations share the channel: not ours, not an error
            log.info("ignored frame from %s (not a configured sender)", sender)
            return None
        if frame.info.startswith(b"T#"):
            self._telemetry(via, sender, frame)
            return None
        if frame.info[:1] in APRS_OTHER_TYPES:
            # the station's own APRS traffic (its position beacon, status text): not for us, not an error
            self.core.count(via, "foreign")
            log.info("ignored non-message frame from %s: %r", sender, frame.info[:40])
            return None
        try:
            info = frame.info.decode("ascii")
            msg = aprs.parse_message(info)
        except aprs.OversizeError:
            self.core.count(via, "oversize")
            log.warning("oversize APRS message from %s rejected", sender)
            return None
        except (HavelError, UnicodeDecodeError):
            self.core.count(via, "malformed")
            log.warning("malformed APRS frame from %s: %r", sender, frame.info[:80])
            return None
        if msg.kind == "message" and msg.addressee == sender and msg.text[:5] in aprs.DEFINITION_PREFIXES:
            self._definition(via, sender, frame, msg.text)
            return None
        if msg.kind != "message" or (self.own_call and msg.addressee != self.own_call):
            self.core.count(via, "unknown")
            return None
        try:
            line, sig = split_signed_line(msg.text)
            gateway_id = self.core.senders[sender].gateway_id
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
            self.core.verifier.verify(sender, "aprs", sig, body, at=at)
        except (SecurityError, ReplayError, HavelError) as exc:
            self._reject_frame(via, sender, frame, exc)
            return None
        self.core.recent.remember(sender, frame.info)
        if line.startswith("HP "):
            self.core.accept_status(via, gateway_id, status)
            return msg.msgno
        if line.startswith("HE "):
            self.core.accept_event(via, gateway_id, event)
            return msg.msgno
        self.core.deliver(via, rec, self.core.senders[sender].gateway_id)
        return msg.msgno

    def _reject_frame(self, via: str, sender: str, frame: ax25.UIFrame, exc: Exception) -> None:
        """A rejected APRS frame; a digipeater's copy of an accepted one is counted apart (not an attack)."""
        if isinstance(exc, ReplayError) and not isinstance(exc, StaleError):
            repeated = [str(a) for a in frame.path if a.flag]
            if repeated and self.core.recent.heard(sender, frame.info):
                self.core.count(via, "digipeated")
                log.info("digipeated duplicate from %s via %s (already accepted)", sender, ",".join(repeated))
                return
        self.core.reject(via, f"frame from {sender}", exc)

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
            self.core.count(via, "definitions")
            return
        try:
            bits, sig = split_signed_line(text)
        except EnvelopeError:
            self.core.count(via, "definitions")  # a BITS without signature (another tool): heard, not used
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
                        self.core.verifier.verify(sender, "aprs", sig, body.encode())
                    except SecurityError as exc:
                        last = exc
                        continue
                    except ReplayError as exc:
                        self._reject_frame(via, sender, frame, exc)
                        return
                    self.core.recent.remember(sender, frame.info)
                    self.definitions[sender] = {
                        k: aprs.parse_definition(t)[1]
                        for k, t in (("PARM", parm), ("UNIT", unit), ("EQNS", eqns), ("BITS", bits))
                    }
                    self.core.count(via, "definitions_signed")
                    log.info("signed telemetry definitions from %s: %s / %s / %s", sender, parm, unit, eqns)
                    return
        self._reject_frame(via, sender, frame, last)

    def _telemetry(self, via: str, sender: str, frame: ax25.UIFrame) -> None:
        """A signed ``T#`` report: values from trusted definitions, published on .../relay/telemetry."""
        try:
            info = frame.info.decode("ascii")
            t = aprs.parse_telemetry(info)
            line, sig = split_signed_line(info)
            self.core.verifier.verify(sender, "aprs", sig, line.encode())
        except (HavelError, UnicodeDecodeError) as exc:  # SecurityError and ReplayError are HavelErrors
            if isinstance(exc, UnicodeDecodeError):
                exc = EnvelopeError("telemetry is not ASCII")
            self._reject_frame(via, sender, frame, exc)
            return
        self.core.recent.remember(sender, frame.info)
        channels, source = self._channels(sender)
        values: dict[str, float] = {}
        units: dict[str, str] = {}
        for ch, raw in zip(channels, t.analog, strict=False):
            if ch.name:
                values[ch.name] = round(ch.value(raw), 6)
                units[ch.name] = ch.unit
        self.core.count(via, "telemetry")
        gateway_id = self.core.senders[sender].gateway_id
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
        self.core.publish(f"{self.core.cfg.prefix}/{gateway_id}/relay/telemetry", json.dumps(body).encode())

    def _channels(self, sender: str) -> tuple[list[aprs.Channel], str]:
        """The receiver's own definitions for the sender if configured, else signed ones heard on the air;
        without either, the raw counts as A1..A5."""
        configured = self.core.senders[sender].telemetry
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
