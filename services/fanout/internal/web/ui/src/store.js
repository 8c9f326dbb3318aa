// Pure state of the dashboard: no DOM here, so node's test runner covers it
// (test/store.test.js). Every structure has a fixed size.

/** Seconds of history the charts show (docs/protocol.md: 15 minutes). */
export const WINDOW = 900;

/** The event types of docs/events.md, in the order of the legend. */
export const TYPES = ["play", "pause", "stop", "seek", "buffer_start", "buffer_end", "start", "bitrate_change", "heartbeat", "error"];

/** Colours of docs/events.md; the first six are the original demo's. */
export const TYPE_COLORS = {
  play: "#22c55e", pause: "#facc15", stop: "#ef4444", seek: "#3b82f6", buffer_start: "#a855f7",
  buffer_end: "#6366f1", start: "#14b8a6", bitrate_change: "#f97316", heartbeat: "#94a3b8", error: "#be123c",
};

/** Event sources (docs/events.md), in the server's order; "unknown": events without one. */
export const SOURCES = ["sim", "cmcd", "beacon", "unknown"];

const SOURCE_LABELS = { sim: "simulator", cmcd: "CMCD players", beacon: "SDK beacons", unknown: "no source" };

/** sourceLabel is the text of a source in the selector: "cmcd (CMCD players)"; other names as they are. */
export function sourceLabel(name) {
  const l = SOURCE_LABELS[name];
  return l ? name + " (" + l + ")" : String(name);
}

/** A stable colour for a type this page does not know yet (a newer server). */
export function typeColor(type) {
  const c = TYPE_COLORS[type];
  if (c) return c;
  let h = 0;
  for (let i = 0; i < type.length; i++) h = (h * 31 + type.charCodeAt(i)) >>> 0;
  return "hsl(" + (h % 360) + " 70% 45%)";
}

/** The protocol this page speaks (docs/protocol.md); it asks the server for it on connecting. */
export const PROTOCOL = 3;

/**
 * applyPatch returns v with the patch of a `delta` message applied, by the
 * rule of docs/protocol.md ("Delta"); v is left as it was, so the previous
 * snapshot stays intact. Throws on an operation it does not know.
 */
export function applyPatch(v, p) {
  if (Array.isArray(p)) {
    if (p.length === 1) return p[0];
    if (p.length === 3 && Array.isArray(v) && Array.isArray(p[2])) return v.slice(p[0], p[0] + p[1]).concat(p[2]);
    throw new Error("unknown delta operation");
  }
  if (p === null || typeof p !== "object") return p;
  const out = {};
  const src = v && typeof v === "object" && !Array.isArray(v) ? v : {};
  for (const k of Object.keys(src)) put(out, k, src[k]);
  for (const k of Object.keys(p)) {
    const op = p[k];
    if (Array.isArray(op) && op.length === 0) delete out[k];
    else put(out, k, applyPatch(src[k], op));
  }
  return out;
}

// put sets a key, a stream named "__proto__" too (plain assignment would
// set the object's prototype instead).
function put(o, k, x) {
  if (k === "__proto__") Object.defineProperty(o, k, { value: x, writable: true, enumerable: true, configurable: true });
  else o[k] = x;
}

/** Per-second series fields of a Series object (docs/protocol.md). */
export const FIELDS = ["attempts", "sps", "concurrent_viewers", "startup_p50_ms", "startup_p95_ms", "rebuffer_pct",
  "avg_bitrate_kbps", "start_failure_pct", "exit_before_start_pct", "playback_failure_pct"];

const MAX_TYPES = 32; // events_by_type keys kept; the protocol has ten

let storeIDs = 0;

/**
 * SeriesStore holds the last window points (WINDOW unless given: a past
 * hour's store holds 3600, the last 24 hours' 1440) of one Series (overall
 * or one stream) in fixed typed arrays indexed by point % window. A point
 * is step seconds (1, or 60 for the last 24 hours): point p is the time
 * from p * step to p * step + step - 1 in Unix seconds, so the store's
 * "seconds" below are minutes in a store of step 60. Points are merged by
 * index: a newer point replaces the old one. Missing values (JSON null)
 * are NaN.
 */
