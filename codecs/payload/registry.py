"""The codecs by name: ``air``, ``water``, ``temperature``, ``cooling``, ``cayenne-lpp``."""

from __future__ import annotations

from havel.codecs.payload import air, cayenne_lpp, cooling, temperature, water
from havel.codecs.payload.base import Codec
from havel.errors import CodecError

_CODECS: dict[str, Codec] = {c.name: c for c in (air.CODEC, water.CODEC, temperature.CODEC, cooling.CODEC,
                                                 cayenne_lpp.CODEC)}
CODEC_NAMES: tuple[str, ...] = tuple(_CODECS)


def get_codec(name: str) -> Codec:
    """The codec called ``name`` (CodecError naming the known codecs otherwise)."""
    try:
        return _CODECS[name]
    except (KeyError, TypeError):
        raise CodecError(f"unknown codec {name!r}; codecs are {', '.join(CODEC_NAMES)}",
                         hint="see 'havel payload list'") from None


def list_codecs() -> list[Codec]:
    """Every codec, node codecs first."""
    return list(_CODECS.values())
