// Runs a payload formatter as a network server does: the file alone, in a fresh V8 context of Node's
// `vm` module (no require, no process, no Buffer, no console), then each call given on stdin.
// stdin: {"file": PATH, "calls": [{"fn": "decodeUplink", "input": {...}}, ...]}; stdout: a JSON list of
// {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
import { readFileSync } from "node:fs";
import vm from "node:vm";

const request = JSON.parse(readFileSync(0, "utf8"));
const code = readFileSync(request.file, "utf8");
const context = vm.createContext({});
vm.runInContext(code, context, { filename: request.file, timeout: 5000 });
const out = request.calls.map((call) => {
  try {
    context.__input = JSON.stringify(call.input);
    const result = vm.runInContext(
      `(function () { var r = ${call.fn}(JSON.parse(__input)); return JSON.stringify(r); })()`,
      context,
      { timeout: 5000 },
    );
    return { ok: true, result: result === undefined ? null : JSON.parse(result) };
  } catch (e) {
    return { ok: false, error: String(e) };
  }
});
process.stdout.write(JSON.stringify(out));
