package hub

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	clients          prometheus.Gauge
	disconnects      *prometheus.CounterVec
	sent, skipped    prometheus.Counter
	droppedSnapshots prometheus.Counter
	invalid          prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		clients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "playpulse_fanout_clients", Help: "Connected WebSocket clients."}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_disconnects_total", Help: "WebSocket disconnects by reason.",
		}, []string{"reason"}),
		sent:             prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_tail_events_sent_total", Help: "Tail events written to clients."}),
		skipped:          prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_tail_events_skipped_total", Help: "Tail events not sent to a client because of its rate cap or its slowness (the client is told)."}),
		droppedSnapshots: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_snapshots_dropped_total", Help: "Snapshots replaced by a newer one before a slow client received them."}),
		invalid:          prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_invalid_client_messages_total", Help: "Client messages rejected with an error reply."}),
	}
	for _, r := range []string{"client_closed", "server_shutdown", "policy_violation", "message_too_large", "write_timeout", "write_error"} {
		m.disconnects.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.clients, m.disconnects, m.sent, m.skipped, m.droppedSnapshots, m.invalid)
	}
	return m
}
