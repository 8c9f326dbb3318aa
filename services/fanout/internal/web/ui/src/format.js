// Number and time formatting. Every function returns a plain string that
// the page writes with textContent; null/undefined/NaN become "–".

export const NONE = "–";

const intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const fmt1 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const fmt2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

export function ok(v) {
  return typeof v === "number" && Number.isFinite(v);
}

/** 12,345 */
export function int(v) {
  return ok(v) ? intFmt.format(v) : NONE;
}

/** 1,234 / 12.3 / 1.23: about three significant digits. */
export function num(v) {
  if (!ok(v)) return NONE;
  const a = Math.abs(v);
  if (a >= 100 || v === 0) return intFmt.format(v);
  if (a >= 10) return fmt1.format(v);
  return fmt2.format(v);
}

/** A percentage value 0–100 → "0.52 %" (two digits below 10). */
export function pct(v) {
  if (!ok(v)) return NONE;
  return (Math.abs(v) >= 10 ? fmt1.format(v) : fmt2.format(v)) + " %";
}

/** Milliseconds → "480 ms" / "1.48 s" / "12.3 s". */
export function ms(v) {
  if (!ok(v)) return NONE;
  if (Math.abs(v) < 1000) return intFmt.format(Math.round(v)) + " ms";
  const s = v / 1000;
  return (Math.abs(s) >= 10 ? fmt1.format(s) : fmt2.format(s)) + " s";
}

/** kbps → "3.21 Mbps" / "750 kbps". */
export function kbps(v) {
  if (!ok(v)) return NONE;
  if (Math.abs(v) >= 1000) return fmt2.format(v / 1000) + " Mbps";
  return intFmt.format(Math.round(v)) + " kbps";
}

function pad2(n) {
  return n < 10 ? "0" + n : "" + n;
}

/** Seconds of playhead → "1:02:03" / "2:03". */
export function position(v) {
  if (!ok(v) || v < 0) return NONE;
  const t = Math.floor(v);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = t % 60;
  return h ? h + ":" + pad2(m) + ":" + pad2(s) : m + ":" + pad2(s);
}

/** Unix ms → local "21:00:01.234". */
export function clock(msSinceEpoch) {
  if (!ok(msSinceEpoch)) return NONE;
  const d = new Date(msSinceEpoch);
  const milli = d.getMilliseconds();
  return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds()) + "." + (milli < 10 ? "00" : milli < 100 ? "0" : "") + milli;
}

/** Seconds → "5 s" / "3 min" / "2 h". */
export function ago(seconds) {
  if (!ok(seconds)) return NONE;
  if (seconds < 1) return "now";
  if (seconds < 120) return Math.round(seconds) + " s ago";
  if (seconds < 7200) return Math.round(seconds / 60) + " min ago";
  return Math.round(seconds / 3600) + " h ago";
}
