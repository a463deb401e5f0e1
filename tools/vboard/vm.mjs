// The MicroPython half of the virtual board: the real interpreter (WebAssembly build, pinned in
// tools/npm/package.json) executing code blocks that the pty side (vboard.py) hands over.
//
// Protocol on stdin/stdout, one JSON object per line:
//   in  {"op": "exec", "code": <base64>}   -> out {"out": <base64>, "err": <base64>}
//   in  {"op": "reset"}                    -> out {"ok": true}   (soft reset: new interpreter, same files)
//   in  {"op": "files"}                    -> out {"files": {path: base64}}  (for tests and debugging)
// At start it prints {"ready": true, "banner": "..."} once the interpreter and the board files are loaded,
// so that nothing is sent to the board while it boots (input sent during start-up is lost on real ones too).
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const mpPath = path.resolve(here, "../npm/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs");
const { loadMicroPython } = await import(mpPath);

const scenarioFile = process.argv[2];
const HEAP = 256 * 1024; // an ESP32-S3 without PSRAM gives MicroPython about this much
const ROOT = "/flash";   // the board's filesystem; the interpreter's cwd, like "/" on a real board
const SYS = "/_vboard";  // the fake machine module and friends: the board's "frozen" modules

let out = [];
let err = [];
let mp = null;

function cooked(bytes) {
  // Boards send "\r\n" for every "\n" a program prints (mp_hal_stdout_tx_strn_cooked).
  const res = [];
  for (const b of bytes) {
    if (b === 10) res.push(13);
    res.push(b);
  }
  return Buffer.from(res);
}

function walk(FS, dir, acc) {
  for (const name of FS.readdir(dir)) {
    if (name === "." || name === "..") continue;
    const p = dir + "/" + name;
    const st = FS.stat(p);
    if (FS.isDir(st.mode)) {
      acc.push([p, null]);
      walk(FS, p, acc);
    } else {
      acc.push([p, FS.readFile(p)]);
    }
  }
  return acc;
}

async function boot(files) {
  const vm = await loadMicroPython({
    heapsize: HEAP,
    pystack: 4096,
    linebuffer: false,
    stdout: (b) => { for (const c of b) out.push(c); },
    stderr: (b) => { for (const c of b) err.push(c); },
  });
  const FS = vm.FS;
  if (files === null) {
    FS.mkdirTree(ROOT);
    FS.mkdirTree(SYS);
    for (const name of fs.readdirSync(path.join(here, "board"))) {
      if (name.endsWith(".py")) FS.writeFile(SYS + "/" + name, fs.readFileSync(path.join(here, "board", name)));
    }
    // Boards have cryptolib built in; this interpreter lacks it: use the firmware's pure-Python stand-in.
    const cryptolib = path.resolve(here, "../../firmware/host/cryptolib.py");
    if (fs.existsSync(cryptolib)) FS.writeFile(SYS + "/cryptolib.py", fs.readFileSync(cryptolib));
    FS.writeFile(SYS + "/scenario.json", fs.readFileSync(scenarioFile));
  } else {
    // Soft reset keeps the flash (and the sensors' own state, kept under SYS) but nothing in RAM.
    for (const [p, data] of files) {
      if (data === null) FS.mkdirTree(p);
      else FS.writeFile(p, data);
    }
  }
  vm.runPython(`import sys\nsys.path.insert(1, '${SYS}')\nimport _vboard_boot`);
  out = [];
  err = [];
  return vm;
}

function snapshot() {
  return walk(mp.FS, ROOT, [[ROOT, null]]).concat(walk(mp.FS, SYS, [[SYS, null]]));
}

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

mp = await boot(null);
const impl = mp.runPython("import sys\nsys.implementation._machine");
send({ ready: true, banner: `MicroPython v1.27.0 on 2025-12-10; Havel virtual board (${impl}) with ESP32S3` });

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  const req = JSON.parse(line);
  if (req.op === "exec") {
    const code = Buffer.from(req.code, "base64").toString("utf8");
    out = [];
    err = [];
    try {
      mp.runPython(code);
    } catch (e) {
      if (e.name !== "PythonError") throw e;
      // The traceback goes to the board's error stream, as pyexec does.
      for (const c of Buffer.from(e.message, "utf8")) err.push(c);
    }
    send({ out: cooked(out).toString("base64"), err: cooked(err).toString("base64") });
  } else if (req.op === "reset") {
    const files = snapshot();
    mp = await boot(files);
    send({ ok: true });
  } else if (req.op === "files") {
    const res = {};
    for (const [p, data] of snapshot()) if (data !== null) res[p] = Buffer.from(data).toString("base64");
    send({ files: res });
  } else {
    send({ error: "unknown op " + req.op });
  }
}
