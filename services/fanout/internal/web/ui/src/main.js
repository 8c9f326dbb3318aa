// Playpulse dashboard. Protocol: docs/protocol.md; figures: docs/metrics.md;
// how the page works: docs/dashboard.md.
//
// Rules: event data is only written with textContent (never parsed as
// HTML); messages only update in-memory state, and the DOM is written once
// per animation frame; every structure has a fixed size.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { Connection, wsURL } from "./conn.js";
import { SeriesSet, LatencyWindow, Positions, TYPES, SOURCES, PROTOCOL, sourceLabel, normalizeFilter, describeFilter, applyPatch, historyURL, dayWindow, HISTORY_MAX_S, DAY_POINTS, historyShape, historyStore, historyError, SeriesStore } from "./store.js";
import { Tail, MAX_ROWS, ROWS_PER_SECOND } from "./tail.js";
import { Charts } from "./charts.js";
import * as f from "./format.js";
import { shownAlerts, alertText, alertKey, activeAt, firingFor, severityClass, MAX_SHOWN } from "./alerts.js";

const $ = (id) => document.getElementById(id);

const state = {
  hello: null,
  snap: null,           // latest snapshot message
  periodic: null,       // latest periodic snapshot, whole: the base of the next delta
  deltas: 0,            // snapshots received as deltas (shown to tests as data-deltas)
  snapAt: 0,            // Date.now() when it arrived
  stream: "",           // "" = all streams
  source: "",           // "" = all sources; the page shows one stream or one source, not both
  filter: {},           // filter in force (or being applied)
  filterSent: "",       // JSON of the last filter sent
  tailFilter: "{}",     // JSON of the filter the rows of the tail were selected by
  series: new SeriesSet(),
  latency: new LatencyWindow(8192, 30000),
  positions: new Positions(),
  conn: null,
  connState: "connecting",
  connInfo: {},
  streamsKey: "",
  sourcesKey: "",
  skew: NaN,            // server clock − this browser's clock, ms (the snapshots' time, at least)
  alertKeys: new Set(), // the firing alerts shown, to announce new ones
  history: null,        // a past hour or the last 24 hours on the charts: {kind, body, store, empty, end, askedAt}; null when live
};

const tail = new Tail($("tail"));
const charts = new Charts(document);

// ---- rendering, batched to animation frames -------------------------------
//
// Messages only change state. A 2 Hz pulse asks for an animation frame: the
// tail is drawn on every pulse, everything else (KPIs, charts, breakdowns,
// freshness, latency) on every second one, in the same frame, so the page
// renders at most about twice a second whatever arrives. User actions
// render at once (renderSoon).

const PULSE_MS = 500;
let frameRequested = false;
let pulse = 0;
let slowDue = true;   // the 1 Hz work is due in the next frame
let dirtySnap = false;
let dirtyCharts = false;

function requestFrame() {
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(render);
  }
}

/** renderSoon draws everything in the next frame (after a user action or a state change). */
function renderSoon() {
  slowDue = true;
  requestFrame();
}

setInterval(() => {
  if (++pulse % 2 === 0) slowDue = true;
  if (slowDue || tail.pending) requestFrame();
}, PULSE_MS);

function render() {
  frameRequested = false;
  if (slowDue) {
    slowDue = false;
    if (dirtySnap) {
      dirtySnap = false;
      renderKPIs();
      renderStreams();
      renderSources();
      renderBreakdowns();
    }
    renderFreshness();
    renderAlerts(); // every second: "for N s" counts on between snapshots
    renderLatency();
    if (dirtyCharts) {
      dirtyCharts = false;
      if (state.history) drawHistory();
      else charts.draw(state.series.store(state.stream, state.source), state.series.second);
    }
    renderTailStats();
  }
  tail.render();
}

// ---- KPIs -------------------------------------------------------------------

const kpiCache = new Map();

// A KPI is its number in large type and its unit in small type: two text
// nodes made once per tile and rewritten in place.
const kpiNodes = new Map();

// The cache key is the text and the data value together: two figures can
// read the same ("1.75 Mbps" for 1749 and 1750 kbps, as when the scope
// changes), and data-value must still be the figure shown.
function setKPI(id, value, formatted) {
  const data = f.ok(value) ? String(value) : "";
  const key = formatted + "\u0000" + data;
  if (kpiCache.get(id) === key) return;
  kpiCache.set(id, key);
  const el = $(id);
  let n = kpiNodes.get(id);
  if (!n) {
    const unit = document.createElement("span");
    unit.className = "unit";
    n = { num: document.createTextNode(""), unit: document.createTextNode("") };
    unit.appendChild(n.unit);
    el.replaceChildren(n.num, unit);
    kpiNodes.set(id, n);
  }
  const sp = formatted.lastIndexOf(" ");
  n.num.data = sp > 0 ? formatted.slice(0, sp) : formatted;
  n.unit.data = sp > 0 ? formatted.slice(sp) : "";
  el.dataset.value = data;
}

