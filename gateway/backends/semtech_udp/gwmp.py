"""Semtech UDP packet-forwarder protocol (GWMP) versions 1 and 2: the datagram codec, no sockets.

Datagram layout (PROTOCOL.TXT v1.3 / sx1302_hal PROTOCOL.md v1.5)::

    version(1) | token(2) | identifier(1) | [gateway EUI(8)] | [JSON]

PUSH_DATA 0x00 (EUI + JSON rxpk/stat), PUSH_ACK 0x01, PULL_DATA 0x02 (EUI), PULL_RESP 0x03 (JSON txpk),
PULL_ACK 0x04, TX_ACK 0x05 (EUI + optional JSON txpk_ack, version 2 only).

Everything that can be wrong in a datagram raises :class:`GwmpError` with a short ``reason`` that the
UDP server uses as a metric label; nothing here logs. The JSON objects inside are read by :mod:`.rxpk`
(``rxpk``, ``stat``) and built by :mod:`.txpk`.
"""

from __future__ import annotations

import binascii
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import orjson

from havel.errors import InputError

PUSH_DATA = 0x00
PUSH_ACK = 0x01
PULL_DATA = 0x02
PULL_RESP = 0x03
PULL_ACK = 0x04
TX_ACK = 0x05
VERSIONS = (1, 2)
IDENTIFIER_NAMES = {
    PUSH_DATA: "PUSH_DATA",
    PUSH_ACK: "PUSH_ACK",
    PULL_DATA: "PULL_DATA",
    PULL_RESP: "PULL_RESP",
    PULL_ACK: "PULL_ACK",
    TX_ACK: "TX_ACK",
}
TX_ACK_ERRORS = (
    "NONE",
    "TOO_LATE",
    "TOO_EARLY",
    "COLLISION_PACKET",
    "COLLISION_BEACON",
    "TX_FREQ",
    "TX_POWER",
    "GPS_UNLOCKED",
)
TMST_MODULO = 1 << 32  # the concentrator's microsecond counter wraps every ~71.6 minutes

_HEADER = struct.Struct(">BHB")  # version, token (byte order irrelevant, echoed as is), identifier


