package app

import (
	"testing"
	"time"

	"playpulse.dev/services/fanout/internal/aggregate"
	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/fanout/internal/hub"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

// BenchmarkPipeline is the per-record work of a fan-out without Kafka:
// decode, aggregate, encode into the tail ring.
func BenchmarkPipeline(b *testing.B) {
	cfg := sim.DefaultConfig()
	cfg.Seed = 1
	s, err := sim.New(cfg, "bench", "b")
	if err != nil {
		b.Fatal(err)
	}
	s.SetRate(10000)
	const n = 1 << 16
	vals := make([][]byte, n)
	tss := make([]time.Time, n)
	now := time.Now().Add(-time.Minute)
	var e event.Event
	for i := range vals {
		now = now.Add(100 * time.Microsecond)
		s.Next(now, &e)
		vals[i] = e.AppendJSON(nil)
		tss[i] = e.TS.Truncate(time.Millisecond)
	}
	a := aggregate.New(aggregate.Options{})
	h := hub.New(hub.Options{TailRate: 200, FrameHz: 10, WriteTimeout: time.Second, RingSize: 100000})
	rec := &consume.Record{Topic: "t"}
	b.SetBytes(int64(len(vals[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % n
		if err := event.Decode(vals[j], &rec.Event); err != nil {
			b.Fatal(err)
		}
		rec.Offset, rec.Timestamp = int64(i), tss[j]
		a.Add(rec)
		h.Publish(rec)
	}
}
