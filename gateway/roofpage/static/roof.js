// The roof status page: fetches /roof.json every few seconds and shows it. Text only through the DOM
// (never innerHTML): names and errors come from the network. The chart is SVG drawn here.
"use strict";
(() => {
  const POLL_MS = 3000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const el = havel.el;

  function hhmmss(ms) {
    const d = new Date(ms);
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
  }
  function ago(s) {
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return Math.round(s / 86400) + " days";
  }
  function bytes(n) {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }
  function item(cls, label, text, data) {
    const li = el("li", { class: cls, ...(data || {}) }, el("strong", {}, label), " ", text);
    return li;
  }
  function fill(list, items) { list.replaceChildren(...items); }
  // said once by a screen reader when the overall state changes (not at every refresh)
  let lastState = null;
  function announce(state) {
    if (lastState !== null && state !== lastState) {
      $("announce").textContent = state === "ok" ? "The gateway is OK again." : "The gateway is degraded.";
    }
    lastState = state;
  }

  function showState(st) {
    $("gateway-id").textContent = "· " + st.gateway_id;
    const ok = st.state === "ok";
    $("state").className = "card " + (ok ? "status-ok" : "status-fail");
    $("state").dataset.state = st.state;
    announce(st.state);
    $("state-text").textContent = ok ? "✓ OK: everything works" : "✗ Degraded: see the parts marked down";
    const s = st.storage || {};
    $("storage-text").textContent = s.ok === false
      ? "Storage fault while " + s.doing + ": " + s.error
      : "Storage: OK, every uplink is stored before it is acknowledged.";
  }

  // records dropped to make room (by priority), said only when there were some
  function dropped(d) {
    const parts = Object.entries(d || {}).filter(([, n]) => n > 0).map(([p, n]) => `${n} ${p}`);
    return parts.length ? "; dropped for room: " + parts.join(", ") : "";
  }

  function showSinks(st, now) {
    const ob = st.outbox || {};
    const age = ob.oldest_age_s;
    $("outbox-summary").textContent = ob.error
      ? "Outbox unreadable: " + ob.error
      : `Outbox: ${ob.depth ?? 0} record(s) waiting, ${bytes(ob.bytes || 0)}` +
        (age ? `, the oldest received ${ago(age)} ago` : "") + dropped(ob.dropped) + ".";
    $("outbox-summary").dataset.depth = String(ob.depth ?? 0);
    const waiting = ob.waiting_per_sink || {};
    const items = [];
    for (const [name, h] of Object.entries(st.sinks || {})) {
      if (name === "commands") {
        items.push(item(h.connected && h.subscribed ? "up" : "down", "commands",
          (h.connected && h.subscribed ? "✓ listening" : "✗ not listening") + `, ${h.received} received`,
          { "data-sink": name }));
        continue;
      }
      const state = h.state || "unknown";
      const mark = state === "up" ? "✓ up" : state === "down" ? "✗ down" : "… " + state;
      const since = h.since ? " since " + hhmmss(Date.parse(h.since)) : "";
      const n = waiting[name] ?? 0;
      const li = item(state === "up" ? "up" : state === "down" ? "down" : "warn", name,
        `${mark}${since}; ${n} waiting for it; ${h.acked} delivered` + (h.last_error ? `; last error: ${h.last_error}` : ""),
        { "data-sink": name, "data-state": state, "data-waiting": String(n) });
      items.push(li);
    }
    if (!items.length) items.push(el("li", { class: "muted" }, "No sink configured."));
    fill($("sinks"), items);
  }

  function showForwarders(st, now) {
    const list = st.forwarders || [];
    $("fwd-empty").hidden = list.length > 0;
    fill($("forwarders"), list.map((f) => {
      const heard = now - f.seen_s_ago * 1000;
      const text = f.silent
        ? `✗ silent since ${hhmmss(heard)} (${ago(f.seen_s_ago)})`
        : `✓ heard ${ago(f.seen_s_ago)} ago`;
      return item(f.silent ? "down" : "up", f.gateway, `${text}; ${f.rx} datagrams from ${f.address}`,
        { "data-gateway": f.gateway });
    }));
  }

  function drawChart(series, now) {
    const counts = series.counts;
    const W = 360, H = 170, L = 30, B = 22, T = 8;
    const max = Math.max(1, ...counts);
    const top = max <= 5 ? 5 : Math.ceil(max / 5) * 5;
    const bw = (W - L) / counts.length;
    const total = counts.reduce((a, b) => a + b, 0);
    const last = counts[counts.length - 1];
    const svg = document.createElementNS(SVG, "svg");
    const attrs = (node, a) => { for (const [k, v] of Object.entries(a)) node.setAttribute(k, v); return node; };
    const make = (tag, a, text) => { const n = attrs(document.createElementNS(SVG, tag), a); if (text !== undefined) n.textContent = text; return n; };
    attrs(svg, { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "chart-title chart-desc" });
    svg.append(make("title", { id: "chart-title" }, "Uplinks per minute over the last hour"));
    svg.append(make("desc", { id: "chart-desc" },
      `${total} uplinks in the last ${counts.length} minutes, at most ${max} in one minute, ${last} in the current minute.`));
    for (const v of [0, top / 2, top]) {
      const y = H - B - (v / top) * (H - B - T);
      svg.append(make("line", { class: v ? "grid" : "axis", x1: L, x2: W, y1: y, y2: y }));
      svg.append(make("text", { x: L - 4, y: y + 4, "text-anchor": "end" }, String(v)));
    }
    counts.forEach((c, i) => {
      if (!c) return;
      const h = (c / top) * (H - B - T);
      svg.append(make("rect", { class: "bar", x: L + i * bw + 0.5, y: H - B - h, width: Math.max(1, bw - 1), height: h }));
    });
    for (const back of [60, 45, 30, 15, 0]) {
      const i = counts.length - 1 - back;
      if (i < 0) continue;
      svg.append(make("text", { x: L + i * bw + bw / 2, y: H - 6, "text-anchor": back ? "middle" : "end" },
        back ? `−${back} min` : "now"));
    }
    $("chart").replaceChildren(svg);
    $("chart").dataset.total = String(total);
    $("rate-text").textContent = `${last} in the current minute; ${total} in the last hour` +
      (series.since * 1000 > now - 3600e3 ? ` (counted since the start at ${hhmmss(series.since * 1000)})` : "") + ".";
  }

  function showRejections(st) {
    const rej = (st.uplinks || {}).rejected || {};
    const entries = Object.entries(rej).sort((a, b) => b[1] - a[1]);
    $("rej-none").hidden = entries.length > 0;
    fill($("rejections"), entries.map(([reason, n]) => item("warn", String(n), reason, { "data-reason": reason })));
  }

  function scalars(obj) {
    return Object.entries(obj || {}).filter(([, v]) => v === null || typeof v !== "object");
  }

  function showRelay(st) {
    const r = st.relay;
    if (!r) { fill($("relay"), [el("li", { class: "muted" }, "Not configured on this gateway.")]); return; }
    const items = [item(r.primary === "down" ? "down" : "up", "primary path",
      r.primary === "down" ? "✗ down: the relay carries alarms" : "✓ " + r.primary, { "data-relay": "primary" })];
    if ("emergency" in r) {
      items.push(item(r.emergency ? "warn" : "up", "emergency",
        r.emergency ? "on: the amateur-radio path may transmit" : "off", { "data-relay": "emergency" }));
    }
    for (const [name, h] of Object.entries(r.relays || {})) {
      const link = h.connected === undefined ? "" : h.connected ? "✓ connected" : "✗ not connected";
      const text = scalars(h).filter(([k]) => k !== "connected").map(([k, v]) => `${k} ${v}`).join(", ");
      items.push(item(h.connected === false ? "down" : "up", name, [link, text].filter(Boolean).join("; ") || "running",
        { "data-relay": name }));
    }
    fill($("relay"), items);
  }

  function showUpstream(st) {
    const u = st.upstream;
    if (!u) { fill($("upstream"), [el("li", { class: "muted" }, "None: this gateway is its own network server.")]); return; }
    const items = Object.entries(u.servers || {}).map(([name, s]) => item(s.up ? "up" : "down", name,
      (s.up ? "✓ reachable" : "✗ unreachable: readings still go to the platform") +
        ` (${s.address}, last answer ${ago(s.last_answer_s_ago)} ago)`, { "data-upstream": name }));
    const followed = Object.keys(u.followed || {}).length;
    items.push(item("", "followed", `${followed} device(s) decoded here`));
    fill($("upstream"), items);
  }

  function showPower(st) {
    const p = st.power;
    if (!p) { fill($("power"), [el("li", { class: "muted" }, "Not known: no UPS configured.")]); return; }
    const cls = p.state === "mains" ? "up" : p.state === "unknown" ? "warn" : "down";
    const since = p.since ? " since " + hhmmss(p.since * 1000) : "";
    const words = { mains: "✓ on mains", battery: "✗ on battery", low: "✗ battery low", unknown: "? unknown" };
    const more = [];
    if (p.status) more.push(`UPS says ${p.status}`);
    if (p.charge_pct !== undefined && p.charge_pct !== null) more.push(`charge ${p.charge_pct} %`);
    if (p.runtime_s !== undefined && p.runtime_s !== null) more.push(`runtime left ${ago(p.runtime_s)}`);
    if (p.replace_battery) more.push("replace the battery");
    if (p.reachable === false) more.push("UPS not reachable" + (p.last_error ? ": " + p.last_error : ""));
    fill($("power"), [item(cls, "power", `${words[p.state] || p.state}${since}` + (more.length ? "; " + more.join(", ") : ""),
      { "data-power": p.state })]);
  }

  function showAbout(st) {
    const disk = (st.storage || {}).disk;
    const items = [];
    if (disk) {
      const pct = disk.total_bytes ? Math.round((100 * disk.free_bytes) / disk.total_bytes) : 0;
      items.push(item(pct < 10 ? "down" : pct < 25 ? "warn" : "up", "disk",
        `${bytes(disk.free_bytes)} free of ${bytes(disk.total_bytes)} (${pct} %)`, { "data-disk": String(pct) }));
    }
    items.push(item("", "version", "Havel " + st.version));
    items.push(item("", "running", "for " + ago(st.uptime_s) + `; ${st.devices} device(s) registered`));
    fill($("about"), items);
  }

  async function refresh() {
    try {
      const doc = await havel.api("/roof.json");
      const now = doc.now * 1000;
      const st = doc.status;
      showState(st);
      showSinks(st, now);
      showForwarders(st, now);
      drawChart(doc.uplinks_per_minute, now);
      showRejections(st);
      showUpstream(st);
      showRelay(st);
      showPower(st);
      showAbout(st);
      $("live").textContent = "Updated " + hhmmss(now) + ", every " + POLL_MS / 1000 + " s";
      $("live").classList.remove("stale");
      document.body.dataset.loaded = "yes";
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    } catch (e) {
      $("live").textContent = "Cannot reach the gateway daemon: " + e.message + " (retrying)";
      $("live").classList.add("stale");
    }
  }

  refresh();
  setInterval(refresh, POLL_MS);
})();
