"""The JavaScript that every generated formatter carries: a small interpreter of the port tables.

The tables (one per codec, made by :mod:`havel.codecs.payload.js.schema` from the construct schemas) say
which bytes hold which field and how each raw integer becomes a value; this code walks them, in both
directions, the way construct and ``NodeCodec`` do in Python. It is plain ECMAScript 5.1 (no ``let``, no
arrow functions, no modules, no Node APIs) because The Things Stack runs formatters in an ES5.1 engine and
ChirpStack v4 in QuickJS. It never throws out of the entry points: a payload it cannot read becomes
``errors``.

This module holds the entry points the network servers call and puts the runtime together; the parts
are :mod:`.runtime_common` (helpers and value conversions), :mod:`.runtime_node` (node codecs' port
tables) and :mod:`.runtime_lpp` (Cayenne LPP).
"""

from __future__ import annotations

from havel.codecs.payload.js.runtime_common import COMMON
from havel.codecs.payload.js.runtime_lpp import LPP
from havel.codecs.payload.js.runtime_node import NODE

ENTRY = r"""
// --- the entry points ----------------------------------------------------------------------------

// Havel's own answer, as the Python codec gives it: {codec, fport, version, data, units, warnings, errors}
function havelDecode(bytes, fport, dir) {
  return CODEC.lpp ? decodeLpp(CODEC, bytes, fport, dir) : decodeNode(CODEC, bytes, fport, dir);
}

// data -> a list of byte values, as the Python codec encodes it
function havelEncode(data, fport, dir) {
  return CODEC.lpp ? encodeLpp(CODEC, data, fport, dir) : encodeNode(CODEC, data, fport, dir);
}

function toBytes(b) {
  if (b === null || b === undefined || typeof b !== 'object' || typeof b.length !== 'number') {
    fail('input.bytes: expected a list of byte values, got ' + typeName(b));
  }
  var out = [];
  for (var i = 0; i < b.length; i++) {
    var x = b[i];
    if (typeof x !== 'number' || x % 1 !== 0 || x < 0 || x > 255) {
      fail('input.bytes[' + i + ']: ' + show(x) + ' is not a byte');
    }
    out.push(x);
  }
  return out;
}

function errorText(e) {
  if (e instanceof HavelError) { return e.message; }
  return 'formatter error: ' + String(e && e.message ? e.message : e);
}

// Network servers take any non-empty "errors" as a failed decode and drop the data, so the states the codec
// decodes but calls unsafe (its "errors") are reported among the warnings, with the data.
function formatterDecode(input, dir) {
  try {
    var r = havelDecode(toBytes(input.bytes), input.fPort, dir);
    return {data: r.data, warnings: r.warnings.concat(r.errors), errors: []};
  } catch (e) {
    return {warnings: [], errors: [errorText(e)]};
  }
}

// The downlink's FPort: the one given with the downlink when it is one of this codec's downlink ports,
// otherwise the downlink port whose fields are exactly the keys of data.
function downlinkPort(input) {
  var ports = CODEC.lpp ? [] : portsIn(CODEC, 'down');
  var i;
  if (CODEC.lpp) { return typeof input.fPort === 'number' ? input.fPort : 1; }
  for (i = 0; i < ports.length; i++) { if (ports[i].fport === input.fPort) { return input.fPort; } }
  if (isObject(input.data)) {
    var ks = keysOf(input.data).sort().join(',');
    var found = [];
    for (i = 0; i < ports.length; i++) {
      if (ports[i].keys.slice().sort().join(',') === ks) { found.push(ports[i]); }
    }
    if (found.length === 1) { return found[0].fport; }
  }
  var known = [];
  for (i = 0; i < ports.length; i++) {
    known.push(ports[i].fport + ' ' + ports[i].name + ' {' + ports[i].keys.join(', ') + '}');
  }
  fail(CODEC.name + ': which downlink? give the fields of one of: ' + known.join('; '));
}

function decodeUplink(input) { return formatterDecode(input, 'up'); }

function decodeDownlink(input) { return formatterDecode(input, 'down'); }

function encodeDownlink(input) {
  try {
    var fport = downlinkPort(input);
    return {bytes: havelEncode(input.data, fport, 'down'), fPort: fport, warnings: [], errors: []};
  } catch (e) {
    return {warnings: [], errors: [errorText(e)]};
  }
}
"""


def runtime(lpp: bool) -> str:
    """The runtime for a node codec (``lpp`` False) or for Cayenne LPP: only the part it calls."""
    return COMMON.lstrip("\n") + (LPP if lpp else NODE) + ENTRY
