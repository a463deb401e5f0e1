// Drives Debian's Chromium with playwright-core for the browser tests (tests/support/browser.py starts it).
// Reads one JSON command a line on stdin ({"id", "op", ...args}), answers one JSON line on stdout
// ({"id", "ok", "result"} or {"id", "ok": false, "error"}). Every request the page makes is recorded, as
// are console errors, page errors and Content-Security-Policy violations, so tests can assert on them.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import readline from "node:readline";

const here = path.dirname(fileURLToPath(import.meta.url));
const npmDir = process.env.HAVEL_NPM_DIR || path.resolve(here, "../../tools/npm");
const require = createRequire(path.join(npmDir, "package.json"));
const { chromium } = require("playwright-core");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

// Without the background-networking flags Chromium tries Google's hosts at start; this network is closed.
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
];

const browser = await chromium.launch({
  executablePath: process.env.HAVEL_CHROMIUM || "/usr/bin/chromium",
  args: FLAGS,
  headless: true,
});
const context = await browser.newContext({
  viewport: { width: 1280, height: 900 },
  deviceScaleFactor: 1,
  serviceWorkers: "block",
});
const requests = [];
const problems = [];
context.on("request", (r) => requests.push({ url: r.url(), method: r.method(), type: r.resourceType() }));
const page = await context.newPage();
page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
page.on("pageerror", (e) => problems.push("page error: " + e.message));
await page.addInitScript(() => {
  document.addEventListener("securitypolicyviolation", (e) => {
    console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI);
  });
});

const ops = {
  async goto({ url }) { await page.goto(url, { waitUntil: "load" }); return page.url(); },
  async click({ selector }) { await page.click(selector); },
  async fill({ selector, value }) { await page.fill(selector, value); },
  async check({ selector }) { await page.check(selector); },
  async press({ selector, key }) {
    if (selector) await page.press(selector, key); else await page.keyboard.press(key);
  },
  async focus({ selector }) { await page.focus(selector); },
  async waitFor({ selector, state, ms }) {
    await page.waitForSelector(selector, { state: state || "visible", timeout: ms ?? 30000 });
  },
  async waitForFunction({ expression, ms }) {
    // Polled from here: page.waitForFunction would eval() the string inside the page, which the pages'
    // Content-Security-Policy (rightly) forbids.
    const deadline = Date.now() + (ms ?? 30000);
    for (;;) {
      if (await page.evaluate(expression)) return;
      if (Date.now() > deadline) throw new Error("timed out waiting for " + expression);
      await new Promise((r) => setTimeout(r, 100));
    }
  },
  async text({ selector }) { return await page.textContent(selector); },
  async count({ selector }) { return await page.locator(selector).count(); },
  async evaluate({ expression }) { return await page.evaluate(expression); },
  async screenshot({ path: file, fullPage, selector }) {
    if (selector) await page.locator(selector).screenshot({ path: file });
    else await page.screenshot({ path: file, fullPage: fullPage ?? true });
  },
  async viewport({ width, height }) { await page.setViewportSize({ width, height }); },
  async media({ media }) { await page.emulateMedia({ media }); },
  async axe({ tags }) {
    // Evaluated through the DevTools protocol, so the page's CSP (which forbids injected scripts) stays on.
    await page.evaluate(axeSource + "\n;0");
    return await page.evaluate(async (t) => {
      const r = await window.axe.run(document, { runOnly: { type: "tag", values: t } });
      return r.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
      }));
    }, tags || ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]);
  },
  async requests({ clear }) { const r = requests.slice(); if (clear) requests.length = 0; return r; },
  async problems({ clear }) { const p = problems.slice(); if (clear) problems.length = 0; return p; },
  async close() { await browser.close(); setTimeout(() => process.exit(0), 10); },
};

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on("line", (line) => {
  queue = queue.then(async () => {
    let msg;
    try { msg = JSON.parse(line); } catch { return; }
    const { id, op, ...args } = msg;
    try {
      if (!(op in ops)) throw new Error("unknown op " + op);
      const result = await ops[op](args);
      process.stdout.write(JSON.stringify({ id, ok: true, result: result ?? null }) + "\n");
    } catch (e) {
      process.stdout.write(JSON.stringify({ id, ok: false, error: String(e && e.message || e) }) + "\n");
    }
  });
});
rl.on("close", async () => { await browser.close().catch(() => {}); process.exit(0); });
process.stdout.write(JSON.stringify({ id: 0, ok: true, result: "ready" }) + "\n");
