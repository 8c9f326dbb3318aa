// The live event tail. A fixed ring of MAX_ROWS entries (events and
// markers) is the model; MAX_ROWS table rows are created once and recycled,
// and only rows for new entries are written, once per animation frame.
// Event fields are only ever written with textContent.
import { typeColor, TYPE_COLORS } from "./store.js";
import * as f from "./format.js";

export const MAX_ROWS = 50;
/**
 * The page draws at most ROWS_PER_SECOND events (a token bucket with a
 * burst of ROWS_BURST): faster than anyone reads, and a fixed cost whatever
 * the server sends. Events over it are counted as "not drawn".
 */
export const ROWS_PER_SECOND = 15;
export const ROWS_BURST = 8;
const NCOLS = 12;

/** Entry kinds. */
const EVENT = 1, MARKER = 2;

function text(v) {
  return typeof v === "string" ? v : v == null ? "" : String(v);
}

export class Tail {
  /**
   * @param {HTMLTableSectionElement} tbody
   */
  constructor(tbody) {
    this.tbody = tbody;
    tbody.addEventListener("mouseover", (e) => {
      const tr = e.target instanceof Element ? e.target.closest("tr") : null;
      const row = tr && rowOf.get(tr);
      if (row && row.item && !tr.title) tr.title = title(row.item);
    });
    this.ring = new Array(MAX_ROWS);
    for (let i = 0; i < MAX_ROWS; i++) this.ring[i] = { kind: 0, item: null, receivedAt: 0, text: "", cls: "" };
    this.written = 0;   // entries ever written to the ring
    this.drawn = 0;     // entries drawn into the table
    this.rows = [];     // rows in table order, newest first
    this.free = [];     // rows removed from the table, for reuse
    this.paused = false;
    this.pausedAt = 0;
    this.received = 0;  // events received on this page
    this.skipped = 0;   // events the server did not send (rate cap)
    this.lost = 0;      // events the server dropped for this page (slow page)
    this.undrawn = 0;   // events received but not drawn (over ROWS_PER_SECOND)
    this.tokens = ROWS_BURST;
    this.tokensAt = 0;
  }

  /** admit returns how many of n new events to draw (the newest ones). */
  admit(n, now) {
    if (this.tokensAt) this.tokens = Math.min(ROWS_BURST, this.tokens + ((now - this.tokensAt) * ROWS_PER_SECOND) / 1000);
    this.tokensAt = now;
    const k = Math.min(n, Math.floor(this.tokens));
    this.tokens -= k;
    this.undrawn += n - k;
    return k;
  }

  next() {
    const e = this.ring[this.written % MAX_ROWS];
    this.written++;
    return e;
  }

  /** addEvent puts a tail item into the ring. */
  addEvent(item, receivedAt) {
    const e = this.next();
    e.kind = EVENT;
    e.item = item;
    e.receivedAt = receivedAt;
  }

  /** addMarker puts an informational row into the ring. */
  addMarker(msg, cls) {
    const e = this.next();
    e.kind = MARKER;
    e.item = null;
    e.text = msg;
    e.cls = cls || "";
  }

  /** clear empties the table (a new filter): the ring starts over. */
  clear() {
    for (const r of this.rows) this.free.push(r);
    this.rows.length = 0;
    this.tbody.replaceChildren();
    for (const e of this.ring) { e.kind = 0; e.item = null; }
    this.written = 0;
    this.drawn = 0;
  }

  setPaused(p) {
    if (p === this.paused) return;
    this.paused = p;
    if (p) {
      this.pausedAt = this.written;
      return;
    }
    const missed = this.written - this.pausedAt - MAX_ROWS;
    if (missed > 0) this.addMarker("Paused: " + f.int(missed) + " older entries were not shown", "m-pause");
    this.redrawAll();
  }

  /** pending is the number of entries waiting to be drawn. */
  get pending() {
    return this.paused ? 0 : this.written - this.drawn;
  }

  redrawAll() {
    for (const r of this.rows) this.free.push(r);
    this.rows.length = 0;
    this.tbody.replaceChildren();
    this.drawn = Math.max(0, this.written - MAX_ROWS);
    this.render();
  }

  /** render draws the entries written since the last render; call it from requestAnimationFrame. */
  render() {
    if (this.paused) return;
    const n = Math.min(this.written - this.drawn, MAX_ROWS);
    if (n <= 0) return;
    const tb = this.tbody;
    if (n === MAX_ROWS && this.rows.length === MAX_ROWS) {
      // Everything is new: refill in place, no row moves.
      for (let k = 0; k < MAX_ROWS; k++) this.fill(this.rows[k], this.ring[(this.written - 1 - k) % MAX_ROWS]);
    } else {
      // Move the oldest rows to the top (or make new ones), oldest new entry first.
      const frag = document.createDocumentFragment();
      const fresh = [];
      for (let k = 0; k < n; k++) {
        let row;
        if (this.rows.length + fresh.length < MAX_ROWS) row = this.free.pop() || makeRow();
        else row = this.rows.pop();
        this.fill(row, this.ring[(this.written - 1 - k) % MAX_ROWS]);
        fresh.push(row);
        frag.appendChild(row.tr);
      }
      tb.insertBefore(frag, tb.firstChild);
      this.rows = fresh.concat(this.rows);
    }
    this.drawn = this.written;
  }

