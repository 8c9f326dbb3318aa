package hub

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	clients          prometheus.Gauge
	disconnects      *prometheus.CounterVec
	sent, skipped    prometheus.Counter
	lost             prometheus.Counter
	droppedSnapshots prometheus.Counter
	droppedFrames    prometheus.Counter
	invalid          prometheus.Counter
	resumes          *prometheus.CounterVec
	latency          prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, h *Hub) *metrics {
	m := &metrics{
		clients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "playpulse_fanout_clients", Help: "Connected WebSocket clients."}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_disconnects_total", Help: "WebSocket disconnects by reason.",
		}, []string{"reason"}),
		sent:             prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_tail_events_sent_total", Help: "Tail events written to clients (replays included)."}),
		skipped:          prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_tail_events_skipped_total", Help: "Matching tail events not sent to a client because of its rate cap (the client is told)."}),
		lost:             prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_tail_events_lost_total", Help: "Tail events never examined for a client: they left the buffer while it was slow, or were beyond its per-frame scan bound (the client is told)."}),
		droppedSnapshots: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_snapshots_dropped_total", Help: "Snapshots replaced by a newer one before a slow client received them."}),
		droppedFrames:    prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_tail_frames_dropped_total", Help: "Tail frame slots missed because a client's writer was blocked on a slow connection."}),
		invalid:          prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_fanout_invalid_client_messages_total", Help: "Client messages rejected with an error reply."}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_resumes_total", Help: "Resume requests answered: complete, or gap (at least one gap message).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "playpulse_fanout_delivery_latency_seconds", Help: "Kafka record timestamp to the tail frame carrying the event being written, per event sent.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	for _, r := range []string{"client_closed", "server_shutdown", "policy_violation", "message_too_large", "write_timeout", "write_error"} {
		m.disconnects.WithLabelValues(r)
	}
	for _, r := range []string{"complete", "gap"} {
		m.resumes.WithLabelValues(r)
	}
	depth := func(max bool) func() float64 {
		return func() float64 {
			head := h.head()
			h.cmu.Lock()
			defer h.cmu.Unlock()
			var v uint64
			for c := range h.clients {
				b := head - min(head, c.cursor.Load())
				if max {
					v = maxU(v, b)
				} else {
					v += b
				}
			}
			return float64(v)
		}
	}
	if reg != nil {
		reg.MustRegister(m.clients, m.disconnects, m.sent, m.skipped, m.lost, m.droppedSnapshots, m.droppedFrames, m.invalid, m.resumes, m.latency,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "playpulse_fanout_client_queue_events", Help: "Events published but not yet examined for a client, summed over clients (queue depth)."}, depth(false)),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "playpulse_fanout_client_queue_events_max", Help: "Largest queue depth of one client, in events."}, depth(true)),
		)
	}
	return m
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
