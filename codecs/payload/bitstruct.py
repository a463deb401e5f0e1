"""The named bit fields of a construct ``BitStruct``, read from its declaration through construct's public
classes: where each field sits in the big-endian word and how wide it is. The struct fast path
(:mod:`.fastpath_schema`) and the JavaScript formatter generator (:mod:`.js.schema`) compile from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import construct as cs

__all__ = ["NotPlain", "bit_fields"]

C = TypeVar("C")


class NotPlain(ValueError):
    """The BitStruct holds something other than named unsigned fields, flags and padding."""


def bit_fields(
    sc: Any, conv_of: Callable[[Any], tuple[Any, C]], is_int: Callable[[C], bool]
) -> list[tuple[str, int, int, C, Any]]:
    """``(name, shift, width, conversion, constant)`` of each named field of the BitStruct ``sc``, in
    order; ``shift`` counts the bits below the field. ``conv_of(subcon)`` unwraps the caller's adapters
    into ``(leaf, conversion)``; a constant is allowed only where ``is_int(conversion)``. Padding is skipped
    (ignored on decode, zero on encode). NotPlain for anything else, or fields that do not fill the bytes."""
    total = 8 * sc.decodeamount
    out: list[tuple[str, int, int, C, Any]] = []
    pos = 0
    for sub in sc.subcon.subcons:
        fname = sub.name if isinstance(sub, cs.Renamed) else None
        inner = sub.subcon if isinstance(sub, cs.Renamed) else sub
        const: Any = None
        if isinstance(inner, cs.Const):
            const = inner.value
            inner = inner.subcon
        if (
            isinstance(inner, cs.Padded)
            and inner.subcon is cs.Pass
            and isinstance(inner.length, int)
            and fname is None
        ):
            pos += inner.length
            continue
        leaf, conv = conv_of(inner)
        if (
            isinstance(leaf, cs.BitsInteger)
            and isinstance(leaf.length, int)
            and not leaf.signed
            and not leaf.swapped
        ):
            width = leaf.length
        elif leaf is cs.Flag:
            width = 1  # in a BitStruct a Flag is one bit: 1 is true
        else:
            raise NotPlain(f"bit field {type(leaf).__name__}")
        if fname is None:
            raise NotPlain("an unnamed bit field")
        if const is not None and (not is_int(conv) or not isinstance(const, int)):
            raise NotPlain("a constant over an adapter")
        pos += width
        out.append((fname, total - pos, width, conv, const))
    if pos != total:
        raise NotPlain("bit fields do not fill the bytes")
    return out