export class SeriesStore {
  constructor(seconds = WINDOW, step = 1) {
    this.id = ++storeIDs;   // tells the charts one store from another
    this.window = seconds;
    this.step = step;       // seconds per point: the charts' time axis is index * step
    this.sec = new Float64Array(seconds).fill(-1);
    this.fields = Object.create(null);
    for (const f of FIELDS) this.fields[f] = new Float64Array(seconds).fill(NaN);
    this.types = new Map(); // type → Float64Array
    this.latest = -1;       // newest second held
    this.version = 0;       // bumped by every merge that changed something
  }

  /**
   * merge adds a Series object whose point i is second start + i; length is
   * the points per array (the longest array when not given).
   */
  merge(start, s, length) {
    if (!s || typeof s !== "object" || !Number.isFinite(start)) return;
    let n = Number.isFinite(length) ? length : 0;
    if (!n) {
      for (const f of FIELDS) if (Array.isArray(s[f])) n = Math.max(n, s[f].length);
      if (s.events_by_type) for (const k in s.events_by_type) if (Array.isArray(s.events_by_type[k])) n = Math.max(n, s.events_by_type[k].length);
    }
    n = Math.min(n, this.window);
    if (n <= 0) return;
    const end = start + n - 1;
    if (end > this.latest) this.latest = end;
    const floor = this.latest - this.window + 1;
    const from = Math.max(start, floor);
    if (from > end) return;
    const fieldArrays = [];
    for (const f of FIELDS) if (Array.isArray(s[f])) fieldArrays.push(this.fields[f], s[f]);
    const typeArrays = [];
    const ebt = s.events_by_type;
    if (ebt && typeof ebt === "object") {
      for (const k in ebt) {
        if (!Array.isArray(ebt[k])) continue;
        let a = this.types.get(k);
        if (!a) {
          if (this.types.size >= MAX_TYPES) continue;
          a = new Float64Array(this.window).fill(NaN);
          this.types.set(k, a);
        }
        typeArrays.push(a, ebt[k]);
      }
    }
    for (let sec = from; sec <= end; sec++) {
      const slot = sec % this.window;
      const i = sec - start;
      if (this.sec[slot] !== sec) {
        this.sec[slot] = sec;
        for (const f of FIELDS) this.fields[f][slot] = NaN;
        for (const a of this.types.values()) a[slot] = NaN;
      }
      for (let j = 0; j < fieldArrays.length; j += 2) fieldArrays[j][slot] = num(fieldArrays[j + 1][i]);
      for (let j = 0; j < typeArrays.length; j += 2) typeArrays[j][slot] = num(typeArrays[j + 1][i]);
    }
    this.version++;
  }

  /** value of field (or of type when isType) at second sec, NaN if unknown. */
  value(name, sec, isType) {
    const slot = sec % this.window;
    if (sec < 0 || sec <= this.latest - this.window || this.sec[slot] !== sec) return NaN;
    const a = isType ? this.types.get(name) : this.fields[name];
    return a ? a[slot] : NaN;
  }

  /**
   * fill writes window points ending at second end into out (a plain array
   * of that length, reused between calls): the value, or null when unknown.
   */
  fill(name, end, out, isType) {
    const a = isType ? this.types.get(name) : this.fields[name];
    const w = this.window;
    const start = end - w + 1;
    for (let i = 0; i < w; i++) {
      const sec = start + i;
      const slot = sec % w;
      const v = a && sec >= 0 && this.sec[slot] === sec ? a[slot] : NaN;
      out[i] = v === v ? v : null;
    }
    return out;
  }
}

function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : NaN;
}

/**
 * SeriesSet keeps one SeriesStore for "all streams", one per stream, at
 * most maxStreams of them (the least recently updated is dropped), and one
 * per event source, at most maxSources (the server has four).
 */
export class SeriesSet {
  constructor(maxStreams = 64, maxSources = 8) {
    this.overall = new SeriesStore();
    this.streams = new Map();
    this.sources = new Map();
    this.maxStreams = maxStreams;
    this.maxSources = maxSources;
    this.second = -1; // right edge of the charts: the server's last complete second
  }

