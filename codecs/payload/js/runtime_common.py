"""The shared part of the formatter runtime (:mod:`.runtime`): small helpers, integers on the wire and
what a raw integer means (the twins of ``Reading``, ``Bool`` and ``Choice``), in ES5.1 like the rest."""

from __future__ import annotations

COMMON = r"""
function HavelError(message) { this.message = message; }

function fail(message) { throw new HavelError(message); }

function hasKey(o, k) { return Object.prototype.hasOwnProperty.call(o, k); }

function isObject(v) {
  return v !== null && typeof v === 'object' && Object.prototype.toString.call(v) === '[object Object]';
}

function keysOf(o) {
  var out = [];
  for (var k in o) { if (hasKey(o, k)) { out.push(k); } }
  return out;
}

function typeName(v) {
  if (v === null || v === undefined) { return 'null'; }
  if (Array.isArray(v)) { return 'list'; }
  if (typeof v === 'object') { return 'object'; }
  return typeof v;
}

function show(v) {
  if (v === undefined) { return 'undefined'; }
  if (typeof v === 'number' && !isFinite(v)) { return String(v); }
  try { return JSON.stringify(v); } catch (e) { return String(v); }
}

function checkDirection(dir) {
  if (dir !== 'up' && dir !== 'down') { fail('direction ' + show(dir) + " is neither 'up' nor 'down'"); }
}

function pow2(n) { return Math.pow(2, n); }

function getPath(c, path) {
  for (var i = 0; i < path.length; i++) {
    if (c === null || c === undefined) { return undefined; }
    c = c[path[i]];
  }
  return c;
}

function setPath(c, path, value) {
  for (var i = 0; i < path.length - 1; i++) {
    if (!isObject(c[path[i]])) { c[path[i]] = {}; }
    c = c[path[i]];
  }
  c[path[path.length - 1]] = value;
}

// a field as Python names it in errors: the path without the parts that start with '_'
function fieldName(path) {
  var parts = [];
  for (var i = 0; i < path.length; i++) {
    if (String(path[i]).charAt(0) !== '_') { parts.push(path[i]); }
  }
  return parts.length ? parts.join('.') : 'value';
}

// --- integers on the wire ------------------------------------------------------------------------

function readUint(bytes, at, size, le) {
  var v = 0;
  for (var i = 0; i < size; i++) { v = v * 256 + bytes[le ? at + size - 1 - i : at + i]; }
  return v;
}

function readInt(bytes, at, leaf) {
  var v = readUint(bytes, at, leaf.size, leaf.le);
  if (leaf.signed && v >= pow2(8 * leaf.size - 1)) { v -= pow2(8 * leaf.size); }
  return v;
}

function writeInt(out, raw, leaf, name) {
  var bits = 8 * leaf.size;
  var lo = leaf.signed ? -pow2(bits - 1) : 0;
  var hi = leaf.signed ? pow2(bits - 1) - 1 : pow2(bits) - 1;
  if (typeof raw !== 'number' || raw % 1 !== 0 || raw < lo || raw > hi) {
    fail(name + ': cannot encode: ' + show(raw) + ' does not fit ' +
         (leaf.signed ? 'a signed ' : 'an unsigned ') + bits + '-bit integer');
  }
  if (raw < 0) { raw += pow2(bits); }
  var tmp = [];
  for (var i = 0; i < leaf.size; i++) {
    tmp.unshift(raw % 256);
    raw = Math.floor(raw / 256);
  }
  if (leaf.le) { tmp.reverse(); }
  for (var j = 0; j < tmp.length; j++) { out.push(tmp[j]); }
}

// --- values: what a raw integer means ------------------------------------------------------------

function roundHalfAway(x) {
  var r = Math.floor(Math.abs(x) + 0.5);
  return (x < 0 ? -r : r) + 0;  // + 0: never -0
}

function decodeConv(conv, raw) {
  if (conv.t === 'bool') { return raw !== 0; }
  if (conv.t === 'choice') {
    return hasKey(conv.byValue, String(raw)) ? conv.byValue[String(raw)] : 'unknown_' + raw;
  }
  if (conv.t === 'reading') {
    if (conv.sentinel !== null && raw === conv.sentinel) { return null; }
    // multiply, then divide last: 215 * 1 / 10 is 21.5 exactly as Python gives it
    return conv.den === 1 ? raw * conv.num : raw * conv.num / conv.den;
  }
  return raw;
}

function encodeConv(conv, v, name) {
  if (conv.t === 'bool') {
    if (typeof v !== 'boolean') { fail(name + ': expected true or false, got ' + show(v)); }
    return v ? 1 : 0;
  }
  if (conv.t === 'choice') {
    if (typeof v === 'string' && /^unknown_[0-9]+$/.test(v)) {
      var raw = parseInt(v.slice(8), 10);  // what decode gave for an unnamed value: re-encoded unchanged
      if (!hasKey(conv.byValue, String(raw))) { return raw; }
    }
    if (typeof v !== 'string' || !hasKey(conv.names, v)) {
      fail(name + ': ' + show(v) + ' is not one of ' + keysOf(conv.names).join(', '));
    }
    return conv.names[v];
  }
  if (conv.t === 'reading') {
    var unit = conv.unit ? ' ' + conv.unit : '';
    if (v === null || v === undefined) {
      if (conv.sentinel === null) { fail(name + ': a value is required here (this field cannot be null)'); }
      return conv.sentinel;
    }
    if (typeof v !== 'number') { fail(name + ': expected a number, got ' + typeName(v) + ' ' + show(v)); }
    if (!isFinite(v)) { fail(name + ': ' + show(v) + ' is not a finite number'); }
    if (conv.sat && v > conv.hi) { v = conv.hi; }
    if (!(conv.lo <= v && v <= conv.hi)) {
      fail(name + ': ' + v + unit + ' is out of range ' + conv.lo + '..' + conv.hi + unit);
    }
    return roundHalfAway(v * conv.den / conv.num);
  }
  if (typeof v !== 'number' || v % 1 !== 0) { fail(name + ': expected an integer, got ' + show(v)); }
  return v;
}
"""