function qoe() {
  const s = state.snap;
  if (!s) return null;
  if (state.source) return s.by_source && s.by_source[state.source] ? s.by_source[state.source] : null;
  if (state.stream) return s.by_stream && s.by_stream[state.stream] ? s.by_stream[state.stream] : null;
  return s.overall || null;
}

/** scopeText says what the figures cover: everything, one stream or one source. */
function scopeText() {
  if (state.source) return "source " + state.source;
  return state.stream ? "stream " + state.stream : "all streams";
}

function renderKPIs() {
  const s = state.snap;
  const q = qoe() || {};
  setKPI("kpi-ccv", q.concurrent_viewers, f.int(q.concurrent_viewers));
  setKPI("kpi-sps", q.sps, f.num(q.sps));
  setKPI("kpi-startup-p50", q.startup_p50_ms, f.ms(q.startup_p50_ms));
  setKPI("kpi-startup-p95", q.startup_p95_ms, f.ms(q.startup_p95_ms));
  setKPI("kpi-rebuffer", q.rebuffer_pct, f.pct(q.rebuffer_pct));
  setKPI("kpi-vsf", q.start_failure_pct, f.pct(q.start_failure_pct));
  setKPI("kpi-vpf", q.playback_failure_pct, f.pct(q.playback_failure_pct));
  setKPI("kpi-bitrate", q.avg_bitrate_kbps, f.kbps(q.avg_bitrate_kbps));
  // Events/s: the snapshot's 10-second figure for everything, the stream's or source's window figure otherwise.
  const rate = state.stream || state.source ? q.events_per_second : s && s.events_per_second;
  setKPI("kpi-rate", rate, f.num(rate));
  const w = s && f.ok(s.window_s) ? s.window_s : 60;
  setText($("kpi-scope"), scopeText() + ", last " + w + " s");
}

function renderLatency() {
  const [p50, p99] = state.latency.percentiles(Date.now(), [0.5, 0.99]);
  setKPI("kpi-lat-p50", p50, f.ms(p50));
  setKPI("kpi-lat-p99", p99, f.ms(p99));
}

// ---- header: stream and source selectors, connection, freshness ---------

const streamSel = $("stream");
const sourceSel = $("source");

/**
 * renderOptions fills a selector with "All …" and the names the snapshot
 * lists (at most max), keeping the current choice; only when the list
 * changed. Option(text, value): text, never markup.
 */
function renderOptions(sel, list, max, current, all, label, key) {
  const names = Array.isArray(list) ? list.filter((n) => typeof n === "string").slice(0, max) : [];
  if (current && !names.includes(current)) names.push(current);
  const k = names.join("\u0000");
  if (k === state[key]) return;
  state[key] = k;
  sel.replaceChildren(new Option(all, ""), ...names.map((n) => new Option(label(n), n)));
  sel.value = current;
}

// With a past hour on the charts, the selectors also list that hour's
// streams and sources (ones that are gone by now included).
function withHistory(list, key) {
  const ser = state.history && state.history.body && state.history.body.series;
  const more = ser && ser[key] && typeof ser[key] === "object" ? Object.keys(ser[key]) : [];
  if (!more.length) return list;
  const names = Array.isArray(list) ? list.slice() : [];
  for (const n of more) if (!names.includes(n)) names.push(n);
  return names;
}

function renderStreams() {
  renderOptions(streamSel, withHistory(state.snap && state.snap.streams, "streams"), 200, state.stream, "All streams", String, "streamsKey");
}

function renderSources() {
  renderOptions(sourceSel, withHistory(state.snap && state.snap.sources, "sources"), 8, state.source, "All sources", sourceLabel, "sourcesKey");
}

// The figures are kept per stream and per source, not per stream and
// source together (docs/metrics.md): choosing one clears the other.
function setScope(stream, source) {
  state.stream = stream;
  state.source = source;
  streamSel.value = stream;
  sourceSel.value = source;
  $("chart-scope").textContent = scopeText();
  if (state.history) scopeHistory();
  dirtySnap = true;
  dirtyCharts = true;
  applyFilter();
  renderSoon();
}

streamSel.addEventListener("change", () => setScope(streamSel.value, ""));
sourceSel.addEventListener("change", () => setScope("", sourceSel.value));

function renderStatus() {
  const st = state.connState;
  const el = $("status");
  let text = "Connecting…";
  const left = f.ok(state.connInfo.retryAt) ? Math.max(0, Math.ceil((state.connInfo.retryAt - performance.now()) / 1000)) : 0;
  if (st === "live") text = "Live";
  else if (st === "offline") text = f.ok(state.connInfo.retryAt) ? (left > 0 ? "Offline · retry in " + left + " s" : "Offline · retrying…") : "Offline";
  else if (st === "reconnecting") text = left > 0 ? "Reconnecting in " + left + " s" : "Reconnecting…";
  el.dataset.state = st;
  $("status-text").textContent = text;
  el.title = state.connInfo.reason || "";
  $("retry").hidden = !(st === "reconnecting" || st === "offline");
}

