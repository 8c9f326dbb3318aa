// Unit tests of the page's pure logic: node --test (npm test).
import { test } from "node:test";
import assert from "node:assert/strict";
import { SeriesStore, SeriesSet, LatencyWindow, Positions, backoffDelay, normalizeFilter, describeFilter, typeColor, sourceLabel, applyPatch, WINDOW, TYPES, SOURCES } from "../src/store.js";
import * as f from "../src/format.js";

test("series merge by second: newer points replace older ones, nulls stay unknown", () => {
  const s = new SeriesStore();
  s.merge(1000, { sps: [1, 2, 3], rebuffer_pct: [null, 0.5, null], events_by_type: { play: [4, 5, 6] } }, 3);
  assert.equal(s.latest, 1002);
  assert.equal(s.value("sps", 1001), 2);
  assert.ok(Number.isNaN(s.value("rebuffer_pct", 1000)));
  assert.equal(s.value("play", 1002, true), 6);
  // A late record changes second 1002; 1003 is new.
  s.merge(1002, { sps: [9, 7], events_by_type: { play: [1, 2] } }, 2);
  assert.equal(s.value("sps", 1002), 9);
  assert.equal(s.value("sps", 1003), 7);
  assert.equal(s.value("sps", 1001), 2, "untouched seconds keep their points");
});

test("series keep exactly the last 15 minutes", () => {
  const s = new SeriesStore();
  const n = 950;
  s.merge(5000, { concurrent_viewers: Array.from({ length: 10 }, (_, i) => i) }, 10);
  s.merge(5000 + n, { concurrent_viewers: [42] }, 1);
  assert.ok(Number.isNaN(s.value("concurrent_viewers", 5000)), "a point older than the window is dropped");
  const out = new Array(WINDOW);
  s.fill("concurrent_viewers", 5000 + n, out);
  assert.equal(out.length, WINDOW);
  assert.equal(out[WINDOW - 1], 42);
  assert.equal(out.filter((v) => v != null).length, 1);
  // Points older than the window are ignored, not written over newer ones.
  s.merge(4000, { concurrent_viewers: [7] }, 1);
  assert.ok(Number.isNaN(s.value("concurrent_viewers", 4000)));
  assert.equal(s.value("concurrent_viewers", 5000 + n), 42);
});

test("snapshot sets: protocol 2 overall and streams, protocol 1 series, stream cap", () => {
  const set = new SeriesSet(2);
  set.mergeSnapshot({ second: 2009, series: { start: 2000, length: 10, overall: { sps: new Array(10).fill(1) }, streams: { a: { sps: new Array(10).fill(2) }, b: { sps: new Array(10).fill(3) } } } });
  assert.equal(set.second, 2009);
  assert.equal(set.store("a").value("sps", 2005), 2);
  set.mergeSnapshot({ second: 2010, series: { start: 2001, length: 10, overall: {}, streams: { c: { sps: new Array(10).fill(4) } } } });
  assert.equal(set.streams.size, 2, "at most maxStreams stores");
  assert.equal(set.store("a"), null, "the least recently updated stream is dropped");
  const p1 = new SeriesSet();
  p1.mergeSnapshot({ series: { start: 100, events_by_type: { play: [1, 2, 3] } } });
  assert.equal(p1.overall.value("play", 102, true), 3);
  assert.equal(p1.second, 102);
});

test("snapshot sets: sources, \"overall\" standing for the overall series, a source chosen over a stream, source cap", () => {
  const set = new SeriesSet(64, 2);
  const arr = (v) => new Array(10).fill(v);
  // One source only: the server sends "overall" instead of the same series again.
  set.mergeSnapshot({ second: 2009, series: { start: 2000, length: 10, overall: { sps: arr(5) }, streams: { a: { sps: arr(5) } }, sources: { sim: "overall" } } });
  assert.equal(set.store("", "sim").value("sps", 2004), 5);
  // A second source appears: each gets its own series, merged by second onto what the store held.
  set.mergeSnapshot({ second: 2019, series: { start: 2010, length: 10, overall: { sps: arr(7) }, streams: { a: { sps: arr(7) } }, sources: { sim: { sps: arr(5) }, cmcd: { sps: arr(2) } } } });
  assert.equal(set.store("", "sim").value("sps", 2004), 5, "older points stay");
  assert.equal(set.store("", "sim").value("sps", 2015), 5);
  assert.equal(set.store("", "cmcd").value("sps", 2015), 2);
  assert.equal(set.store("a", "cmcd").value("sps", 2015), 2, "a source is shown over all streams");
  assert.equal(set.store("a", "").value("sps", 2015), 7);
  assert.equal(set.store("", "beacon"), null, "a source never sent has no series");
  set.mergeSnapshot({ second: 2020, series: { start: 2011, length: 10, overall: {}, sources: { beacon: { sps: arr(1) } } } });
  assert.equal(set.sources.size, 2, "at most maxSources stores");
  assert.equal(set.store("", "beacon"), null);
});

test("sources: the server's names, labelled in the selector, text otherwise", () => {
  assert.deepEqual(SOURCES, ["sim", "cmcd", "beacon", "unknown"]);
  assert.equal(sourceLabel("cmcd"), "cmcd (CMCD players)");
  assert.equal(sourceLabel("<b>x</b>"), "<b>x</b>");
});

