"""The formatter runtime's interpreter of a node codec's port tables (:mod:`.runtime`): one table per
FPort and direction, read into ``data`` (as ``NodeCodec.decode``) and built back into bytes (as
``NodeCodec.encode``), in ES5.1. Uses the helpers of :mod:`.runtime_common`."""

from __future__ import annotations

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
