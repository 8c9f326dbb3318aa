// The time-series charts: uPlot (bundled from npm, no CDN), one canvas per
// chart, fed from the SeriesStore with arrays that are allocated once and
// reused, redrawn at most once a second. Labels are constants: nothing from
// the event stream reaches uPlot but numbers.
import uPlot from "uplot";
import { TYPES, WINDOW, typeColor } from "./store.js";
import * as f from "./format.js";

const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

function axisValues(unit) {
  return (u, splits) => splits.map((v) => (v == null ? "" : compact.format(v) + unit));
}

function zeroBased(u, min, max) {
  return [0, max > 0 ? max * 1.08 : 1];
}

/** Chart definitions: id → series read from the store. */
const DEFS = {
  events: {
    stacked: true,
    unit: "",
    series: TYPES.map((t) => ({ name: t, type: true, label: t, color: typeColor(t), fmt: f.int })),
  },
  sps: { unit: "", series: [{ name: "sps", label: "starts/s", color: "#22c55e", fmt: f.num, fill: true }] },
  ccv: { unit: "", series: [{ name: "concurrent_viewers", label: "viewers", color: "#3b82f6", fmt: f.int, fill: true }] },
  rebuffer: { unit: "%", series: [{ name: "rebuffer_pct", label: "rebuffering", color: "#a855f7", fmt: f.pct }] },
  bitrate: { unit: "", scaleBitrate: true, series: [{ name: "avg_bitrate_kbps", label: "avg bitrate", color: "#f97316", fmt: f.kbps }] },
  startup: {
    unit: "", scaleMs: true,
    series: [
      { name: "startup_p50_ms", label: "p50", color: "#14b8a6", fmt: f.ms },
      { name: "startup_p95_ms", label: "p95", color: "#6366f1", fmt: f.ms },
    ],
  },
};

