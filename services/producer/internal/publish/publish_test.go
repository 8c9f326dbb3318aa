package publish_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/sim"
	"playpulse.dev/services/producer/internal/publish"
)

// These are fast unit tests on the in-process kfake broker; the behaviour
// against real Kafka is tested in tests/e2e.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCluster(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.SeedTopics(3, "events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

func newPublisher(t *testing.T, addr string, rate float64) *publish.Publisher {
	t.Helper()
	return newPublisherFrom(t, addr, rate, newSim(t), prometheus.NewRegistry())
}

func newSim(t *testing.T) *sim.Sim {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Seed = 7
	src, err := sim.New(cfg, "unit", "test")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func newPublisherFrom(t *testing.T, addr string, rate float64, src publish.Source, reg *prometheus.Registry) *publish.Publisher {
	t.Helper()
	kc := kafkacfg.Config{Brokers: []string{addr}, ClientID: "unit", Version: "3.9.0"}
	sc, err := kc.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	return publish.New(sc, []string{addr}, src, publish.Options{
		Topic: "events", Rate: rate, MaxBuffered: 10000,
		Compression: sarama.CompressionLZ4, Linger: 5 * time.Millisecond,
		Log: slog.New(slog.DiscardHandler), Registerer: reg,
	})
}

// TestAccountingAndCleanShutdown: every generated event is acknowledged or
// counted as failed, the publisher becomes ready, and Run returns promptly
// after cancel with nothing left running (goleak).
func TestAccountingAndCleanShutdown(t *testing.T) {
	p := newPublisher(t, newCluster(t), 2000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()

	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Acked < 1000 || p.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, ready %v", p.Stats(), p.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
	s := p.Stats()
	if s.Acked+s.Failed != s.Generated || s.Failed != 0 {
		t.Fatalf("accounting: %+v", s)
	}
}

// TestPausedAtRateZero: connected and ready, nothing generated.
func TestPausedAtRateZero(t *testing.T) {
	p := newPublisher(t, newCluster(t), 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for p.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", p.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if s := p.Stats(); s.Generated != 0 {
		t.Fatalf("paused producer generated %d events", s.Generated)
	}
}

// TestNotReadyWithoutKafka: with no broker the publisher keeps retrying,
// says why it is not ready, and still stops promptly.
func TestNotReadyWithoutKafka(t *testing.T) {
	p := newPublisher(t, "127.0.0.1:1", 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	if err := p.Ready(); err == nil {
		t.Fatal("ready without Kafka")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

// doubled is the simulator with a daily profile stuck at 2x.
type doubled struct{ *sim.Sim }

func (d doubled) Rate(now time.Time) float64 { return 2 * d.Sim.Rate(now) }

// TestPacesAtSourceRate: the pacer follows Source.Rate(now), not the
// configured average, shows it as the target rate, and exports the
// simulator's statistics.
func TestPacesAtSourceRate(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := newPublisherFrom(t, newCluster(t), 500, doubled{newSim(t)}, reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Acked < 1500 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", p.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := gauge(t, reg, "playpulse_producer_target_rate"); got != 1000 {
		t.Fatalf("target rate %v, want 1000 (2 x 500)", got)
	}
	if got := gauge(t, reg, "playpulse_producer_base_rate"); got != 500 {
		t.Fatalf("base rate %v, want 500", got)
	}
	for _, name := range []string{"playpulse_producer_sessions_started_total", "playpulse_producer_session_target",
		"playpulse_producer_event_lag_seconds", "playpulse_producer_active_sessions", "playpulse_producer_send_latency_seconds"} {
		if n := series(t, reg, name); n == 0 {
			t.Errorf("metric %s not exported", name)
		}
	}
}

func series(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
