"""JavaScript twins of the Python glue that a port's declaration names but cannot describe as data.

Most of a port is data the generator reads from the construct schema and the port's view. What is left is
Python code: the plausibility checks (``Port.check``), a ``to_data``/``from_data`` that reshapes a value
(the status firmware "1.2.3" from three bytes), and encoders that refuse a combination (off_threshold
below on_threshold). Each has a twin here, keyed by the Python function's qualified name, in ES5.
tests/codecs/payload/test_jsexport.py holds every twin to its Python function (the same data, warnings
and errors on every shared vector and on random bytes).

A ``from_data`` twin gets ``(data, inverse)``: ``inverse(data)`` is the generic one (the view or the
plain layout read backwards), so a twin that only refuses a combination checks and then calls it.
"""

from __future__ import annotations

TWINS: dict[str, str] = {
    # --- every node: the status uplink --------------------------------------------------------------------
    "havel.codecs.payload.common._status_to_data": r"""function (c) {
  var fw = c.firmware;
  return {firmware: fw[0] + '.' + fw[1] + '.' + fw[2], reset_cause: c._header.reset_cause, uptime: c.uptime,
          battery: c.battery, interval: c.interval};
}""",
    "havel.codecs.payload.common._status_from_data": r"""function (d, inverse) {
  var fw = need(d, 'firmware');
  var parts = typeof fw === 'string' ? fw.split('.') : [];
  var ok = parts.length === 3;
  for (var i = 0; i < parts.length; i++) { if (!/^[0-9]+$/.test(parts[i])) { ok = false; } }
  if (!ok) { fail("firmware: expected 'major.minor.patch' like '1.2.3', got " + show(fw)); }
  return {_header: {reset_cause: need(d, 'reset_cause')},
          firmware: [parseInt(parts[0], 10), parseInt(parts[1], 10), parseInt(parts[2], 10)],
          uptime: need(d, 'uptime'), battery: need(d, 'battery'), interval: need(d, 'interval')};
}""",
    "havel.codecs.payload.common._status_check": r"""function (data) {
  if (data.reset_cause.indexOf('unknown_') === 0) {
    return [['reset_cause: code ' + data.reset_cause.slice(8) + ' has no name in format version 1'], []];
  }
  return [[], []];
}""",
    # --- air --------------------------------------------------------------------------------------
    "havel.codecs.payload.air._check": r"""function (data) {
  var warnings = [];
  for (var s in data.faults) {
    if (hasKey(data.faults, s) && data.faults[s]) {
      warnings.push('faults.' + s + ': sensor reports a fault');
    }
  }
  if (data.pm2_5 !== null && data.pm10 !== null && data.pm2_5 > data.pm10) {
    warnings.push('pm2_5 is above pm10, which a working particle sensor cannot measure');
  }
  return [warnings, []];
}""",
    # --- water ------------------------------------------------------------------------------------
    "havel.codecs.payload.water._check": r"""function (data) {
  var warnings = [];
  if (data.level === null && data.alarm) {
    warnings.push('alarm is set while the level reading is absent or faulty');
  }
  if ((data.alarm_level > 0 || data.rising_fast) && !data.alarm) {
    warnings.push('a threshold is crossed but the node is not in alarm (hysteresis or hold-off)');
  }
  return [warnings, []];
}""",
    # --- temperature ------------------------------------------------------------------------------
    "havel.codecs.payload.temperature._check": r"""function (data) {
  var probes = data.probes;
  if (!probes.length) { return [['probes: the node reports no probe at all'], []]; }
  var warnings = [];
  for (var i = 0; i < probes.length; i++) {
    if (probes[i] === 85) {
      warnings.push('probes[' + i + ']: 85.0 Cel is the DS18B20 power-on value (no conversion?)');
    }
  }
  return [warnings, []];
}""",
    # --- cooling ----------------------------------------------------------------------------------
    "havel.codecs.payload.cooling._check": r"""function (data) {
  var interlock = data.interlock;
  var faults = data.faults;
  var errors = [];
  var warnings = [];
  var k;
  if (data.valve_open) {
    var locks = ['reservoir_low', 'budget'];
    for (var i = 0; i < locks.length; i++) {
      if (interlock[locks[i]]) {
        errors.push('valve reported open while the ' + locks[i] + ' interlock is active');
      }
    }
    if (faults.temperature && data.mode === 'auto') {
      errors.push('valve reported open in automatic mode with a faulty temperature reading');
    }
    if (!data.enabled) { errors.push('valve reported open while misting is disabled'); }
  }
  for (k in interlock) {
    if (hasKey(interlock, k) && interlock[k]) { warnings.push('interlock.' + k + ' is active'); }
  }
  for (k in faults) {
    if (hasKey(faults, k) && faults[k]) { warnings.push('faults.' + k + ': fault reported'); }
  }
  if (data.off_threshold >= data.on_threshold) {
    warnings.push('off_threshold is not below on_threshold: no hysteresis');
  }
  return [warnings, errors];
}""",
    "havel.codecs.payload.cooling._check_thresholds": r"""function (data) {
  if (data.off_threshold >= data.on_threshold) {
    return [[], ['off_threshold is not below on_threshold: the node must refuse this']];
  }
  return [[], []];
}""",
    "havel.codecs.payload.cooling._check_override": r"""function (data) {
  if (data.state === 'auto' && data.ttl !== 0) { return [["ttl: ignored with state 'auto'"], []]; }
  if ((data.state === 'open' || data.state === 'closed') && data.ttl < 60) {
    return [[], ['ttl: ' + data.ttl + ' s is below 60 s: the node must refuse this override']];
  }
  return [[], []];
}""",
    "havel.codecs.payload.cooling._thresholds_from_data": r"""function (d, inverse) {
  var on = need(d, 'on_threshold');
  var off = need(d, 'off_threshold');
  if (typeof on === 'number' && typeof off === 'number' && !(off < on)) {
    fail('off_threshold: ' + off + ' Cel must be below on_threshold ' + on + ' Cel (hysteresis)');
  }
  return inverse(d);
}""",
    "havel.codecs.payload.cooling._override_from_data": r"""function (d, inverse) {
  var state = need(d, 'state');
  var ttl = need(d, 'ttl');
  if (state === 'auto' && ttl !== 0) {
    fail("ttl: must be 0 with state 'auto' (ending an override has no time-to-live)");
  }
  var whole = typeof ttl === 'number' && ttl % 1 === 0;
  if ((state === 'open' || state === 'closed') && whole && !(ttl >= 60 && ttl <= 65535)) {
    fail('ttl: ' + ttl + ' s is out of range 60..65535 s for an override (it must expire)');
  }
  return inverse(d);
}""",
}