let countdown = 0;

const announced = { live: "Connected, live", reconnecting: "Connection lost, reconnecting", offline: "Offline", connecting: "Connecting" };

function onConnState(st, info) {
  // Screen readers hear state changes, not the countdown.
  if (st !== state.connState || !$("status-announce").textContent) setText($("status-announce"), announced[st] || st);
  state.connState = st;
  state.connInfo = info;
  clearInterval(countdown);
  if (f.ok(info.retryAt)) countdown = setInterval(renderStatus, 250);
  if (st !== "live" && state.hello) {
    state.hello = null;
  }
  renderStatus();
  renderFreshness();
}

$("retry").addEventListener("click", () => state.conn.retryNow());

const BEHIND_S = 5;

function renderFreshness() {
  const el = $("freshness");
  const banner = $("stale");
  const s = state.snap;
  if (!s) {
    el.textContent = state.connState === "live" ? "Waiting for the first snapshot…" : "No data yet";
    el.dataset.state = "none";
    return;
  }
  const now = Date.now();
  const src = s.source && typeof s.source === "object" ? s.source : null;
  let srcState = src && typeof src.state === "string" ? src.state : "live";
  if (s.stale === true) srcState = "stale";
  const parts = [];
  parts.push("Kafka " + srcState.replace("_", " "));
  if (src && f.ok(src.lag)) parts.push("lag " + f.int(src.lag) + " records");
  if (f.ok(s.latest_kafka_ts) && s.latest_kafka_ts > 0) parts.push("newest event " + f.ago((now - s.latest_kafka_ts) / 1000));
  if (f.ok(s.events_total)) parts.push(f.int(s.events_total) + " events");
  const snapAge = (now - state.snapAt) / 1000;
  if (state.connState !== "live") parts.push("figures from " + f.ago(snapAge));
  el.textContent = parts.join(" · ");
  el.dataset.state = srcState;
  el.dataset.eventsTotal = f.ok(s.events_total) ? String(s.events_total) : "";
  el.dataset.deltas = String(state.deltas);

  let msg = "";
  const since = src && f.ok(src.since) ? " since " + f.clock(src.since).slice(0, 8) : "";
  const why = src && typeof src.message === "string" && src.message ? ": " + src.message : "";
  // Behind: a live source whose backlog is more than BEHIND_S seconds of its own rate.
  const rate = f.ok(s.events_per_second) ? s.events_per_second : 0;
  const behindS = src && f.ok(src.lag) && rate > 0 ? src.lag / rate : 0;
  if (srcState === "stale") msg = "Kafka cannot be read" + since + why + ". The figures are the last ones the fan-out had.";
  else if (srcState === "catching_up") msg = "Catching up: the fan-out is replaying recent history" + (src && f.ok(src.lag) ? ", " + f.int(src.lag) + " records behind" : "") + ".";
  else if (srcState === "connecting") msg = "The fan-out has not reached Kafka yet" + why + ".";
  else if (behindS > BEHIND_S) {
    srcState = "behind";
    el.dataset.state = srcState;
    msg = "Behind Kafka: " + f.int(src.lag) + " records not read yet (about " + Math.round(behindS) + " s of events). The figures lag by that much.";
  }
  if (banner.textContent !== msg) banner.textContent = msg;
  banner.hidden = msg === "";
  banner.dataset.state = srcState;
}

// ---- alerts ------------------------------------------------------------------
//
// The firing alerts of the fan-out's rules (src/alerts.js says which are
// shown), one line each above the KPIs: the severity as a word, the
// server's one-line message and how long it has fired, counted here from
// active_at with the server's clock. Lines are made once and rewritten in
// place with textContent: the message carries stream and CDN names from the
// events, never parsed as HTML.

const alertsBox = $("alerts");
const alertLines = []; // { li, sev, msg, dur }
let alertMore = null;

function alertLine(i) {
  while (alertLines.length <= i) {
    const li = document.createElement("li");
    const sev = document.createElement("span");
    sev.className = "sev";
    const msg = document.createElement("span");
    msg.className = "msg";
    const dur = document.createElement("span");
    dur.className = "dur";
    li.append(sev, msg, dur);
    $("alerts-list").insertBefore(li, alertMore);
    alertLines.push({ li, sev, msg, dur });
  }
  return alertLines[i];
}

