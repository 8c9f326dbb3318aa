package aggregate

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	sessions       prometheus.Gauge
	evicted        *prometheus.CounterVec
	resyncs        prometheus.Counter
	duplicates     prometheus.Counter
	streamsEvicted prometheus.Counter
	streamOverflow prometheus.Counter
	dimOverflow    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "playpulse_fanout_sessions", Help: "Viewing sessions the aggregator holds state for."}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_sessions_evicted_total", Help: "Sessions dropped: idle (silent past FANOUT_SESSION_TIMEOUT) or cap (FANOUT_MAX_SESSIONS reached, longest idle first).",
		}, []string{"reason"}),
		resyncs:        prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_session_resyncs_total", Help: "Events illegal in their session's state (lost or reordered events); the state was taken from the event."}),
		duplicates:     prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_session_duplicates_total", Help: "Events whose seq was not above the session's last one; ignored for the session state."}),
		streamsEvicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_streams_evicted_total", Help: "Streams dropped from the per-stream figures to make room for a new one (FANOUT_MAX_STREAMS)."}),
		streamOverflow: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_stream_overflow_events_total", Help: "Events of streams beyond FANOUT_MAX_STREAMS counted overall only."}),
		dimOverflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_breakdown_overflow_total", Help: "Sessions whose device, CDN or country value was folded into \"other\" (64 values per dimension).",
		}, []string{"dimension"}),
	}
	for _, r := range []string{"idle", "cap"} {
		m.evicted.WithLabelValues(r)
	}
	for _, d := range dimNames {
		m.dimOverflow.WithLabelValues(d)
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.evicted, m.resyncs, m.duplicates, m.streamsEvicted, m.streamOverflow, m.dimOverflow)
	}
	return m
}
