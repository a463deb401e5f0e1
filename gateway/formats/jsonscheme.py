"""Havel's ``json`` topic scheme (documented in ``docs/mqtt.md``).

Everything of one gateway lives under ``<prefix>/<gateway_id>/`` so one broker ACL line confines it:

- ``<prefix>/<gateway_id>/devices/<DevEUI>/up``           uplinks (outbox kind ``up``)
- ``<prefix>/<gateway_id>/devices/<DevEUI>/join``         joins (kind ``join``)
- ``<prefix>/<gateway_id>/devices/<DevEUI>/down``         downlink commands (subscribed by the daemon)
- ``<prefix>/<gateway_id>/devices/<DevEUI>/down/result``  their fate (kind ``down_result``)
- ``<prefix>/<gateway_id>/events``                        gateway events (kind ``event``)
- ``<prefix>/<gateway_id>/status``                        retained status, last will ``offline``

The payload is the record's json-scheme message as the network server built it, plus ``id`` (the stable
message id) and ``buffered`` (true when it waited in the outbox through an outage).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from havel.errors import ConfigError, InputError
from havel.gateway.formats import OutMessage, check_topic_level

__all__ = ["JsonScheme", "device_topic", "down_topic_filter", "gateway_topic"]

_EUI = re.compile(r"^[0-9A-F]{16}$")
_eui = re.compile(r"[0-9A-F]{16}").fullmatch
_SUFFIX = {"up": "up", "join": "join", "down_result": "down/result"}


def gateway_topic(prefix: str, gateway_id: str, leaf: str) -> str:
    """``<prefix>/<gateway_id>/<leaf>`` (leaf: ``status``, ``events``)."""
    return f"{prefix}/{gateway_id}/{leaf}"


def device_topic(prefix: str, gateway_id: str, dev_eui: str, leaf: str) -> str:
    """``<prefix>/<gateway_id>/devices/<DevEUI>/<leaf>`` with the DevEUI as 16 upper-case hex digits."""
    eui = dev_eui.upper()
    if not _EUI.match(eui):
        raise InputError(f"DevEUI {dev_eui!r} is not 16 hex digits")
    return f"{prefix}/{gateway_id}/devices/{eui}/{leaf}"


def down_topic_filter(prefix: str, gateway_id: str) -> str:
    """The subscription that receives downlink commands for every device of this gateway."""
    return f"{prefix}/{gateway_id}/devices/+/down"


@dataclass(frozen=True)
class JsonScheme:
    """Formatter for the json scheme."""

    prefix: str
    gateway_id: str
    # ``<prefix>/<gateway_id>/devices/``, made once: every uplink's topic starts with it
    devices: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "devices", f"{self.prefix}/{self.gateway_id}/devices/")

    @classmethod
    def from_config(cls, cfg: dict[str, Any], *, where: str = "sink") -> JsonScheme:
        if "gateway_id" not in cfg:
            raise ConfigError(f"{where}.gateway_id is missing", hint="the daemon passes [gateway] id")
        return cls(
            prefix=check_topic_level(cfg.get("prefix", "havel"), f"{where}.prefix"),
            gateway_id=check_topic_level(cfg["gateway_id"], f"{where}.gateway_id"),
        )

    def topic(self, kind: str, dev_eui: str | None) -> str:
        """The topic of a record."""
        if kind == "event":
            return gateway_topic(self.prefix, self.gateway_id, "events")
        if kind not in _SUFFIX:
            raise InputError(f"no json-scheme topic for record kind {kind!r}")
        if not dev_eui:
            raise InputError(f"a {kind!r} record needs a dev_eui")
        return device_topic(self.prefix, self.gateway_id, dev_eui, _SUFFIX[kind])

    def __call__(self, record: Any, buffered: bool) -> list[OutMessage]:
        # Built per message, not cached per device: a district's 10,000 devices would keep about 3 MB of
        # topics and keys for the whole run; a stored DevEUI is already canonical, so only the match is paid.
        eui, leaf = record.dev_eui, _SUFFIX.get(record.kind)
        if leaf is not None and eui is not None and _eui(eui):
            topic = f"{self.devices}{eui}/{leaf}"
        else:
            topic = self.topic(record.kind, eui)
        return [OutMessage(topic, with_buffered(record.payload_json, buffered))]


_EMPTY_OBJECT = re.compile(r"\{\s*\}")
_FLAG = {True: ',"buffered":true}', False: ',"buffered":false}'}


def with_buffered(payload_json: str, buffered: bool) -> bytes:
    """The stored message text (a JSON object with ``id``, without ``buffered``) plus ``buffered``.

    Spliced into the text instead of parsing and re-encoding it: the drain rate after an outage is bound
    by per-message work, and this is the same JSON object either way.
    """
    if payload_json[:2] == '{"' and payload_json[-1:] == "}":
        # the usual text (what the outbox stores): an object with members, nothing after its brace
        return (payload_json[:-1] + _FLAG[bool(buffered)]).encode()
    body = payload_json.rstrip()
    if not body.startswith("{") or not body.endswith("}"):
        raise InputError("stored json-scheme message is not a JSON object")
    if _EMPTY_OBJECT.fullmatch(body):  # fails at once on the first member of a non-empty object
        return b'{"buffered":true}' if buffered else b'{"buffered":false}'
    return (body[:-1] + _FLAG[bool(buffered)]).encode()