function renderAlerts() {
  const s = state.snap;
  // A page scoped to a source shows every stream's: alerts are per stream.
  const list = shownAlerts(s && s.alerts, state.source ? "" : state.stream);
  const n = Math.min(list.length, MAX_SHOWN);
  const serverNow = Date.now() + (f.ok(state.skew) ? state.skew : 0);
  const keys = new Set();
  let fresh = "";
  for (let i = 0; i < n; i++) {
    const a = list[i];
    const r = alertLine(i);
    const key = alertKey(a);
    keys.add(key);
    const sev = typeof a.severity === "string" && a.severity ? a.severity : "warning";
    const text = alertText(a);
    const at = activeAt(a);
    if (r.li.dataset.key !== key || r.at !== at) {
      r.li.dataset.key = key;
      r.at = at;
      r.li.title = "rule " + String(a.rule) + (f.ok(at) ? ", firing since " + f.clock(at).slice(0, 8) : "");
    }
    const cls = severityClass(sev);
    if (r.li.dataset.severity !== cls) r.li.dataset.severity = cls;
    setText(r.sev, sev);
    setText(r.msg, text);
    setText(r.dur, firingFor((serverNow - at) / 1000));
    r.li.hidden = false;
    if (!state.alertKeys.has(key) && !fresh) fresh = sev + " alert: " + text;
  }
  for (let i = n; i < alertLines.length; i++) alertLines[i].li.hidden = true;
  if (list.length > n) {
    if (!alertMore) {
      alertMore = document.createElement("li");
      alertMore.className = "more";
      $("alerts-list").appendChild(alertMore);
    }
    setText(alertMore, "and " + (list.length - n) + " more firing (GET /api/alerts lists them all)");
  }
  if (alertMore) alertMore.hidden = list.length <= n;
  alertsBox.hidden = n === 0;
  alertsBox.dataset.count = String(list.length);
  // Screen readers hear an alert that starts firing, not the counting.
  if (fresh) setText($("alerts-announce"), fresh);
  state.alertKeys = keys;
}

// ---- breakdowns -----------------------------------------------------------

class RowPool {
  constructor(tbody, cols) {
    this.tbody = tbody;
    this.cols = cols;
    this.rows = [];
  }

  /** row i, created on first use; rows past n are hidden. */
  row(i) {
    while (this.rows.length <= i) {
      const tr = document.createElement("tr");
      const c = [];
      for (let k = 0; k < this.cols; k++) {
        const td = document.createElement(k === 0 ? "th" : "td");
        if (k === 0) td.scope = "row";
        tr.appendChild(td);
        c.push(td);
      }
      this.tbody.appendChild(tr);
      this.rows.push({ tr, c });
    }
    return this.rows[i];
  }

  trim(n) {
    for (let i = 0; i < this.rows.length; i++) this.rows[i].tr.hidden = i >= n;
  }
}

function setText(el, s) {
  if (el.textContent !== s) el.textContent = s;
}

const pools = {
  source: new RowPool($("bd-source").tBodies[0], 6),
  device: new RowPool($("bd-device").tBodies[0], 6),
  cdn: new RowPool($("bd-cdn").tBodies[0], 6),
  country: new RowPool($("bd-country").tBodies[0], 6),
  titles: new RowPool($("top-titles").tBodies[0], 3),
};

function renderBreakdown(pool, m, limit) {
  const entries = [];
  if (m && typeof m === "object") for (const k in m) if (m[k] && typeof m[k] === "object") entries.push([k, m[k]]);
  entries.sort((a, b) => (b[1].concurrent_viewers || 0) - (a[1].concurrent_viewers || 0) || (a[0] < b[0] ? -1 : 1));
  const n = Math.min(limit, entries.length);
  for (let i = 0; i < n; i++) {
    const [name, q] = entries[i];
    const r = pool.row(i);
    setText(r.c[0], name);
    setText(r.c[1], f.int(q.concurrent_viewers));
    setText(r.c[2], f.ms(q.startup_p50_ms));
    setText(r.c[3], f.pct(q.rebuffer_pct));
    setText(r.c[4], f.pct(q.start_failure_pct));
    setText(r.c[5], f.kbps(q.avg_bitrate_kbps));
    for (let k = 1; k < 6; k++) r.c[k].className = "num";
  }
  pool.trim(n);
  if (n === 0) {
    const r = pool.row(0);
    setText(r.c[0], "no data");
    for (let k = 1; k < pool.cols; k++) setText(r.c[k], "");
    r.tr.hidden = false;
  }
}

