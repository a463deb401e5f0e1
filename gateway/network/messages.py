"""The messages the network server stores in the outbox: an accepted uplink (decoded with its device's
codec) and an accepted join: outbox records with their json-scheme message (docs/mqtt.md) and priority."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

from havel.codecs.lorawan import phy
from havel.codecs.lorawan.ids import eui_hex
from havel.errors import CodecError, InputError
from havel.gateway.jsontext import encode_json
from havel.gateway.network.priority import classify, higher
from havel.gateway.network.reception import Reception, format_time
from havel.gateway.network.sessions import Device
from havel.gateway.outbox_records import Row, stored_row

log = logging.getLogger("havel.gateway.netserver")

_TEST_PORT = 224  # (LoRaWAN's test port and above: not decoded)


class RuleClassifier(Protocol):
    """What the message builder needs of the relay's rule classifier (havel.gateway.relay.priority)."""

    def classify(self, payload: dict[str, Any]) -> Any:
        """An object whose ``cls`` is "alarm", "state" or "background"."""


def message_id(dev_eui_hex: str, epoch: int, fcnt32: int) -> str:
    """The stable id of an uplink: ``<DevEUI>-<SessionEpoch>-<FCnt32>``.

    The frame counter restarts at 0 with every OTAA join, so DevEUI and FCnt32 alone would give a new
    reading the id of an old one (dropped as a duplicate by the outbox and the platform). The session
    epoch is the number of joins accepted for the device (0 for ABP, 1 after the first join), persisted
    in the registry with the session."""
    return f"{dev_eui_hex}-{epoch}-{fcnt32}"


_COMPILED: dict[str, Any] = {}


def compiled_codec(name: str) -> Any:
    """The payload codec, switched once to construct's compiled parsers (several times faster on the hot
    path; codecs without that option are used as they are)."""
    codec = _COMPILED.get(name)
    if codec is None:
        from havel.codecs.payload import get_codec

        codec = get_codec(name)
        compile_ = getattr(codec, "use_compiled", None)
        if callable(compile_):
            try:
                compile_()
            except Exception:  # construct cannot compile every schema; the plain parser still works
                log.debug("codec %s stays uncompiled", name)
        _COMPILED[name] = codec
    return codec


class MessageBuilder:
    """Builds outbox records. ``codec_lookup(name)`` returns a codec with ``decode(data, fport)``;
    ``rules`` (the relay's configured rules) may raise a record's priority, so that alarms they define are
    stored as alarms (never dropped at the quota)."""

    def __init__(self, codec_lookup: Any, rules: RuleClassifier | None) -> None:
        self.codec_lookup = codec_lookup
        self.rules = rules
        self._time_text: tuple[datetime | None, str] = (None, "")  # last receive time and its text

    def uplink(
        self, dev: Device, frame: phy.DataFrame, fcnt32: int, payload: bytes, copies: list[Reception]
    ) -> dict[str, Any]:
        """The record of an accepted uplink (``payload``: the decrypted FRMPayload; ``copies`` best first)."""
        return self.uplink_stored(dev, frame, fcnt32, payload, copies)[0]

    def uplink_stored(
        self, dev: Device, frame: phy.DataFrame, fcnt32: int, payload: bytes, copies: list[Reception]
    ) -> tuple[dict[str, Any], Row]:
        """:meth:`uplink`, and the outbox row that stores the record (for :meth:`.outbox.Outbox.put_rows`:
        built here from the parts it is made of, so that it is not checked again field by field)."""
        best = copies[0]
        fport = frame.fport
        codec = dev.codec
        if fport is not None and 0 < fport < _TEST_PORT:
            try:
                res = self.codec_lookup(codec).decode(payload, fport)
            except (CodecError, InputError) as exc:  # stored anyway: the raw bytes are kept for later
                data, units, warnings, errors = None, {}, [], [str(exc)]
            else:
                get = res.get
                codec = get("codec", codec)
                data = get("data")
                units = get("units", {})
                # (copies: the message owns its lists; a codec may hand out the same one twice)
                warnings = list(get("warnings", ()))
                errors = list(get("errors", ()))
        else:
            data, units, warnings, errors = None, {}, [], []
        session = dev.session
        epoch = session.epoch if session is not None else 0
        eui = dev.eui_hex
        msg_id = f"{eui}-{epoch}-{fcnt32}"  # message_id(); inline on the hot path
        at = best.received_at
        last = self._time_text
        if at is last[0]:  # the frames of one datagram share their receive time
            received_at = last[1]
        else:
            received_at = format_time(at)
            self._time_text = (at, received_at)
        message = {
            "id": msg_id,
            "device": dev.name,
            "dev_eui": eui,
            "dev_addr": f"{frame.dev_addr:08X}",
            "session_epoch": epoch,
            "fcnt": fcnt32,
            "fport": fport,
            "confirmed": frame.confirmed,
            "received_at": received_at,
            "time_source": best.time_source,
            "rx": [best.rx_info()] if len(copies) == 1 else [c.rx_info() for c in copies],
            "codec": codec,
            "data": data,
            "units": units,
            "warnings": warnings,
            "errors": errors,
            "raw": payload.hex(),
        }
        priority = classify(dev.codec, data, fport)
        if self.rules is not None and priority != "alarm":
            priority = higher(priority, str(self.rules.classify(message).cls))
        text = _message_json(message)
        record = {
            "id": msg_id,
            "kind": "up",
            "dev_eui": eui,
            "fcnt32": fcnt32,
            "priority": priority,
            "received_at": received_at,
            "payload": message,
            "payload_json": text,
        }
        return record, stored_row(msg_id, "up", eui, fcnt32, priority, received_at, text)

    def join(
        self, dev: Device, jr: phy.JoinRequest, dev_addr: int, epoch: int, copies: list[Reception]
    ) -> dict[str, Any]:
        """The record of an accepted join (``copies`` best first)."""
        best = copies[0]
        received_at = format_time(best.received_at)
        # the session epoch numbers the device's joins for good (it continues after remove and add): the
        # DevNonce does not, it may be used again after `havel device forget-nonces`
        msg_id = f"{dev.eui_hex}-join-{epoch}"
        return {
            "id": msg_id,
            "kind": "join",
            "dev_eui": dev.eui_hex,
            "fcnt32": None,
            "priority": "state",
            "received_at": received_at,
            "payload": {
                "id": msg_id,
                "device": dev.name,
                "dev_eui": dev.eui_hex,
                "join_eui": eui_hex(jr.join_eui),
                "dev_addr": f"{dev_addr:08X}",
                "dev_nonce": jr.dev_nonce,
                "session_epoch": epoch,
                "received_at": received_at,
                "time_source": best.time_source,
                "rx": [c.rx_info() for c in copies],
            },
        }


def _message_json(message: dict[str, Any]) -> str:
    """The message's JSON text for the outbox (written here, so that a value JSON cannot hold costs this
    frame its decoded data, not the whole batch its commit)."""
    try:
        return encode_json(message)
    except (ValueError, TypeError) as exc:
        # a decoded value JSON cannot hold (a codec bug): keep the frame with its raw bytes, say why
        log.error("uplink %s: decoded data is not JSON: %s (stored without it)", message["id"], exc)
        message["data"] = None
        message["errors"] = [*message["errors"], f"decoded data is not JSON: {exc}"]
        return encode_json(message)
