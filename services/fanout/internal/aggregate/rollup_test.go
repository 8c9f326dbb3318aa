package aggregate

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
)

// TestRollupsMatchSingleProcess: a simulated workload through the
// single-process Aggregator and through Shards whose partials (late ones
// republished) a merge-role Aggregator applies; the minute rollups the
// merge writes, read back into a Rollups window, give per minute the
// single process's counts (the sum of its per-second series, exactly),
// its viewers at the minute's end, and the percentiles and ratios of the
// minute's seconds added together.
func TestRollupsMatchSingleProcess(t *testing.T) {
	const (
		rate     = 60
		parts    = 3
		duration = 16 * time.Minute
	)
	t0 := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	clock := t0
	now := func() time.Time { return clock }
	single := New(Options{Now: now})
	merged := NewMerged(Options{Now: now})
	emit := func(k, v []byte) {
		if err := merged.ApplyPartial(k, v); err != nil {
			t.Fatal(err)
		}
	}
	shards := make([]*Shard, parts)
	for p := range shards {
		shards[p] = NewShard("t", int32(p), ShardOptions{Aggregator: Options{Now: now}})
	}
	w := newWorkload(t, eventfulKnobs(), 5, rate, parts, true)
	w.play(&clock, t0, duration, single, shards, emit)
	perSecond := single.Snapshot(clock, true).Series

	first, last := t0.Add(3*time.Minute).Unix(), t0.Add(14*time.Minute).Unix()
	if _, _, ok := merged.Rollup(t0.Add(duration - time.Minute).Unix()); ok {
		t.Error("the minute still open has a rollup")
	}
	if _, _, ok := merged.Rollup(t0.Unix()); ok {
		t.Error("a minute older than the rings has a rollup")
	}
	if _, _, ok := merged.Rollup(first + 1); ok {
		t.Error("a rollup of a minute that does not start on the minute")
	}
	win := NewRollups(first-RollupStep, last, 0) // one minute without a record
	for m := first; m <= last; m += RollupStep {
		k, v, ok := merged.Rollup(m)
		if !ok {
			t.Fatalf("no rollup of minute %d", m)
		}
		// An older record of the key first: the newest one wins.
		if m == first {
			_, old, _ := merged.Rollup(m + RollupStep)
			if err := win.Apply(k, old); err != nil {
				t.Fatal(err)
			}
		}
		if err := win.Apply(k, v); err != nil {
			t.Fatal(err)
		}
	}
	got := win.Series()
	if got.Start != first-RollupStep || got.Length != int((last-first)/RollupStep)+2 || got.ResolutionS != RollupStep {
		t.Fatalf("window start %d length %d resolution %d", got.Start, got.Length, got.ResolutionS)
	}
	if len(got.Streams) != 2 || len(got.Sources) != 1 || !got.Sources["sim"].Overall {
		t.Errorf("streams %d, sources %v: want alpha, beta and sim as the overall series", len(got.Streams), got.Sources)
	}
	if v := got.Overall.SPS[0]; !math.IsNaN(v) {
		t.Errorf("the minute without a record has %v starts/s, want null", v)
	}

	n := got.Length
	check := func(name string, want Series, sc *scope, got Series) {
		for i := 1; i < n; i++ {
			m := first + int64(i-1)*RollupStep
			at := int(m - perSecond.Start)
			for typ, vs := range want.EventsByType {
				var n float64
				for _, v := range vs[at : at+RollupStep] {
					n += v
				}
				if g := got.EventsByType[typ][i] * RollupStep; math.Abs(g-n) > 1e-6 {
					t.Errorf("%s minute %d: %v %s events, the single process counted %v", name, i, g, typ, n)
				}
			}
			var starts float64
			for _, v := range want.SPS[at : at+RollupStep] {
				starts += v
			}
			if g := got.SPS[i] * RollupStep; math.Abs(g-starts) > 1e-6 {
				t.Errorf("%s minute %d: %v starts, want %v", name, i, g, starts)
			}
			if g, w := got.ConcurrentViewers[i], want.ConcurrentViewers[at+RollupStep-1]; g != w {
				t.Errorf("%s minute %d: %v viewers at its end, want %v", name, i, g, w)
			}
			// The minute's seconds added up in the single process.
			c := copyScope(sc, m, m+RollupStep-1, m+RollupStep-1)
			g := c.window(m, m+RollupStep-1)
			ref := Series{EventsByType: map[string]Nums{}}
			for _, p := range []*Nums{&ref.Attempts, &ref.SPS, &ref.ConcurrentViewers, &ref.StartupP50MS, &ref.StartupP95MS, &ref.RebufferPct, &ref.AvgBitrateKbps, &ref.StartFailurePct, &ref.ExitBeforeStartPct, &ref.PlaybackFailurePct} {
				*p = make(Nums, 1)
			}
			for typ := range want.EventsByType {
				ref.EventsByType[typ] = make(Nums, 1)
			}
			point(&ref, 0, &g, 0, event.Types())
			for _, f := range []struct {
				what      string
				got, want float64
			}{
				{"startup p50", got.StartupP50MS[i], ref.StartupP50MS[0]}, {"startup p95", got.StartupP95MS[i], ref.StartupP95MS[0]},
				{"rebuffering", got.RebufferPct[i], ref.RebufferPct[0]}, {"bitrate", got.AvgBitrateKbps[i], ref.AvgBitrateKbps[0]},
				{"VSF", got.StartFailurePct[i], ref.StartFailurePct[0]}, {"EBVS", got.ExitBeforeStartPct[i], ref.ExitBeforeStartPct[0]},
				{"playback failures", got.PlaybackFailurePct[i], ref.PlaybackFailurePct[0]},
			} {
				if f.got != f.want && !(math.IsNaN(f.got) && math.IsNaN(f.want)) {
					t.Errorf("%s minute %d: %s %v, want %v", name, i, f.what, f.got, f.want)
				}
			}
		}
	}
	check("overall", perSecond.Overall, single.overall, got.Overall)
	for name, s := range perSecond.Streams {
		check(name, s, single.streams[name], got.Streams[name])
	}
	if got.Overall.ConcurrentViewers[got.Length-1] == 0 || got.Overall.StartupP95MS[1] == 0 {
		t.Errorf("an empty window: %v viewers", got.Overall.ConcurrentViewers[got.Length-1])
	}
}

