// The kit bench page: pick a kit, see the board, run `havel kit build` through the local server and show
// its progress as it comes (server-sent events). Text from the server is always set as text, never as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const STEPS = [
    ["board", "Board"], ["micropython", "MicroPython"], ["flash", "Firmware"],
    ["check", "Wiring check"], ["register", "Registration"], ["label", "Label"],
  ];
  const MARK = { ok: "✔", fixed: "✔", fail: "✘", manual: "•" };
  const WORD = { ok: "passed", fixed: "fixed", fail: "failed", manual: "check by hand" };
  let kit = null;
  let kitInfo = null;
  let running = false;
  let questionId = null;

  function setMessage(text, good) {
    $("message").textContent = text;
    $("message").className = good ? "good" : "";
  }

  function resetSteps() {
    const ol = $("steps");
    ol.replaceChildren();
    for (const [id, title] of STEPS) {
      const li = havel.el("li", { id: "step-" + id, "data-status": "pending" },
        havel.el("span", { class: "mark", "aria-hidden": "true" }, "·"),
        havel.el("strong", {}, title), " ", havel.el("span", { class: "state" }, "waiting"),
        " ", havel.el("span", { class: "detail muted" }, ""));
      ol.append(li);
    }
    $("checklist").replaceChildren();
    $("check-h").hidden = true;
    $("flash-box").hidden = true;
    markFailingWires([]);
    setMessage("");
  }

  function setStep(step, status, detail) {
    const li = $("step-" + step);
    if (!li) return;
    li.className = status;
    li.dataset.status = status;
    li.querySelector(".mark").textContent = status === "done" ? "✔" : status === "failed" ? "✘" : status === "running" ? "…" : "·";
    li.querySelector(".state").textContent = status === "done" ? "done" : status === "failed" ? "stopped" : status === "running" ? "working" : "waiting";
    if (detail !== undefined) li.querySelector(".detail").textContent = detail;
  }

  function markFailingWires(numbers) {
    const wires = document.querySelectorAll("#wiring .wire");
    wires.forEach((g) => g.classList.toggle("failing", numbers.includes(Number(g.dataset.wire))));
    document.querySelectorAll("#wiring-table tbody tr").forEach((tr) => {
      const failing = numbers.includes(Number(tr.dataset.wire));
      tr.classList.toggle("failing", failing);
      tr.querySelector(".flag").textContent = failing ? " ✘ check this wire" : "";
    });
  }

  let failing = [];
  function addCheckItem(it) {
    $("check-h").hidden = false;
    const li = havel.el("li", { class: it.status === "fail" ? "status-fail" : it.status === "manual" ? "status-warn" : "status-ok", "data-status": it.status },
      havel.el("span", { class: "mark " + (it.status === "fail" ? "fail" : "ok"), "aria-hidden": "true" }, MARK[it.status] || "?"),
      havel.el("strong", {}, it.name), havel.el("span", { class: "visually-hidden" }, " " + (WORD[it.status] || it.status)), ": ",
      havel.el("span", { class: "advice" }, it.advice));
    if (it.wires && it.wires.length) {
      li.dataset.wires = it.wires.join(",");
      li.append(havel.el("span", { class: "wires" }, " (wire " + it.wires.join(", ") + " in the diagram)"));
      failing = failing.concat(it.wires);
      markFailingWires(failing);
    }
    $("checklist").append(li);
  }

  // What the build button does next, from the steps kitbuild's state file says are done.
  function startText(done) {
    if (!done.length || done.includes("label")) return "Start the build";
    return done.includes("flash") ? "Check again and continue" : "Continue the build";
  }

  async function loadKits() {
    const kits = await havel.api("/api/kits");
    const fs = $("kits");
    for (const k of kits) {
      const input = havel.el("input", { type: "radio", name: "kit", value: k.name, id: "kit-" + k.name });
      input.addEventListener("change", () => pickKit(k.name, true));
      fs.append(havel.el("label", { class: "kit-choice", for: "kit-" + k.name }, input,
        havel.el("strong", { class: "kit-name" }, k.name),
        havel.el("span", { class: "kit-title" }, k.title),
        havel.el("span", { class: "kit-parts" }, k.board + " with " + k.parts.join(", "))));
    }
  }

  // fromUser: picked in the page (a fresh start); else shown for a build the server reports (a reload)
  async function pickKit(name, fromUser) {
    kit = name;
    $("kit-" + name).checked = true;
    kitInfo = await havel.api("/api/kit?name=" + encodeURIComponent(name));
    const svgText = await (await fetch("/api/wiring.svg?name=" + encodeURIComponent(name))).text();
    const doc = new DOMParser().parseFromString(svgText, "image/svg+xml");
    $("wiring").replaceChildren(document.importNode(doc.documentElement, true));
    const tb = $("wiring-table").querySelector("tbody");
    tb.replaceChildren();
    for (const w of kitInfo.wiring) {
      tb.append(havel.el("tr", { "data-wire": String(w.number) }, havel.el("td", {}, String(w.number)),
        havel.el("td", {}, w.from), havel.el("td", {}, w.to),
        havel.el("td", {}, w.colour, havel.el("span", { class: "flag fail" }, ""))));
    }
    markFailingWires(failing);  // a replayed check may have come before the drawing
    $("wiring-section").hidden = false;
    $("build-section").hidden = false;
    $("passphrase-box").hidden = !kitInfo.passphrase_needed;
    $("passphrase-again-box").hidden = kitInfo.registry_exists;
    const done = kitInfo.done.filter((s) => s !== "label");
    $("resume-note").hidden = done.length === 0;
    $("resume-note").textContent = done.length ? "Already done for this kit on this board: " + done.join(", ") + ". The build continues from there." : "";
    $("start").textContent = startText(kitInfo.done);
    if (fromUser && !running) resetSteps();
  }

  async function lookForBoard() {
    try {
      const b = await havel.api("/api/board");
      const adv = $("board-advice");
      if (b.found.length) {
        const f = b.found[0];
        $("board-status").textContent = (b.found.length > 1 ? b.found.length + " boards found; unplug all but one. " : "Board found: ") + f.device + " (" + f.chip + ", " + f.description + ")";
        $("board-status").className = b.found.length > 1 ? "fail" : "ok";
        adv.hidden = true;
      } else {
        $("board-status").textContent = "No board found. Check, in this order:";
        $("board-status").className = "fail";
        adv.replaceChildren(...b.advice.map((t) => havel.el("li", {}, t)));
        adv.hidden = false;
      }
    } catch (e) {
      $("board-status").textContent = "Cannot ask the server: " + e.message;
    }
  }

  async function start(ev) {
    ev.preventDefault();
    if (!kit || running) return;
    const body = { kit };
    if (kitInfo.passphrase_needed) {
      body.passphrase = $("passphrase").value;
      if (!kitInfo.registry_exists) body.passphrase_again = $("passphrase-again").value;
    }
    try {
      resetSteps();
      failing = [];
      await havel.api("/api/build", body);
    } catch (e) {
      setMessage(e.message + (e.hint ? ": " + e.hint : ""));
    }
  }

  function finish() {
    running = false;
    $("start").disabled = false;
    $("passphrase").value = "";
    $("passphrase-again").value = "";
    if (kit) havel.api("/api/kit?name=" + encodeURIComponent(kit)).then((k) => {
      kitInfo = k;
      $("passphrase-again-box").hidden = k.registry_exists;
      $("start").textContent = startText(k.done);
    });
  }

  async function answer(yes) {
    if (!questionId) return;
    const id = questionId;
    $("question").hidden = true;
    questionId = null;
    await havel.api("/api/answer", { id, yes }).catch((e) => setMessage(e.message));
  }

  function follow() {
    havel.follow({
      reset() { resetSteps(); failing = []; $("label-section").hidden = true; },
      started(d) {
        running = true;
        $("start").disabled = true;
        setMessage("");
        if (kit !== d.kit) pickKit(d.kit, false);
      },
      step(d) {
        setStep(d.step, d.status, d.detail);
        if (d.step === "flash" && d.status === "done") $("flash-box").hidden = true;
      },
      flash(d) {
        $("flash-box").hidden = false;
        const p = $("flash-progress");
        p.max = d.total || 1;
        p.value = d.done;
        $("flash-label").textContent = "Copying the firmware: " + Math.round(100 * d.done / (d.total || 1)) + " % (" + d.path + ")";
      },
      check_item: addCheckItem,
      question(d) {
        questionId = d.id;
        $("question-text").textContent = d.text;
        $("question").hidden = false;
        $("answer-yes").focus();
      },
      answered() { $("question").hidden = true; questionId = null; },
      label(d) {
        $("label-img").src = "/api/label.svg?name=" + encodeURIComponent(d.name);
        $("label-img").alt = "Label of node " + d.name + ", DevEUI " + d.dev_eui + ", with its QR code";
        $("label-section").hidden = false;
      },
      finished(d) {
        if (d.ok) setMessage("Kit built in " + d.seconds + " s: " + d.name + ", DevEUI " + d.dev_eui + ". Print the label and close the enclosure.", true);
        else setMessage("Fix the parts marked ✘ (the wire is highlighted in the diagram), then press the button again: the build continues at the check.");
        finish();
      },
      failed(d) {
        const cur = document.querySelector(".steps li.running");
        if (cur) setStep(cur.id.slice(5), "failed");
        setMessage(d.error + (d.hint ? ": " + d.hint : ""));
        finish();
      },
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    resetSteps();
    $("build-form").addEventListener("submit", start);
    $("board-again").addEventListener("click", lookForBoard);
    $("answer-yes").addEventListener("click", () => answer(true));
    $("answer-no").addEventListener("click", () => answer(false));
    $("print").addEventListener("click", () => window.print());
    await loadKits();
    await lookForBoard();
    setInterval(() => { if (!running) lookForBoard(); }, 4000);
    follow();
    document.body.dataset.ready = "1";
  });
})();