function renderBreakdowns() {
  const s = state.snap;
  if (!s) return; // a selector changed before the first snapshot
  renderBreakdown(pools.source, s.by_source, 8);
  renderBreakdown(pools.device, s.by_device, 16);
  renderBreakdown(pools.cdn, s.by_cdn, 16);
  renderBreakdown(pools.country, s.by_country, 10);
  const titles = Array.isArray(s.top_titles) ? s.top_titles.slice(0, 10) : [];
  let max = 1;
  for (const t of titles) if (t && f.ok(t.concurrent_viewers)) max = Math.max(max, t.concurrent_viewers);
  for (let i = 0; i < titles.length; i++) {
    const t = titles[i] || {};
    const r = pools.titles.row(i);
    if (!r.bar) {
      r.c[0].className = "num";
      r.c[2].className = "num";
      r.name = document.createTextNode("");
      r.bar = document.createElement("span");
      r.bar.className = "bar";
      r.bar.setAttribute("aria-hidden", "true");
      r.c[1].append(r.name, r.bar);
    }
    setText(r.c[0], String(i + 1));
    const name = typeof t.movie_id === "string" ? t.movie_id : "";
    if (r.name.data !== name) r.name.data = name;
    setText(r.c[2], f.int(t.concurrent_viewers));
    r.bar.style.width = (100 * (f.ok(t.concurrent_viewers) ? t.concurrent_viewers : 0)) / max + "%"; // CSSOM, allowed by the CSP
  }
  pools.titles.trim(titles.length);
  if (!titles.length) {
    const r = pools.titles.row(0);
    setText(r.c[0], "");
    if (r.name) r.name.data = "no data"; else setText(r.c[1], "no data");
    setText(r.c[2], "");
    r.tr.hidden = false;
  }
}

// ---- live tail: filters, pause, stats --------------------------------------

const form = $("filters");
const typeBoxes = $("type-boxes");
for (const t of TYPES) {
  const label = document.createElement("label");
  label.className = "type-box";
  const cb = document.createElement("input");
  cb.type = "checkbox";
  cb.name = "types";
  cb.value = t;
  const sw = document.createElement("span");
  sw.className = "type t-" + t;
  sw.textContent = t;
  label.append(cb, sw);
  typeBoxes.appendChild(label);
}

function formFilter() {
  const fd = new FormData(form);
  return normalizeFilter({
    stream: state.stream,
    source: state.source,
    types: fd.getAll("types"),
    movie_id: String(fd.get("movie_id") || ""),
    user_id: String(fd.get("user_id") || ""),
    device: String(fd.get("device") || ""),
  });
}

let filterTimer = 0;
function applyFilterSoon() {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(applyFilter, 150);
}

function applyFilter() {
  clearTimeout(filterTimer);
  state.filter = formFilter();
  saveHash();
  const j = JSON.stringify(state.filter);
  if (j === state.filterSent) return;
  if (state.conn.send({ type: "filter", filter: state.filter })) {
    state.filterSent = j;
    setText($("filter-state"), "Applying: " + describeFilter(state.filter) + "…");
    $("filter-state").dataset.state = "pending";
  }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  applyFilter();
});
form.addEventListener("reset", () => setTimeout(applyFilter, 0));
form.addEventListener("change", (e) => {
  if (e.target.type === "checkbox" || e.target.tagName === "SELECT") applyFilterSoon();
  else applyFilter(); // text fields: on Enter or when focus leaves
});

const pauseBtn = $("pause");
function setPaused(p) {
  tail.setPaused(p);
  pauseBtn.setAttribute("aria-pressed", String(p));
  pauseBtn.textContent = p ? "Resume" : "Pause";
  document.body.classList.toggle("tail-paused", p);
  renderSoon();
}
pauseBtn.addEventListener("click", () => setPaused(!tail.paused));
document.addEventListener("keydown", (e) => {
  if (e.key !== "p" || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
  setPaused(!tail.paused);
});

function renderTailStats() {
  const el = $("tail-stats");
  let s = "newest " + MAX_ROWS + " of " + f.int(tail.received) + " received";
  if (tail.skipped) s += " · " + f.int(tail.skipped) + " skipped by the server's rate cap";
  if (tail.lost) s += " · " + f.int(tail.lost) + " lost";
  if (tail.undrawn) s += " · " + f.int(tail.undrawn) + " not drawn";
  if (tail.paused) s += " · paused, " + f.int(Math.max(0, tail.written - tail.pausedAt)) + " new";
  setText(el, s);
  el.dataset.received = String(tail.received);
  el.dataset.skipped = String(tail.skipped);
}

// ---- URL: the stream and filters survive a reload (wall screens) ----------

function loadHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  state.stream = p.get("stream") || "";
  state.source = SOURCES.includes(p.get("source")) ? p.get("source") : "";
  if (state.source) state.stream = "";
  const types = (p.get("types") || "").split(",").filter((t) => TYPES.includes(t));
  for (const cb of form.querySelectorAll('input[name="types"]')) cb.checked = types.includes(cb.value);
  form.elements.movie_id.value = p.get("movie_id") || "";
  form.elements.user_id.value = p.get("user_id") || "";
  const dev = p.get("device") || "";
  if (dev && ![...form.elements.device.options].some((o) => o.value === dev)) form.elements.device.add(new Option(dev, dev));
  form.elements.device.value = dev;
  state.filter = formFilter();
  $("chart-scope").textContent = scopeText();
  renderStreams();
  renderSources();
}

