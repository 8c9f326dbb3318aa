package aggregate

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
)

type feeder struct {
	a     *Aggregator
	clock time.Time
	reg   *prometheus.Registry
	off   int64
}

func newFeeder(opts Options) *feeder {
	f := &feeder{clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), reg: prometheus.NewRegistry()}
	opts.Now = func() time.Time { return f.clock }
	opts.Registerer = f.reg
	f.a = New(opts)
	return f
}

// add feeds one event at the current clock.
func (f *feeder) add(part int32, lag int64, e event.Event) {
	f.off++
	if e.TS.IsZero() {
		e.TS = f.clock
	}
	if e.Stream == "" {
		e.Stream = "s"
	}
	if e.Device == "" {
		e.Device = "tv"
	}
	if e.MovieID == "" {
		e.MovieID = "m1"
	}
	f.a.Add(&consume.Record{Topic: "t", Partition: part, Offset: f.off, Timestamp: e.TS, Lag: lag, Event: e})
}

func ev(id string, seq uint64, typ event.Type) event.Event {
	e := event.Event{V: 1, SessionID: id, EventID: fmt.Sprint(id, seq), Seq: seq, Type: typ, UserID: "u"}
	switch typ {
	case event.Play:
		e.Bitrate = 3000
	case event.Heartbeat:
		e.Bitrate = 3000
	}
	return e
}

func firstFrame(id string, seq uint64) event.Event {
	e := ev(id, seq, event.Play)
	e.FirstFrame, e.StartupMS = true, 1500
	return e
}

func (f *feeder) ccv() int64 { return f.a.Snapshot(f.clock, false).Overall.ConcurrentViewers }

func TestSilentSessionsStopCounting(t *testing.T) {
	f := newFeeder(Options{SessionTimeout: time.Minute})
	f.add(0, 0, ev("a", 1, event.Start))
	f.add(0, 0, firstFrame("a", 2))
	f.add(0, 0, ev("b", 1, event.Start))
	f.add(0, 0, firstFrame("b", 2))
	f.add(0, 0, ev("b", 3, event.Pause)) // paused viewers are not concurrent
	if got := f.ccv(); got != 1 {
		t.Fatalf("ccv %d, want 1", got)
	}
	start := f.clock
	f.clock = f.clock.Add(61 * time.Second)
	if got := f.ccv(); got != 0 {
		t.Fatalf("ccv after a minute of silence %d, want 0", got)
	}
	if got := testutil.ToFloat64(f.a.m.evicted.WithLabelValues("idle")); got != 2 {
		t.Fatalf("idle evictions %v, want 2", got)
	}
	// The series says when: a was a viewer until last event + timeout.
	if v, _ := f.a.ConcurrentViewers("", start.Unix()+59, f.clock); v != 1 {
		t.Fatalf("ccv 59 s after the last event %d, want 1", v)
	}
	if v, _ := f.a.ConcurrentViewers("", start.Unix()+60, f.clock); v != 0 {
		t.Fatalf("ccv 60 s after the last event %d, want 0", v)
	}
}

// TestReplayDoesNotExpire: while a partition replays the warm-up window its
// sessions age by the partition's position, not by the clock.
func TestReplayDoesNotExpire(t *testing.T) {
	f := newFeeder(Options{SessionTimeout: time.Minute})
	past := f.clock.Add(-4 * time.Minute)
	e := ev("a", 1, event.Start)
	e.TS = past
	f.add(0, 1000, e)
	e = firstFrame("a", 2)
	e.TS = past.Add(time.Second)
	f.add(0, 999, e)
	if got := f.ccv(); got != 1 {
		t.Fatalf("replaying partition: ccv %d, want 1", got)
	}
	e = ev("a", 3, event.Heartbeat)
	e.TS = past.Add(11 * time.Second)
	f.add(0, 0, e) // caught up: now the clock applies
	if got := f.ccv(); got != 0 {
		t.Fatalf("caught up, last event 4 min ago: ccv %d, want 0", got)
	}
}

func TestStaleSourceFreezesSessions(t *testing.T) {
	f := newFeeder(Options{SessionTimeout: time.Minute})
	f.add(0, 0, ev("a", 1, event.Start))
	f.add(0, 0, firstFrame("a", 2))
	f.a.SetStale(f.clock.Add(time.Second))
	f.clock = f.clock.Add(5 * time.Minute)
	if got := f.ccv(); got != 1 {
		t.Fatalf("stale source: ccv %d, want the last state 1", got)
	}
	f.a.SetStale(time.Time{})
	if got := f.ccv(); got != 0 {
		t.Fatalf("source back, session silent: ccv %d, want 0", got)
	}
}

