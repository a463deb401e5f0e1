"""The signed JSON envelope of the mesh paths (MQTT and Reticulum): ``{"v": 1, "sender": S,
"sig": "COUNTER.TAG", "body": TEXT}`` where TEXT is the JSON of the record, event or command (the signature
covers TEXT's exact bytes). APRS carries compact lines instead (:mod:`lines`).
"""

from __future__ import annotations

import json
from typing import Any

from havel.errors import SecurityError
from havel.gateway.relay.record import EnvelopeError, RelayRecord, UnsignedError
from havel.gateway.relay.signing import Signature, Signer, Verifier
from havel.gateway.relay.strictjson import finite_number, strict_json


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
