"""JSON text as the gateway stores and publishes it, without building an encoder per call.

``json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` builds a JSONEncoder and
then its C encoder on every call; for the small messages the gateway writes (one per uplink, into the
outbox) that set-up is a measurable share of the cost. :func:`encode_json` keeps one JSONEncoder and hands
the C encoder the same arguments ``JSONEncoder.iterencode`` would (a fresh circular-reference table each
time), so the text is the same, byte for byte; ``tests/gateway/test_jsontext.py`` holds it to
``json.dumps`` on random values.
"""

from __future__ import annotations

import json
import json.encoder
from typing import Any

_general = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_string: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
_make: Any = getattr(json.encoder, "c_make_encoder", None)


def encode_json(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``: ValueError for
    NaN, infinity and circular data, TypeError for values JSON has no type for."""
    if _make is None or value.__class__ is str:
        return _general.encode(value)
    # the C encoder's arguments: markers (circular check), default, string encoder, indent, key separator,
    # item separator, sort_keys, skipkeys, allow_nan -- what JSONEncoder.iterencode passes it
    return "".join(_make({}, _general.default, _string, None, ":", ",", False, False, False)(value, 0))
