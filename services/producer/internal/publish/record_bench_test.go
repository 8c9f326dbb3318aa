package publish

import (
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

// BenchmarkGenerate is the publisher's own work per event, without Kafka:
// the simulator's Next, the record (key + JSON value) and its recycling.
func BenchmarkGenerate(b *testing.B) {
	cfg := sim.DefaultConfig()
	cfg.Seed = 42
	s, err := sim.New(cfg, "bench", "bench-pod-x7k2")
	if err != nil {
		b.Fatal(err)
	}
	const rate = 10000
	s.SetRate(rate)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var e event.Event
	for range 120 * rate {
		now = now.Add(time.Second / rate)
		s.Next(now, &e)
	}
	p := &Publisher{opts: Options{Topic: "t"}}
	p.free.max = 1024
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		now = now.Add(time.Second / rate)
		s.Next(now, &e)
		r := p.newRecord(&e, now)
		var _ sarama.Encoder = r.msg.Value
		p.release(r)
	}
}
