"""JSON text as the gateway stores and publishes it: ``json.dumps``'s meaning at a fraction of its cost.

The gateway writes one JSON message per uplink into the outbox; with the standard library that was the
largest single cost of storing an uplink (about 9 us of the network server's flush). :func:`encode_json`
lets orjson (compiled, about 1 us) write the text and keeps the standard library's contract for the cases
orjson decides differently:

- orjson writes NaN and infinity as ``null`` where ``json.dumps(allow_nan=False)`` refuses them (a codec
  bug the network server reports). So a text with a ``null`` in it is written again by the standard
  library, which raises ValueError for them and otherwise gives the same value (messages with a null are
  rare: a codec that failed, a reading a sensor did not give).
- What orjson does not take (integer dict keys, integers beyond 64 bits, nesting deeper than 254,
  circular data, values JSON has no type for) goes to the standard library, which converts or raises as
  ``json.dumps`` would.

The text is the same JSON value as ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``; only
the spelling of some floats differs (orjson writes 1e-05 as 0.00001). ``tests/gateway/test_jsontext.py``
holds it to that on random values. Both encoders are used through their public APIs only (``orjson.dumps``
and ``json.JSONEncoder.encode``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_dumps = orjson.dumps
# (a compiled pattern finds it in about half the time ``b"null" in out`` takes: this runs once per uplink)
_null = re.compile(b"null").search
# one encoder made once: its encode() is json.dumps with these options, without re-reading them per call
_general = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_json_bytes(value: Any) -> bytes:
    """:func:`encode_json` as UTF-8 bytes (what a sink publishes)."""
    out = _fast(value)
    return out if out is not None else _general.encode(value).encode()


def encode_json(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``: ValueError for
    NaN, infinity and circular data, TypeError for values JSON has no type for."""
    out = _fast(value)
    return out.decode() if out is not None else _general.encode(value)


def _fast(value: Any) -> bytes | None:
    """orjson's text, or None where the standard library must decide (see the module docstring)."""
    try:
        out = _dumps(value)
    except TypeError:  # orjson.JSONEncodeError: the standard library converts or raises
        return None
    if _null(out) is not None:  # perhaps a NaN or infinity, which orjson writes as null
        return None
    return out