  /** mergeSnapshot takes the series of a snapshot message. */
  mergeSnapshot(snap) {
    const ser = snap && snap.series;
    if (ser && typeof ser === "object" && Number.isFinite(ser.start)) {
      if (ser.overall) this.overall.merge(ser.start, ser.overall, ser.length);
      else if (ser.events_by_type) this.overall.merge(ser.start, ser, ser.length); // protocol 1: the Series itself
      if (ser.streams && typeof ser.streams === "object") {
        for (const name in ser.streams) {
          let st = this.streams.get(name);
          if (st) this.streams.delete(name); // re-insert: Map order = recency
          else st = new SeriesStore();
          this.streams.set(name, st);
          st.merge(ser.start, ser.streams[name], ser.length);
        }
        while (this.streams.size > this.maxStreams) this.streams.delete(this.streams.keys().next().value);
      }
      // A source's series, or "overall" when they are exactly the overall ones (one source only).
      if (ser.sources && typeof ser.sources === "object") {
        for (const name in ser.sources) {
          const v = ser.sources[name] === "overall" ? ser.overall : ser.sources[name];
          let st = this.sources.get(name);
          if (!st) {
            if (this.sources.size >= this.maxSources) continue;
            st = new SeriesStore();
            this.sources.set(name, st);
          }
          st.merge(ser.start, v, ser.length);
        }
      }
    }
    const second = Number.isFinite(snap && snap.second) ? snap.second : this.overall.latest;
    if (second > this.second) this.second = second;
  }

  /** store is the series of one source, else of one stream, else of everything; null when not held. */
  store(stream, source) {
    if (source) return this.sources.get(source) || null;
    return stream ? this.streams.get(stream) || null : this.overall;
  }
}

/**
 * LatencyWindow keeps the end-to-end latencies (receipt − Kafka timestamp)
 * of the last windowMs in a ring of cap samples and answers percentiles
 * (nearest rank).
 */
export class LatencyWindow {
  constructor(cap = 8192, windowMs = 30000) {
    this.cap = cap;
    this.windowMs = windowMs;
    this.t = new Float64Array(cap);
    this.v = new Float64Array(cap);
    this.scratch = new Float64Array(cap);
    this.n = 0;
    this.i = 0;
  }

  add(now, latencyMs) {
    if (!Number.isFinite(latencyMs)) return;
    this.t[this.i] = now;
    this.v[this.i] = latencyMs;
    this.i = (this.i + 1) % this.cap;
    if (this.n < this.cap) this.n++;
  }

  /** percentiles returns the values at the given fractions (0–1), or nulls. */
  percentiles(now, fractions) {
    const since = now - this.windowMs;
    let m = 0;
    for (let k = 0; k < this.n; k++) if (this.t[k] >= since) this.scratch[m++] = this.v[k];
    if (m === 0) return fractions.map(() => null);
    const s = this.scratch.subarray(0, m).sort();
    return fractions.map((p) => s[Math.min(m - 1, Math.max(0, Math.ceil(p * m) - 1))]);
  }

  count(now) {
    const since = now - this.windowMs;
    let m = 0;
    for (let k = 0; k < this.n; k++) if (this.t[k] >= since) m++;
    return m;
  }
}

/**
 * Positions remembers the offset of the last tail event received per topic
 * and partition, for `resume` (at most 256, as the protocol allows).
 */
export class Positions {
  constructor(max = 256) {
    this.m = new Map();
    this.max = max;
  }

  see(topic, partition, offset) {
    if (typeof topic !== "string" || !Number.isInteger(partition) || !Number.isInteger(offset)) return;
    const k = topic + "\u0000" + partition;
    const p = this.m.get(k);
    if (p) {
      if (offset > p.offset) p.offset = offset;
      return;
    }
    if (this.m.size >= this.max) this.m.delete(this.m.keys().next().value);
    this.m.set(k, { topic, partition, offset });
  }

  list() {
    return Array.from(this.m.values(), (p) => ({ topic: p.topic, partition: p.partition, offset: p.offset }));
  }

  get size() {
    return this.m.size;
  }
}

/** Reconnect delay: jittered exponential backoff, 0.5 s doubling to 15 s (equal jitter: [base/2, base]). */
export function backoffDelay(attempt, rnd = Math.random) {
  const base = Math.min(15000, 500 * 2 ** Math.min(attempt, 10));
  return base / 2 + rnd() * (base / 2);
}

/** A tail filter with only the parts that are set (docs/protocol.md). */
export function normalizeFilter(f) {
  const out = {};
  if (f.stream) out.stream = String(f.stream);
  if (f.source) out.source = String(f.source);
  if (Array.isArray(f.types) && f.types.length) out.types = f.types.slice();
  for (const k of ["movie_id", "user_id", "device"]) {
    const v = typeof f[k] === "string" ? f[k].trim() : "";
    if (v) out[k] = v;
  }
  return out;
}

