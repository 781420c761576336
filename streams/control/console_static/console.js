"use strict";
// The console's page. Everything is built with textContent: alert text comes from the
// topics, never as HTML. Views by the URL's hash: #/ (alerts and thresholds), #/queue,
// #/alert/<id>.
const $ = (id) => document.getElementById(id);
let state = null;
let me = null;
let queueTimer = null;
let alertTimer = null;
// What each polled view last drew: an unchanged answer is not drawn again, so that a row
// being read (or clicked) stays where it is.
const drawn = {};
function changed(view, answer) {
  const text = JSON.stringify(answer);
  if (drawn[view] === text) return false;
  drawn[view] = text;
  return true;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  return td;
}
function row(cells, className) {
  const tr = document.createElement("tr");
  if (className) tr.className = className;
  cells.forEach((c) => tr.appendChild(c));
  return tr;
}
function fill(tableId, rows, emptyText, columns) {
  const body = $(tableId).tBodies[0];
  if (!rows.length) {
    const td = cell(emptyText, "empty");
    td.colSpan = columns;
    rows = [row([td])];
  }
  body.replaceChildren(...rows);
}
function link(text, href, className) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  if (className) a.className = className;
  return a;
}
function linkCell(text, href, className) {
  const td = cell("", className);
  td.appendChild(link(text, href, "alert-link"));
  return td;
}
function severity(name) {
  const sev = document.createElement("span");
  sev.className = `sev sev-${name}`;
  sev.textContent = name;
  const td = cell("");
  td.appendChild(sev);
  return td;
}
const alertHref = (id) => `#/alert/${encodeURIComponent(id)}`;
// "2026-03-01 08:00 UTC", or with its own offset: an alert's time is the event's, as sent.
function short(time) {
  if (!time) return "";
  const offset = /(Z|[+-]\d\d:\d\d)$/.exec(time);
  const zone = !offset ? "" : ["Z", "+00:00"].includes(offset[1]) ? " UTC" : ` ${offset[1]}`;
  return time.replace("T", " ").slice(0, 16) + zone;
}
const changesText = (changes) =>
  Object.entries(changes || {}).map(([k, [a, b]]) => `${k}: ${a} → ${b}`).join("; ");
const may = (permission) => Boolean(me && me.permissions.includes(permission));

// --- talking to the console --------------------------------------------------------------

async function api(path, options = {}) {
  const init = { cache: "no-store", credentials: "same-origin", ...options };
  if (init.method === "POST") {
    init.headers = { "Content-Type": "application/json", "X-CSRF-Token": me ? me.csrf : "" };
  }
  const response = await fetch(path, init);
  let answer = {};
  try { answer = await response.json(); } catch (err) { answer = { error: response.statusText }; }
  if (response.status === 401) {
    if (me && me.mode === "password") { window.location.href = "/login"; }
    throw new Error(answer.error || "sign in first");
  }
  return { ok: response.ok, status: response.status, answer };
}

// --- the overview: alerts, thresholds, changes --------------------------------------------

function renderCounts(counts) {
  const rows = [];
  counts.topics.forEach(({ topic, count }) => {
    rows.push(row([cell(topic), cell(count, "num")], "topic"));
    counts.detectors.filter((d) => d.topic === topic)
      .forEach((d) => rows.push(row([cell(d.detector), cell(d.count, "num")], "detector")));
  });
  fill("counts", rows, "no alerts yet", 2);
}

function renderLatest(latest) {
  fill("latest", latest.map((a) => {
    const reasons = cell(a.reasons.join("; "));
    reasons.title = a.reasons.join("\n");
    const topic = cell(a.topic);
    topic.title = a.topic;
    return row([linkCell(short(a.ts), alertHref(a.alert_id), "mono"), severity(a.severity), topic,
      cell(a.detector), cell(a.borrower_id, "mono"), cell(Number(a.score).toFixed(2), "num"),
      reasons, cell(a.thresholds_version, "mono")]);
  }), "no alerts yet", 8);
}

