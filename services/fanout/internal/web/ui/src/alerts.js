// The alerts of the fan-out's rules (docs/alerts.md), shown above the KPIs:
// the snapshot's `alerts` (docs/protocol.md), absent when the fan-out has
// no rules. Pure functions: main.js draws them with textContent only.

/** At most this many alerts are drawn; a last line counts the others. */
export const MAX_SHOWN = 8;

/**
 * shownAlerts returns the alerts the page shows, in the server's order
 * (critical first, then by rule and stream).
 *
 * Only firing ones: a pending alert has not yet held for its rule's `for`,
 * the guard that keeps short blips from bothering anyone; showing it on a
 * wall screen would make the banner flap with exactly the blips the rule
 * was written to ignore. Whoever wants them reads GET /api/alerts.
 *
 * stream: the stream the page shows ("" for all): then only that stream's
 * alerts and those of rules over every stream together (`stream` ""),
 * which cover it too and say so in their message ("over every stream").
 * The alerts are per stream, not per source: a page scoped to a source
 * passes "" and shows them all.
 */
export function shownAlerts(list, stream) {
  if (!Array.isArray(list)) return [];
  return list.filter(
    (a) => a && typeof a === "object" && a.state === "firing" && (!stream || a.stream === stream || a.stream === ""),
  );
}

/** alertText is the alert's one line: the server's message, or what the alert has without one. */
export function alertText(a) {
  if (typeof a.message === "string" && a.message) return a.message;
  const rule = typeof a.rule === "string" ? a.rule : "alert";
  return typeof a.stream === "string" && a.stream ? rule + " on " + a.stream : rule;
}

/** alertKey identifies an alert: its rule and stream. */
export function alertKey(a) {
  return String(a.rule) + "\u0000" + String(a.stream);
}

/** activeAt is when the alert fired, Unix ms; NaN when unknown. */
export function activeAt(a) {
  const t = typeof a.active_at === "string" ? Date.parse(a.active_at) : NaN;
  return t > 0 ? t : NaN; // the zero time (year 1) of a pending alert is unknown too
}

/** firingFor says how long, from seconds: "for 42 s", "for 3 min", "for 2 h 5 min"; "" when unknown. */
export function firingFor(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return "for " + s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return "for " + m + " min";
  const h = Math.floor(m / 60);
  return "for " + h + " h" + (m % 60 ? " " + (m % 60) + " min" : "");
}

/** severityClass maps a severity to the page's styles: critical, warning, or other (any other word). */
export function severityClass(sev) {
  return sev === "critical" || sev === "warning" ? sev : "other";
}
