// Runs a generated Havel payload formatter on a batch of cases, the way a network server would: the
// formatter's source alone in a fresh context with no require, module, process or Buffer.
//
//   node jsrunner.js FORMATTER.js < cases.json > results.json
//
// cases: [{"call": "havelDecode" | "havelEncode" | "decodeUplink" | "decodeDownlink" | "encodeDownlink",
//          "args": [...]}, ...]; results: one {"ok": value} or {"thrown": message} per case, in order.
'use strict';

const fs = require('fs');
const vm = require('vm');

const source = fs.readFileSync(process.argv[2], 'utf8');
const context = vm.createContext({});
vm.runInContext(source, context, {filename: process.argv[2]});

const cases = JSON.parse(fs.readFileSync(0, 'utf8'));
const results = cases.map((c) => {
  context.__args = c.args;
  try {
    // the call and JSON.stringify run inside the formatter's context: its arrays and objects stay its own
    const text = vm.runInContext(`JSON.stringify(${c.call}.apply(null, __args))`, context);
    return {ok: text === undefined ? null : JSON.parse(text)};
  } catch (e) {
    return {thrown: String(e && e.message !== undefined ? e.message : e)};
  }
});
process.stdout.write(JSON.stringify(results));
