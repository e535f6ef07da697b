// redalert console: times in the viewer's zone, live updates over Server-Sent Events, and the
// small fetch() helpers the rules workbench uses. No framework, no build step.
"use strict";

const fmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  second: "2-digit", timeZoneName: "short",
});

function localTimes(root) {
  for (const t of (root || document).querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) { t.title = t.getAttribute("datetime"); t.textContent = fmt.format(d); }
  }
}

function csrf() {
  const m = document.querySelector('meta[name="csrf"]');
  return m ? m.content : "";
}

function announce(text) {
  const region = document.getElementById("live-status");
  if (region) region.textContent = text;
}

async function refresh(url, target) {
  const r = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
  if (!r.ok) return;
  const el = document.getElementById(target);
  if (!el) return;
  // Keep what the person is typing (a note) across the refresh.
  const note = el.querySelector("#note");
  const typed = note ? note.value : null;
  const hadFocus = note && document.activeElement === note;
  el.innerHTML = await r.text();
  localTimes(el);
  const again = el.querySelector("#note");
  if (again && typed !== null) { again.value = typed; if (hadFocus) again.focus(); }
}

function live() {
  const kind = document.body.dataset.live;
  if (!kind || !window.EventSource) return;
  const state = document.getElementById("live-state");
  const source = new EventSource("/console/events");
  source.addEventListener("hello", () => { if (state) state.textContent = "Updates live."; });
  source.onerror = () => { if (state) state.textContent = "Reconnecting…"; };
  source.addEventListener("incident", async (e) => {
    const ev = JSON.parse(e.data);
    if (kind === "list") {
      await refresh("/console/fragments/incidents" + location.search, "incident-rows");
      announce(`Incident ${ev.kind.replace("_", " ")}: ${ev.title}`);
    } else if (kind === "incident" && ev.incident_id === document.body.dataset.incident) {
      await refresh("/console/fragments/incidents/" + ev.incident_id, "incident-body");
      announce(`This incident: ${ev.kind.replace("_", " ")}`);
    }
  });
}

// JSON to and from the console's own endpoints, with the session's CSRF token.
async function post(url, body, contentType) {
  const headers = { "X-CSRF-Token": csrf(), Accept: "application/json" };
  if (contentType) headers["Content-Type"] = contentType;
  const r = await fetch(url, { method: "POST", headers, body, credentials: "same-origin" });
  let data = null;
  try { data = await r.json(); } catch (_) { data = { error: r.statusText }; }
  return { ok: r.ok, status: r.status, data };
}

window.redalert = { post, localTimes, csrf, announce };

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  live();
});
