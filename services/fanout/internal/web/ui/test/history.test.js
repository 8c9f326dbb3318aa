// The page's past hour (/api/history): node --test (npm test).
import { test } from "node:test";
import assert from "node:assert/strict";
import { historyStore, historyURL, historyError, HISTORY_MAX_S, WINDOW } from "../src/store.js";

function answer(start, length) {
  const ramp = Array.from({ length }, (_, i) => i);
  return {
    series: {
      start, length, smoothing_s: 10,
      overall: { sps: ramp, events_by_type: { play: ramp } },
      streams: { kids: { sps: ramp.map((v) => v * 2) }, "__proto__": { sps: [1] } },
      sources: { sim: "overall", cmcd: { sps: ramp.map(() => 5) } },
    },
  };
}

test("a past hour's store holds the whole hour, one point a second", () => {
  const st = historyStore(answer(7200, 3600), "", "");
  assert.equal(st.window, HISTORY_MAX_S);
  assert.ok(st.window > WINDOW, "longer than the live 15 minutes");
  const out = new Array(st.window);
  st.fill("sps", 7200 + 3599, out);
  assert.equal(out[0], 0, "the hour's first second is kept");
  assert.equal(out[3599], 3599);
  assert.equal(st.value("play", 7200 + 10, true), 10);
});

test("a past hour's store of one stream, of one source, or none", () => {
  const body = answer(7200, 3600);
  assert.equal(historyStore(body, "kids", "").value("sps", 7201), 2);
  assert.equal(historyStore(body, "", "sim").value("sps", 7201), 1, '"overall" is the overall series');
  assert.equal(historyStore(body, "", "cmcd").value("sps", 7201), 5);
  assert.equal(historyStore(body, "nope", ""), null);
  assert.equal(historyStore(body, "toString", ""), null, "no inherited keys");
  assert.equal(historyStore(body, "", "beacon"), null);
});

test("a past hour's store refuses malformed answers and caps the length", () => {
  assert.equal(historyStore(null, "", ""), null);
  assert.equal(historyStore({ series: { start: "x", length: 3 } }, "", ""), null);
  assert.equal(historyStore({ series: { start: 1, length: 0, overall: {} } }, "", ""), null);
  const st = historyStore(answer(7200, 10 * 3600), "", "");
  assert.equal(st.window, HISTORY_MAX_S, "never more than an hour is held");
});

test("history requests carry the page's token; errors are sentences", () => {
  assert.equal(historyURL({ search: "" }, 1000), "/api/history?from=1000&to=4599");
  assert.equal(historyURL({ search: "?access_token=a%20b" }, 1000), "/api/history?from=1000&to=4599&access_token=a%20b");
  assert.match(historyError(404, ""), /aggregation tier/);
  assert.match(historyError(503, ""), /try again/);
  assert.match(historyError(400, "from is after to\n"), /^History unavailable \(400\): from is after to$/);
  assert.equal(historyError(500, "x".repeat(1000)).length < 260, true, "a long answer is cut");
});
