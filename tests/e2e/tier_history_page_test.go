package e2e

import (
	"fmt"
	"testing"
	"time"

	"playpulse.dev/tests/browsertest"
	"playpulse.dev/tests/harness"
)

// TestTierHistoryPage draws a past hour on the page: an hour of events
// written with timestamps of two hours ago, aggregated into partials, and
// the dashboard of a merge-mode fan-out asked for that hour. The page draws
// every second of it on the six charts, for everything and for one stream,
// and goes back to live; a single-process fan-out's page says that history
// needs the tier.
func TestTierHistoryPage(t *testing.T) {
	raw := newTopic(t, 3)
	aggTopic := fmt.Sprintf("tier-aggregates-%d", topicSeq.Add(1))
	broker.CreateTopic(t, aggTopic, 3)
	// The hour from two hours ago, on the minute (the page picks minutes).
	from := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	w := newSimWriter(t, raw, 23, 20, from)
	if err := w.writeUntil(from.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events written for the hour from %v", w.written(), from.UTC())

	// A new group publishes what a warm start would show: from 3 h back,
	// the written hour.
	startAggregatorEnv(t, raw, aggTopic, "tier-"+raw, map[string]string{"FANOUT_WARMUP": "3h"})
	m := startMerge(t, raw, aggTopic)

	b := browsertest.New(t)
	b.Open(m.url("/"))
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	// The page's datetime-local input is in the browser's time zone.
	ask := func() {
		browsertest.Eval[bool](b, fmt.Sprintf(`(() => {
			const d = new Date(%d), p = (n) => String(n).padStart(2, "0");
			const sel = document.getElementById("range");
			sel.value = "hour";
			document.getElementById("history-from").value = d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes());
			sel.dispatchEvent(new Event("change"));
			return true;
		})()`, from.UnixMilli()))
	}
	end := from.Unix() + 3599
	drawn := fmt.Sprintf(`document.getElementById("charts-section").dataset.range === "hour" && document.getElementById("charts-section").dataset.historyFrom === "%d"`, from.Unix())
	// The aggregator publishes the hour's partials while this runs: ask
	// until every second of the hour has its point.
	harness.Eventually(t, 90*time.Second, "the page draws the whole past hour", func() error {
		ask()
		b.Wait(30*time.Second, fmt.Sprintf(`%s || document.getElementById("charts-section").dataset.range === "error"`, drawn))
		st := browsertest.Eval[map[string]string](b, `(() => {
			const s = document.getElementById("charts-section"), c = document.getElementById("chart-events");
			return { range: s.dataset.range, status: document.getElementById("history-status").textContent, last: c.dataset.last, points: c.dataset.points, ms: s.dataset.drawnMs };
		})()`)
		if st["range"] != "hour" {
			return fmt.Errorf("the page says %q", st["status"])
		}
		if st["last"] != fmt.Sprint(end) || st["points"] != "3600" {
			return fmt.Errorf("the events chart ends at %s with %s points; want %d with 3600", st["last"], st["points"], end)
		}
		t.Logf("the past hour drawn %s ms after it was asked for", st["ms"])
		return nil
	})
	for _, id := range []string{"chart-sps", "chart-ccv", "chart-rebuffer", "chart-bitrate", "chart-startup"} {
		b.Wait(5*time.Second, fmt.Sprintf(`(c => c.dataset.last === "%d" && Number(c.dataset.points) > 3000)(document.getElementById(%q))`, end, id))
	}

	// One stream: the selector keeps working on the hour held.
	browsertest.Eval[bool](b, `(() => { const s = document.getElementById("stream"); s.value = "tier"; s.dispatchEvent(new Event("change")); return true; })()`)
	b.Wait(10*time.Second, fmt.Sprintf(`(c => c.dataset.last === "%d" && c.dataset.points === "3600")(document.getElementById("chart-events")) && document.getElementById("chart-scope").textContent === "stream tier"`, end))

	// Back to live: the charts end at the server's last second again.
	browsertest.Eval[bool](b, `(() => { const s = document.getElementById("range"); s.value = "live"; s.dispatchEvent(new Event("change")); return true; })()`)
	b.Wait(10*time.Second, fmt.Sprintf(`document.getElementById("charts-section").dataset.range === "live" && Number(document.getElementById("chart-events").dataset.last) > %d`, time.Now().Unix()-60))

	// A single-process fan-out keeps 15 minutes: its page says so.
	single := startFanout(t, broker.Addr(), raw, tierEnv(raw))
	b.Open(single.url("/"))
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	ask()
	b.Wait(20*time.Second, `document.getElementById("charts-section").dataset.range === "error" && /aggregation tier/.test(document.getElementById("history-status").textContent)`)
	b.AssertClean()
}
