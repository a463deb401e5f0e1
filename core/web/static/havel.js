// Shared helpers of Havel's local pages (loaded as /havel/havel.js before the page's own script).
// No framework and nothing from another site: the pages must work offline.
"use strict";
const havel = {
  // POST (when body is given) or GET JSON; resolves to the decoded answer, rejects with an Error whose
  // message is the server's sentence (and .hint its hint).
  async api(path, body) {
    const opts = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const r = await fetch(path, opts);
    const data = await r.json().catch(() => ({ error: "the server did not answer with JSON" }));
    if (!r.ok) {
      const e = new Error(data.error || ("HTTP " + r.status));
      e.hint = data.hint || "";
      e.status = r.status;
      throw e;
    }
    return data;
  },
  // Follow the server-sent events at /events: handlers is {kind: fn(data)}; the browser reconnects by
  // itself and the server replays what was missed.
  follow(handlers) {
    const es = new EventSource("/events");
    for (const kind of Object.keys(handlers)) {
      es.addEventListener(kind, (ev) => handlers[kind](JSON.parse(ev.data)));
    }
    return es;
  },
  // An element with text (never innerHTML: what comes from the board or a file is shown, not run).
  el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  },
};
