"""The JavaScript that every generated formatter carries: a small interpreter of the port tables.

The tables (one per codec, made by :mod:`havel.codecs.payload.js.schema` from the construct schemas) say
which bytes hold which field and how each raw integer becomes a value; this code walks them, in both
directions, the way construct and ``NodeCodec`` do in Python. It is plain ECMAScript 5.1 (no ``let``, no
arrow functions, no modules, no Node APIs) because The Things Stack runs formatters in an ES5.1 engine and
ChirpStack v4 in QuickJS. It never throws out of the entry points: a payload it cannot read becomes
``errors``.
"""

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

NODE = r"""
// --- node codecs: one port table per FPort and direction -----------------------------------------

function portsIn(codec, dir) {
  var out = [];
  for (var i = 0; i < codec.ports.length; i++) {
    if (codec.ports[i].dir === dir) { out.push(codec.ports[i]); }
  }
  return out;
}

function findPort(codec, fport, dir) {
  for (var i = 0; i < codec.ports.length; i++) {
    var p = codec.ports[i];
    if (p.fport === fport && p.dir === dir) { return p; }
  }
  checkDirection(dir);
  var known = [];
  var ports = portsIn(codec, dir);
  for (var j = 0; j < ports.length; j++) { known.push(ports[j].fport); }
  known.sort(function (a, b) { return a - b; });
  if (fport === null || fport === undefined) {
    fail(codec.name + ': which FPort? ' + dir + 'link ports are [' + known.join(', ') + ']');
  }
  fail(codec.name + ': no ' + dir + 'link payload on FPort ' + show(fport) + '; ' + dir + 'link ports are [' +
       known.join(', ') + ']');
}

function parseStruct(codec, p, bytes, fport) {
  var n = bytes.length;
  var pos = 0;
  var c = {};
  var label = codec.name + ' FPort ' + fport + ' (' + p.name + '): ';
  function need(k) { if (pos + k > n) { fail(label + 'payload of ' + n + ' bytes is truncated'); } }
  for (var i = 0; i < p.members.length; i++) {
    var m = p.members[i];
    if (m.t === 'bits') {
      need(m.n);
      var word = readUint(bytes, pos, m.n, false);
      pos += m.n;
      var obj = {};
      for (var f = 0; f < m.fields.length; f++) {
        var fd = m.fields[f];
        var raw = Math.floor(word / pow2(fd.shift)) % pow2(fd.width);
        if (fd.cst !== null) {
          if (raw !== fd.cst) {
            fail(label + 'unreadable payload: ' + fd.name + ' is ' + raw + ', expected ' + fd.cst);
          }
          obj[fd.name] = raw;
        } else {
          obj[fd.name] = decodeConv(fd.conv, raw);
        }
      }
      if (m.name !== null) { c[m.name] = obj; }
    } else if (m.t === 'leaf') {
      need(m.size);
      c[m.name] = decodeConv(m.conv, readInt(bytes, pos, m));
      pos += m.size;
    } else if (m.t === 'array') {
      var count = m.count !== null ? m.count : getPath(c, m.countPath);
      var arr = [];
      for (var k = 0; k < count; k++) {
        need(m.size);
        arr.push(decodeConv(m.conv, readInt(bytes, pos, m)));
        pos += m.size;
      }
      c[m.name] = arr;
    } else if (m.t === 'if') {
      if (getPath(c, m.cond)) {
        need(m.size);
        c[m.name] = decodeConv(m.conv, readInt(bytes, pos, m));
        pos += m.size;
      } else {
        c[m.name] = null;
      }
    }
  }
  if (p.terminated && pos !== n) {
    fail(label + n + ' bytes is too long' + (p.size !== null ? ' (expected ' + p.size + ')' : ''));
  }
  return c;
}

// the parsed struct as data: keys starting with '_' left out
function plain(v) {
  if (Array.isArray(v)) {
    var a = [];
    for (var i = 0; i < v.length; i++) { a.push(plain(v[i])); }
    return a;
  }
  if (isObject(v)) {
    var o = {};
    for (var k in v) { if (hasKey(v, k) && k.charAt(0) !== '_') { o[k] = plain(v[k]); } }
    return o;
  }
  return v;
}

// data as a view describes it: where each key comes from, which flag nulls it, which flag says it is there
function viewData(view, c) {
  var out = {};
  for (var i = 0; i < view.length; i++) {
    var e = view[i];
    if (e.nested) { out[e.key] = viewData(e.nested, c); continue; }
    if (e.onlyIf !== null && !getPath(c, e.onlyIf)) { continue; }
    out[e.key] = e.nullIf !== null && getPath(c, e.nullIf) ? null : plain(getPath(c, e.path));
  }
  return out;
}

function nullWarnings(data, prefix) {
  var out = [];
  if (Array.isArray(data)) {
    var base = prefix.slice(0, -1);
    for (var i = 0; i < data.length; i++) {
      if (data[i] === null) { out.push(base + '[' + i + ']: reading absent or faulty'); }
      else if (Array.isArray(data[i]) || isObject(data[i])) {
        out = out.concat(nullWarnings(data[i], base + '[' + i + '].'));
      }
    }
  } else if (isObject(data)) {
    for (var k in data) {
      if (!hasKey(data, k)) { continue; }
      if (data[k] === null) { out.push(prefix + k + ': reading absent or faulty'); }
      else if (Array.isArray(data[k]) || isObject(data[k])) {
        out = out.concat(nullWarnings(data[k], prefix + k + '.'));
      }
    }
  } else if (data === null) {
    out.push(prefix.slice(0, -1) + ': reading absent or faulty');
  }
  return out;
}

function copyObject(o) {
  var out = {};
  for (var k in o) { if (hasKey(o, k)) { out[k] = o[k]; } }
  return out;
}

function decodeNode(codec, bytes, fport, dir) {
  var p = findPort(codec, fport, dir);
  if (!bytes.length) { fail(codec.name + ' FPort ' + fport + ': empty payload'); }
  var version = bytes[0] >> 4;
  if (version !== codec.version) {
    fail(codec.name + ' FPort ' + fport + ': unknown payload version ' + version +
         ' (this decoder reads version ' + codec.version + ')');
  }
  var c = parseStruct(codec, p, bytes, fport);
  var data;
  if (p.data.kind === 'view') { data = viewData(p.data.view, c); }
  else if (p.data.kind === 'plain') { data = plain(c); }
  else { data = GLUE[p.data.fn](c); }
  var warnings = nullWarnings(data, '');
  var errors = [];
  if (p.check !== null) {
    var more = GLUE[p.check](data);
    warnings = warnings.concat(more[0]);
    errors = errors.concat(more[1]);
  }
  return {codec: codec.name, fport: fport, version: codec.version, data: data, units: copyObject(p.units),
          warnings: warnings, errors: errors};
}

function need(d, key) {
  if (!hasKey(d, key)) { throw new HavelError('missing field ' + key); }
  return d[key];
}

function viewLeaves(view, out) {
  for (var i = 0; i < view.length; i++) {
    if (view[i].nested) { viewLeaves(view[i].nested, out); } else { out.push(view[i]); }
  }
  return out;
}

// data -> the struct to build: the view (or the plain layout) read backwards
function inverse(p, d) {
  var obj = {};
  var i;
  for (i = 0; i < p.members.length; i++) {
    if (p.members[i].t === 'bits' && p.members[i].name !== null && p.members[i].name.charAt(0) === '_') {
      obj[p.members[i].name] = {};  // a header: its fields come from the view, or are constants or counts
    }
  }
  if (p.data.kind === 'view') {
    var view = p.data.view;
    for (i = 0; i < view.length; i++) {
      var e = view[i];
      if (e.nested) {
        var v = need(d, e.key);
        if (!isObject(v)) { fail(e.key + ': expected an object, got ' + show(v)); }
        var names = [];
        for (var j = 0; j < e.nested.length; j++) { names.push(e.nested[j].key); }
        var unknown = [];
        var ks = keysOf(v);
        for (j = 0; j < ks.length; j++) { if (names.indexOf(ks[j]) < 0) { unknown.push(ks[j]); } }
        if (unknown.length) {
          fail(e.key + ': unknown flag(s) ' + unknown.sort().join(', ') + '; flags are ' + names.join(', '));
        }
        var missing = [];
        for (j = 0; j < names.length; j++) { if (!hasKey(v, names[j])) { missing.push(names[j]); } }
        if (missing.length) { fail(e.key + ': missing flag(s) ' + missing.join(', ')); }
        for (j = 0; j < e.nested.length; j++) { setPath(obj, e.nested[j].path, v[e.nested[j].key]); }
      } else if (e.onlyIf !== null) {
        var present = hasKey(d, e.key);
        setPath(obj, e.onlyIf, present);
        setPath(obj, e.path, present ? d[e.key] : null);
      } else {
        setPath(obj, e.path, need(d, e.key));
      }
    }
    // a sensor that reports a fault sends no reading, whatever data says (as the node sends the sentinel)
    var leaves = viewLeaves(view, []);
    for (i = 0; i < leaves.length; i++) {
      if (leaves[i].nullIf !== null && getPath(obj, leaves[i].nullIf) === true) {
        setPath(obj, leaves[i].path, null);
      }
    }
  } else {
    for (i = 0; i < p.members.length; i++) {
      var m = p.members[i];
      if (m.name === null || m.name.charAt(0) === '_') { continue; }
      obj[m.name] = need(d, m.name);
    }
  }
  return obj;
}

// what the struct derives from data: an array's count field is its length
function deriveCounts(p, obj) {
  for (var i = 0; i < p.members.length; i++) {
    var m = p.members[i];
    if (m.t !== 'array' || m.countPath === null) { continue; }
    var v = obj[m.name];
    if (!Array.isArray(v)) { fail(m.name + ': expected a list, got ' + typeName(v) + ' ' + show(v)); }
    if (v.length > m.countMax) {
      fail(m.name + ': ' + v.length + ' elements, at most ' + m.countMax + ' fit the count field');
    }
    setPath(obj, m.countPath, v.length);
  }
}

function build(p, obj) {
  var out = [];
  for (var i = 0; i < p.members.length; i++) {
    var m = p.members[i];
    if (m.t === 'bits') {
      var src = m.name === null ? {} : obj[m.name];
      if (!isObject(src)) { throw new HavelError('missing field ' + m.name); }
      var word = 0;
      for (var f = 0; f < m.fields.length; f++) {
        var fd = m.fields[f];
        var raw = fd.cst;
        if (raw === null) {
          raw = encodeConv(fd.conv, need(src, fd.name), fieldName([m.name === null ? '_' : m.name, fd.name]));
        }
        if (raw < 0 || raw >= pow2(fd.width)) {
          fail(fd.name + ': cannot encode: number ' + raw + ' is out of range (min=0, max=' +
               (pow2(fd.width) - 1) + ')');
        }
        word += raw * pow2(fd.shift);
      }
      writeInt(out, word, {size: m.n, signed: false, le: false}, m.name);
    } else if (m.t === 'leaf') {
      writeInt(out, encodeConv(m.conv, need(obj, m.name), m.name), m, m.name);
    } else if (m.t === 'array') {
      var v = need(obj, m.name);
      if (!Array.isArray(v)) { fail(m.name + ': expected a list, got ' + typeName(v) + ' ' + show(v)); }
      var count = m.count !== null ? m.count : getPath(obj, m.countPath);
      if (v.length !== count) { fail(m.name + ': expected ' + count + ' elements, found ' + v.length); }
      for (var k = 0; k < v.length; k++) { writeInt(out, encodeConv(m.conv, v[k], m.name), m, m.name); }
    } else if (m.t === 'if') {
      var value = need(obj, m.name);
      if (getPath(obj, m.cond)) { writeInt(out, encodeConv(m.conv, value, m.name), m, m.name); }
    }
  }
  return out;
}

function encodeNode(codec, data, fport, dir) {
  checkDirection(dir);
  var p;
  if (fport === null || fport === undefined) {
    // without a port: the only one in that direction, or the readings uplink
    var candidates = portsIn(codec, dir);
    if (candidates.length !== 1) {
      var named = [];
      for (var i = 0; i < candidates.length; i++) {
        if (candidates[i].name === 'readings') { named.push(candidates[i]); }
      }
      candidates = named;
    }
    if (candidates.length !== 1) { findPort(codec, null, dir); }
    p = candidates[0];
  } else {
    p = findPort(codec, fport, dir);
  }
  if (!isObject(data)) {
    fail(codec.name + ' ' + p.name + ': expected a JSON object, got ' + typeName(data));
  }
  var unknown = [];
  var ks = keysOf(data);
  for (var j = 0; j < ks.length; j++) { if (p.keys.indexOf(ks[j]) < 0) { unknown.push(ks[j]); } }
  if (unknown.length) {
    fail(codec.name + ' ' + p.name + ': unknown field(s) ' + unknown.sort().join(', ') + '; fields are ' +
         (p.keys.length ? p.keys.join(', ') : '(none)'));
  }
  try {
    var generic = function (d) { return inverse(p, d); };
    var obj = p.fromData !== null ? GLUE[p.fromData](data, generic) : generic(data);
    deriveCounts(p, obj);
    return build(p, obj);
  } catch (e) {
    if (e instanceof HavelError && e.message.indexOf('missing field ') === 0) {
      fail(codec.name + ' ' + p.name + ': ' + e.message);
    }
    throw e;
  }
}
"""

