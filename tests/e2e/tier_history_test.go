package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"playpulse.dev/tests/harness"
)

// TestTierHistory: a workload written 75 s to a few seconds in the
// past, aggregated by two aggregators; a merge-role fan-out's
// /api/history of a past window, read back from the aggregates topic,
// shows the series the single-process reference draws for the same
// seconds (counts and sums equal, viewers too; percentiles within
// percentileTolerance, as the live figures). A fan-out that is not in the
// merge role has no history (404), and bad windows are refused (400).
func TestTierHistory(t *testing.T) {
	raw := newTopic(t, 6)
	aggTopic := fmt.Sprintf("tier-aggregates-%d", topicSeq.Add(1))
	broker.CreateTopic(t, aggTopic, 3)
	begin := time.Now().Add(-75 * time.Second).Truncate(time.Second)
	w := newSimWriter(t, raw, 23, 400, begin)
	end := time.Now().Add(-5 * time.Second)
	if err := w.writeUntil(end); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events written", w.written())

	ref := startFanout(t, broker.Addr(), raw, tierEnv(raw))
	startAggregator(t, raw, aggTopic, "tier-"+raw)
	startAggregator(t, raw, aggTopic, "tier-"+raw)
	merge := startMerge(t, raw, aggTopic)
	waitCounted(t, w.written(), ref, merge)

	from, to := begin.Unix()+20, end.Unix()-3
	for _, c := range []struct {
		f     *fanout
		query string
		want  int
		says  string
	}{
		{ref, fmt.Sprintf("from=%d&to=%d", from, to), http.StatusNotFound, "merge role"},
		{merge, "from=x&to=1", http.StatusBadRequest, "Unix times"},
		{merge, fmt.Sprintf("from=%d&to=%d", from, from-1), http.StatusBadRequest, "before"},
		{merge, fmt.Sprintf("from=%d&to=%d", from, from+3600), http.StatusBadRequest, "3600"},
		{merge, fmt.Sprintf("from=%d&to=%d&resolution=60", from, to), http.StatusBadRequest, "resolution"},
	} {
		resp, err := http.Get(c.f.url("/api/history?" + c.query))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || !strings.Contains(string(body), c.says) {
			t.Errorf("GET /api/history?%s: %s %q, want %d saying %q", c.query, resp.Status, body, c.want, c.says)
		}
	}

	harness.Eventually(t, 60*time.Second, "the history of a past window is the reference's series", func() error {
		var snap map[string]any
		if err := getJSON(ref.url("/api/snapshot?full=1"), &snap); err != nil {
			return err
		}
		want, err := sliceSeriesJSON(snap["series"].(map[string]any), from, to)
		if err != nil {
			return err
		}
		var got map[string]any
		start := time.Now()
		if err := getJSON(merge.url(fmt.Sprintf("/api/history?from=%d&to=%d", from, to)), &got); err != nil {
			return err
		}
		t.Logf("history of %d s in %v", to-from+1, time.Since(start))
		var diffs []string
		diffJSON("series", want, got["series"], percentileTolerance, false, &diffs)
		if len(diffs) > 0 {
			return fmt.Errorf("%d differences, first: %s", len(diffs), strings.Join(diffs[:min(len(diffs), 10)], "; "))
		}
		return nil
	})
}

// sliceSeriesJSON is the seconds [from, to] of a snapshot's series, as
// decoded JSON.
func sliceSeriesJSON(s map[string]any, from, to int64) (map[string]any, error) {
	start := int64(s["start"].(float64))
	i, j := int(from-start), int(to-start+1)
	if i < 0 || j > int(s["length"].(float64)) {
		return nil, fmt.Errorf("seconds %d…%d are not in the snapshot's series (%d, %v long)", from, to, start, s["length"])
	}
	var cut func(v any) any
	cut = func(v any) any {
		switch x := v.(type) {
		case []any:
			return x[i:j]
		case map[string]any:
			out := map[string]any{}
			for k, v := range x {
				out[k] = cut(v)
			}
			return out
		}
		return v // "overall"
	}
	out := map[string]any{"start": float64(from), "length": float64(j - i), "smoothing_s": s["smoothing_s"]}
	for _, k := range []string{"overall", "streams", "sources"} {
		out[k] = cut(s[k])
	}
	return out, nil
}
