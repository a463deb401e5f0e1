// The crisis-centre board: reads /api/board and draws it; /events says when to read it again.
// Everything shown comes from the receiver's verified records; text is set as text, never as HTML.
"use strict";
(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const el = havel.el;
  const shownAt = new Map(); // alarm id -> Date.now() when the page first showed it
  let first = true;
  let loading = false;
  let again = false;

  function pad(n) { return String(n).padStart(2, "0"); }
  function clock(sec) {
    const d = new Date(sec * 1000);
    const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const today = new Date();
    if (d.toDateString() === today.toDateString()) return t;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}`;
  }
  function ago(sec, now) {
    const s = Math.max(0, Math.round(now - sec));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  }
  function num(v) { return typeof v === "number" ? String(Math.round(v * 100) / 100) : String(v); }
  function value(v, unit) {
    const text = Array.isArray(v) ? v.map(num).join(" / ") : typeof v === "object" && v !== null ? JSON.stringify(v) : num(v);
    return unit ? `${text} ${unit}` : text;
  }
  function deviceName(x) { return x.device || x.name || x.dev_eui; }

  function renderAlarms(s) {
    const items = [];
    const fresh = [];
    for (const a of s.alarms) {
      if (!shownAt.has(a.id)) {
        shownAt.set(a.id, Date.now());
        if (!first) fresh.push(a);
      }
      const vals = a.values.map((v) => `${v.name} ${value(v.value, v.unit)}`).join(", ");
      const crossed = a.threshold ? a.threshold.text : "not known here (the gateway's rules are not loaded)";
      items.push(el("li", { class: "alarm", "data-id": a.id, "data-shown-at": String(shownAt.get(a.id)) },
        el("h3", {}, `${deviceName(a)} `, el("span", { class: "muted" }, `(${a.gateway_id})`)),
        el("p", { class: "value" }, vals),
        el("dl", {},
          el("dt", {}, "Threshold"), el("dd", { class: "threshold" }, crossed),
          el("dt", {}, "Measured"), el("dd", {}, `${clock(a.measured_at)} (${ago(a.measured_at, s.now)})`),
          el("dt", {}, "Came by"), el("dd", { class: "via" }, a.via_label),
          el("dt", {}, "Device EUI"), el("dd", {}, a.dev_eui))));
    }
    $("alarms").replaceChildren(...items);
    $("alarms-empty").hidden = items.length > 0;
    if (fresh.length) {
      $("announce").textContent = fresh.map((a) => `New alarm: ${deviceName(a)}, ` +
        a.values.map((v) => `${v.name} ${value(v.value, v.unit)}`).join(", ")).join(". ");
    }
  }

  function renderPaths(s) {
    $("paths").replaceChildren(...s.paths.map((p) => {
      let when = "";
      if (p.state === "unknown") when = "";
      else if (p.since !== null) when = ` since ${clock(p.since)} (${ago(p.since, s.now)})`;
      return el("li", { class: `path ${p.state}`, "data-key": p.key },
        el("strong", {}, `${p.label}: `), el("span", { class: "state" }, p.state), el("span", { class: "since" }, when),
        p.detail ? el("span", { class: "detail" }, p.detail) : "");
    }));
  }

  function chart(c, dev, s) {
    const W = 320, H = 150, L = 46, R = 10, T = 12, B = 24;
    const t1 = s.now, t0 = s.now - s.window_s;
    const ys = c.points.map((p) => p[1]);
    if (typeof c.threshold === "number") ys.push(c.threshold);
    let lo = Math.min(...ys), hi = Math.max(...ys);
    const padY = Math.max(1, (hi - lo) * 0.1);
    lo -= padY; hi += padY;
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
    const node = (tag, attrs, text) => {
      const n = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text !== undefined) n.textContent = text;
      return n;
    };
    const last = c.points[c.points.length - 1];
    const hours = Math.round(s.window_s / 3600);
    const name = `${c.field} of ${deviceName(dev)} over the last ${hours} hours: ${c.points.length} readings` +
      (c.points.length ? `, from ${value(Math.min(...c.points.map((p) => p[1])), c.unit)} to ` +
        `${value(Math.max(...c.points.map((p) => p[1])), c.unit)}, latest ${value(last[1], c.unit)} at ${clock(last[0])}` : "") +
      (typeof c.threshold === "number" ? `; alarm threshold ${value(c.threshold, c.unit)}` : "");
    const svg = node("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": name });
    svg.append(node("title", {}, name));
    for (let i = 0; i <= 2; i++) {
      const v = lo + ((hi - lo) * i) / 2;
      svg.append(node("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.append(node("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end" }, `${Math.round(v)}`));
    }
    svg.append(node("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    svg.append(node("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    svg.append(node("text", { x: L, y: H - 6, "text-anchor": "start" }, `-${hours} h`));
    svg.append(node("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, `-${hours / 2} h`));
    svg.append(node("text", { x: W - R, y: H - 6, "text-anchor": "end" }, `now (${c.unit || c.field})`));
    if (typeof c.threshold === "number") {
      svg.append(node("line", { class: "limit", x1: L, x2: W - R, y1: y(c.threshold), y2: y(c.threshold) }));
      svg.append(node("text", { class: "limit-label", x: L + 4, y: y(c.threshold) - 4 }, `alarm ${c.threshold}`));
    }
    if (c.points.length) {
      svg.append(node("polyline", { class: "line", points: c.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ") }));
      svg.append(node("circle", { class: "dot", cx: x(last[0]), cy: y(last[1]), r: 4 }));
    }
    return svg;
  }

  function renderDevices(s) {
    $("devices").replaceChildren(...s.devices.map((d) => {
      const rows = d.values.map((v) => el("tr", {},
        el("th", { scope: "row" }, v.name),
        el("td", { class: "num" }, value(v.value, v.unit)),
        el("td", {}, `${clock(v.at)}, ${v.via === "mqtt" ? "mesh MQTT" : v.via === "aprs" ? "APRS" : "Reticulum"}`)));
      const table = el("table", {},
        el("caption", { class: "visually-hidden" }, `Latest values of ${deviceName(d)}`),
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Field"), el("th", { scope: "col" }, "Value"),
          el("th", { scope: "col" }, "Measured, came by"))),
        el("tbody", {}, ...rows));
      return el("article", { class: "device", "data-dev-eui": d.dev_eui },
        el("h3", {}, `${deviceName(d)} `, el("span", { class: "muted" }, `(${d.gateway_id})`)),
        table, ...d.charts.filter((c) => c.points.length).map((c) => chart(c, d, s)));
    }));
    $("devices-empty").hidden = s.devices.length > 0;
  }

  function renderUnverified(s) {
    const items = [];
    for (const [reason, n] of Object.entries(s.unverified.rejected)) {
      items.push(el("li", { "data-reason": reason }, el("span", { class: "tag" }, "refused"), ` ${n} ${reason} ` +
        (n === 1 ? "message" : "messages")));
    }
    for (const l of s.unverified.links) {
      items.push(el("li", { "data-link": l.gateway_id }, el("span", { class: "tag" }, "unsigned"),
        ` mesh broker says ${l.gateway_id} is ${l.state} (${clock(l.at)}); anyone on that broker could write this`));
    }
    $("unverified").replaceChildren(...items);
    $("unverified-none").hidden = items.length > 0;
  }

  async function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      do {
        again = false;
        const s = await havel.api("/api/board");
        renderAlarms(s);
        renderPaths(s);
        renderDevices(s);
        renderUnverified(s);
        first = false;
        document.body.dataset.loaded = "yes";
      } while (again);
    } catch (e) {
      $("live").textContent = `Cannot read the board: ${e.message}`;
    } finally {
      loading = false;
    }
  }

  const es = havel.follow({ changed: refresh, reset: refresh });
  es.addEventListener("open", () => {
    $("live").textContent = "Live: updates as messages arrive";
    $("live").classList.remove("offline");
    refresh();
  });
  es.addEventListener("error", () => {
    $("live").textContent = "Connection to the receiver lost: reconnecting…";
    $("live").classList.add("offline");
  });
  setInterval(refresh, 30000); // the "since" and "ago" figures move on while nothing arrives
  refresh();
})();
