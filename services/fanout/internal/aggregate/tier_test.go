package aggregate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

// TestTierMatchesSingleProcess runs one workload through the single-process
// Aggregator and through the aggregation tier (a Shard per partition, their
// partials through a stand-in for the aggregates topic, a merged
// Aggregator) and compares the complete snapshots: they must be the same,
// the percentiles too (the startup histogram merges exactly).
//
// With one partition's owner replaced mid-run, as after a rebalance, the
// counts must still be the same in every second. What depends on the
// state of sessions that began before the new owner's replay and were
// paused or stalled when it took over (a heartbeat does not say which)
// may differ until those sessions' next change: the viewers, play and
// stall time and what is computed from them (within 5%, and for times a
// session timeout's worth, 120 s, of the few sessions concerned).
func TestTierMatchesSingleProcess(t *testing.T) {
	for _, c := range []struct {
		name     string
		takeover bool
		uncommit int // flushes the dead owner published but had not committed
	}{
		{"steady", false, 0},
		{"takeover at the last commit", true, 0},
		{"takeover 3 s after the last commit", true, 30},
	} {
		t.Run(c.name, func(t *testing.T) { tierMatches(t, c.takeover, c.uncommit) })
	}
}

func tierMatches(t *testing.T, takeover bool, uncommit int) {
	const (
		rate     = 60 // events/s per stream
		parts    = 3
		duration = 16 * time.Minute
		replay   = 6 * time.Minute
	)
	knobs := eventfulKnobs()

	t0 := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	clock := t0
	now := func() time.Time { return clock }
	single := New(Options{Now: now})
	merged := NewMerged(Options{Now: now})

	// The aggregates topic: every partial in order, as Kafka keeps them.
	var topic []keyValue
	applied := 0
	deliver := func() {
		for ; applied < len(topic); applied++ {
			if err := merged.ApplyPartial(topic[applied].key, topic[applied].value); err != nil {
				t.Fatal(err)
			}
		}
	}
	emit := func(k, v []byte) { topic = append(topic, keyValue{bytes.Clone(k), bytes.Clone(v)}) }

	shards := make([]*Shard, parts)
	for p := range shards {
		shards[p] = NewShard("t", int32(p), ShardOptions{Aggregator: Options{Now: now}})
	}
	log := make([][]consume.Record, parts) // each partition's records, for the replay
	// Commits of partition 1, oldest first: the owner may die having
	// published seconds it had not committed yet.
	var commits1 []int64

	w := newWorkload(t, knobs, 7, rate, parts, true)
	nextFlush := t0
	killAt := t0.Add(duration / 2)
	killed := false
	for clock = t0; clock.Before(t0.Add(duration)); clock = clock.Add(w.Step) {
		rec := w.next(clock)
		log[rec.Partition] = append(log[rec.Partition], rec)
		single.AddBatch([]consume.Record{rec})
		shards[rec.Partition].AddBatch([]consume.Record{rec})

		if !clock.Before(nextFlush) {
			nextFlush = nextFlush.Add(100 * time.Millisecond)
			for p, s := range shards {
				s.Flush(clock, emit)
				if p == 1 {
					commits1 = append(commits1, s.Committable()) // acknowledged at once here
				}
			}
			deliver()
		}
		if takeover && !killed && !clock.Before(killAt) {
			// Partition 1's owner dies with what it had not flushed; the
			// next owner starts at the committed offset and replays.
			killed = true
			from := commits1[len(commits1)-1-uncommit]
			fromTS := log[1][from].Timestamp
			s := NewShard("t", 1, ShardOptions{PublishFrom: from, Aggregator: Options{Now: now}})
			var rs []consume.Record
			for _, r := range log[1] {
				if !r.Timestamp.Before(fromTS.Add(-replay)) {
					r.Lag = int64(len(log[1])) - r.Offset - 1
					rs = append(rs, r)
				}
			}
			s.AddBatch(rs)
			shards[1] = s
			t.Logf("partition 1 taken over at offset %d of %d, %d records replayed", from, len(log[1]), len(rs))
		}
	}
	// The last second closes once the lateness has passed.
	clock = t0.Add(duration)
	for _, s := range shards {
		s.Flush(clock.Add(200*time.Millisecond), emit)
	}
	deliver()
	t.Logf("%d events, %d partials (%d bytes)", w.N, len(topic), func() (b int) {
		for _, kv := range topic {
			b += len(kv.value)
		}
		return
	}())

	want := single.Snapshot(clock, true)
	got := merged.Snapshot(clock, true)
	// What the two count differently by design: all events read since
	// the start against those of the partials in the window, and the
	// sessions the owners track now (the replayed ones too).
	got.EventsTotal, want.EventsTotal = 0, 0
	got.Sessions, want.Sessions = SessionStats{}, SessionStats{}
	stateful := func(path string) bool { return false }
	if takeover {
		stateful = func(path string) bool {
			for _, k := range []string{"concurrent_viewers", "avg_bitrate_kbps", "rebuffer_pct", "play_time_s", "top_titles", "bitrate", "stalls_per_hour", "stall_time_s"} {
				if strings.Contains(path, k) {
					return true
				}
			}
			return false
		}
	}
	checkSame(t, decodeJSON(t, want), decodeJSON(t, got), stateful)
}

