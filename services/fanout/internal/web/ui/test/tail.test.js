import { test } from "node:test";
import assert from "node:assert/strict";
import { Tail, ROWS_PER_SECOND, ROWS_BURST, details, sourceOf } from "../src/tail.js";

test("the page draws at most ROWS_PER_SECOND events, newest first, and counts the rest", () => {
  const t = new Tail({ addEventListener() {} });
  assert.equal(t.admit(1000, 1000), ROWS_BURST);
  assert.equal(t.undrawn, 1000 - ROWS_BURST);
  let drawn = 0;
  for (let ms = 1100; ms <= 11000; ms += 100) drawn += t.admit(500, ms);
  assert.ok(Math.abs(drawn - ROWS_PER_SECOND * 9.9) <= 2, `drew ${drawn} in 9.9 s`);
  assert.equal(t.admit(0, 20000), 0);
});

test("details of each event type are text", () => {
  assert.equal(details({ event_type: "play", startup_ms: 1480 }), "first frame after 1.48 s");
  assert.equal(details({ event_type: "bitrate_change", prev_bitrate_kbps: 750, bitrate_kbps: 3000 }), "750 kbps → 3.00 Mbps");
  assert.equal(details({ event_type: "error", error_code: "<b>E</b>", fatal: true }), "<b>E</b> (fatal)");
  assert.equal(details({ event_type: "seek", from_seconds: 60, position_seconds: 125 }), "1:00 → 2:05");
  assert.equal(details({ event_type: "stop", stop_reason: "ended" }), "ended");
  assert.equal(details({ event_type: "something_new" }), "");
});

test("the source of an event, unknown without one", () => {
  assert.equal(sourceOf({ source: "cmcd" }), "cmcd");
  assert.equal(sourceOf({}), "unknown");
  assert.equal(sourceOf({ source: "" }), "unknown");
});
