"""The codecs and node kinds by name.

``KIND_MODULES`` is the one list of node kinds on the host: each names a module of this package that
declares ``CODEC`` and ``KIND`` (a :class:`~havel.codecs.payload.kind.NodeKind`). The codecs are those
kinds' codecs, then the generic ones (``cayenne-lpp``).
"""

from __future__ import annotations

import importlib

from havel.codecs.payload import cayenne_lpp
from havel.codecs.payload.base import Codec
from havel.codecs.payload.kind import NodeKind
from havel.errors import CodecError

#: every node kind, in the order lists show them (docs/add-a-node-kind.md)
KIND_MODULES: tuple[str, ...] = ("air", "water", "temperature", "cooling", "soil")

_KINDS: dict[str, NodeKind] = {}
for _module in KIND_MODULES:
    _kind = importlib.import_module(f"havel.codecs.payload.{_module}").KIND
    if not isinstance(_kind, NodeKind) or _kind.name != _module:
        raise TypeError(f"havel.codecs.payload.{_module}.KIND must be the NodeKind named {_module!r}")
    _KINDS[_module] = _kind

KIND_NAMES: tuple[str, ...] = tuple(_KINDS)
_CODECS: dict[str, Codec] = {k.name: k.codec for k in _KINDS.values()}
_CODECS[cayenne_lpp.CODEC.name] = cayenne_lpp.CODEC
CODEC_NAMES: tuple[str, ...] = tuple(_CODECS)


def get_codec(name: str) -> Codec:
    """The codec called ``name`` (CodecError naming the known codecs otherwise)."""
    try:
        return _CODECS[name]
    except (KeyError, TypeError):
        raise CodecError(
            f"unknown codec {name!r}; codecs are {', '.join(CODEC_NAMES)}", hint="see 'havel payload list'"
        ) from None


def list_codecs() -> list[Codec]:
    """Every codec, node codecs first."""
    return list(_CODECS.values())


def find_kind(name: str) -> NodeKind | None:
    """The node kind called ``name``, or None (a generic codec like cayenne-lpp, or no kind at all)."""
    return _KINDS.get(name) if isinstance(name, str) else None


def get_kind(name: str) -> NodeKind:
    """The node kind called ``name`` (CodecError naming the kinds otherwise)."""
    kind = find_kind(name)
    if kind is None:
        raise CodecError(f"unknown node kind {name!r}; kinds are {', '.join(KIND_NAMES)}")
    return kind


def list_kinds() -> list[NodeKind]:
    """Every node kind, in ``KIND_MODULES`` order."""
    return list(_KINDS.values())