/** A short human description of a filter. */
export function describeFilter(f) {
  const parts = [];
  if (f.stream) parts.push("stream " + f.stream);
  if (f.source) parts.push("source " + f.source);
  if (f.types && f.types.length) parts.push(f.types.join(" or "));
  if (f.movie_id) parts.push("movie " + f.movie_id);
  if (f.user_id) parts.push("user " + f.user_id);
  if (f.device) parts.push("device " + f.device);
  return parts.length ? parts.join(", ") : "every event";
}

/** The longest span /api/history answers at one point a second (docs/tier.md, "History"). */
export const HISTORY_MAX_S = 3600;

/** The last 24 hours: /api/history at one point a minute (resolution=60) answers at most a day. */
export const DAY_S = 86400;

/** Points of a day at one a minute. */
export const DAY_POINTS = DAY_S / 60;

/**
 * historyURL is the request for fromS to toS (Unix s; by default the hour
 * that starts at fromS) at resolution seconds a point (left out: one a
 * second), carrying the page's access token as the WebSocket URL does.
 */
export function historyURL(loc, fromS, toS, resolution) {
  if (toS === undefined) toS = fromS + HISTORY_MAX_S - 1;
  let url = "/api/history?from=" + fromS + "&to=" + toS;
  if (resolution) url += "&resolution=" + resolution;
  const token = new URLSearchParams(loc.search).get("access_token");
  if (token) url += "&access_token=" + encodeURIComponent(token);
  return url;
}

/**
 * dayWindow is the last 24 hours at nowMs: the day of complete minutes
 * that ends with the last complete one (the server wants to before now,
 * and a minute still running would be a partial point).
 */
export function dayWindow(nowMs) {
  const to = Math.floor(nowMs / 60000) * 60 - 1;
  return { from: to + 1 - DAY_S, to };
}

/**
 * historyShape is what the charts need of an /api/history answer: step
 * (seconds a point), first and end (the first and last point, in points:
 * seconds, or minutes when step is 60) and points (how many, capped at what
 * a store of that step holds). null when the answer is malformed or has a
 * resolution this page does not know (a point of another width would put
 * the time axis wrong).
 */
export function historyShape(body) {
  const ser = body && body.series;
  if (!ser || typeof ser !== "object" || !Number.isFinite(ser.start) || !Number.isFinite(ser.length)) return null;
  const r = ser.resolution_s;
  let step = 1;
  let cap = HISTORY_MAX_S;
  if (r === 60) {
    step = 60;
    cap = DAY_POINTS;
  } else if (r !== undefined && r !== null && r !== 1) return null;
  // The server starts a minute's answer at its minute: any other start is
  // not a point of this page's minute index.
  if (ser.start % step !== 0) return null;
  const points = Math.min(Math.max(0, Math.floor(ser.length)), cap);
  if (!points) return null;
  const first = ser.start / step;
  return { step, first, end: first + points - 1, points };
}

/**
 * historyStore is a SeriesStore of body.series (an /api/history answer) for
 * one source, else one stream, else everything, sized to the answer and
 * indexed as historyShape says (seconds, or minutes for one point a
 * minute); null when the answer has no series for that scope.
 */
export function historyStore(body, stream, source) {
  const sh = historyShape(body);
  if (!sh) return null;
  const ser = body.series;
  let s = ser.overall;
  if (source) {
    const v = ser.sources && Object.hasOwn(ser.sources, source) ? ser.sources[source] : undefined;
    s = v === "overall" ? ser.overall : v;
  } else if (stream) {
    s = ser.streams && Object.hasOwn(ser.streams, stream) ? ser.streams[stream] : undefined;
  }
  if (!s || typeof s !== "object") return null;
  const st = new SeriesStore(sh.points, sh.step);
  st.merge(sh.first, s, sh.points);
  return st;
}

/** historyError is what the page says when /api/history answers status with text. */
export function historyError(status, text) {
  const said = String(text || "").trim().slice(0, 200);
  switch (status) {
    case 404:
    case 501:
      return "History needs the aggregation tier (docs/tier.md): this fan-out keeps only the last 15 minutes.";
    case 503:
      return "The server is answering other history requests: try again in a moment.";
    case 401:
      return "Not authorized: open the page with its access token.";
    default:
      return "History unavailable (" + status + ")" + (said ? ": " + said : "");
  }
}