func TestSessionCap(t *testing.T) {
	f := newFeeder(Options{MaxSessions: 100})
	for i := range 1000 {
		f.clock = f.clock.Add(time.Millisecond)
		f.add(int32(i%3), 0, ev(fmt.Sprint("s", i), 1, event.Start))
	}
	f.clock = f.clock.Add(time.Second)
	s := f.a.Snapshot(f.clock, false)
	if s.Sessions.Tracked != 100 || s.Sessions.Evicted != 900 || s.Overall.ConcurrentViewers != 100 {
		t.Fatalf("sessions %+v, ccv %d; want 100 tracked, 900 evicted, 100 viewers", s.Sessions, s.Overall.ConcurrentViewers)
	}
	if s.Overall.Attempts != 1000 {
		t.Fatalf("attempts %d: evictions must not lose counts", s.Overall.Attempts)
	}
	if got := testutil.ToFloat64(f.a.m.evicted.WithLabelValues("cap")); got != 900 {
		t.Fatalf("cap evictions metric %v", got)
	}
}

func TestStreamAndBreakdownCaps(t *testing.T) {
	f := newFeeder(Options{MaxStreams: 3})
	for i := range 10 {
		e := ev(fmt.Sprint("s", i), 1, event.Start)
		e.Stream = fmt.Sprint("stream", i)
		e.Country = fmt.Sprint("C", i)
		f.add(0, 0, e)
	}
	for i := range 100 {
		e := ev(fmt.Sprint("c", i), 1, event.Start)
		e.Stream = "stream0"
		e.Country = fmt.Sprint("X", i)
		f.add(0, 0, e)
	}
	f.clock = f.clock.Add(time.Second)
	s := f.a.Snapshot(f.clock, false)
	if len(s.Streams) != 3 || len(s.ByCountry) != MaxDimValues || s.ByCountry["other"].Attempts == 0 {
		t.Fatalf("streams %v, %d countries", s.Streams, len(s.ByCountry))
	}
	if got := testutil.ToFloat64(f.a.m.streamOverflow); got != 7 {
		t.Fatalf("stream overflow %v, want 7 (busy streams are not evicted)", got)
	}
	if s.Overall.Attempts != 110 {
		t.Fatalf("overall attempts %d", s.Overall.Attempts)
	}
	// A minute later the idle streams make room for new ones.
	f.clock = f.clock.Add(2 * time.Minute)
	e := ev("late", 1, event.Start)
	e.Stream = "newcomer"
	f.add(0, 0, e)
	if got := testutil.ToFloat64(f.a.m.streamsEvicted); got != 1 {
		t.Fatalf("streams evicted %v, want 1", got)
	}
	f.clock = f.clock.Add(time.Second)
	if q := f.a.Snapshot(f.clock, false).ByStream["newcomer"]; q.Attempts != 1 || q.ConcurrentViewers != 1 {
		t.Fatalf("reused stream scope: %+v", q)
	}
}

func TestMidSessionAndDuplicates(t *testing.T) {
	f := newFeeder(Options{})
	hb := ev("a", 7, event.Heartbeat) // first seen mid-way: playing
	f.add(0, 0, hb)
	f.clock = f.clock.Add(10 * time.Second)
	f.add(0, 0, ev("a", 8, event.Heartbeat))
	f.add(0, 0, ev("a", 8, event.Heartbeat))  // duplicate
	f.add(0, 0, ev("a", 10, event.BufferEnd)) // illegal while playing: resync
	f.clock = f.clock.Add(time.Second)
	s := f.a.Snapshot(f.clock, false)
	if s.Overall.ConcurrentViewers != 1 || float64(s.Overall.PlayTimeS) != 10 || s.Overall.EventsByType["heartbeat"] != 3 {
		t.Fatalf("mid-session: %+v", s.Overall)
	}
	if testutil.ToFloat64(f.a.m.duplicates) != 1 || testutil.ToFloat64(f.a.m.resyncs) != 1 {
		t.Fatal("duplicate and resync must be counted")
	}
}

func TestFutureTimestampsCountNow(t *testing.T) {
	f := newFeeder(Options{})
	e := ev("a", 1, event.Start)
	e.TS = f.clock.Add(time.Hour)
	f.add(0, 0, e)
	f.add(0, 0, ev("b", 1, event.Start))
	f.clock = f.clock.Add(time.Second)
	if s := f.a.Snapshot(f.clock, false); s.Overall.Attempts != 2 {
		t.Fatalf("attempts %d, want 2: a future stamp must not hide the present", s.Overall.Attempts)
	}
}

func BenchmarkAdd(b *testing.B) {
	a := New(Options{})
	recs := make([]consume.Record, 4096)
	now := time.Now()
	for i := range recs {
		e := ev(fmt.Sprint("s", i%512), uint64(i/512+2), event.Heartbeat)
		e.Stream, e.Device, e.MovieID, e.TS = "x", "tv", "m1", now
		recs[i] = consume.Record{Topic: "t", Timestamp: now, Event: e}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &recs[i%len(recs)]
		r.Event.Seq = uint64(i + 2)
		a.Add(r)
	}
}