function saveHash() {
  const p = new URLSearchParams();
  const fl = state.filter;
  if (fl.stream) p.set("stream", fl.stream);
  if (fl.source) p.set("source", fl.source);
  if (fl.types) p.set("types", fl.types.join(","));
  for (const k of ["movie_id", "user_id", "device"]) if (fl[k]) p.set(k, fl[k]);
  const h = p.toString();
  if (h !== location.hash.slice(1)) history.replaceState(null, "", h ? "#" + h : location.pathname + location.search);
}

// ---- messages -----------------------------------------------------------------

function onHello(hello, reconnect) {
  state.hello = hello;
  state.skew = NaN;
  state.periodic = null;
  document.body.dataset.protocol = String(hello.protocol || "");
  const info = [];
  if (typeof hello.replica === "string" && hello.replica) info.push("replica " + hello.replica);
  info.push("protocol " + (f.ok(hello.protocol) ? hello.protocol : "?"));
  if (f.ok(hello.tail_rate)) info.push("tail ≤ " + f.int(hello.tail_rate) + " events/s");
  // The frame rate adapts between the two (docs/protocol.md); a server
  // before the adaptive rate sends frame_hz alone.
  if (f.ok(hello.frame_hz) && f.ok(hello.max_frame_hz) && hello.max_frame_hz > hello.frame_hz) info.push(hello.frame_hz + "–" + hello.max_frame_hz + " frames/s");
  else if (f.ok(hello.frame_hz)) info.push(hello.frame_hz + " frames/s");
  if (f.ok(hello.snapshot_hz)) info.push(hello.snapshot_hz + " snapshots/s");
  setText($("server-info"), "Connected to the fan-out: " + info.join(" · "));
  if (f.ok(hello.protocol) && hello.protocol > PROTOCOL) reloadForNewer(hello.protocol);
  state.filter = formFilter();
  state.filterSent = "";
  const positions = state.positions.list();
  const canResume = f.ok(hello.protocol) && hello.protocol >= 2;
  if (reconnect && canResume && positions.length) {
    state.conn.send({ type: "resume", positions, filter: state.filter });
    state.filterSent = JSON.stringify(state.filter);
  } else {
    if (Object.keys(state.filter).length) applyFilter();
    else setText($("filter-state"), "Showing every event");
    if (reconnect) {
      tail.addMarker(positions.length ? "Reconnected: events during the outage are not shown (the server cannot resume)" : "Reconnected", "m-gap");
      renderSoon();
    }
  }
}

function onMessage(msg, now) {
  switch (msg.type) {
    case "snapshot":
      state.periodic = msg.full === false ? msg : null;
      onSnapshot(msg, now);
      break;
    case "delta":
      onDelta(msg, now);
      break;
    case "tail":
      onTail(msg, now);
      break;
    case "filter_ok": {
      // The tail starts over when the filter changes (not when a reconnect restates it).
      const fl = msg.filter && typeof msg.filter === "object" ? normalizeFilter(msg.filter) : state.filter;
      const key = JSON.stringify(fl);
      if (key !== state.tailFilter) {
        state.tailFilter = key;
        tail.clear();
        tail.addMarker("Filter: " + describeFilter(fl), "m-filter");
      }
      if (state.filter.source && !fl.source && JSON.stringify(normalizeFilter({ ...fl, source: state.filter.source })) === JSON.stringify(state.filter)) {
        // Our filter came back without its source: a fan-out from before
        // sources (protocol 2 without them) ignores the part it does not know.
        setText($("filter-state"), "This server cannot filter by source: showing " + describeFilter(fl));
        $("filter-state").dataset.state = "error";
      } else {
        setText($("filter-state"), "Showing " + describeFilter(fl));
        $("filter-state").dataset.state = "ok";
      }
      renderSoon();
      break;
    }
    case "gap": {
      const from = f.ok(msg.from_offset) ? f.int(msg.from_offset) : "?";
      const to = f.ok(msg.to_offset) ? f.int(msg.to_offset) : "?";
      const why = { expired: "too old to replay", too_many: "too many to replay", unknown: "not served by this replica" }[msg.reason] || String(msg.reason || "");
      tail.addMarker("Gap: partition " + String(msg.partition) + " offsets " + from + "–" + to + " may be missing (" + why + ")", "m-gap");
      renderSoon();
      break;
    }
    case "resume_ok":
      tail.addMarker("Reconnected: " + f.int(msg.replayed || 0) + " missed events replayed" + (msg.gaps ? ", " + f.int(msg.gaps) + " gaps" : ""), "m-gap");
      setText($("filter-state"), "Showing " + describeFilter(state.filter));
      renderSoon();
      break;
    case "error":
      setText($("filter-state"), "The server refused a request: " + String(msg.message || msg.code || "error"));
      $("filter-state").dataset.state = "error";
      break;
    default:
      break; // unknown messages are ignored (docs/protocol.md)
  }
}