LPP = r"""
// --- Cayenne LPP: a sequence of channel, type, value entries on any application port -------------

function lppCheckPort(fport) {
  if (fport !== null && fport !== undefined && !(typeof fport === 'number' && fport % 1 === 0 && fport >= 1 &&
                                                   fport <= 223)) {
    fail('cayenne-lpp: FPort ' + show(fport) + ' is not an application port (1..223)');
  }
}

function lppType(codec, key, value) {
  for (var i = 0; i < codec.lpp.types.length; i++) {
    if (codec.lpp.types[i][key] === value) { return codec.lpp.types[i]; }
  }
  return null;
}

function decodeLpp(codec, bytes, fport, dir) {
  checkDirection(dir);
  lppCheckPort(fport);
  var out = {};
  var units = {};
  var warnings = [];
  var i = 0;
  var n = bytes.length;
  while (i < n) {
    var channel = bytes[i];
    var key;
    var value;
    if (dir === 'down') {
      if (i + 3 > n) { fail('cayenne-lpp: downlink entry at byte ' + i + ' is truncated (needs 3 bytes)'); }
      key = 'value_' + channel;
      value = decodeConv(codec.lpp.down.conv, readInt(bytes, i + 1, codec.lpp.down));
      i += 3;
    } else {
      if (i + 2 > n) { fail('cayenne-lpp: entry at byte ' + i + ' is truncated (channel without a type)'); }
      var t = lppType(codec, 'id', bytes[i + 1]);
      if (t === null) {
        var hex = bytes[i + 1].toString(16);
        fail('cayenne-lpp: unknown type ' + bytes[i + 1] + ' (0x' + (hex.length < 2 ? '0' + hex : hex) +
             ') at byte ' + (i + 1) + '; nothing after it can be read');
      }
      var end = i + 2 + t.size;
      if (end > n) {
        fail('cayenne-lpp: ' + t.name + ' on channel ' + channel + ' at byte ' + i + ' is truncated (needs ' +
             t.size + ' value bytes, ' + (n - i - 2) + ' left)');
      }
      key = t.name + '_' + channel;
      if (t.fields) {
        value = {};
        var at = i + 2;
        for (var f = 0; f < t.fields.length; f++) {
          var leaf = t.fields[f].leaf;
          value[t.fields[f].name] = decodeConv(leaf.conv, readInt(bytes, at, leaf));
          at += leaf.size;
        }
      } else {
        value = decodeConv(t.leaf.conv, readInt(bytes, i + 2, t.leaf));
      }
      if (t.unit !== null) { units[key] = t.unit; }
      i = end;
    }
    if (hasKey(out, key)) { warnings.push(key + ' appears more than once; the last value is kept'); }
    out[key] = value;
  }
  return {codec: codec.name, fport: fport, version: null, data: out, units: units, warnings: warnings,
          errors: []};
}

function encodeLpp(codec, data, fport, dir) {
  checkDirection(dir);
  lppCheckPort(fport);
  if (!isObject(data)) { fail('cayenne-lpp: expected a JSON object, got ' + typeName(data)); }
  var out = [];
  var ks = keysOf(data);
  for (var i = 0; i < ks.length; i++) {
    var key = ks[i];
    var value = data[key];
    var m = /^([a-z_0-9]+?)_([0-9]{1,3})$/.exec(key);
    if (m === null || parseInt(m[2], 10) > 255) {
      fail(show(key) + ': expected <type>_<channel> with channel 0..255, e.g. temperature_1');
    }
    var name = m[1];
    var channel = parseInt(m[2], 10);
    try {
      if (dir === 'down') {
        if (name !== 'value') { fail(key + ': downlink entries are named value_<channel>'); }
        out.push(channel);
        writeInt(out, encodeConv(codec.lpp.down.conv, value, 'value'), codec.lpp.down, key);
        continue;
      }
      var t = lppType(codec, 'name', name);
      if (t === null) {
        var names = [];
        for (var j = 0; j < codec.lpp.types.length; j++) { names.push(codec.lpp.types[j].name); }
        fail(key + ': unknown type ' + show(name) + '; types are ' + names.join(', '));
      }
      out.push(channel, t.id);
      if (t.fields) {
        var fieldNames = [];
        for (var f = 0; f < t.fields.length; f++) { fieldNames.push(t.fields[f].name); }
        if (!isObject(value)) { fail(key + ': expected an object with ' + fieldNames.join(', ')); }
        var extra = [];
        var vk = keysOf(value);
        for (var x = 0; x < vk.length; x++) { if (fieldNames.indexOf(vk[x]) < 0) { extra.push(vk[x]); } }
        if (extra.length) {
          fail(key + ': unknown field(s) ' + extra.sort().join(', ') + '; fields are ' +
               fieldNames.join(', '));
        }
        for (f = 0; f < t.fields.length; f++) {
          var fl = t.fields[f];
          if (!hasKey(value, fl.name)) { fail(key + ': missing field ' + fl.name); }
          writeInt(out, encodeConv(fl.leaf.conv, value[fl.name], fl.name), fl.leaf, key);
        }
      } else {
        writeInt(out, encodeConv(t.leaf.conv, value, 'value'), t.leaf, key);
      }
    } catch (e) {
      if (!(e instanceof HavelError) || e.message.indexOf(key) === 0) { throw e; }
      fail(key + ': ' + e.message.replace(/^value: /, ''));
    }
  }
  return out;
}
"""

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
