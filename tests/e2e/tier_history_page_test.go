package e2e

import (
	"fmt"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
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
	perSec := map[int64]int{}
	w.seen = func(e *event.Event) { perSec[e.TS.Unix()]++ }
	if err := w.writeUntil(from.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events written for the hour from %v", w.written(), from.UTC())

	// A new group publishes what a warm start would show: from 3 h back,
	// the written hour. Its partials are published two hours after their
	// seconds, after other partitions' partials of now: the merge fan-out
	// reads that far past a window (FANOUT_HISTORY_MARGIN, docs/tier.md).
	startAggregatorEnv(t, raw, aggTopic, "tier-"+raw, map[string]string{"FANOUT_WARMUP": "3h"})
	e := tierEnv(raw)
	e["FANOUT_ROLE"], e["FANOUT_AGGREGATES_TOPIC"], e["FANOUT_HISTORY_MARGIN"] = "merge", aggTopic, "3h"
	m := startFanout(t, broker.Addr(), raw, e)

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
	// The aggregator publishes the hour's partials while this runs: the
	// hour is complete when /api/history counts every event written.
	var overall map[string]any
	harness.Eventually(t, 90*time.Second, "/api/history counts every event of the hour", func() error {
		var body struct {
			Series struct {
				Overall map[string]any `json:"overall"`
			} `json:"series"`
		}
		if err := getJSON(m.url(fmt.Sprintf("/api/history?from=%d&to=%d", from.Unix(), end)), &body); err != nil {
			return err
		}
		overall = body.Series.Overall
		// Every second's count against what was written in it.
		perSecond := make([]float64, 3600)
		byType, _ := overall["events_by_type"].(map[string]any)
		for _, vs := range byType {
			list, _ := vs.([]any)
			for i, v := range list {
				if f, ok := v.(float64); ok && i < len(perSecond) {
					perSecond[i] += f
				}
			}
		}
		var wrong []string
		total := 0
		for i, n := range perSecond {
			total += int(n)
			if want := perSec[from.Unix()+int64(i)]; int(n) != want && len(wrong) < 20 {
				wrong = append(wrong, fmt.Sprintf("second %d: %v of %d", i, n, want))
			}
		}
		if len(wrong) > 0 || total != w.written() {
			return fmt.Errorf("%d events of %d; %v", total, w.written(), wrong)
		}
		return nil
	})

	ask()
	b.Wait(30*time.Second, fmt.Sprintf(`document.getElementById("charts-section").dataset.range === "hour" && document.getElementById("charts-section").dataset.historyFrom === "%d"`, from.Unix()))
	t.Logf("the past hour drawn %s ms after it was asked for", browsertest.Eval[string](b, `document.getElementById("charts-section").dataset.drawnMs`))
	b.Wait(5*time.Second, fmt.Sprintf(`(c => c.dataset.last === "%d" && c.dataset.points === "3600")(document.getElementById("chart-events"))`, end))
	// Every chart has a point wherever the answer has a value (figures
	// such as rebuffering are undefined in seconds without play time).
	for id, field := range map[string]string{"chart-sps": "sps", "chart-ccv": "concurrent_viewers", "chart-rebuffer": "rebuffer_pct", "chart-bitrate": "avg_bitrate_kbps", "chart-startup": "startup_p50_ms"} {
		values, _ := overall[field].([]any)
		n := 0
		for _, v := range values {
			if v != nil {
				n++
			}
		}
		if n < 1800 {
			t.Errorf("/api/history has %d values of %s in the hour; the workload defines it most seconds", n, field)
		}
		b.Wait(5*time.Second, fmt.Sprintf(`(c => c.dataset.last === "%d" && c.dataset.points === "%d")(document.getElementById(%q))`, end, n, id))
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
