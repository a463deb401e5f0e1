"""The JSON text of an uplink message, written directly instead of by ``json`` walking the whole dict.

The network server builds one message per accepted uplink and the outbox stores its JSON text: with the
general encoder that was the largest single cost of storing an uplink (a nested dict of about twenty keys,
measured at 9 to 19 us, a third of it the encoder's set-up per call). Most of the message is known in
advance (key names, the units of a codec port, a device's name) or is text that needs no escaping (hex ids,
times); only ``data`` and the warnings go through ``json``'s C encoder, made once and reused.

The result is the same text, byte for byte, as :func:`encode_json` gives for the same dict (compact
separators, UTF-8 kept, NaN refused, keys in insertion order); anything not shaped as expected (a key added,
a value of another type) is encoded the general way. ``tests/gateway/test_uplink_json.py`` holds the two to
each other on random messages.
"""

from __future__ import annotations

import json
import json.encoder
import math
from typing import Any

_general = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_string: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
_make: Any = getattr(json.encoder, "c_make_encoder", None)

KEYS = (
    "id", "device", "dev_eui", "dev_addr", "session_epoch", "fcnt", "fport", "confirmed", "received_at",
    "time_source", "rx", "codec", "data", "units", "warnings", "errors", "raw",
)  # fmt: skip
RX_KEYS = ("gateway", "rssi", "snr", "freq", "datr", "chan", "tmst")


def encode_json(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``, without building
    an encoder per call (ValueError for NaN/infinity and circular data, TypeError for other types)."""
    if _make is None or value.__class__ is str:
        return _general.encode(value)
    # the C encoder's arguments: markers (circular check), default, string encoder, indent, key separator,
    # item separator, sort_keys, skipkeys, allow_nan -- what JSONEncoder.iterencode passes it
    return "".join(_make({}, _general.default, _string, None, ":", ",", False, False, False)(value, 0))


class _Shape(Exception):
    """A value this writer does not handle: fall back to the general encoder."""


def _number(value: Any) -> str:
    cls = value.__class__
    if cls is float:
        if not math.isfinite(value):
            raise _Shape
        return float.__repr__(value)
    if cls is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    raise _Shape


class UplinkJson:
    """Writes uplink messages; caches the few strings that repeat (device names, datr, units of a codec)."""

    def __init__(self) -> None:
        self._strings: dict[str, str] = {}
        self._units: dict[str, tuple[dict[str, Any], str]] = {}

    def uplink(self, m: dict[str, Any]) -> str:
        """The JSON text of ``m`` (the same as :func:`encode_json` gives). Raises ValueError or TypeError,
        as that does, for what JSON cannot hold (NaN, infinity, other types)."""
        try:
            return self._write(m)
        except _Shape:
            return encode_json(m)

    def _quoted(self, value: Any) -> str:
        if value.__class__ is not str:
            raise _Shape
        text = self._strings.get(value)
        if text is None:
            text = _string(value)
            if len(self._strings) < 100_000:
                self._strings[value] = text
        return text

    def _write(self, m: dict[str, Any]) -> str:
        if len(m) != len(KEYS) or tuple(m) != KEYS:
            raise _Shape
        msg_id, eui, addr, at, source, raw = (
            m["id"], m["dev_eui"], m["dev_addr"], m["received_at"], m["time_source"], m["raw"]
        )  # fmt: skip
        # hex, RFC 3339 and a word, all made by the network server: checked at once, written as they are
        try:
            plain = msg_id + eui + addr + at + source + raw
        except TypeError:
            raise _Shape from None
        if (
            plain.__class__ is not str
            or not (plain.isascii() and plain.isprintable())
            or '"' in plain
            or ("\\" in plain)
        ):
            raise _Shape
        rx_parts = []
        for r in m["rx"]:
            if r.__class__ is not dict or len(r) != len(RX_KEYS) or tuple(r) != RX_KEYS:
                raise _Shape
            chan, tmst = r["chan"], r["tmst"]
            if chan.__class__ is not int or tmst.__class__ is not int:
                raise _Shape
            rx_parts.append(
                f'{{"gateway":{self._quoted(r["gateway"])},"rssi":{_number(r["rssi"])},'
                f'"snr":{_number(r["snr"])},"freq":{_number(r["freq"])},"datr":{self._quoted(r["datr"])},'
                f'"chan":{chan},"tmst":{tmst}}}'
            )
        units, codec = m["units"], m["codec"]
        cached = self._units.get(codec) if codec.__class__ is str else None
        if cached is not None and cached[0] == units:
            units_j = cached[1]
        else:
            units_j = encode_json(units)
            if codec.__class__ is str and units.__class__ is dict and len(self._units) < 1000:
                self._units[codec] = (dict(units), units_j)
        fport, confirmed, epoch, fcnt = m["fport"], m["confirmed"], m["session_epoch"], m["fcnt"]
        warnings, errors = m["warnings"], m["errors"]
        if (
            (fport is not None and fport.__class__ is not int)
            or confirmed.__class__ is not bool
            or epoch.__class__ is not int
            or fcnt.__class__ is not int
            or warnings.__class__ is not list
            or errors.__class__ is not list
        ):
            raise _Shape
        return (
            f'{{"id":"{msg_id}","device":{self._quoted(m["device"])},"dev_eui":"{eui}","dev_addr":"{addr}",'
            f'"session_epoch":{epoch},"fcnt":{fcnt},"fport":{"null" if fport is None else fport},'
            f'"confirmed":{"true" if confirmed else "false"},"received_at":"{at}","time_source":"{source}",'
            f'"rx":[{",".join(rx_parts)}],"codec":{self._quoted(codec)},"data":{encode_json(m["data"])},'
            f'"units":{units_j},"warnings":{encode_json(warnings) if warnings else "[]"},'
            f'"errors":{encode_json(errors) if errors else "[]"},"raw":"{raw}"}}'
        )
