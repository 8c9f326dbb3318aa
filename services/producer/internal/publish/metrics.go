package publish

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

type metrics struct {
	events   [event.NumTypes]prometheus.Counter // acknowledged, by type; resolved once, not per event
	failed   *prometheus.CounterVec
	latency  prometheus.Histogram
	target   prometheus.Gauge
	achieved *rateWindow
}

// FailureReasons are the label values of playpulse_producer_events_failed_total.
var FailureReasons = []string{"unknown_topic", "too_large", "not_enough_replicas", "not_authorized", "broker_error", "out_of_brokers", "shutdown", "other"}

// LatencyBuckets are the upper bounds of playpulse_producer_send_latency_seconds:
// fine below 10 ms, where the added latency at low rates must stay.
var LatencyBuckets = []float64{
	0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.010,
	0.015, 0.020, 0.030, 0.050, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}

func newMetrics(reg prometheus.Registerer, p *Publisher) *metrics {
	eventsVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "playpulse_producer_events_total", Help: "Events acknowledged by Kafka, by event type.",
	}, []string{"type"})
	m := &metrics{
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_producer_events_failed_total", Help: "Events Kafka did not acknowledge, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "playpulse_producer_send_latency_seconds", Help: "From the event time (its due time on the pacing schedule) to Kafka's acknowledgement.",
			Buckets: LatencyBuckets,
		}),
		target: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "playpulse_producer_target_rate", Help: "Events per second the pacer aims at now: PRODUCER_RATE, times the daily profile's factor when it is on.",
		}),
		achieved: &rateWindow{},
	}
	for _, t := range event.Types() {
		m.events[t] = eventsVec.WithLabelValues(t.String())
	}
	for _, r := range FailureReasons {
		m.failed.WithLabelValues(r)
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(eventsVec, m.failed, m.latency, m.target,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "playpulse_producer_base_rate", Help: "PRODUCER_RATE: the configured average events per second.",
		}, func() float64 { return p.opts.Rate }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "playpulse_producer_achieved_rate", Help: "Acknowledged events per second over the last 10 seconds.",
		}, func() float64 { return m.achieved.rate(time.Now(), p.acked.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "playpulse_producer_events_generated_total", Help: "Events generated; each is acknowledged, failed or still buffered.",
		}, func() float64 { return float64(p.generated.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "playpulse_producer_buffered_events", Help: "Events generated but not yet acknowledged or failed (at most PRODUCER_MAX_BUFFERED).",
		}, func() float64 { return float64(p.inflight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "playpulse_producer_active_sessions", Help: "Simulated viewing sessions in progress.",
		}, func() float64 { return float64(p.src.Active()) }),
		&simCollector{p: p},
	)
	return m
}

// simCollector exports the simulator's Stats, as copied by the pacer once a
// second.
type simCollector struct{ p *Publisher }

var (
	descStarted = prometheus.NewDesc("playpulse_producer_sessions_started_total",
		"Simulated sessions started, by cause: arrival (the Poisson arrival process) or deficit (the population was below target and nothing was due).", []string{"cause"}, nil)
	descEnded = prometheus.NewDesc("playpulse_producer_sessions_ended_total",
		"Simulated sessions that sent their stop, by how: planned, or shed (their next event was overdue by more than 3 heartbeat intervals + 10/rate, after a rate cut or a pause).", []string{"how"}, nil)
	descFiller = prometheus.NewDesc("playpulse_producer_filler_events_total",
		"Events sent because nothing was due when the pacer asked: heartbeat (an extra heartbeat) or pulled_forward (a starting or errored session's next event sent early).", []string{"kind"}, nil)
	descTarget = prometheus.NewDesc("playpulse_producer_session_target",
		"Population of live sessions the simulator aims at for the current rate.", nil, nil)
	descLag = prometheus.NewDesc("playpulse_producer_event_lag_seconds",
		"How late planned events were sent after their due time in the simulation (sum and count; the mean should stay well under a second).", nil, nil)
)

func (c *simCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descStarted
	ch <- descEnded
	ch <- descFiller
	ch <- descTarget
	ch <- descLag
}

func (c *simCollector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.p.simStatsSnapshot()
	if !ok {
		s = sim.Stats{}
	}
	counter := func(d *prometheus.Desc, v uint64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label)
	}
	counter(descStarted, s.Arrivals, "arrival")
	counter(descStarted, s.DeficitStarts, "deficit")
	counter(descEnded, s.Ended-s.Shed, "planned")
	counter(descEnded, s.Shed, "shed")
	counter(descFiller, s.Fillers, "heartbeat")
	counter(descFiller, s.PulledForward, "pulled_forward")
	ch <- prometheus.MustNewConstMetric(descTarget, prometheus.GaugeValue, s.Target)
	ch <- prometheus.MustNewConstSummary(descLag, s.OnTime, s.LagSum.Seconds(), nil)
}

// rateWindow keeps one sample of the acknowledged count per second for the
// last 10 seconds.
type rateWindow struct {
	mu      sync.Mutex
	samples [11]struct {
		at time.Time
		n  int64
	}
	next int
}

func (w *rateWindow) sample(now time.Time, n int64) {
	w.mu.Lock()
	w.samples[w.next].at, w.samples[w.next].n = now, n
	w.next = (w.next + 1) % len(w.samples)
	w.mu.Unlock()
}

// rate is the acknowledged events per second since the oldest sample no
// older than 10.5 s, up to now and n.
func (w *rateWindow) rate(now time.Time, n int64) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var oldest time.Time
	var from int64
	for _, s := range w.samples {
		if s.at.IsZero() || now.Sub(s.at) > 10500*time.Millisecond {
			continue
		}
		if oldest.IsZero() || s.at.Before(oldest) {
			oldest, from = s.at, s.n
		}
	}
	d := now.Sub(oldest).Seconds()
	if oldest.IsZero() || d < 0.5 {
		return 0
	}
	return float64(n-from) / d
}
