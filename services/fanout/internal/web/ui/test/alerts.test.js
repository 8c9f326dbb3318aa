import { test } from "node:test";
import assert from "node:assert/strict";
import { shownAlerts, alertText, alertKey, activeAt, firingFor, severityClass } from "../src/alerts.js";

const firing = (rule, stream, extra) => ({ rule, stream, state: "firing", severity: "warning", active_at: "2026-12-06T04:00:00Z", ...extra });

test("only firing alerts are shown, in the server's order, filtered to the page's stream", () => {
  const list = [
    firing("vpf", "live", { severity: "critical" }),
    firing("vpf", "vod"),
    { rule: "startup", stream: "live", state: "pending", active_at: "0001-01-01T00:00:00Z" },
    firing("ccv", ""),
    null,
    "junk",
  ];
  assert.deepEqual(shownAlerts(list, "").map(alertKey), ["vpf\u0000live", "vpf\u0000vod", "ccv\u0000"]);
  assert.deepEqual(shownAlerts(list, "live").map(alertKey), ["vpf\u0000live", "ccv\u0000"], "one stream: its alerts and those over every stream");
  assert.deepEqual(shownAlerts(list, "other").map(alertKey), ["ccv\u0000"]);
  assert.deepEqual(shownAlerts(undefined, ""), [], "no rules: no alerts field");
  assert.deepEqual(shownAlerts([], ""), []);
});

test("an alert's line is the server's message, as text", () => {
  const msg = "playback failures 9.8% (threshold 5%) on live; cdn=<b>x</b> accounts for 82% of the failures";
  assert.equal(alertText(firing("vpf", "live", { message: msg })), msg);
  assert.equal(alertText(firing("vpf", "live")), "vpf on live");
  assert.equal(alertText({ stream: "" }), "alert");
});

test("how long it has fired counts from active_at", () => {
  assert.equal(activeAt(firing("a", "s")), Date.UTC(2026, 11, 6, 4, 0, 0));
  assert.ok(Number.isNaN(activeAt({ active_at: "0001-01-01T00:00:00Z" })), "pending: the zero time");
  assert.ok(Number.isNaN(activeAt({})));
  assert.equal(firingFor(0), "for 0 s");
  assert.equal(firingFor(-2), "for 0 s", "a clock a little behind the server's");
  assert.equal(firingFor(59.9), "for 59 s");
  assert.equal(firingFor(60), "for 1 min");
  assert.equal(firingFor(3 * 60 + 59), "for 3 min");
  assert.equal(firingFor(3600), "for 1 h");
  assert.equal(firingFor(2 * 3600 + 5 * 60), "for 2 h 5 min");
  assert.equal(firingFor(NaN), "");
});

test("severities map to the page's styles", () => {
  assert.equal(severityClass("critical"), "critical");
  assert.equal(severityClass("warning"), "warning");
  assert.equal(severityClass("info"), "other");
  assert.equal(severityClass(undefined), "other");
});
