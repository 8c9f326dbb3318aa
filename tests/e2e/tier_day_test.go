package e2e

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/browsertest"
	"playpulse.dev/tests/harness"
)

// TestTierDay: the last 24 hours at one point a minute. A workload written
// from five minutes ago to a few seconds ago, aggregated by two
// aggregators; two merge-role fan-outs write the minute rollups to their
// topic; /api/history?resolution=60 reads the day back: every whole minute
// of the workload has the events written in it (per-second averages, to
// the 4 significant digits of the JSON),
// the single-process reference's starts and its viewers at the minute's
// end, and figures for the minute; the minutes before the merges' window
// are null, and every minute appears once although both fan-outs wrote
// it. The page of one of them draws the last 24 hours from it.
func TestTierDay(t *testing.T) {
	raw := newTopic(t, 3)
	seq := topicSeq.Add(1)
	aggTopic, rollTopic := fmt.Sprintf("tier-aggregates-%d", seq), fmt.Sprintf("tier-rollups-%d", seq)
	broker.CreateTopic(t, aggTopic, 3)
	broker.CreateTopic(t, rollTopic, 2)
	begin := time.Now().Add(-5 * time.Minute).Truncate(time.Minute)
	w := newSimWriter(t, raw, 29, 100, begin)
	perSec := map[int64]int{}
	w.seen = func(e *event.Event) { perSec[e.TS.Unix()]++ }
	end := time.Now().Add(-3 * time.Second)
	if err := w.writeUntil(end); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events written from %v", w.written(), begin.UTC())

	// Every process reads the workload back from its start.
	warm := map[string]string{"FANOUT_WARMUP": "10m"}
	env := func() map[string]string {
		e := tierEnv(raw)
		e["FANOUT_WARMUP"] = warm["FANOUT_WARMUP"]
		return e
	}
	ref := startFanout(t, broker.Addr(), raw, env())
	startAggregatorEnv(t, raw, aggTopic, "tier-"+raw, warm)
	startAggregatorEnv(t, raw, aggTopic, "tier-"+raw, warm)
	var merges []*fanout
	started := time.Now()
	for range 2 {
		e := env()
		e["FANOUT_ROLE"], e["FANOUT_AGGREGATES_TOPIC"], e["FANOUT_ROLLUPS_TOPIC"] = "merge", aggTopic, rollTopic
		merges = append(merges, startFanout(t, broker.Addr(), raw, e))
	}
	waitCounted(t, w.written(), ref, merges[0], merges[1])

	// The whole minutes written: from begin to the last that ended
	// before end.
	first, last := begin.Unix(), end.Unix()/60*60-60
	var snap struct {
		Series struct {
			Start   int64 `json:"start"`
			Overall struct {
				SPS []float64 `json:"sps"`
				CCV []float64 `json:"concurrent_viewers"`
			} `json:"overall"`
		} `json:"series"`
	}
	if err := getJSON(ref.url("/api/snapshot?full=1"), &snap); err != nil {
		t.Fatal(err)
	}
	type day struct {
		Series struct {
			Start       int64 `json:"start"`
			Length      int   `json:"length"`
			ResolutionS int   `json:"resolution_s"`
			Overall     struct {
				EventsByType map[string][]*float64 `json:"events_by_type"`
				SPS          []*float64            `json:"sps"`
				CCV          []*float64            `json:"concurrent_viewers"`
				P50          []*float64            `json:"startup_p50_ms"`
				Bitrate      []*float64            `json:"avg_bitrate_kbps"`
			} `json:"overall"`
			Streams map[string]any `json:"streams"`
			Sources map[string]any `json:"sources"`
		} `json:"series"`
	}
	// The last 24 hours as the page asks for them.
	to := time.Now().Unix()/60*60 - 1
	from := to + 1 - 86400
	harness.Eventually(t, 90*time.Second, "the day's minutes are the workload's", func() error {
		var got day
		if err := getJSON(merges[1].url(fmt.Sprintf("/api/history?from=%d&to=%d&resolution=60", from, to)), &got); err != nil {
			return err
		}
		s := &got.Series
		if s.Start != from || s.Length != 1440 || s.ResolutionS != 60 || len(s.Overall.SPS) != 1440 {
			return fmt.Errorf("start %d length %d resolution %d, %d points: want %d, 1440, 60", s.Start, s.Length, s.ResolutionS, len(s.Overall.SPS), from)
		}
		// Before the workload: nothing (null) before the 15 minutes the
		// merges read back on start; zero in them.
		held := int(started.Add(-16*time.Minute).Unix()-from) / 60
		for i, v := range s.Overall.SPS[:int(first-from)/60] {
			if v != nil && (i < held || *v != 0) {
				return fmt.Errorf("minute %d, before the workload, has %v starts/s", i, *v)
			}
		}
		for m := first; m <= last; m += 60 {
			i := int(m-from) / 60
			events, written := 0.0, 0
			for _, vs := range s.Overall.EventsByType {
				if vs[i] == nil {
					return fmt.Errorf("minute %d has no rollup yet", m)
				}
				events += *vs[i] * 60
			}
			var starts float64
			at := int(m - snap.Series.Start)
			for sec := m; sec < m+60; sec++ {
				written += perSec[sec]
				starts += snap.Series.Overall.SPS[int(sec-snap.Series.Start)]
			}
			// Per-second averages come with 4 significant digits (the
			// rollups themselves add up exactly: internal/aggregate's
			// TestRollupsMatchSingleProcess).
			near := func(got, want float64) bool { return math.Abs(got-want) <= 5e-4*want+1e-9 }
			if !near(events, float64(written)) {
				return fmt.Errorf("minute %d: %v events, %d written", m, events, written)
			}
			if got, want := *s.Overall.SPS[i]*60, starts; !near(got, want) {
				return fmt.Errorf("minute %d: %v starts, the reference %v", m, got, want)
			}
			if got, want := *s.Overall.CCV[i], snap.Series.Overall.CCV[at+59]; got != want {
				return fmt.Errorf("minute %d: %v viewers at its end, the reference %v", m, got, want)
			}
			if s.Overall.P50[i] == nil || s.Overall.Bitrate[i] == nil {
				return fmt.Errorf("minute %d: no startup p50 or bitrate", m)
			}
		}
		if len(s.Streams) != 1 || s.Sources["sim"] != "overall" {
			return fmt.Errorf("streams %d, sources %v: want one stream and sim as the overall series", len(s.Streams), s.Sources)
		}
		t.Logf("minutes %d…%d as written", first, last)
		return nil
	})

	// The page: "the last 24 hours" draws every minute the answer has.
	b := browsertest.New(t)
	b.Open(merges[0].url("/"))
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	browsertest.Eval[bool](b, `(() => { const s = document.getElementById("range"); s.value = "day"; s.dispatchEvent(new Event("change")); return true; })()`)
	b.Wait(30*time.Second, `document.getElementById("charts-section").dataset.range === "day"`)
	t.Logf("the last 24 hours drawn %s ms after they were asked for", browsertest.Eval[string](b, `document.getElementById("charts-section").dataset.drawnMs`))
	askedFrom := browsertest.Eval[string](b, `document.getElementById("charts-section").dataset.historyFrom`)
	askedTo := browsertest.Eval[string](b, `document.getElementById("charts-section").dataset.historyTo`)
	var got day
	if err := getJSON(merges[0].url("/api/history?from="+askedFrom+"&to="+askedTo+"&resolution=60"), &got); err != nil {
		t.Fatal(err)
	}
	lastMinute := (got.Series.Start + int64(got.Series.Length-1)*60) / 60
	for id, values := range map[string][]*float64{"chart-sps": got.Series.Overall.SPS, "chart-ccv": got.Series.Overall.CCV, "chart-startup": got.Series.Overall.P50} {
		n := 0
		for _, v := range values {
			if v != nil {
				n++
			}
		}
		if n < int(last-first)/60+1 {
			t.Errorf("%s: %d minutes with a value, want at least the workload's %d", id, n, (last-first)/60+1)
		}
		b.Wait(10*time.Second, fmt.Sprintf(`(c => c.dataset.last === "%d" && c.dataset.points === "%d")(document.getElementById(%q))`, lastMinute, n, id))
	}
	if caption := browsertest.Eval[string](b, `document.getElementById("chart-rebuffer").querySelector("figcaption").textContent`); !strings.Contains(caption, "per minute") {
		t.Errorf("the rebuffering chart's caption %q does not say its points are minutes", caption)
	}
	b.AssertClean()
}