// onDelta rebuilds the periodic snapshot from the one before. The server
// sends a delta only on top of the snapshot it last sent, so a mismatch is
// a bug: starting over (a new connection, a full snapshot) mends it.
function onDelta(msg, now) {
  const base = state.periodic;
  let snap = null;
  if (base && base.version === msg.base) {
    try {
      snap = applyPatch(base, msg.patch);
    } catch {
      snap = null;
    }
  }
  if (!snap) {
    state.periodic = null;
    state.conn.restart("snapshot delta out of step");
    return;
  }
  snap.version = msg.version;
  state.periodic = snap;
  state.deltas++;
  onSnapshot(snap, now);
}

// reloadForNewer loads the page again when the server speaks a newer
// protocol than this page (an old page kept open across an upgrade): the
// server serves the new page. Once per protocol per tab, so that a cached
// old page cannot reload in a loop; then it says so instead.
function reloadForNewer(protocol) {
  const key = "playpulse-reloaded-for-protocol";
  try {
    if (sessionStorage.getItem(key) !== String(protocol)) {
      sessionStorage.setItem(key, String(protocol));
      location.reload();
      return;
    }
  } catch {
    // no sessionStorage: say so below rather than risk a loop
  }
  setText($("server-info"), "This page is older than the server (protocol " + protocol + "): reload it");
}

function onSnapshot(msg, now) {
  const first = !state.snap;
  state.snap = msg;
  state.snapAt = now;
  // The server's clock, for how long alerts have fired: the least delayed
  // snapshot of the connection tells it best (onHello starts over).
  if (f.ok(msg.time) && !(msg.time - now <= state.skew)) state.skew = msg.time - now;
  state.series.mergeSnapshot(msg);
  dirtySnap = true;
  dirtyCharts = true;
  if (first || msg.full === true) renderSoon();
}

// Counts since the last "skipped" marker; a marker is written at most once a second.
const since = { skipped: 0, lost: 0, undrawn: 0, at: 0 };

function onTail(msg, now) {
  const skipped = f.ok(msg.skipped) ? msg.skipped : 0;
  const lost = f.ok(msg.lost) ? msg.lost : 0;
  const replay = msg.replay === true;
  tail.skipped += skipped;
  tail.lost += lost;
  since.skipped += skipped;
  since.lost += lost;
  const evs = Array.isArray(msg.events) ? msg.events : [];
  for (let i = 0; i < evs.length; i++) {
    const it = evs[i];
    if (!it || typeof it !== "object") continue;
    state.positions.see(it.topic, it.partition, it.offset);
    if (!replay && f.ok(it.kafka_ts)) state.latency.add(now, now - it.kafka_ts);
  }
  tail.received += evs.length;
  // Replayed events are all drawn (they fill a gap); live ones within the page's row budget, newest first.
  const keep = replay ? Math.min(evs.length, MAX_ROWS) : tail.admit(evs.length, now);
  since.undrawn += evs.length - keep;
  if ((since.skipped || since.lost || since.undrawn) && now - since.at >= 1000) {
    const parts = [];
    if (since.skipped) parts.push("skipped " + f.int(since.skipped) + " (the server sends at most " + (state.hello && f.ok(state.hello.tail_rate) ? f.int(state.hello.tail_rate) : "its rate") + "/s)");
    if (since.lost) parts.push("lost " + f.int(since.lost) + " (this page fell behind)");
    if (since.undrawn) parts.push(f.int(since.undrawn) + " not drawn (the page draws at most " + ROWS_PER_SECOND + " rows/s)");
    tail.addMarker("⋯ " + parts.join(" · "), "m-skip");
    since.skipped = since.lost = since.undrawn = 0;
    since.at = now;
  }
  for (let i = evs.length - keep; i < evs.length; i++) {
    const it = evs[i];
    if (!it || typeof it !== "object") continue;
    if (replay) it.replay = true;
    tail.addEvent(it, now);
  }
}

// ---- a past hour, the last 24 hours ------------------------------------------------
//
// With the aggregation tier the charts can show any past hour at one point a
// second, or the last 24 hours at one point a minute, read back from the
// aggregates topic by the server (/api/history, docs/tier.md "History").
// The page holds one answer at most; live snapshots keep arriving (KPIs,
// breakdowns, tail) but do not move the charts until "live" is chosen
// again. The section's data-drawn-ms is the time from the request to the
// drawn charts (what make bench measures).

const chartsSection = $("charts-section");
const rangeSel = $("range");
const historyFrom = $("history-from");
const historyStatus = $("history-status");
let historySeq = 0; // the newest request: an older answer arriving later is dropped

// What the page says of each range: what is being read, where nothing was.
const RANGES = {
  hour: { reading: "Reading that hour…", within: "in that hour" },
  day: { reading: "Reading the last 24 hours…", within: "in the last 24 hours" },
};

// The captions' "10 s smoothing" is the live and hourly points' window; a
// minute's figures are over the whole minute, so the day's captions say so
// instead of the live text (kept in data-live to come back to).
const smoothingNotes = document.querySelectorAll("#charts-section figcaption small");