function renderThresholds(t) {
  $("live-version").textContent = t.live.label;
  $("live-meta").textContent = t.live.at
    ? `${t.live.action} by ${t.live.author} at ${short(t.live.at)}: ${t.live.reason}`
    : "the shipped defaults";
  const c = t.candidate;
  $("candidate-badge").hidden = !c;
  $("candidate-version").textContent = c ? c.label : "";
  if ($("candidate-actions")) {
    $("candidate-actions").hidden = !c;
    $("candidate-label").textContent = c ? `${c.label} in shadow:` : "";
  }
  const filter = $("threshold-filter").value.trim().toLowerCase();
  fill("thresholds", t.values
    .filter((v) => !filter || (v.key + " " + v.meaning).toLowerCase().includes(filter))
    .map((v) => {
      const tr = row([cell(v.key, "mono"), cell(v.value, "value mono"), cell(v.shadow, "shadow mono"),
        cell(`${v.low} – ${v.high}`, "range"), cell(v.default, "default"), cell(v.meaning)],
        v.changed ? "changed" : "");
      tr.dataset.key = v.key;
      return tr;
    }), "no threshold matches", 6);
  fill("history", t.history.map((e) => row([cell(short(e.at), "mono"),
    cell(e.action, "action"), cell(e.version, "mono"), cell(e.author), cell(e.reason),
    cell(changesText(e.changes), "changes")])), "no changes: the shipped defaults (v0) are live", 6);
  const select = $("threshold-key");
  if (select && !select.options.length) {
    t.values.forEach((v) => select.add(new Option(v.key, v.key)));
  }
  describeKey();
}

function renderComparison(cmp, candidate) {
  if (!cmp || !candidate) {
    $("comparison-title").textContent = "";
    fill("comparison", [], "no candidate in shadow", 4);
    $("comparison-note").textContent = "“Try in shadow” runs values beside the live ones; " +
      "their alerts go to alerts.shadow, never to the teams.";
    return;
  }
  $("comparison-title").textContent = `${cmp.candidate} against ${candidate.base} since ${short(cmp.since)}`;
  const diff = (n) => cell(n > 0 ? `+${n}` : String(n), n > 0 ? "num diff-up" : n < 0 ? "num diff-down" : "num");
  const rows = cmp.rows.map((r) => row([cell(r.detector), cell(r.live, "num"),
    cell(r.shadow, "num"), diff(r.difference)]));
  if (rows.length) {
    rows.push(row([cell("all"), cell(cmp.live, "num"), cell(cmp.shadow, "num"),
      diff(cmp.shadow - cmp.live)], "topic"));
  }
  fill("comparison", rows, "no alerts since the candidate started", 4);
  $("comparison-note").textContent = `${candidate.label}: ${changesText(candidate.changes)} — ` +
    `${candidate.reason} (${candidate.author})` +
    (cmp.partial ? ". Live counts are partial: older alerts were forgotten." : "");
}

function describeKey() {
  if (!state || !state.thresholds || !$("threshold-key")) return;
  const key = $("threshold-key").value;
  const v = state.thresholds.values.find((x) => x.key === key);
  $("key-help").textContent = v
    ? `${v.type}, ${v.low} – ${v.high}, live ${v.value}${v.shadow ? `, shadow ${v.shadow}` : ""}: ${v.meaning}`
    : "";
}

function setStatus(problem) {
  const status = $("status");
  status.className = problem ? "down" : "";
  status.textContent = problem || `updated ${new Date().toLocaleTimeString()}`;
}

function render(s) {
  state = s;
  renderCounts(s.counts);
  renderLatest(s.latest);
  if (s.thresholds) renderThresholds(s.thresholds);
  renderComparison(s.comparison, s.thresholds && s.thresholds.candidate);
  setStatus([s.error, s.reader_error].filter(Boolean).join("; "));
}

