package aggregate

import (
	"testing"
	"time"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

func TestSnapshotSizeReport(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Seed = 3
	s, _ := sim.New(cfg, "default", "x")
	s.SetRate(500)
	t0 := time.Now().Add(-16 * time.Minute)
	clock := t0
	a := New(Options{Now: func() time.Time { return clock }})
	var e event.Event
	r := &consume.Record{Topic: "t"}
	for now := t0; now.Before(t0.Add(16 * time.Minute)); now = now.Add(2 * time.Millisecond) {
		clock = now
		s.Next(now, &e)
		r.Timestamp, r.Event = e.TS, e
		a.Add(r)
	}
	p := a.Snapshot(clock, false).JSON()
	f := a.Snapshot(clock, true).JSON()
	t.Logf("periodic %d bytes, full %d bytes", len(p), len(f))
	start := time.Now()
	for range 10 {
		a.Snapshot(clock, false).JSON()
	}
	t.Logf("periodic snapshot: %s each", time.Since(start)/10)
	start = time.Now()
	a.Snapshot(clock, true).JSON()
	t.Logf("full snapshot: %s", time.Since(start))
}