function setSmoothingNotes(day) {
  for (const el of smoothingNotes) {
    if (el.dataset.live === undefined) el.dataset.live = el.textContent;
    setText(el, day ? "per minute" : el.dataset.live);
  }
}

// localMinute is a datetime-local value (the browser's time zone) for ms.
function localMinute(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes());
}

function showRange() {
  const hour = rangeSel.value === "hour";
  // The last 24 hours need no start time: choosing them (again) reads them.
  $("history-pick").hidden = !hour;
  $("history-go").hidden = !hour;
  // Only the hour needs the (required) start: a hidden empty one would
  // stop the form from submitting otherwise.
  historyFrom.disabled = !hour;
  if (rangeSel.value === "day") {
    loadHistory();
    return;
  }
  if (!hour) {
    historySeq++;
    state.history = null;
    chartsSection.dataset.range = "live";
    delete chartsSection.dataset.historyFrom;
    delete chartsSection.dataset.historyTo;
    renderStreams();
    renderSources();
    setText($("charts-range"), "Last 15 minutes");
    setSmoothingNotes(false);
    setText(historyStatus, "");
    dirtyCharts = true;
    renderSoon();
    return;
  }
  // By default the hour that ended a minute ago: complete, and long past
  // the 15 minutes the live charts show.
  if (!historyFrom.value) historyFrom.value = localMinute(Date.now() - 61 * 60 * 1000);
  loadHistory();
}

// serverNow is the server's clock as well as the page knows it (the
// snapshots' time): the server refuses a day that does not end before its
// now, and this browser's clock may run ahead of it.
function serverNow() {
  const now = Date.now();
  return f.ok(state.skew) ? now + state.skew : now;
}

async function loadHistory() {
  const kind = rangeSel.value === "day" ? "day" : "hour";
  let fromS, toS, url, step;
  if (kind === "day") {
    ({ from: fromS, to: toS } = dayWindow(serverNow()));
    step = 60;
    url = historyURL(location, fromS, toS, step);
  } else {
    const at = new Date(historyFrom.value).getTime();
    if (!Number.isFinite(at)) {
      setText(historyStatus, "Choose when the hour starts.");
      return;
    }
    fromS = Math.floor(at / 1000);
    toS = fromS + HISTORY_MAX_S - 1;
    step = 1;
    url = historyURL(location, fromS);
  }
  const seq = ++historySeq;
  const askedAt = performance.now();
  chartsSection.dataset.range = "loading";
  setText(historyStatus, RANGES[kind].reading);
  let body;
  try {
    const res = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!res.ok) {
      const text = await res.text();
      if (seq === historySeq) historyFailed(historyError(res.status, text));
      return;
    }
    body = await res.json();
  } catch (err) {
    if (seq === historySeq) historyFailed("History unavailable: " + (err && err.message ? err.message : String(err)));
    return;
  }
  if (seq !== historySeq) return;
  // A scope without series is drawn as an empty store of the answer's
  // shape, so that the time axis still spans the hour or the day asked for.
  const sh = historyShape(body);
  const points = sh ? sh.points : kind === "day" ? DAY_POINTS : HISTORY_MAX_S;
  const end = sh ? sh.end : Math.floor(toS / step);
  state.history = { kind, body, store: null, empty: new SeriesStore(points, sh ? sh.step : step), end, askedAt };
  scopeHistory();
  renderStreams();
  renderSources();
  chartsSection.dataset.range = kind;
  chartsSection.dataset.historyFrom = String(fromS);
  chartsSection.dataset.historyTo = String(toS);
  setText($("charts-range"), kind === "day" ? "Last 24 hours, one point a minute" : "The hour from " + new Date(fromS * 1000).toLocaleString());
  setSmoothingNotes(kind === "day");
  dirtyCharts = true;
  renderSoon();
}

function historyFailed(msg) {
  state.history = null;
  chartsSection.dataset.range = "error";
  setSmoothingNotes(false); // the live charts are drawn again
  setText(historyStatus, msg);
  dirtyCharts = true;
  renderSoon();
}

// scopeHistory picks the held answer's series of the page's stream or source.
function scopeHistory() {
  const h = state.history;
  h.store = historyStore(h.body, state.stream, state.source);
  setText(historyStatus, h.store ? "" : "Nothing of " + scopeText() + " " + RANGES[h.kind].within + ".");
}

function drawHistory() {
  const h = state.history;
  charts.draw(h.store || h.empty, h.end);
  if (h.askedAt) {
    chartsSection.dataset.drawnMs = String(Math.round(performance.now() - h.askedAt));
    h.askedAt = 0;
  }
}

rangeSel.addEventListener("change", showRange);
$("range-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (rangeSel.value !== "live") loadHistory();
});

// ---- start ------------------------------------------------------------------------

loadHash();
state.conn = new Connection({ url: wsURL(location), onMessage, onState: onConnState, onHello });
state.conn.start();
renderStatus();
