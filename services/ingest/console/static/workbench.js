// The rules workbench: line numbers with problems marked, checking and trying as you type,
// evaluate / backtest / save / suggest through the console's JSON endpoints.
"use strict";

(function () {
  const text = document.getElementById("rules-text");
  if (!text) return;
  const gutter = document.getElementById("gutter");
  const list = document.getElementById("problem-list");
  const state = document.getElementById("check-state");
  const editable = !text.readOnly;
  let bad = new Set();

  function numbers() {
    const n = text.value.split("\n").length;
    const out = [];
    for (let i = 1; i <= n; i++) {
      out.push(bad.has(i) ? `<span class="bad" title="problem on line ${i}">${i}</span>` : String(i));
    }
    gutter.innerHTML = out.join("\n");
    gutter.scrollTop = text.scrollTop;
  }

  function goTo(line) {
    const lines = text.value.split("\n");
    let start = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
    text.focus();
    text.setSelectionRange(start, start + (lines[line - 1] || "").length);
    const lineHeight = text.scrollHeight / Math.max(lines.length, 1);
    text.scrollTop = Math.max(0, (line - 3) * lineHeight);
  }

  function show(problems) {
    bad = new Set(problems.filter((p) => p.line).map((p) => p.line));
    list.innerHTML = "";
    for (const p of problems) {
      const li = document.createElement("li");
      if (p.line) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "link";
        b.textContent = `line ${p.line}`;
        b.addEventListener("click", () => goTo(p.line));
        li.append(b, document.createTextNode(`: ${p.msg}`));
      } else {
        li.textContent = p.msg;
      }
      list.append(li);
    }
    numbers();
  }

  function debounce(fn, ms) {
    let t = null;
    return () => { clearTimeout(t); t = setTimeout(fn, ms); };
  }

  const json = (o) => JSON.stringify(o);
  const post = (url, body) => window.redalert.post(url, body && json(body), "application/json");

  async function check() {
    if (!editable) return true;
    state.textContent = "Checking…";
    const r = await post("/console/rules/check", { rules: text.value });
    if (r.ok) { state.textContent = `Valid: version ${r.data.version}.`; show([]); return true; }
    const problems = r.data.problems || [{ line: null, msg: r.data.error || r.data.detail || "refused" }];
    state.textContent = `${problems.length} problem${problems.length === 1 ? "" : "s"}:`;
    show(problems);
    return false;
  }

  const tryText = document.getElementById("try-text");
  const tryOut = document.getElementById("try-result");
  async function trial() {
    if (!tryText.value.trim()) return;
    const body = { text: tryText.value };
    if (editable) body.rules = text.value;
    const r = await post("/console/rules/try", body);
    if (r.ok) { tryOut.innerHTML = r.data.html; }
    else if (r.data.problems) { tryOut.innerHTML = "<p class='small'>Fix the draft's problems to try it.</p>"; }
  }

  async function into(id, url, body, busy) {
    const out = document.getElementById(id);
    out.innerHTML = `<p class="small">${busy}</p>`;
    const r = await post(url, body);
    if (r.ok) { out.innerHTML = r.data.html; window.redalert.localTimes(out); return r; }
    if (r.data.problems) { show(r.data.problems); state.textContent = "Fix these first:"; }
    out.innerHTML = "";
    return r;
  }

  text.addEventListener("scroll", () => { gutter.scrollTop = text.scrollTop; });
  text.addEventListener("input", () => { numbers(); });
  text.addEventListener("input", debounce(check, 600));
  text.addEventListener("input", debounce(trial, 600));
  tryText.addEventListener("input", debounce(trial, 350));
  numbers();

  const on = (id, fn) => { const b = document.getElementById(id); if (b) b.addEventListener("click", fn); };
  on("btn-eval", () => into("eval-result", "/console/rules/eval", { rules: text.value }, "Evaluating…"));
  on("btn-backtest", () => into("backtest-result", "/console/rules/backtest", { rules: text.value }, "Backtesting…"));
  on("btn-trend", () => into("trend-result", "/console/rules/trend", null, "Evaluating each revision…"));
  on("btn-suggest", async () => {
    await into("suggest-result", "/console/rules/suggest", null, "Mining corrections (this takes a few seconds)…");
    for (const b of document.querySelectorAll(".add-cue")) {
      b.addEventListener("click", () => {
        const at = text.value.search(/^cues:\s*$/m);
        if (at < 0) return;
        const end = text.value.indexOf("\n", at) + 1;
        text.value = text.value.slice(0, end) + b.dataset.yaml + text.value.slice(end);
        numbers(); check();
        goTo(text.value.slice(0, end).split("\n").length);
      });
    }
  });
  on("btn-save", async () => {
    const saveState = document.getElementById("save-state");
    if (!(await check())) { saveState.textContent = "Not saved: fix the problems first."; return; }
    const r = await post("/console/rules/save", { rules: text.value, revision: Number(text.dataset.revision) });
    if (r.ok) {
      text.dataset.revision = r.data.revision;
      saveState.textContent = r.data.changed
        ? `Saved as revision ${r.data.revision}: classify picks it up within seconds.`
        : `Nothing to save: these rules say the same as revision ${r.data.revision}.`;
    } else {
      show(r.data.problems || []);
      saveState.textContent = "Not saved.";
    }
  });
})();
