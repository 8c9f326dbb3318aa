package publish

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/playback/event"
)

type metrics struct {
	events   *prometheus.CounterVec
	failed   *prometheus.CounterVec
	latency  prometheus.Histogram
	target   prometheus.Gauge
	active   prometheus.Gauge
	achieved *rateWindow
}

// FailureReasons are the label values of playpulse_producer_events_failed_total.
var FailureReasons = []string{"unknown_topic", "too_large", "not_enough_replicas", "not_authorized", "broker_error", "out_of_brokers", "shutdown", "other"}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_producer_events_total", Help: "Events acknowledged by Kafka, by event type.",
		}, []string{"type"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_producer_events_failed_total", Help: "Events Kafka did not acknowledge, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "playpulse_producer_send_latency_seconds", Help: "From event creation to Kafka's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		target: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "playpulse_producer_target_rate", Help: "Target events per second (PRODUCER_RATE).",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "playpulse_producer_active_sessions", Help: "Simulated viewing sessions in progress.",
		}),
		achieved: &rateWindow{},
	}
	achieved := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "playpulse_producer_achieved_rate", Help: "Acknowledged events per second over the last 10 seconds.",
	}, func() float64 { return m.achieved.rate(time.Now()) })
	for _, t := range event.Types() {
		m.events.WithLabelValues(t.String())
	}
	for _, r := range FailureReasons {
		m.failed.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.events, m.failed, m.latency, m.target, m.active, achieved)
	}
	return m
}

// rateWindow counts events in one-second buckets over the last 10 seconds.
type rateWindow struct {
	mu      sync.Mutex
	buckets [11]struct {
		sec int64
		n   int64
	}
}

func (w *rateWindow) observe(now time.Time) {
	sec := now.Unix()
	w.mu.Lock()
	b := &w.buckets[sec%int64(len(w.buckets))]
	if b.sec != sec {
		b.sec, b.n = sec, 0
	}
	b.n++
	w.mu.Unlock()
}

// rate averages the 10 complete seconds before now.
func (w *rateWindow) rate(now time.Time) float64 {
	sec := now.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, b := range w.buckets {
		if b.sec < sec && b.sec >= sec-10 {
			n += b.n
		}
	}
	return float64(n) / 10
}
