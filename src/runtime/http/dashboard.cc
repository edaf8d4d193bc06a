#include "runtime/http/dashboard.h"

namespace pwrcell::runtime::http {
namespace {

constexpr std::string_view kDashboardHtml = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pwrcell-adapter</title>
<style>
  :root { color-scheme: light dark; --muted: #6b7280; --line: #d1d5db; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem 2rem; }
  h1 { font-size: 1.3rem; margin: 0; }
  h2 { font-size: .8rem; color: var(--muted); text-transform: uppercase; letter-spacing: .05em; margin: 1.2rem 0 .4rem; }
  a { color: inherit; }
  .sub { color: var(--muted); margin: .2rem 0 .5rem; }
  .sub.error { color: #b91c1c; }
  .cards { display: flex; flex-wrap: wrap; gap: .6rem; }
  .card { border: 1px solid var(--line); border-radius: 6px; padding: .4rem .8rem; min-width: 6.5rem; }
  .card .n { font-size: 1.4rem; font-weight: 600; font-variant-numeric: tabular-nums; }
  .card .l { color: var(--muted); font-size: .75rem; }
  table { border-collapse: collapse; width: 100%; margin-top: 1.2rem; }
  th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { font-size: .75rem; color: var(--muted); text-transform: uppercase; letter-spacing: .05em; }
  td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
  .ONLINE { color: #15803d; } .OFFLINE { color: #b45309; } .ERROR, .FAILED { color: #b91c1c; }
  .note { color: var(--muted); font-size: .85em; }
  .empty { color: var(--muted); text-align: center; padding: 1.5rem; }
</style>
</head>
<body>
<h1>pwrcell-adapter</h1>
<div class="sub" id="status">loading&hellip;</div>
<div class="sub"><a href="/api/devices">/api/devices</a> &middot; <a href="/metrics">/metrics</a> &middot;
  <a href="/readyz">/readyz</a></div>

<h2>Remote state</h2>
<div class="cards" id="by-remote-state"></div>
<h2>Commissioning</h2>
<div class="cards" id="by-commissioning"></div>

<table>
  <thead><tr><th>remote_id</th><th>name</th><th>kind</th><th>coupling</th><th>inverters</th>
    <th>commissioning</th><th>remote_state</th><th>last heard</th></tr></thead>
  <tbody id="devices"><tr><td class="empty" colspan="8">loading&hellip;</td></tr></tbody>
</table>

<script>
"use strict";
const NOT_SENT = "NOT_SENT";  // remote_state null: never sent to Concerto
const REMOTE_STATES = ["ONLINE", "OFFLINE", "ERROR", NOT_SENT];
const COMMISSIONING = ["NOT_REQUESTED", "PENDING", "DONE", "FAILED"];
const PAGE_QUERY = "?limit=500&totals=true";  // table rows per refresh, and the fleet's counts

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

function renderCards(id, order, counts) {
  const keys = order.concat(Object.keys(counts).filter(k => !order.includes(k)).sort());
  const box = document.getElementById(id);
  box.replaceChildren();
  for (const k of keys) {
    const card = el("div", null, "card");
    card.append(el("div", counts[k] || 0, "n " + k), el("div", k, "l"));
    box.append(card);
  }
}

function withNote(text, note, className) {
  const td = el("td");
  td.append(el("span", text, className));
  if (note) td.append(el("div", note, "note"));
  return td;
}

// One line per inverter (a system may have several): its RCP number and its newest state, marked
// ERROR when in 0x7000..0x7FFF (SPEC section 4 rule 3).
function inverterCell(d) {
  const td = el("td", null, "mono");
  const readings = {};
  for (const r of d.inverter_readings || []) readings[r.rcpn] = r;
  const rcpns = d.inverter_rcpns || [];
  if (rcpns.length === 0) td.textContent = "-";
  for (const rcpn of rcpns) {
    const r = readings[rcpn];
    const error = r && r.state >= 0x7000 && r.state <= 0x7FFF;
    td.append(el("div", rcpn + (r ? " \u00b7 0x" + r.state.toString(16).toUpperCase().padStart(4, "0") : ""),
                 error ? "ERROR" : null));
  }
  return td;
}

// remote_state is what Concerto accepted; the note is the current cause and since when, and an
// evaluation Concerto has not accepted yet shows as "-> STATE (pending)".
function remoteStateCell(d, state) {
  const td = withNote(state, null, state);
  if (d.evaluated_state && d.evaluated_state !== d.remote_state) {
    td.append(el("span", " \u2192 " + d.evaluated_state + " (pending)", d.evaluated_state));
  }
  if (d.remote_state_reason) {
    const since = d.remote_state_since ? " (since " + d.remote_state_since.replace("T", " ") + ")" : "";
    td.append(el("div", d.remote_state_reason + since, "note"));
  }
  return td;
}

function renderRow(d) {
  const tr = el("tr");
  const state = d.remote_state || NOT_SENT;
  const commissioning = d.commissioning || {};
  tr.append(el("td", d.remote_id, "mono"), el("td", d.name), el("td", d.kind), el("td", d.coupling), inverterCell(d),
            withNote(commissioning.state, commissioning.reason, commissioning.state),
            remoteStateCell(d, state),
            el("td", d.last_heard_at ? d.last_heard_at.replace("T", " ") : "never", "mono"));
  return tr;
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    // One page of the table (the device API is paged) and the counts of the whole fleet.
    const response = await fetch("/api/devices" + PAGE_QUERY, {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status + " " + (await response.text()));
    const body = await response.json();
    const devices = body.devices || [];
    const totals = body.totals || {remote_state: {}, commissioning: {}};
    const byState = {};
    for (const [k, n] of Object.entries(totals.remote_state)) byState[k === "NONE" ? NOT_SENT : k] = n;
    renderCards("by-remote-state", REMOTE_STATES, byState);
    renderCards("by-commissioning", COMMISSIONING, totals.commissioning);
    const rows = document.createDocumentFragment();
    for (const d of devices) rows.append(renderRow(d));
    if (devices.length === 0) {
      const tr = el("tr");
      const td = el("td", "no devices registered yet", "empty");
      td.colSpan = 8;
      tr.append(td);
      rows.append(tr);
    }
    document.getElementById("devices").replaceChildren(rows);
    const shown = body.next ? " (the first " + devices.length + " shown)" : "";
    status.textContent = body.count + " devices" + shown + " \u00b7 updated " + new Date().toLocaleTimeString();
    status.className = "sub";
  } catch (e) {
    status.textContent = "refresh failed: " + e.message;
    status.className = "sub error";
  }
}

refresh();
setInterval(refresh, 5000);
</script>
</body>
</html>
)html";

}  // namespace

std::string_view DashboardHtml() {
  return kDashboardHtml;
}

}  // namespace pwrcell::runtime::http
