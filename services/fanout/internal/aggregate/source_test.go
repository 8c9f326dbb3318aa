package aggregate

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
)

// emit feeds e at the feeder's clock, with a stream and a source.
func (f *feeder) emit(stream, source string, e event.Event) {
	e.Stream, e.Source = stream, source
	f.add(0, 0, e)
}

// watch plays one view of 10 s from the feeder's clock, which it moves
// on: start, first frame, and, with stall, 4 s of play, a 2 s stall and
// 4 s more (20% rebuffering); without, 10 s of play. The session stays a
// viewer.
func (f *feeder) watch(id, stream, source string, stall bool) {
	t0 := f.clock
	at := func(d time.Duration, e event.Event) {
		f.clock = t0.Add(d)
		f.emit(stream, source, e)
	}
	at(0, ev(id, 1, event.Start))
	at(0, firstFrame(id, 2))
	if stall {
		at(4*time.Second, ev(id, 3, event.BufferStart))
		at(6*time.Second, ev(id, 4, event.BufferEnd))
	}
	at(10*time.Second, ev(id, 5, event.Heartbeat))
}

type sourceWant struct {
	attempts, ccv uint64
	rebufferPct   float64 // -1: undefined
	events        uint64
}

// TestSourceScopes: every figure is kept per source, beside the overall
// ones; a source's series are sent as "overall" when they are exactly
// those.
func TestSourceScopes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		feed        func(f *feeder)
		want        map[string]sourceWant
		sameOverall []string // sources whose series are the overall ones
	}{
		{
			name: "two sources split every figure",
			feed: func(f *feeder) {
				f.watch("a", "s", event.SourceSim, false)
				f.watch("b", "s", event.SourceCMCD, true)
			},
			want: map[string]sourceWant{
				"sim":  {attempts: 1, ccv: 1, rebufferPct: 0, events: 3},
				"cmcd": {attempts: 1, ccv: 1, rebufferPct: 20, events: 5},
			},
		},
		{
			name:        "one source: its series are the overall ones",
			feed:        func(f *feeder) { f.watch("a", "s", event.SourceBeacon, true) },
			want:        map[string]sourceWant{"beacon": {attempts: 1, ccv: 1, rebufferPct: 20, events: 5}},
			sameOverall: []string{"beacon"},
		},
		{
			name:        "no source field is unknown",
			feed:        func(f *feeder) { f.watch("a", "s", "", false) },
			want:        map[string]sourceWant{"unknown": {attempts: 1, ccv: 1, rebufferPct: 0, events: 3}},
			sameOverall: []string{"unknown"},
		},
		{
			name: "a session keeps the source of its first event",
			feed: func(f *feeder) {
				f.emit("s", event.SourceSim, ev("a", 1, event.Start))
				f.emit("s", event.SourceCMCD, firstFrame("a", 2))
				f.clock = f.clock.Add(10 * time.Second)
				f.emit("s", event.SourceCMCD, ev("a", 3, event.Heartbeat))
			},
			want:        map[string]sourceWant{"sim": {attempts: 1, ccv: 1, rebufferPct: 0, events: 3}},
			sameOverall: []string{"sim"},
		},
		{
			name: "the stop of a session never seen counts under its own source",
			feed: func(f *feeder) {
				f.watch("a", "s", event.SourceSim, false)
				stop := ev("z", 9, event.Stop)
				stop.StopReason = event.StopQuit
				f.emit("s", event.SourceCMCD, stop)
			},
			want: map[string]sourceWant{
				"sim":  {attempts: 1, ccv: 1, rebufferPct: 0, events: 3},
				"cmcd": {attempts: 0, ccv: 0, rebufferPct: -1, events: 1},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeeder(Options{})
			tc.feed(f)
			f.clock = f.clock.Add(11 * time.Second)
			s := f.a.Snapshot(f.clock, true)
			var names []string
			for _, n := range sourceNames {
				if _, ok := tc.want[n]; ok {
					names = append(names, n)
				}
			}
			if !slices.Equal(s.Sources, names) {
				t.Fatalf("sources %v, want %v (in the contract's order)", s.Sources, names)
			}
			var attempts, ccv uint64
			for name, w := range tc.want {
				q := s.BySource[name]
				var events uint64
				for _, n := range q.EventsByType {
					events += n
				}
				got := sourceWant{q.Attempts, uint64(q.ConcurrentViewers), float64(q.RebufferPct), events}
				if q.RebufferPct.IsNull() {
					got.rebufferPct = -1
				}
				if got != w {
					t.Errorf("by_source[%s] = %+v, want %+v", name, got, w)
				}
				attempts += q.Attempts
				ccv += uint64(q.ConcurrentViewers)
				same := slices.Contains(tc.sameOverall, name)
				if ser := s.Series.Sources[name]; ser.Overall != same {
					t.Errorf("series.sources[%s] is \"overall\": %v, want %v", name, ser.Overall, same)
				}
			}
			if attempts != s.Overall.Attempts || int64(ccv) != s.Overall.ConcurrentViewers {
				t.Errorf("sources add up to %d attempts, %d viewers; overall %d, %d", attempts, ccv, s.Overall.Attempts, s.Overall.ConcurrentViewers)
			}
		})
	}
}

