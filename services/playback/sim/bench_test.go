package sim

import (
	"sync"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
)

// benchRate is the simulated output rate of the benchmarks: a large
// population (≈85k live sessions) so heap and cache costs are realistic.
const benchRate = 10000

var (
	benchOnce sync.Once
	benchS    *Sim
	benchNow  time.Time
)

// warmSim returns a simulator that has already run two simulated minutes at
// benchRate, so the population is near its target. It is shared by the
// benchmarks and keeps running from where the previous one stopped.
func warmSim(b *testing.B) *Sim {
	benchOnce.Do(func() {
		cfg := DefaultConfig()
		cfg.Seed = 42
		s, err := New(cfg, "bench", "bench-pod-x7k2")
		if err != nil {
			b.Fatal(err)
		}
		s.SetRate(benchRate)
		benchNow = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		var e event.Event
		for range 120 * benchRate {
			benchNow = benchNow.Add(time.Second / benchRate)
			s.Next(benchNow, &e)
		}
		benchS = s
	})
	return benchS
}

func BenchmarkNext(b *testing.B) {
	s := warmSim(b)
	var e event.Event
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		benchNow = benchNow.Add(time.Second / benchRate)
		s.Next(benchNow, &e)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

func BenchmarkNextAppendJSON(b *testing.B) {
	s := warmSim(b)
	var e event.Event
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	bytes := 0
	for range b.N {
		benchNow = benchNow.Add(time.Second / benchRate)
		s.Next(benchNow, &e)
		buf = e.AppendJSON(buf[:0])
		bytes += len(buf)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/event")
}