// TestRollupsRefuseBadRecords: a record that is not a rollup is an error
// with a reason, and changes nothing.
func TestRollupsRefuseBadRecords(t *testing.T) {
	w := NewRollups(0, 600, 0)
	good := binary.AppendVarint(appendSum([]byte{rollupVersion, 1, scopeOverall, 0}, &sum{}), 1)
	if err := w.Apply(RollupKey(60), good); err != nil {
		t.Fatalf("a good rollup: %v", err)
	}
	for _, c := range []struct {
		name, reason string
		key, value   []byte
	}{
		{"a partial's key", "key", PartialKey("t", 0, 60), good},
		{"not on the minute", "key", []byte("minute/61"), good},
		{"another version", "version", RollupKey(120), append([]byte{9}, good[1:]...)},
		{"truncated", "truncated", RollupKey(120), good[:len(good)-1]},
		{"trailing bytes", "trailing", RollupKey(120), append(append([]byte(nil), good...), 0)},
		{"a dimension's scope", "scope", RollupKey(120), append([]byte{rollupVersion, 1, scopeDim}, good[3:]...)},
	} {
		err := w.Apply(c.key, c.value)
		var pe *PartialError
		if !errors.As(err, &pe) || ReasonOf(err) != c.reason {
			t.Errorf("%s: %v, want reason %q", c.name, err, c.reason)
		}
	}
	s := w.Series()
	if s.Overall.ConcurrentViewers[1] != 1 || !math.IsNaN(s.Overall.ConcurrentViewers[2]) {
		t.Errorf("viewers %v: want only minute 60's, 1", s.Overall.ConcurrentViewers)
	}
}
