// Runs firmware tests (or one script) inside the real MicroPython interpreter compiled to WebAssembly.
//
//   node tests/firmware/mprunner.mjs [--heap BYTES] [--repo DIR] MODULE [MODULE...]
//       runs each tests/firmware/mp/MODULE.py in a fresh interpreter, every test_* function in turn,
//       and prints one JSON line per test: {"module","test","ok","ms","error"}.
//   node tests/firmware/mprunner.mjs [--heap BYTES] --script FILE.py
//       runs one script (e.g. a heap measurement of a node cycle); its output goes to stdout.
//       Lines "#@step" split it into separate runPython calls sharing one interpreter: garbage is
//       only collected between calls in this build (see below), and --heap is the initial heap
//       only (the build grows its heap instead of failing), so it cannot prove a peak.
//
// The interpreter's FS gets /repo/firmware (incl. host/), /repo/tests/firmware/mp and /repo/codecs/vectors;
// sys.path has /repo/firmware, /repo/firmware/host, /repo/tests/firmware/mp.
// Exit status: 0 when everything passed, 1 when a test failed or Python raised, 2 on usage errors.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
let repo = path.resolve(here, "..", "..");
let heap = 1024 * 1024;
let script = null;
const modules = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--heap") heap = parseInt(argv[++i], 10);
  else if (a === "--repo") repo = path.resolve(argv[++i]);
  else if (a === "--script") script = path.resolve(argv[++i]);
  else if (a.startsWith("--")) { console.error(`mprunner: unknown option ${a}`); process.exit(2); }
  else modules.push(a.replace(/\.py$/, "").replace(/^.*\//, ""));
}
if (!script && modules.length === 0) {
  console.error("usage: mprunner.mjs [--heap BYTES] (--script FILE.py | MODULE...)");
  process.exit(2);
}
if (!Number.isFinite(heap) || heap < 16384) { console.error("mprunner: bad --heap"); process.exit(2); }

const pkg = path.join(repo, "tools/npm/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs");
const { loadMicroPython } = await import(pkg);

// Collect the files once; each interpreter gets its own copy in its in-memory FS.
const files = [];
function collect(rel) {
  const abs = path.join(repo, rel);
  if (!fs.existsSync(abs)) return;
  for (const ent of fs.readdirSync(abs, { withFileTypes: true })) {
    if (ent.name === "__pycache__" || ent.name.startsWith(".")) continue;
    const r = path.join(rel, ent.name);
    if (ent.isDirectory()) collect(r);
    else if (/\.(py|json|mpy)$/.test(ent.name)) files.push([r, fs.readFileSync(path.join(repo, r))]);
  }
}
collect("firmware");
collect("tests/firmware/mp");
collect("codecs/vectors");

const MARK = "@@MPTEST ";
const SETUP = "import sys\nsys.path[:0] = ['/repo/firmware', '/repo/firmware/host', '/repo/tests/firmware/mp']\n";

async function boot(onLine) {
  const mp = await loadMicroPython({ heapsize: heap, stdout: onLine, stderr: onLine, linebuffer: true });
  for (const [rel, data] of files) {
    mp.FS.mkdirTree(path.posix.dirname("/repo/" + rel));
    mp.FS.writeFile("/repo/" + rel, data);
  }
  mp.runPython(SETUP);
  return mp;
}

function pyError(e) {
  if (e && e.name === "PythonError") return { type: e.type, text: e.message };
  throw e; // a runner bug, not a Python failure
}

let failed = 0;
if (script) {
  const mp = await boot((line) => process.stdout.write(line + "\n"));
  // A line "#@step" splits the script into steps, each run by its own runPython call: this
  // MicroPython build only collects garbage between calls (gc.collect() inside a call frees
  // nothing and the heap grows instead), so heap measurements put gc.collect() after a "#@step".
  const steps = fs.readFileSync(script, "utf8").split(/^#@step[^\n]*$/m);
  for (const step of steps) {
    try {
      mp.runPython(step);
    } catch (e) {
      const err = pyError(e);
      if (err.type !== "SystemExit") { process.stderr.write(err.text); failed = 1; }
      break;
    }
  }
} else {
  for (const mod of modules) {
    let seen = 0;
    const mp = await boot((line) => {
      if (line.startsWith(MARK)) {
        const rec = JSON.parse(line.slice(MARK.length));
        seen++;
        if (!rec.ok) failed++;
        process.stdout.write(JSON.stringify(rec) + "\n");
      } else {
        process.stderr.write(`[${mod}] ${line}\n`);
      }
    });
    try {
      mp.runPython(`import mprun\nmprun.run_module(${JSON.stringify(mod)})\n`);
    } catch (e) {
      const err = pyError(e);
      failed++;
      process.stdout.write(JSON.stringify({ module: mod, test: "<runner>", ok: false, ms: 0, error: err.text }) + "\n");
    }
    if (seen === 0) {
      failed++;
      process.stdout.write(JSON.stringify({ module: mod, test: "<none>", ok: false, ms: 0, error: "no test_* functions ran" }) + "\n");
    }
  }
}
process.exitCode = failed ? 1 : 0;