function css(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function alpha(hex, a) {
  if (!hex.startsWith("#") || hex.length !== 7) return hex;
  const n = parseInt(hex.slice(1), 16);
  return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + a + ")";
}

class Chart {
  constructor(fig, def) {
    this.fig = fig;
    this.el = fig.querySelector(".plot");
    this.def = def;
    this.u = null;
    this.width = 0;
    this.size(WINDOW);
  }

  /** size allocates the arrays for n points (15 live minutes, a past hour, or 24 hours of minutes). */
  size(n) {
    const def = this.def;
    this.n = n;
    this.x = new Array(n).fill(0);
    this.raw = def.series.map(() => new Array(n).fill(null)); // values as received
    this.plot = def.stacked ? def.series.map(() => new Array(n).fill(null)) : this.raw; // what is drawn
  }

  create() {
    if (this.u) this.u.destroy();
    const def = this.def;
    const fg = css("--muted", "#64748b");
    const grid = css("--grid", "rgba(128,128,128,0.15)");
    const fontPx = Math.round(parseFloat(getComputedStyle(document.documentElement).fontSize) * 0.78) || 12;
    const font = fontPx + "px system-ui, sans-serif";
    const width = Math.max(200, Math.floor(this.el.clientWidth || 400));
    this.width = width;
    // Stacked: the top of the stack first so lower layers paint over it.
    const order = def.stacked ? def.series.map((_, i) => def.series.length - 1 - i) : def.series.map((_, i) => i);
    this.order = order;
    const series = [{ value: (u, v) => (v == null ? "–" : f.clock(v * 1000).slice(0, 8)) }];
    for (const i of order) {
      const s = def.series[i];
      series.push({
        label: s.label,
        stroke: s.color,
        width: def.stacked ? 1 : 2,
        fill: def.stacked ? s.color : s.fill ? alpha(s.color, 0.15) : undefined,
        points: { show: false },
        value: (u, v, si, idx) => (idx == null ? "–" : s.fmt(this.raw[i][idx])),
      });
    }
    let yValues = axisValues(def.unit);
    if (def.scaleBitrate) yValues = (u, splits) => splits.map((v) => (v == null ? "" : v >= 1000 ? compact.format(v / 1000) + "M" : compact.format(v) + "k"));
    if (def.scaleMs) yValues = (u, splits) => splits.map((v) => (v == null ? "" : v >= 1000 ? compact.format(v / 1000) + "s" : compact.format(v) + "ms"));
    const opts = {
      width,
      height: this.height(width),
      series,
      scales: { x: { time: true }, y: { range: zeroBased } },
      axes: [
        // Spacing grows with the font (wall screens): labels never overlap.
        { stroke: fg, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, space: fontPx * 6, size: Math.round(fontPx * 3.6) },
        { stroke: fg, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, values: yValues, size: fontPx * 4, space: Math.round(fontPx * 2.6) },
      ],
      cursor: { drag: { x: false, y: false, setScale: false }, points: { size: 6 } },
      legend: { live: true },
    };
    this.u = new uPlot(opts, [this.x, ...order.map((i) => this.plot[i])], this.el);
  }

  height(width) {
    const wide = this.fig.classList.contains("wide");
    return Math.round(Math.min(wide ? 300 : 260, Math.max(120, width * (wide ? 0.2 : 0.42))));
  }

  resize(width) {
    width = Math.floor(width);
    if (!this.u || width < 100 || Math.abs(width - this.width) < 2) return;
    this.width = width;
    this.u.setSize({ width, height: this.height(width) });
  }

  /**
   * update reads the points ending at end from store (null: no data): as
   * many as the store holds (WINDOW when there is none). end is in the
   * store's points (seconds, or minutes for the last 24 hours); uPlot's
   * time scale wants Unix seconds, hence x = point * step.
   */
  update(store, end) {
    const def = this.def;
    const n = store ? store.window : WINDOW;
    const step = store ? store.step : 1;
    if (n !== this.n) this.size(n);
    const start = end - n + 1;
    for (let i = 0; i < n; i++) this.x[i] = (start + i) * step;
    let points = 0;
    for (let k = 0; k < def.series.length; k++) {
      const s = def.series[k];
      if (store) store.fill(s.name, end, this.raw[k], s.type);
      else this.raw[k].fill(null);
    }
    if (def.stacked) {
      for (let i = 0; i < n; i++) {
        let sum = 0;
        let any = false;
        for (let k = 0; k < def.series.length; k++) {
          const v = this.raw[k][i];
          if (v != null) { sum += v; any = true; }
          this.plot[k][i] = any ? sum : null;
        }
        if (any) points++;
      }
    } else {
      for (let i = 0; i < n; i++) if (this.raw[0][i] != null) points++;
    }
    if (this.u) this.u.setData([this.x, ...this.order.map((i) => this.plot[i])]);
    this.fig.dataset.last = String(end);
    this.fig.dataset.points = String(points);
  }
}

export class Charts {
  constructor(root) {
    this.charts = [];
    for (const fig of root.querySelectorAll("figure.chart")) {
      const def = DEFS[fig.dataset.chart];
      if (def) this.charts.push(new Chart(fig, def));
    }
    this.lastKey = "";
    this.created = false;
    this.ro = new ResizeObserver((entries) => {
      for (const e of entries) {
        const c = this.charts.find((c) => c.el === e.target);
        if (c) c.resize(e.contentRect.width);
      }
    });
    // Colours come from the theme: recreate the canvases when it changes.
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.recreate());
  }

  recreate() {
    for (const c of this.charts) c.create();
    this.lastKey = "";
  }

  /**
   * draw updates every chart from store when its data or the time changed;
   * end is the last point drawn, in the store's points (see Chart.update).
   */
  draw(store, end) {
    if (!this.created) {
      for (const c of this.charts) {
        c.create();
        this.ro.observe(c.el);
      }
      this.created = true;
    }
    const key = (store ? store.id + "." + store.version : "none") + ":" + end;
    if (key === this.lastKey) return;
    this.lastKey = key;
    for (const c of this.charts) c.update(store, end);
  }
}