test("latency percentiles: nearest rank over the window only", () => {
  const l = new LatencyWindow(100, 1000);
  for (let i = 1; i <= 100; i++) l.add(10000, i);
  assert.deepEqual(l.percentiles(10000, [0.5, 0.99]), [50, 99]);
  assert.deepEqual(l.percentiles(20000, [0.5]), [null], "samples older than the window are ignored");
  for (let i = 0; i < 250; i++) l.add(30000, 7);
  assert.equal(l.count(30000), 100, "the ring keeps at most cap samples");
});

test("resume positions: last offset per partition, at most 256", () => {
  const p = new Positions(3);
  p.see("t", 0, 5);
  p.see("t", 0, 3);
  p.see("t", 1, 9);
  p.see("t", 1.5, 1);
  p.see(null, 0, 1);
  assert.deepEqual(p.list(), [{ topic: "t", partition: 0, offset: 5 }, { topic: "t", partition: 1, offset: 9 }]);
  p.see("t", 2, 1);
  p.see("t", 3, 1);
  assert.equal(p.size, 3);
});

test("backoff: 0.5 s doubling to 15 s, jittered in [base/2, base]", () => {
  assert.equal(backoffDelay(0, () => 0), 250);
  assert.equal(backoffDelay(0, () => 1), 500);
  assert.equal(backoffDelay(1, () => 1), 1000);
  assert.equal(backoffDelay(4, () => 1), 8000);
  assert.equal(backoffDelay(5, () => 1), 15000);
  assert.equal(backoffDelay(50, () => 1), 15000);
  assert.equal(backoffDelay(50, () => 0), 7500);
});

test("filters: only set parts, trimmed; described in words", () => {
  assert.deepEqual(normalizeFilter({ stream: "", types: [], movie_id: "  m1 ", user_id: "", device: "tv" }), { movie_id: "m1", device: "tv" });
  assert.equal(describeFilter({}), "every event");
  assert.equal(describeFilter({ types: ["play", "stop"], device: "tv" }), "play or stop, device tv");
  assert.deepEqual(normalizeFilter({ stream: "", source: "cmcd", types: [] }), { source: "cmcd" });
  assert.equal(describeFilter({ source: "cmcd", types: ["play"] }), "source cmcd, play");
});

test("every type has a colour; unknown types get a stable one", () => {
  for (const t of TYPES) assert.match(typeColor(t), /^#[0-9a-f]{6}$/);
  assert.equal(typeColor("play"), "#22c55e");
  assert.equal(typeColor("ad_break"), typeColor("ad_break"));
  assert.notEqual(typeColor("ad_break"), typeColor("ad_start"));
});

test("formatting: undefined is a dash, units are readable", () => {
  assert.equal(f.pct(null), "–");
  assert.equal(f.pct(0.5234), "0.52 %");
  assert.equal(f.ms(480), "480 ms");
  assert.equal(f.ms(1480), "1.48 s");
  assert.equal(f.kbps(3000), "3.00 Mbps");
  assert.equal(f.kbps(750), "750 kbps");
  assert.equal(f.position(3723), "1:02:03");
  assert.equal(f.position(123), "2:03");
  assert.equal(f.int(12345), "12,345");
  assert.equal(f.num(NaN), "–");
  assert.equal(f.num(17.75), "17.8");
});

test("deltas: every operation of docs/protocol.md, the old snapshot untouched, keys in the server's order", () => {
  const cases = [
    ["number", { a: 1, b: 2 }, { b: 3 }, { a: 1, b: 3 }],
    ["nested", { o: { x: "s", y: true } }, { o: { x: "t" } }, { o: { x: "t", y: true } }],
    ["to null", { a: 1 }, { a: [null] }, { a: null }],
    ["removed key", { m: { x: 1, y: 2 } }, { m: { y: [] } }, { m: { x: 1 } }],
    ["object replaced", { m: { x: 1 } }, { m: [{ x: 1, y: 2 }] }, { m: { x: 1, y: 2 } }],
    ["series moved", { s: [1, 2, 3, 4] }, { s: [2, 2, [5, 6]] }, { s: [3, 4, 5, 6] }],
    ["last second changed", { s: [1, 2, 3, 4] }, { s: [0, 3, [9]] }, { s: [1, 2, 3, 9] }],
    ["string to object", { s: "overall" }, { s: [{ a: [1] }] }, { s: { a: [1] } }],
    ["a key named like an operation", { m: { "[]": 1 } }, { m: { "[]": 2 } }, { m: { "[]": 2 } }],
  ];
  for (const [name, old, patch, want] of cases) {
    const before = JSON.stringify(old);
    const got = applyPatch(old, patch);
    assert.deepEqual(got, want, name);
    assert.equal(JSON.stringify(got), JSON.stringify(want), name + ": key order");
    assert.equal(JSON.stringify(old), before, name + ": old changed");
  }
  // A stream named "__proto__" (JSON.parse makes it an own key; a literal would not).
  const proto = applyPatch(JSON.parse('{"streams":{"__proto__":{"sps":1}}}'), JSON.parse('{"streams":{"__proto__":{"sps":2}}}'));
  assert.equal(Object.getPrototypeOf(proto.streams), Object.prototype);
  assert.deepEqual(Object.keys(proto.streams), ["__proto__"]);
  assert.equal(Object.getOwnPropertyDescriptor(proto.streams, "__proto__").value.sps, 2);
  assert.throws(() => applyPatch({ a: [1] }, { a: [1, 2] }), /unknown delta operation/);
});