// TestSourceSeries: a source's series hold its own events and viewers,
// second by second, and its JSON is an object unless it is "overall".
func TestSourceSeries(t *testing.T) {
	f := newFeeder(Options{})
	f.watch("a", "s", event.SourceSim, false) // seconds 0 to 10
	f.clock = f.clock.Add(5 * time.Second)
	t0 := f.clock.Unix()
	f.watch("b", "s", event.SourceCMCD, false) // 15 to 25
	f.clock = f.clock.Add(11 * time.Second)
	s := f.a.Snapshot(f.clock, true)
	i := int(t0 - s.Series.Start)
	cm, ov := s.Series.Sources["cmcd"].Series, s.Series.Overall
	if got := []float64{cm.Attempts[i-1], cm.Attempts[i], cm.ConcurrentViewers[i-1], cm.ConcurrentViewers[i], ov.ConcurrentViewers[i]}; !slices.Equal(got, []float64{0, 1, 0, 1, 2}) {
		t.Fatalf("around the cmcd view's start: cmcd attempts %v, cmcd viewers %v, overall viewers %v; want 0 1, 0 1, 2", got[:2], got[2:4], got[4])
	}
	var j struct {
		Series struct {
			Sources map[string]json.RawMessage `json:"sources"`
		} `json:"series"`
	}
	if err := json.Unmarshal(s.JSON(), &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Series.Sources) != 2 || j.Series.Sources["cmcd"][0] != '{' || j.Series.Sources["sim"][0] != '{' {
		t.Fatalf("series.sources %s", j.Series.Sources)
	}
	one := newFeeder(Options{})
	one.watch("a", "s", event.SourceSim, false)
	one.clock = one.clock.Add(11 * time.Second)
	if err := json.Unmarshal(one.a.Snapshot(one.clock, false).JSON(), &j); err != nil {
		t.Fatal(err)
	}
	if string(j.Series.Sources["sim"]) != `"overall"` {
		t.Fatalf("one source: series.sources %s, want {\"sim\":\"overall\"}", j.Series.Sources)
	}
}

