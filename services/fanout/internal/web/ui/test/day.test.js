// The page's last 24 hours (/api/history at one point a minute): node --test (npm test).
import { test } from "node:test";
import assert from "node:assert/strict";
import { historyStore, historyShape, historyURL, dayWindow, DAY_S, DAY_POINTS, HISTORY_MAX_S, SeriesStore } from "../src/store.js";

// A day's answer as the server writes it: start on a minute, point i the
// minute from start + 60*i.
function day(start, length, extra = {}) {
  const ramp = Array.from({ length }, (_, i) => i);
  return {
    series: {
      start, length, smoothing_s: 60, resolution_s: 60, ...extra,
      overall: { sps: ramp, concurrent_viewers: ramp.map((v) => (v % 2 ? null : v)), events_by_type: { play: ramp } },
      streams: { kids: { sps: ramp.map((v) => v * 2) } },
      sources: { sim: "overall", cmcd: { sps: ramp.map(() => 5) } },
    },
  };
}

const START = 1_800_000_000 - (1_800_000_000 % 60); // a minute, Unix s

test("a store is one point a second unless told", () => {
  assert.equal(new SeriesStore().step, 1);
  assert.equal(new SeriesStore(10, 60).step, 60);
});

test("the day's store indexes minutes, one point a minute", () => {
  const st = historyStore(day(START, DAY_POINTS), "", "");
  assert.equal(st.step, 60);
  assert.equal(st.window, DAY_POINTS);
  const first = START / 60;
  const last = first + DAY_POINTS - 1;
  assert.equal(st.latest, last, "the newest point is the day's last minute");
  assert.equal(st.value("sps", first), 0);
  assert.equal(st.value("sps", first + 7), 7, "point i is minute start/60 + i");
  assert.equal(st.value("play", last, true), DAY_POINTS - 1);
  assert.ok(Number.isNaN(st.value("concurrent_viewers", first + 1)), "a null minute stays unknown");
  const out = new Array(st.window);
  st.fill("sps", last, out);
  assert.equal(out[0], 0);
  assert.equal(out[DAY_POINTS - 1], DAY_POINTS - 1);
  assert.equal(historyStore(day(START, DAY_POINTS), "kids", "").value("sps", first + 3), 6);
  assert.equal(historyStore(day(START, DAY_POINTS), "", "sim").value("sps", first + 3), 3, '"overall" is the overall series');
  assert.equal(historyStore(day(START, DAY_POINTS), "", "cmcd").value("sps", first + 3), 5);
  assert.equal(historyStore(day(START, DAY_POINTS), "", "beacon"), null);
});

test("the day's shape: its end is the last minute, in minutes", () => {
  assert.deepEqual(historyShape(day(START, DAY_POINTS)), { step: 60, first: START / 60, end: START / 60 + DAY_POINTS - 1, points: DAY_POINTS });
  assert.deepEqual(historyShape(day(7200, 3600, { resolution_s: undefined })), { step: 1, first: 7200, end: 10799, points: 3600 });
  assert.equal(historyShape(day(7200, 3600, { resolution_s: 1 })).step, 1, "resolution_s 1 is the hour's");
});

test("a day holds 1440 minutes at most, an hour 3600 seconds", () => {
  const st = historyStore(day(START, 3 * DAY_POINTS), "", "");
  assert.equal(st.window, DAY_POINTS);
  assert.equal(historyShape(day(START, 3 * DAY_POINTS)).end, START / 60 + DAY_POINTS - 1);
  assert.equal(historyStore(day(START, 10 * HISTORY_MAX_S, { resolution_s: undefined }), "", "").window, HISTORY_MAX_S);
});

test("an answer at another or a malformed resolution is refused", () => {
  for (const r of [30, 3600, 0, -60, "60", 60.5, NaN, {}]) {
    assert.equal(historyStore(day(START, DAY_POINTS, { resolution_s: r }), "", ""), null, "resolution_s " + String(r));
    assert.equal(historyShape(day(START, DAY_POINTS, { resolution_s: r })), null);
  }
  assert.equal(historyStore(day(START + 30, DAY_POINTS), "", ""), null, "a minute's point starts on a minute");
  assert.equal(historyStore(day(START, 0), "", ""), null);
  assert.equal(historyStore({ series: { start: START, length: "1440", resolution_s: 60, overall: {} } }, "", ""), null);
});

test("the last 24 hours end with the last complete minute", () => {
  const now = (START + 600 + 17) * 1000 + 250; // 17.25 s into a minute
  const w = dayWindow(now);
  assert.equal(w.to, START + 600 - 1, "the minute still running is left out");
  assert.equal(w.from, w.to + 1 - DAY_S);
  assert.equal(w.from % 60, 0);
  assert.equal((w.to + 1) % 60, 0);
  assert.deepEqual(dayWindow((START + 600) * 1000), w, "on the minute: the minute just ended is the last");
  // The chart's last point (data-last) is the minute index of to.
  assert.equal(Math.floor(w.to / 60), historyShape(day(w.from, DAY_POINTS)).end);
});

test("the day's request: from, to, one point a minute, the page's token", () => {
  const now = (START + 600 + 17) * 1000;
  const from = START + 600 - DAY_S;
  const to = START + 599;
  // As the page asks: the day's window, one point a minute.
  const w = dayWindow(now);
  assert.equal(historyURL({ search: "" }, w.from, w.to, 60), "/api/history?from=" + from + "&to=" + to + "&resolution=60");
  assert.equal(historyURL({ search: "?access_token=a%20b&x=1" }, w.from, w.to, 60), "/api/history?from=" + from + "&to=" + to + "&resolution=60&access_token=a%20b");
  assert.equal(historyURL({ search: "?access_token=t" }, 1000), "/api/history?from=1000&to=4599&access_token=t", "the hour's request is as it was");
});
