"""The codecs' interface and the node codec: decode and encode through a node's port schemas.

Every node payload is one declarative ``construct`` Struct per port and direction (see docs/payloads.md),
written with the field types of :mod:`.fields` and declared as ports (:mod:`.port`).
:class:`NodeCodec` gives them the decode/encode entry points with the TTN/ChirpStack-style output
``{"codec", "fport", "version", "data", "units", "warnings", "errors"}``.

Construct trap (measured on 2.10.70) that shapes this code: ``Switch`` with an unknown tag silently
returns None, so ports are looked up in a dict and unknown ones raise :class:`CodecError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import construct as cs

from havel.codecs.payload.fields import VERSION
from havel.codecs.payload.port import Direction, Port, null_warnings
from havel.errors import CodecError


class Codec:
    """The interface every codec offers: ``decode``, ``encode``, ``ports``, ``name``."""

    name: str = ""
    summary: str = ""

    @property
    def ports(self) -> tuple[Port, ...]:
        raise NotImplementedError

    def decode(self, data: bytes, fport: int, direction: Direction = "up") -> dict[str, Any]:
        raise NotImplementedError

    def encode(self, data: Mapping[str, Any], fport: int | None = None, direction: Direction = "up") -> bytes:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<codec {self.name}>"


def check_direction(direction: str) -> None:
    """Raise CodecError unless ``direction`` is "up" or "down"."""
    if direction not in ("up", "down"):
        raise CodecError(f"direction {direction!r} is neither 'up' nor 'down'")


class NodeCodec(Codec):
    """A codec made of :class:`Port` schemas, one per (FPort, direction), all carrying the version nibble."""

    def __init__(
        self,
        name: str,
        summary: str,
        ports: Iterable[Port],
        *,
        compiled: bool = False,
        fast: bool | None = None,
    ) -> None:
        self.name = name
        self.summary = summary
        self._ports: dict[tuple[int, str], Port] = {}
        for p in ports:
            if p.fport is None:
                raise ValueError(f"{name}: node codec ports have a fixed FPort ({p.name})")
            self._ports[(p.fport, p.direction)] = p
        # construct's compile() turns the Struct into generated Python; kept per port and used on decode
        # when asked for (bench/payloads.py measures both).
        self._compiled: dict[tuple[int, str], Any] = {}
        if compiled:
            self.use_compiled()
        # the decoders generated from the same Structs (codecs/payload/fastpath.py): tried first, construct
        # parses whatever they do not take (and raises the errors). On unless turned off, or unless
        # construct's compiled parsers were asked for here (then those are what decodes; a later
        # use_compiled() keeps the fast path in front of them). ``_fast`` parses (for bytearray input and
        # the glue), ``_whole`` gives the whole answer for bytes input (the hot path).
        self._fast: dict[tuple[int, str], Callable[[bytes], Any]] = {}
        self._whole: dict[tuple[Any, str], Callable[[bytes, int], dict[str, Any] | None]] = {}
        if fast or (fast is None and not compiled):
            self.use_fast()

    def use_fast(self, on: bool = True) -> None:
        """Decode well-formed payloads with the generated fast path (on by default), or stop doing so."""
        from havel.codecs.payload.fastpath import derive, derive_decoder  # imports this module: late

        fast: dict[tuple[int, str], Callable[[bytes], Any]] = {}
        whole: dict[tuple[Any, str], Callable[[bytes, int], dict[str, Any] | None]] = {}
        if on:
            for key, p in self._ports.items():
                fn = derive(p.struct)
                if fn is not None:
                    fast[key] = fn
                dec = derive_decoder(self.name, p)
                if dec is not None:
                    whole[key] = dec
        self._fast, self._whole = fast, whole

    def use_compiled(self) -> None:
        """Decode through ``struct.compile()`` from now on (encoding keeps the plain Structs)."""
        self._compiled = {key: p.struct.compile() for key, p in self._ports.items()}

    @property
    def ports(self) -> tuple[Port, ...]:
        return tuple(sorted(self._ports.values(), key=lambda p: (p.direction != "up", p.fport)))

    def port(self, fport: int | None, direction: Direction) -> Port:
        """The schema of ``fport`` in ``direction`` (CodecError naming the known ones otherwise)."""
        if fport is not None and (direction == "up" or direction == "down"):
            port = self._ports.get((fport, direction))
            if port is not None:
                return port
        check_direction(direction)
        known = sorted(fp for fp, d in self._ports if d == direction)
        if fport is None:
            raise CodecError(
                f"{self.name}: which FPort? {direction}link ports are {known}", hint="pass --fport"
            )
        raise CodecError(
            f"{self.name}: no {direction}link payload on FPort {fport}; {direction}link ports are {known}"
        )

    def decode(self, data: bytes, fport: int, direction: Direction = "up") -> dict[str, Any]:
        """Decode ``data`` received on ``fport``; CodecError for unknown port/version or unreadable bytes."""
        # the hot path: a generated decoder for this port takes well-formed bytes whole (None otherwise)
        try:
            whole = self._whole.get((fport, direction))
        except TypeError:  # an unhashable argument: the general path says what is wrong with it
            whole = None
        if whole is not None and data.__class__ is bytes:
            out = whole(data, fport)
            if out is not None:
                return out
        return self._decode(data, fport, direction)

    def _decode(self, data: bytes, fport: int, direction: Direction) -> dict[str, Any]:
        """The general decode: checks in order, the fast parser or construct, then the port's glue."""
        port = self.port(fport, direction)
        if not isinstance(data, bytes | bytearray):
            raise CodecError(f"{self.name}: expected bytes, got {type(data).__name__}")
        if not data:
            raise CodecError(f"{self.name} FPort {fport}: empty payload")
        version = data[0] >> 4
        if version != VERSION:
            raise CodecError(
                f"{self.name} FPort {fport}: unknown payload version {version} "
                f"(this decoder reads version {VERSION})",
                hint="update Havel or check the node's firmware",
            )
        fast = self._fast.get((fport, direction))
        parsed = fast(bytes(data)) if fast is not None else None
        if parsed is None:
            # bytes the fast path turned down are malformed (it takes every well-formed payload): the plain
            # Struct then, whose errors are precise; construct's compiled parsers misread short input (a
            # Flag past the end reads as true, a short integer raises struct.error)
            parsed = self._parse(port, fport, direction, data, compiled=fast is None)
        out = port.to_data(parsed)
        warnings = null_warnings(out)
        errors: list[str] = []
        if port.check is not None:
            more_w, more_e = port.check(out)
            warnings += more_w
            errors += more_e
        return {
            "codec": self.name,
            "fport": fport,
            "version": VERSION,
            "data": out,
            "units": dict(port.units),
            "warnings": warnings,
            "errors": errors,
        }

    def _parse(
        self, port: Port, fport: int, direction: Direction, data: bytes | bytearray, compiled: bool = True
    ) -> Any:
        """Parse with construct (compiled when asked for); CodecError for bytes it cannot read."""
        schema = self._compiled.get((fport, direction), port.struct) if compiled else port.struct
        try:
            parsed = schema.parse(bytes(data))
        except (cs.StreamError, struct.error):
            # compiled parsers read with io.read(n) and unpack: a short read is struct.error, not StreamError
            raise CodecError(
                f"{self.name} FPort {fport} ({port.name}): payload of {len(data)} bytes is truncated"
            ) from None
        except cs.TerminatedError:
            expected = _static_size(port.struct)
            more = f" (expected {expected})" if expected is not None else ""
            raise CodecError(
                f"{self.name} FPort {fport} ({port.name}): {len(data)} bytes is too long{more}"
            ) from None
        except cs.ConstructError as exc:
            raise CodecError(
                f"{self.name} FPort {fport} ({port.name}): unreadable payload: {str(exc).splitlines()[-1]}"
            ) from None
        return parsed

    def encode(self, data: Mapping[str, Any], fport: int | None = None, direction: Direction = "up") -> bytes:
        """Encode ``data`` (the ``data`` object of decode); CodecError naming the field and the problem."""
        check_direction(direction)
        if fport is None:
            # Without a port: the only one in that direction, or the readings uplink.
            candidates = [p for p in self._ports.values() if p.direction == direction]
            if len(candidates) != 1:
                candidates = [p for p in candidates if p.name == "readings"]
            if len(candidates) != 1:
                self.port(None, direction)  # raises, naming the ports
            port = candidates[0]
        else:
            port = self.port(fport, direction)
        if not isinstance(data, Mapping):
            raise CodecError(f"{self.name} {port.name}: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(port.keys))
        if unknown:
            raise CodecError(
                f"{self.name} {port.name}: unknown field(s) {', '.join(unknown)}; "
                f"fields are {', '.join(port.keys) or '(none)'}"
            )
        try:
            obj = port.from_data(dict(data))
            return bytes(port.struct.build(obj))
        except KeyError as exc:
            raise CodecError(f"{self.name} {port.name}: missing field {exc.args[0]}") from None
        except (TypeError, AttributeError) as exc:
            raise CodecError(f"{self.name} {port.name}: malformed data: {exc}") from None
        except cs.ConstructError as exc:
            raise CodecError(f"{self.name} {port.name}: cannot encode: {str(exc).splitlines()[-1]}") from None


def _static_size(struct: cs.Construct) -> int | None:
    try:
        return int(struct.sizeof())
    except cs.SizeofError:
        return None