// TestSourceSnapshot: a snapshot scoped to a source has that source's
// figures where the whole snapshot has everyone's, and no breakdowns.
func TestSourceSnapshot(t *testing.T) {
	f := newFeeder(Options{})
	f.watch("a", "x", event.SourceSim, false)
	f.watch("b", "x", event.SourceCMCD, true)
	f.watch("c", "y", event.SourceSim, false)
	f.clock = f.clock.Add(11 * time.Second)
	all := f.a.Snapshot(f.clock, true)
	for _, tc := range []struct {
		source  string
		streams []string
		events  uint64
	}{
		{"cmcd", []string{"x"}, 5},
		{"sim", []string{"x", "y"}, 6},
		{"beacon", []string{}, 0}, // never seen: zeros
	} {
		t.Run(tc.source, func(t *testing.T) {
			s, ok := f.a.SourceSnapshot(f.clock, true, tc.source)
			if !ok {
				t.Fatal("refused")
			}
			if s.Scope == nil || s.Scope.Source != tc.source || s.EventsTotal != tc.events || !slices.Equal(s.Streams, tc.streams) {
				t.Fatalf("scope %+v, events_total %d, streams %v; want %s, %d, %v", s.Scope, s.EventsTotal, s.Streams, tc.source, tc.events, tc.streams)
			}
			if want, ok := all.BySource[tc.source]; ok {
				if g, w := mustJSON(t, s.Overall), mustJSON(t, want); g != w {
					t.Fatalf("overall of the scoped snapshot\n%s\nby_source[%s] of the whole one\n%s", g, tc.source, w)
				}
				want := all.Series.Sources[tc.source].Series
				if g, w := mustJSON(t, s.Series.Overall), mustJSON(t, want); g != w {
					t.Fatal("series.overall of the scoped snapshot differs from series.sources of the whole one")
				}
			} else if s.Overall.Attempts != 0 || s.Overall.ConcurrentViewers != 0 || !s.Overall.RebufferPct.IsNull() || s.LatestTS != 0 {
				t.Fatalf("a source never seen: %+v", s.Overall)
			}
			var j map[string]json.RawMessage
			if err := json.Unmarshal(s.JSON(), &j); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"by_stream", "by_source", "by_device", "by_cdn", "by_country", "top_titles", "sources"} {
				if string(j[k]) != "null" {
					t.Errorf("%s = %s in a scoped snapshot, want null (kept over all sources only)", k, j[k])
				}
			}
		})
	}
	if _, ok := f.a.SourceSnapshot(f.clock, false, "browser"); ok {
		t.Fatal("an unknown source must be refused")
	}
}

// TestSourceStreams: /api/streams of one source lists the streams that
// carried it, with that source's events and viewers, for 15 minutes; a
// stream scope reused for another stream starts with no sources.
func TestSourceStreams(t *testing.T) {
	f := newFeeder(Options{MaxStreams: 2, SessionTimeout: time.Minute})
	f.watch("a", "x", event.SourceSim, false)
	f.watch("b", "x", event.SourceCMCD, true)
	f.watch("c", "x", event.SourceCMCD, false)
	f.watch("d", "y", event.SourceSim, false)
	f.clock = f.clock.Add(11 * time.Second)
	type row struct {
		name        string
		events, ccv int64
	}
	list := func(source string) []row {
		t.Helper()
		l, ok := f.a.SourceStreams(f.clock, source)
		if !ok {
			t.Fatalf("%s refused", source)
		}
		var out []row
		for _, s := range l {
			out = append(out, row{s.Name, int64(s.EventsTotal), s.ConcurrentViewers})
		}
		return out
	}
	if got, want := list("cmcd"), []row{{"x", 8, 2}}; !slices.Equal(got, want) {
		t.Fatalf("cmcd streams %v, want %v", got, want)
	}
	if got, want := list("sim"), []row{{"x", 3, 1}, {"y", 3, 1}}; !slices.Equal(got, want) {
		t.Fatalf("sim streams %v, want %v", got, want)
	}
	if got := list("beacon"); len(got) != 0 {
		t.Fatalf("beacon streams %v, want none", got)
	}
	if _, ok := f.a.SourceStreams(f.clock, "Sim"); ok {
		t.Fatal("source names are exact")
	}
	// A minute of silence: the viewers are gone, the streams stay listed.
	f.clock = f.clock.Add(time.Minute)
	f.a.Snapshot(f.clock, false) // expires
	if got, want := list("cmcd"), []row{{"x", 8, 0}}; !slices.Equal(got, want) {
		t.Fatalf("cmcd streams after the sessions timed out %v, want %v", got, want)
	}
	// A third stream takes the scope of the least recently seen one.
	f.watch("e", "z", event.SourceBeacon, false)
	f.clock = f.clock.Add(11 * time.Second)
	for _, tc := range []struct {
		source string
		want   []row
	}{
		{"cmcd", nil}, // x was evicted; z, in its scope, has none
		{"sim", []row{{"y", 3, 0}}},
		{"beacon", []row{{"z", 3, 1}}},
	} {
		if got := list(tc.source); !slices.Equal(got, tc.want) {
			t.Fatalf("%s streams after stream x was evicted for z: %v, want %v", tc.source, got, tc.want)
		}
	}
	// 15 minutes later nothing is listed.
	f.clock = f.clock.Add(Window)
	if got := list("beacon"); len(got) != 0 {
		t.Fatalf("beacon streams 15 minutes later %v", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