// checkSame fails on each of the first 20 places where got differs from
// want (compareJSON) and says how many more there are.
func checkSame(t *testing.T, want, got any, stateful func(string) bool) {
	t.Helper()
	var diffs []string
	compareJSON(want, got, "", stateful, &diffs)
	for i, d := range diffs {
		if i == 20 {
			t.Errorf("… %d more", len(diffs)-i)
			break
		}
		t.Error(d)
	}
}

func decodeJSON(t *testing.T, s *Snapshot) any {
	var v any
	if err := json.Unmarshal(s.JSON(), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// compareJSON lists where got differs from want: exactly, or where
// stateful says so within 5% or 2 units (120 for seconds).
func compareJSON(want, got any, path string, stateful func(string) bool, diffs *[]string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			*diffs = append(*diffs, fmt.Sprintf("%s: single %v, merged %v", path, want, got))
			return
		}
		for k := range w {
			compareJSON(w[k], g[k], path+"/"+k, stateful, diffs)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			if !stateful(path) {
				*diffs = append(*diffs, fmt.Sprintf("%s: single %v, merged %v", path, want, got))
			}
			return
		}
		for i := range w {
			compareJSON(w[i], g[i], fmt.Sprintf("%s/%d", path, i), stateful, diffs)
		}
	case float64:
		g, ok := got.(float64)
		floor := 2.0
		if strings.Contains(path, "_s/") || strings.HasSuffix(path, "_s") {
			floor = 120
		}
		if ok && (g == w || stateful(path) && math.Abs(g-w) <= max(floor, 0.05*math.Abs(w))) {
			return
		}
		*diffs = append(*diffs, fmt.Sprintf("%s: single %v, merged %v", path, want, got))
	default:
		if want != got && !(stateful(path) && want != nil && got != nil) {
			*diffs = append(*diffs, fmt.Sprintf("%s: single %v, merged %v", path, want, got))
		}
	}
}

// BenchmarkShard: what a shard costs per event against the single-process
// Aggregator on the same records (a simulator workload of 3,000 events/s
// in one partition), Flush and partial encoding included.
func BenchmarkShard(b *testing.B) {
	const n = 200_000
	knobs := sim.DefaultConfig()
	s, err := sim.New(knobs, "bench", "bench")
	if err != nil {
		b.Fatal(err)
	}
	s.SetRate(3000)
	t0 := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	recs := make([]consume.Record, n)
	var e event.Event
	for i := range recs {
		s.Next(t0.Add(time.Duration(i)*time.Second/3000), &e)
		recs[i] = consume.Record{Topic: "t", Offset: int64(i), Timestamp: e.TS, Event: e}
	}
	end := recs[n-1].Timestamp.Add(time.Second)
	for _, mode := range []string{"single", "shard"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				now := func() time.Time { return end }
				var add func([]consume.Record)
				var flush func(time.Time)
				if mode == "single" {
					a := New(Options{Now: now})
					add, flush = a.AddBatch, func(time.Time) {}
				} else {
					sh := NewShard("t", 0, ShardOptions{Aggregator: Options{Now: now}})
					add = sh.AddBatch
					flush = func(t time.Time) { sh.Flush(t, func(k, v []byte) {}) }
				}
				next := t0
				for i := 0; i < n; i += consume.MaxBatch {
					batch := recs[i:min(i+consume.MaxBatch, n)]
					add(batch)
					if ts := batch[len(batch)-1].Timestamp; ts.After(next) {
						flush(ts)
						next = ts.Add(100 * time.Millisecond)
					}
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