async function refresh() {
  try {
    const { ok, answer } = await api("/api/state");
    if (ok) render(answer); else setStatus(answer.error);
  } catch (err) {
    setStatus(`console unreachable: ${err.message || err}`);
  }
}

async function poll() {
  await refresh();
  setTimeout(poll, 1000);
}

async function send(path, body) {
  $("form-error").textContent = "";
  $("form-message").textContent = "";
  const buttons = document.querySelectorAll("#change-form button");
  buttons.forEach((b) => (b.disabled = true));
  try {
    const { ok, answer } = await api(path, { method: "POST", body: JSON.stringify(body) });
    if (!ok) {
      const error = answer.error || "refused";
      $("form-error").textContent = error.startsWith("refused") ? error : `Refused, nothing changed: ${error}`;
      return;
    }
    const made = answer.live ? `${answer.live} is live` : answer.candidate
      ? `${answer.candidate} runs in shadow` : `${answer.discarded} discarded`;
    $("form-message").textContent = answer.changes && Object.keys(answer.changes).length
      ? `${made}: ${changesText(answer.changes)}` : made;
    $("threshold-value").value = "";
    $("change-reason").value = "";
    $("rollback-version").value = "";
    await refresh();
  } catch (err) {
    $("form-error").textContent = `Could not reach the console: ${err.message || err}`;
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

function change(path, withChanges) {
  const body = { reason: $("change-reason").value };
  if (withChanges) body.changes = { [$("threshold-key").value]: $("threshold-value").value };
  return send(path, body);
}

function wireChangeForm() {
  $("set-live").addEventListener("click", () => change("/api/thresholds", true));
  $("try-shadow").addEventListener("click", () => change("/api/shadow", true));
  $("promote").addEventListener("click", () => change("/api/promote", false));
  $("discard").addEventListener("click", () => change("/api/discard", false));
  $("rollback").addEventListener("click", () =>
    send("/api/rollback", { version: $("rollback-version").value, reason: $("change-reason").value }));
  // Enter in a field must not make a live change: only the buttons act.
  $("change-form").addEventListener("submit", (e) => e.preventDefault());
  $("threshold-key").addEventListener("change", describeKey);
  $("thresholds").tBodies[0].addEventListener("click", (e) => {
    const tr = e.target.closest("tr");
    if (!tr || !tr.dataset.key) return;
    $("threshold-key").value = tr.dataset.key;
    describeKey();
    $("threshold-value").focus();
  });
}

// --- the collections queue ------------------------------------------------------------------

function queueQuery() {
  const params = new URLSearchParams();
  const borrower = $("queue-borrower").value.trim();
  if (borrower) params.set("borrower", borrower);
  if ($("queue-min-score").value) params.set("min_score", $("queue-min-score").value);
  if ($("queue-due-within").value) params.set("due_within", $("queue-due-within").value);
  return params.toString();
}

function renderQueue(q) {
  fill("queue", q.rows.map((r) => {
    const open = r.open_installments || [];
    const next = open.filter((i) => i.due_date === r.next_due);
    const dueAmount = next.reduce((sum, i) => sum + Number(i.amount_due || 0) - Number(i.paid || 0), 0);
    const risk = cell(r.score.toFixed(2), "num");
    const bar = document.createElement("span");
    bar.className = "score-bar";
    bar.style.width = `${Math.round(r.score * 40)}px`;
    risk.appendChild(bar);
    const last = r.last_alert;
    const lastCell = last
      ? linkCell(`${last.severity} ${short(last.ts).slice(0, 10)}: ${(last.reasons || []).join("; ")}`,
        alertHref(last.alert_id))
      : cell("none yet", "empty");
    const assessed = r.scored_at ? `${short(r.scored_at)} (${r.scored_installment || ""})` : "";
    return row([cell(r.borrower_id, "mono"), risk, cell(assessed, "mono"), cell(open.length, "num"),
      cell(r.next_due || "", "mono"), cell(next.length ? dueAmount.toFixed(2) : "", "num"), lastCell]);
  }), "no borrower with open installments matches", 7);
  $("queue-note").textContent =
    `${q.shown} of the ${q.read} riskiest borrowers with open installments, riskiest first`;
}

async function loadQueue() {
  clearTimeout(queueTimer);
  if (currentView() !== "queue") return;
  try {
    const { ok, answer } = await api(`/api/queue?${queueQuery()}`);
    if (!ok) $("queue-note").textContent = answer.error;
    else if (changed("queue", answer)) renderQueue(answer);
  } catch (err) {
    $("queue-note").textContent = `console unreachable: ${err.message || err}`;
  }
  queueTimer = setTimeout(loadQueue, 3000);
}

// --- an alert's page ------------------------------------------------------------------------

function fact(list, name, value) {
  if (value == null || value === "") return;
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  if (value instanceof Node) dd.appendChild(value); else dd.textContent = String(value);
  list.append(dt, dd);
}

const shown = (value) => (value == null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value));

function renderAlert(view) {
  const a = view.alert;
  const title = $("alert-title");
  title.replaceChildren();
  const sev = document.createElement("span");
  sev.className = `sev sev-${a.severity}`;
  sev.textContent = a.severity;
  const what = document.createElement("span");
  what.textContent = `${a.detector} · score ${Number(a.score).toFixed(2)} · ${a.borrower_id}`;
  title.append(sev, what);
  $("alert-error").textContent = view.error || "";
  const facts = $("alert-facts");
  facts.replaceChildren();
  fact(facts, "alert id", a.alert_id);
  fact(facts, "topic", `${a.topic} (${a.category})`);
  fact(facts, "borrower", a.borrower_id);
  fact(facts, "event time", a.ts);
  fact(facts, "emitted", a.emitted_at);
  fact(facts, "episode", a.episode);
  if (a.loan_id) fact(facts, "installment", `${a.loan_id} #${a.installment}, due ${a.due_date}`);
  fact(facts, "detector version", a.detector_version);
  fact(facts, "thresholds version", a.thresholds_version);
  fill("alert-reasons", (a.reasons || []).map((r) => row([cell(r.code, "mono"), cell(r.message),
    cell(shown(r.observed), "mono"), cell(shown(r.threshold), "mono")])), "no reasons", 4);
  const evidence = (a.evidence || []).map((id) => {
    const li = document.createElement("li");
    li.className = "mono";
    li.textContent = id;
    return li;
  });
  $("alert-evidence").replaceChildren(...evidence);
  $("evidence-note").textContent = `${evidence.length} event(s) behind the alert, as published (masked)`;
  const t = view.thresholds;
  fill("alert-thresholds", t ? Object.entries(t).map(([k, v]) => row([cell(k, "mono"), cell(v, "mono")])) : [],
    "not available", 2);
  $("alert-thresholds-note").textContent = `of ${a.detector} in ${a.thresholds_version}`;
  fill("alert-history", view.history.map((h) => row([linkCell(short(h.ts), alertHref(h.alert_id), "mono"),
    severity(h.severity), cell(h.detector), cell(Number(h.score).toFixed(2), "num"),
    cell(h.reasons.join("; "))])), "no other alert of this borrower", 5);
  $("alert-history-note").textContent = view.history_complete
    ? "newest first, as far as the console has read"
    : "the console no longer holds this alert in memory: the history may be partial";
  fill("alert-verdicts", view.verdicts.map((v) => row([cell(short(v.ts), "mono"),
    cell(v.verdict, "action"), cell(v.author), cell(v.note)])), "no verdict yet", 4);
  $("alert-next").replaceChildren(...view.next_steps.map((step) => {
    const li = document.createElement("li");
    li.textContent = step;
    return li;
  }));
}

async function loadAlert(id) {
  clearTimeout(alertTimer);
  try {
    const { ok, answer } = await api(`/api/alerts/${encodeURIComponent(id)}`);
    if (!ok) {
      $("alert-title").textContent = answer.error;
      return;
    }
    if (changed("alert", answer)) renderAlert(answer);
  } catch (err) {
    $("alert-title").textContent = `console unreachable: ${err.message || err}`;
  }
  alertTimer = setTimeout(() => currentView() === "alert" && loadAlert(id), 3000);
}

async function giveVerdict(verdict) {
  $("verdict-error").textContent = "";
  $("verdict-message").textContent = "";
  const id = decodeURIComponent(location.hash.slice("#/alert/".length));
  const buttons = document.querySelectorAll("#verdict-card button");
  buttons.forEach((b) => (b.disabled = true));
  try {
    const body = JSON.stringify({ verdict, note: $("verdict-note").value });
    const { ok, answer } = await api(`/api/alerts/${encodeURIComponent(id)}/verdict`, { method: "POST", body });
    if (!ok) {
      $("verdict-error").textContent = answer.error;
      return;
    }
    $("verdict-message").textContent = `${answer.sent.verdict} by ${answer.sent.author}, sent to ${answer.topic}`;
    $("verdict-note").value = "";
    await loadAlert(id);
  } catch (err) {
    $("verdict-error").textContent = `Could not reach the console: ${err.message || err}`;
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

// --- views and who is signed in -------------------------------------------------------------

function currentView() {
  const hash = location.hash || "#/";
  if (hash.startsWith("#/alert/")) return "alert";
  if (hash === "#/queue") return "queue";
  return "overview";
}

function route() {
  const view = currentView();
  ["overview", "queue", "alert"].forEach((name) => ($(`view-${name}`).hidden = name !== view));
  $("nav-overview").className = view === "overview" ? "current" : "";
  $("nav-queue").className = view === "queue" ? "current" : "";
  delete drawn[view];
  if (view === "queue") loadQueue();
  if (view === "alert") loadAlert(decodeURIComponent(location.hash.slice("#/alert/".length)));
}

function applyRoles() {
  $("user-name").textContent = me.name;
  $("user-roles").textContent = me.roles.join(", ") || "no role";
  $("sign-out").hidden = me.via !== "password";
  $("read-only").hidden = !me.read_only;
  $("read-only").textContent = me.read_only || "";
  // What a role may not do is not on the page at all (and the console refuses it anyway).
  if (!may("tune")) $("change-card").remove(); else { $("change-as").textContent = me.name; wireChangeForm(); }
  if (!may("verdict")) $("verdict-card").remove();
  else ["confirmed", "dismissed", "duplicate"].forEach((v) =>
    $(`verdict-${v}`).addEventListener("click", () => giveVerdict(v)));
}

// Nobody (with a role) is signed in: the page says why and shows nothing else.
function refused(message) {
  setStatus(message);
  const banner = document.createElement("div");
  banner.className = "banner";
  banner.id = "refused";
  banner.textContent = message;
  document.querySelector("main").replaceChildren(banner);
  $("user").replaceChildren();
  document.querySelector("header nav").replaceChildren();
}

async function start() {
  try {
    const { ok, answer } = await api("/api/me");
    if (!ok) {
      refused(answer.error);
      return;
    }
    me = answer;
  } catch (err) {
    refused(`${err.message || err}`);
    return;
  }
  applyRoles();
  $("sign-out").addEventListener("click", async () => {
    await api("/api/logout", { method: "POST", body: "{}" });
    window.location.href = "/login";
  });
  $("threshold-filter").addEventListener("input",
    () => state && state.thresholds && renderThresholds(state.thresholds));
  ["queue-borrower", "queue-min-score", "queue-due-within"].forEach((id) =>
    $(id).addEventListener("input", loadQueue));
  window.addEventListener("hashchange", route);
  route();
  poll();
}

start();
