package ingest

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/collector/internal/cmcd"
	"playpulse.dev/services/playback/event"
)

type metrics struct {
	requests  *prometheus.CounterVec // endpoint, code
	accepted  *prometheus.CounterVec // kind: cmcd, beacon
	rejected  *prometheus.CounterVec // kind, reason
	clamped   prometheus.Counter
	delivered prometheus.Counter
	lost      prometheus.Counter
	buffered  prometheus.Gauge

	// The counters of every accepted request, resolved once: WithLabelValues
	// hashes its labels on each call.
	noContent   map[string]prometheus.Counter // endpoint → requests{endpoint, 204}
	acceptedFor map[string]prometheus.Counter // kind → accepted{kind}
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "playpulse_collector_requests_total",
			Help: "HTTP requests to /v1/cmcd and /v1/events by endpoint and status code (429: rate limited, 503: Kafka down or buffer full, 413: too large, 403: origin refused)."}, []string{"endpoint", "code"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "playpulse_collector_reports_accepted_total",
			Help: "Reports (kind cmcd) and contract events (kind beacon) accepted into the send buffer (answered 2xx, or kept from a 400 batch)."}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "playpulse_collector_reports_rejected_total",
			Help: "Report lines refused with 400, by kind and reason."}, []string{"kind", "reason"}),
		clamped: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_collector_ts_clamped_total",
			Help: "Accepted reports and events whose ts was further than COLLECTOR_TS_TOLERANCE from the collector's clock and was clamped."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_collector_delivered_total",
			Help: "Accepted reports and events acknowledged by Kafka (acks=all)."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "playpulse_collector_lost_total",
			Help: "Accepted reports and events Kafka never acknowledged (retries exhausted after COLLECTOR_DELIVERY_TIMEOUT, or the shutdown flush timed out). Should stay 0."}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{Name: "playpulse_collector_buffered",
			Help: "Accepted reports and events not yet acknowledged by Kafka (bounded by COLLECTOR_MAX_BUFFERED)."}),
	}
	reg.MustRegister(m.requests, m.accepted, m.rejected, m.clamped, m.delivered, m.lost, m.buffered)
	for _, r := range cmcd.Reasons() {
		m.rejected.WithLabelValues("cmcd", r)
	}
	for _, r := range event.Reasons() {
		m.rejected.WithLabelValues("beacon", r)
	}
	m.noContent = map[string]prometheus.Counter{}
	for _, e := range []string{"cmcd", "events"} {
		m.noContent[e] = m.requests.WithLabelValues(e, strconv.Itoa(http.StatusNoContent))
	}
	m.acceptedFor = map[string]prometheus.Counter{}
	for _, k := range []string{"cmcd", "beacon"} {
		m.acceptedFor[k] = m.accepted.WithLabelValues(k)
	}
	m.lost.Add(0)
	return m
}

// request counts an answer.
func (m *metrics) request(endpoint string, code int) {
	if c, ok := m.noContent[endpoint]; ok && code == http.StatusNoContent {
		c.Inc()
		return
	}
	m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
}
