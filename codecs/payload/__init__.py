"""Payload codecs: the bytes of Havel's sensor nodes (and Cayenne LPP) <-> meaning.

``get_codec(name)`` and ``list_codecs()`` are the entry points; each codec has
``decode(data, fport, direction="up") -> dict``, ``encode(data, fport=None, direction="up") -> bytes`` and
``ports``. The byte layouts are documented in docs/payloads.md; the shared vectors are in
codecs/vectors/<codec>.json.
"""

from __future__ import annotations

from havel.codecs.payload.base import Codec, NodeCodec
from havel.codecs.payload.kind import NodeKind
from havel.codecs.payload.port import Port
from havel.codecs.payload.registry import (
    CODEC_NAMES,
    KIND_NAMES,
    find_kind,
    get_codec,
    get_kind,
    list_codecs,
    list_kinds,
)

__all__ = [
    "CODEC_NAMES",
    "KIND_NAMES",
    "Codec",
    "NodeCodec",
    "NodeKind",
    "Port",
    "find_kind",
    "get_codec",
    "get_kind",
    "list_codecs",
    "list_kinds",
]