class GwmpError(InputError):
    """A datagram or JSON object that does not follow the packet-forwarder protocol.

    ``reason`` is a short, stable label (``truncated``, ``version``, ``identifier``, ``json``, ``rxpk``,
    ``stat``, ``txpk``) used for counting rejects by kind; ``field`` names the rxpk or stat field at fault.
    """

    def __init__(
        self, message: str, *, reason: str, hint: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        self.field = field  # the rxpk or stat field at fault, when one is (a second, finer metric label)


@dataclass(frozen=True)
class Datagram:
    """One decoded datagram. ``gateway_eui`` is set for PUSH_DATA, PULL_DATA and TX_ACK;
    ``payload`` is the decoded JSON object (empty when the datagram has none)."""

    version: int
    token: int
    identifier: int
    gateway_eui: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The identifier's protocol name, e.g. ``PUSH_DATA``."""
        return IDENTIFIER_NAMES[self.identifier]


def header(data: bytes) -> tuple[int, int, int, int | None]:
    """``(version, token, identifier, gateway EUI or None)`` of a datagram, without reading its JSON (so
    a server can refuse a stranger's datagram before spending time on its body). Raises
    :class:`GwmpError` like :func:`parse`."""
    if len(data) < 4:
        raise GwmpError(
            f"datagram of {len(data)} bytes is shorter than the 4-byte header", reason="truncated"
        )
    version, token, ident = _HEADER.unpack_from(data)
    if version not in VERSIONS:
        raise GwmpError(
            f"protocol version {version} is not supported (only 1 and 2)",
            reason="version",
            hint="configure the packet forwarder for the Semtech UDP protocol v1 or v2",
        )
    if ident not in IDENTIFIER_NAMES:
        raise GwmpError(f"unknown identifier 0x{ident:02x}", reason="identifier")
    if ident in (PUSH_DATA, PULL_DATA, TX_ACK):
        if len(data) < 12:
            raise GwmpError(
                f"{IDENTIFIER_NAMES[ident]} of {len(data)} bytes has no 8-byte gateway EUI",
                reason="truncated",
            )
        return version, token, ident, int.from_bytes(data[4:12], "big")
    return version, token, ident, None


def parse(data: bytes) -> Datagram:
    """Decode one datagram; raises :class:`GwmpError` for anything malformed."""
    version, token, ident, eui = header(data)
    if eui is not None:
        body = data[12:]
        if ident == PULL_DATA:
            return Datagram(version, token, ident, eui)
        if ident == TX_ACK:
            # v2 TX_ACK may carry a JSON object, possibly empty or NUL-terminated by some forwarders.
            body = body.rstrip(b"\x00")
            payload = _json_object(body, ident) if body.strip() else {}
            return Datagram(version, token, ident, eui, payload)
        return Datagram(version, token, ident, eui, _json_object(body, ident))
    if ident == PULL_RESP:
        return Datagram(version, token, ident, None, _json_object(data[4:], ident))
    return Datagram(version, token, ident)


def _json_object(body: bytes, ident: int) -> dict[str, Any]:
    name = IDENTIFIER_NAMES[ident]
    if not body:
        raise GwmpError(f"{name} has no JSON body", reason="truncated")
    try:
        obj = orjson.loads(body)  # (about 3x faster than json.loads; no NaN or Infinity, UTF-8 only)
    except (UnicodeDecodeError, ValueError) as exc:
        raise GwmpError(f"{name} JSON body is unreadable: {exc}", reason="json") from None
    if not isinstance(obj, dict):
        raise GwmpError(f"{name} JSON body is a {type(obj).__name__}, not an object", reason="json")
    return obj


def _header(version: int, token: int, ident: int) -> bytes:
    if version not in VERSIONS:
        raise GwmpError(f"protocol version {version} is not supported", reason="version")
    return _HEADER.pack(version, token & 0xFFFF, ident)


def _eui(eui: int) -> bytes:
    return eui.to_bytes(8, "big")


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def encode_push_data(
    version: int,
    token: int,
    gateway_eui: int,
    *,
    rxpk: list[dict[str, Any]] | None = None,
    stat: dict[str, Any] | None = None,
) -> bytes:
    """PUSH_DATA as a packet forwarder sends it (used by the simulator and tests)."""
    body: dict[str, Any] = {}
    if rxpk is not None:
        body["rxpk"] = rxpk
    if stat is not None:
        body["stat"] = stat
    return _header(version, token, PUSH_DATA) + _eui(gateway_eui) + _dumps(body)


def encode_push_ack(version: int, token: int) -> bytes:
    """PUSH_ACK echoing the PUSH_DATA's token."""
    return _header(version, token, PUSH_ACK)


def encode_pull_data(version: int, token: int, gateway_eui: int) -> bytes:
    """PULL_DATA keepalive (forwarder -> server)."""
    return _header(version, token, PULL_DATA) + _eui(gateway_eui)


def encode_pull_ack(version: int, token: int) -> bytes:
    """PULL_ACK echoing the PULL_DATA's token."""
    return _header(version, token, PULL_ACK)


def encode_pull_resp(version: int, token: int, txpk: dict[str, Any]) -> bytes:
    """PULL_RESP carrying one txpk. Version 1 forwarders ignore the token (send 0)."""
    return _header(version, token if version >= 2 else 0, PULL_RESP) + _dumps({"txpk": txpk})


def encode_tx_ack(version: int, token: int, gateway_eui: int, error: str = "NONE") -> bytes:
    """TX_ACK (forwarder -> server), version 2; ``error`` one of :data:`TX_ACK_ERRORS`."""
    body = b"" if error == "NONE" else _dumps({"txpk_ack": {"error": error}})
    return _header(version, token, TX_ACK) + _eui(gateway_eui) + body


def tx_ack_error(dg: Datagram) -> str:
    """The error of a TX_ACK datagram (``NONE`` when it has none)."""
    ack = dg.payload.get("txpk_ack")
    if not isinstance(ack, dict):
        return "NONE"
    err = ack.get("error", "NONE")
    if not err:
        return "NONE"
    # only the protocol's names: the error becomes a metric label, and a sender's free text must not
    # grow the metrics without bound
    return err if err in TX_ACK_ERRORS else "UNKNOWN"


def decode_base64(value: str) -> bytes:
    """The bytes of a ``data`` field: strict base64, padding optional (as GWMP allows). Raises ValueError
    (binascii.Error is one) for anything else."""
    text = value.strip()
    pad = -len(text) % 4
    if pad:
        text += "=" * pad
    # strict: what base64.b64decode(validate=True) checks, without its wrapper
    return binascii.a2b_base64(text, strict_mode=True)