  fill(row, e) {
    if (e.kind === MARKER) {
      if (row.kind !== MARKER) {
        row.kind = MARKER;
        for (let i = 1; i < NCOLS; i++) row.t[i].data = "";
        row.type = "";
        if (row.tr.title) row.tr.removeAttribute("title");
      }
      const cls = "marker " + e.cls;
      if (row.tr.className !== cls) row.tr.className = cls;
      set(row.t[0], e.text);
      row.item = null;
      return;
    }
    if (row.kind !== EVENT) {
      row.kind = EVENT;
      row.tr.className = "ev";
    }
    const it = e.item;
    row.item = it;
    if (row.tr.title) row.tr.removeAttribute("title"); // set again on hover (see title)
    const ev = it.event && typeof it.event === "object" ? it.event : {};
    const type = text(ev.event_type);
    set(row.t[0], f.clock(Date.parse(ev.ts)));
    if (row.type !== type) {
      row.type = type;
      row.t[1].data = type;
      if (TYPE_COLORS[type]) {
        row.badge.className = "type t-" + type;
        row.badge.style.removeProperty("background-color");
      } else {
        row.badge.className = "type t-other";
        row.badge.style.backgroundColor = typeColor(type); // CSSOM: allowed by the CSP
      }
    }
    set(row.t[2], text(ev.movie_id));
    set(row.t[3], text(ev.user_id));
    set(row.t[4], f.position(ev.position_seconds));
    set(row.t[5], text(ev.device));
    set(row.t[6], ev.bitrate_kbps ? f.kbps(ev.bitrate_kbps) : f.NONE);
    set(row.t[7], details(ev));
    set(row.t[8], geo(ev));
    set(row.t[9], text(ev.stream));
    set(row.t[10], sourceOf(ev));
    set(row.t[11], typeof it.kafka_ts === "number" && !it.replay ? f.ms(e.receivedAt - it.kafka_ts) : f.NONE);
  }
}

/** set changes a text node only when its text changes. */
function set(node, s) {
  if (node.data !== s) node.data = s;
}

/** title describes the event of a row; shown on hover only, so it costs nothing per row. */
export function title(it) {
  const ev = it && it.event && typeof it.event === "object" ? it.event : {};
  return "session " + text(ev.session_id) + " · seq " + text(ev.seq) + " · " + text(it.topic) + "/" + text(it.partition) + " @" + text(it.offset);
}

// Each cell holds one Text node that is updated in place: no nodes are
// created or collected while the tail runs.
function makeRow() {
  const tr = document.createElement("tr");
  const c = [];
  const t = [];
  for (let i = 0; i < NCOLS; i++) {
    const td = document.createElement("td");
    const node = document.createTextNode("");
    tr.appendChild(td);
    c.push(td);
    t.push(node);
  }
  const badge = document.createElement("span");
  badge.className = "type";
  badge.appendChild(t[1]);
  c[1].appendChild(badge);
  for (let i = 0; i < NCOLS; i++) if (i !== 1) c[i].appendChild(t[i]);
  c[4].className = c[6].className = c[11].className = "num";
  const row = { tr, c, t, badge, kind: 0, type: "", item: null };
  rowOf.set(tr, row);
  return row;
}

const rowOf = new WeakMap(); // tr → row, for the hover title

/** details renders the fields specific to the event type. */
export function details(ev) {
  switch (ev.event_type) {
    case "play":
      return ev.startup_ms != null ? "first frame after " + f.ms(ev.startup_ms) : "resumed";
    case "buffer_end":
      return ev.stall_ms != null ? "stalled " + f.ms(ev.stall_ms) : "";
    case "bitrate_change":
      return f.kbps(ev.prev_bitrate_kbps) + " → " + f.kbps(ev.bitrate_kbps);
    case "seek":
      return f.position(ev.from_seconds) + " → " + f.position(ev.position_seconds);
    case "error":
      return text(ev.error_code) + (ev.fatal === true ? " (fatal)" : ev.fatal === false ? " (recovered)" : "");
    case "stop":
      return text(ev.stop_reason);
    default:
      return "";
  }
}

/** sourceOf is the event's source, "unknown" without one (as the server's by_source names it). */
export function sourceOf(ev) {
  return ev.source == null || ev.source === "" ? "unknown" : text(ev.source);
}

function geo(ev) {
  let s = "";
  for (const v of [ev.country, ev.cdn, ev.network]) {
    if (v == null || v === "") continue;
    s += (s ? " · " : "") + text(v);
  }
  return s;
}
