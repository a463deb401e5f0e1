"""A node codec's ports: one schema per FPort and direction, and the glue between its bytes and ``data``.

:class:`Port` holds the construct Struct, the units and the glue; a :class:`Field` view says declaratively
where each key of ``data`` comes from (the fast path, fastpath.py, and the JavaScript formatters read the
same view). :func:`plain` and :func:`null_warnings` are the default glue and the "reading absent or
faulty" warnings every decode gives; :func:`sub` and :func:`flags_of` help a port's ``from_data``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import construct as cs

from havel.errors import CodecError

Data = dict[str, Any]

Direction = str  # "up" | "down"


_NESTED = (dict, list)  # a tuple, not ``dict | list``: that expression builds a new union on every call


def plain(obj: Any) -> Any:
    """A parsed construct Container as plain dicts/lists, keys starting with '_' dropped."""
    # scalars are kept inline rather than passed through a call each
    if isinstance(obj, dict):
        return {k: plain(v) if isinstance(v, _NESTED) else v for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [plain(v) if isinstance(v, _NESTED) else v for v in obj]
    return obj


@dataclass(frozen=True)
class Field:
    """One value of a port's ``data`` read from the parsed struct (see :class:`Port` ``view``).

    ``path`` names it with dots ("_header.alarm"); ``null_if`` names a flag that makes the value None
    whatever the bytes say (a sensor reporting a fault); ``only_if`` names a flag without which the key is
    left out of ``data`` (a sensor that is not fitted).
    """

    path: str
    null_if: str | None = None
    only_if: str | None = None


#: ``data`` described by where each key comes from: a dotted path (str), a :class:`Field`, or a nested view
#: (a nested object in ``data``), in the key order of ``data``.
View = Mapping[str, Any]


def view_fields(view: View) -> list[tuple[str, Field | View]]:
    """``view`` with every leaf as a :class:`Field` (nested views stay mappings), in key order."""
    return [(key, spec if isinstance(spec, Field | Mapping) else Field(spec)) for key, spec in view.items()]


def _at(c: Any, path: str) -> Any:
    for part in path.split("."):
        c = c[part]  # item access: construct's Container and the fast path's plain dicts alike
    return c


class ViewToData:
    """The ``to_data`` glue a view describes (the fast path inlines the same view, fastpath.py)."""

    def __init__(self, view: View) -> None:
        self.view = view
        self._fields = [
            (key, spec if isinstance(spec, Field) else ViewToData(spec)) for key, spec in view_fields(view)
        ]

    def __call__(self, c: Any) -> Data:
        out: Data = {}
        for key, spec in self._fields:
            if not isinstance(spec, Field):
                out[key] = spec(c)  # a nested view
                continue
            if spec.only_if is not None and not _at(c, spec.only_if):
                continue
            if spec.null_if is not None and _at(c, spec.null_if):
                out[key] = None
            else:
                value = _at(c, spec.path)
                out[key] = plain(value) if isinstance(value, _NESTED) else value
        return out


@dataclass(frozen=True)
class Port:
    """One payload of a codec: its FPort, direction, schema, units and the glue between bytes and data.

    ``to_data`` turns the parsed Container into the ``data`` object (default: drop ``_``-prefixed keys);
    ``view`` says the same declaratively (where each key of ``data`` comes from, see :class:`Field`) and
    then gives ``to_data``; ``from_data`` turns ``data`` into what the Struct builds from (default:
    ``data`` itself). ``check`` looks at decoded data and returns (warnings, errors) beyond absent readings.
    """

    fport: int | None  # None: any application port (1..223)
    direction: Direction
    name: str
    summary: str
    struct: cs.Construct
    units: Mapping[str, Any]
    keys: tuple[str, ...]
    to_data: Callable[[Any], Data] = plain
    from_data: Callable[[Data], Any] = dict
    check: Callable[[Data], tuple[list[str], list[str]]] | None = None
    view: View | None = None

    def __post_init__(self) -> None:
        if self.view is not None:
            derived = isinstance(self.to_data, ViewToData) and self.to_data.view is self.view  # replace()
            if self.to_data is not plain and not derived:
                raise ValueError(f"{self.name}: give to_data or view, not both")
            object.__setattr__(self, "to_data", ViewToData(self.view))


def null_warnings(data: Any, prefix: str = "") -> list[str]:
    """ "<field>: reading absent or faulty" for every None in ``data``, depth first in key order."""
    # a None or a container is looked at here, other scalars are skipped without a call each
    out: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if value is None:
                out.append(f"{prefix}{key}: reading absent or faulty")
            elif isinstance(value, _NESTED):
                out += null_warnings(value, f"{prefix}{key}.")
    elif isinstance(data, list):
        base = prefix[:-1]
        for i, value in enumerate(data):
            if value is None:
                out.append(f"{base}[{i}]: reading absent or faulty")
            elif isinstance(value, _NESTED):
                out += null_warnings(value, f"{base}[{i}].")
    elif data is None:
        out.append(f"{prefix[:-1]}: reading absent or faulty")
    return out


def sub(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``data[key]`` as a dict (CodecError naming the key when it is missing or not an object)."""
    value = data[key]
    if not isinstance(value, dict):
        raise CodecError(f"{key}: expected an object, got {value!r}")
    return value


def flags_of(data: Mapping[str, Any], key: str, names: Iterable[str]) -> dict[str, Any]:
    """The flags object ``data[key]`` with exactly ``names`` (CodecError for unknown or missing ones)."""
    value = sub(data, key)
    names = tuple(names)
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise CodecError(f"{key}: unknown flag(s) {', '.join(unknown)}; flags are {', '.join(names)}")
    missing = [n for n in names if n not in value]
    if missing:
        raise CodecError(f"{key}: missing flag(s) {', '.join(missing)}")
    return value
