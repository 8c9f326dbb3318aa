package aggregate

import (
	"bytes"
	"compress/flate"
	"testing"
	"time"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

// BenchmarkSnapshot: computing and encoding a periodic and a full snapshot
// after 16 minutes of a default simulated stream at 500 events/s; reports
// their sizes, raw and deflated (as sent to clients that negotiated
// compression).
func BenchmarkSnapshot(b *testing.B) {
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
	for _, full := range []bool{false, true} {
		name := "periodic"
		if full {
			name = "full"
		}
		b.Run(name, func(b *testing.B) {
			var n int
			var raw []byte
			for i := 0; i < b.N; i++ {
				raw = a.Snapshot(clock, full).JSON()
				n = len(raw)
			}
			b.ReportMetric(float64(n), "bytes")
			b.ReportMetric(float64(deflated(raw)), "deflated-bytes")
		})
	}
}

func deflated(b []byte) int {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Len()
}
