"""The formatter runtime's Cayenne LPP codec (:mod:`.runtime`): channel, type, value entries on any
application port, decoded and encoded as ``havel.codecs.payload.cayenne_lpp`` does, in ES5.1. Uses the
helpers of :mod:`.runtime_common`."""

from __future__ import annotations

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
