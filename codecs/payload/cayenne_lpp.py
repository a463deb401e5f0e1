"""Cayenne Low Power Payload (LPP) with the extended types, named as The Things Stack names them.

An uplink is a sequence of ``channel (u8), type (u8), value`` entries, all big-endian; decoded, each entry
becomes one key ``<name>_<channel>`` (``temperature_3``: 21.5). Values come out at the type's resolution
with no float artefacts (raw / 10, not raw * 0.1).

Type ids, sizes and resolutions: IPSO object id - 3200 (LPP v1: myDevices' table; extended types as in
ElectronicCats' CayenneLPP library, whose decoder The Things Stack users meet most). A downlink is a
sequence of ``channel (u8), value (i16, 0.01)`` entries, named ``value_<channel>`` as in The Things Stack.
The polyline type (240) of ElectronicCats' library is variable-length and not supported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import construct as cs

from havel.codecs.payload.base import Codec, check_direction
from havel.codecs.payload.fields import Reading
from havel.codecs.payload.port import Port
from havel.errors import CodecError


def _r(subcon: cs.Construct, step: str, lo: float, hi: float, unit: str | None = None) -> Reading:
    return Reading(subcon, step, lo=lo, hi=hi, unit=unit)


def _xyz(step: str, lo: float, hi: float) -> cs.Construct:
    return cs.Struct(*(axis / _r(cs.Int16sb, step, lo, hi) for axis in ("x", "y", "z")))


@dataclass(frozen=True)
class LppType:
    """One LPP data type: id, The Things Stack name, value schema and UCUM unit(s)."""

    type_id: int
    name: str
    value: cs.Construct
    unit: Any

    @property
    def size(self) -> int:
        return int(self.value.sizeof())


I16 = (-32768, 32767)

TYPES: tuple[LppType, ...] = (
    # LPP v1
    LppType(0, "digital_in", _r(cs.Int8ub, "1", 0, 255), None),
    LppType(1, "digital_out", _r(cs.Int8ub, "1", 0, 255), None),
    LppType(2, "analog_in", _r(cs.Int16sb, "0.01", -327.68, 327.67), None),
    LppType(3, "analog_out", _r(cs.Int16sb, "0.01", -327.68, 327.67), None),
    LppType(101, "luminosity", _r(cs.Int16ub, "1", 0, 65535, "lx"), "lx"),
    LppType(102, "presence", _r(cs.Int8ub, "1", 0, 255), None),
    LppType(103, "temperature", _r(cs.Int16sb, "0.1", -3276.8, 3276.7, "Cel"), "Cel"),
    LppType(104, "relative_humidity", _r(cs.Int8ub, "0.5", 0, 127.5, "%"), "%"),
    LppType(113, "accelerometer", _xyz("0.001", -32.768, 32.767), {"x": "[g]", "y": "[g]", "z": "[g]"}),
    LppType(115, "barometric_pressure", _r(cs.Int16ub, "0.1", 0, 6553.5, "hPa"), "hPa"),
    LppType(134, "gyrometer", _xyz("0.01", -327.68, 327.67), {"x": "deg/s", "y": "deg/s", "z": "deg/s"}),
    LppType(
        136,
        "gps",
        cs.Struct(
            "latitude" / _r(cs.Int24sb, "0.0001", -90, 90, "deg"),
            "longitude" / _r(cs.Int24sb, "0.0001", -180, 180, "deg"),
            "altitude" / _r(cs.Int24sb, "0.01", -83886.08, 83886.07, "m"),
        ),
        {"latitude": "deg", "longitude": "deg", "altitude": "m"},
    ),
    # extended types
    LppType(100, "generic_sensor", _r(cs.Int32ub, "1", 0, 0xFFFFFFFF), None),
    LppType(116, "voltage", _r(cs.Int16ub, "0.01", 0, 655.35, "V"), "V"),
    LppType(117, "current", _r(cs.Int16ub, "0.001", 0, 65.535, "A"), "A"),
    LppType(118, "frequency", _r(cs.Int32ub, "1", 0, 0xFFFFFFFF, "Hz"), "Hz"),
    LppType(120, "percentage", _r(cs.Int8ub, "1", 0, 100, "%"), "%"),
    LppType(121, "altitude", _r(cs.Int16sb, "1", *I16, unit="m"), "m"),
    LppType(125, "concentration", _r(cs.Int16ub, "1", 0, 65535, "[ppm]"), "[ppm]"),
    LppType(128, "power", _r(cs.Int16ub, "1", 0, 65535, "W"), "W"),
    LppType(130, "distance", _r(cs.Int32ub, "0.001", 0, 4294967.295, "m"), "m"),
    LppType(131, "energy", _r(cs.Int32ub, "0.001", 0, 4294967.295, "kW.h"), "kW.h"),
    LppType(132, "direction", _r(cs.Int16ub, "1", 0, 360, "deg"), "deg"),
    LppType(133, "unix_time", _r(cs.Int32ub, "1", 0, 0xFFFFFFFF, "s"), "s"),
    LppType(135, "colour", cs.Struct(*(c / _r(cs.Int8ub, "1", 0, 255) for c in ("r", "g", "b"))), None),
    LppType(142, "switch", _r(cs.Int8ub, "1", 0, 1), None),
)

BY_ID = {t.type_id: t for t in TYPES}
BY_NAME = {t.name: t for t in TYPES}
_KEY = re.compile(r"^([a-z_0-9]+?)_(\d{1,3})$")

DOWNLINK_VALUE = _r(cs.Int16sb, "0.01", -327.68, 327.67)

# The schemas in the shape of node codecs' ports, for listings.
_UP_ENTRY = cs.Struct("channel" / cs.Int8ub, "type" / cs.Int8ub)
_DOWN_ENTRY = cs.Struct("channel" / cs.Int8ub, "value" / DOWNLINK_VALUE)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not k.startswith("_")}
    return value


def _parse_key(key: str) -> tuple[str, int]:
    m = _KEY.match(key) if isinstance(key, str) else None
    if m is None or int(m.group(2)) > 255:
        raise CodecError(f"{key!r}: expected <type>_<channel> with channel 0..255, e.g. temperature_1")
    return m.group(1), int(m.group(2))


class CayenneLPP(Codec):
    """Cayenne LPP, standard and extended types; any FPort 1..223 (the format carries no port)."""

    name = "cayenne-lpp"
    summary = "Cayenne LPP v1 with extended types (The Things Stack names)"

    def __init__(self, *, compiled: bool = False) -> None:
        self._parsers: dict[int, Any] = {t.type_id: t.value for t in TYPES}
        if compiled:
            self.use_compiled()

    def use_compiled(self) -> None:
        """Parse values through ``compile()``d constructs from now on (bench/payloads.py compares)."""
        self._parsers = {t.type_id: t.value.compile() for t in TYPES}

    @property
    def ports(self) -> tuple[Port, ...]:
        return (
            Port(
                None,
                "up",
                "readings",
                "any FPort 1..223: channel, type, value entries",
                _UP_ENTRY,
                {t.name: t.unit for t in TYPES if t.unit},
                (),
            ),
            Port(
                None, "down", "values", "any FPort 1..223: channel, value (0.01) entries", _DOWN_ENTRY, {}, ()
            ),
        )

    @staticmethod
    def _check_fport(fport: int | None) -> None:
        if fport is not None and not (isinstance(fport, int) and 1 <= fport <= 223):
            raise CodecError(f"cayenne-lpp: FPort {fport!r} is not an application port (1..223)")

    def decode(self, data: bytes, fport: int, direction: str = "up") -> dict[str, Any]:
        """Decode LPP entries; CodecError for an unknown type or a truncated entry."""
        check_direction(direction)
        self._check_fport(fport)
        if not isinstance(data, bytes | bytearray):
            raise CodecError(f"cayenne-lpp: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        out: dict[str, Any] = {}
        units: dict[str, Any] = {}
        warnings: list[str] = []
        i = 0
        while i < len(data):
            channel = data[i]
            if direction == "down":
                if i + 3 > len(data):
                    raise CodecError(f"cayenne-lpp: downlink entry at byte {i} is truncated (needs 3 bytes)")
                key, value = f"value_{channel}", DOWNLINK_VALUE.parse(data[i + 1 : i + 3])
                i += 3
            else:
                if i + 2 > len(data):
                    raise CodecError(f"cayenne-lpp: entry at byte {i} is truncated (channel without a type)")
                lpp = BY_ID.get(data[i + 1])
                if lpp is None:
                    raise CodecError(
                        f"cayenne-lpp: unknown type {data[i + 1]} (0x{data[i + 1]:02x}) at byte "
                        f"{i + 1}; nothing after it can be read"
                    )
                end = i + 2 + lpp.size
                if end > len(data):
                    raise CodecError(
                        f"cayenne-lpp: {lpp.name} on channel {channel} at byte {i} is truncated "
                        f"(needs {lpp.size} value bytes, {len(data) - i - 2} left)"
                    )
                key = f"{lpp.name}_{channel}"
                value = _plain(self._parsers[lpp.type_id].parse(data[i + 2 : end]))
                if lpp.unit:
                    units[key] = lpp.unit
                i = end
            if key in out:
                warnings.append(f"{key} appears more than once; the last value is kept")
            out[key] = value
        return {
            "codec": self.name,
            "fport": fport,
            "version": None,
            "data": out,
            "units": units,
            "warnings": warnings,
            "errors": [],
        }

    def encode(self, data: Mapping[str, Any], fport: int | None = None, direction: str = "up") -> bytes:
        """Encode ``{"<type>_<channel>": value, ...}`` in the order given."""
        check_direction(direction)
        self._check_fport(fport)
        if not isinstance(data, Mapping):
            raise CodecError(f"cayenne-lpp: expected a JSON object, got {type(data).__name__}")
        out = bytearray()
        for key, value in data.items():
            name, channel = _parse_key(key)
            try:
                if direction == "down":
                    if name != "value":
                        raise CodecError(f"{key}: downlink entries are named value_<channel>")
                    out += bytes([channel]) + DOWNLINK_VALUE.build(value)
                    continue
                lpp = BY_NAME.get(name)
                if lpp is None:
                    raise CodecError(f"{key}: unknown type {name!r}; types are {', '.join(BY_NAME)}")
                if isinstance(lpp.value, cs.Struct):
                    if not isinstance(value, dict):
                        raise CodecError(
                            f"{key}: expected an object with {', '.join(sc.name for sc in lpp.value.subcons)}"
                        )
                    fields = [sc.name for sc in lpp.value.subcons]
                    extra = sorted(set(value) - set(fields))
                    if extra:
                        raise CodecError(
                            f"{key}: unknown field(s) {', '.join(extra)}; fields are {', '.join(fields)}"
                        )
                out += bytes([channel, lpp.type_id]) + lpp.value.build(value)
            except CodecError as exc:
                if str(exc).startswith(key):
                    raise
                # A single-valued type's Reading names its field "value": "temperature_1: 5000 Cel ...".
                text = str(exc).removeprefix("value: ")
                raise CodecError(f"{key}: {text}") from None
            except KeyError as exc:
                raise CodecError(f"{key}: missing field {exc.args[0]}") from None
        return bytes(out)


CODEC = CayenneLPP()
