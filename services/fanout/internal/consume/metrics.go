package consume

import (
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/playback/event"
)

type metrics struct {
	events prometheus.Counter
	bad    *prometheus.CounterVec
	lag    *prometheus.GaugeVec
	offset *prometheus.GaugeVec
	stale  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "playpulse_fanout_events_total", Help: "Valid events consumed from Kafka.",
		}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_bad_records_total", Help: "Records skipped because they are not valid events, by reason.",
		}, []string{"reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "playpulse_fanout_partition_lag", Help: "Records between the last consumed one and the partition's high-water mark.",
		}, []string{"topic", "partition"}),
		offset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "playpulse_fanout_partition_offset", Help: "Offset of the last consumed record.",
		}, []string{"topic", "partition"}),
		stale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "playpulse_fanout_source_stale", Help: "1 while Kafka does not answer (browsers are told the data is stale).",
		}),
	}
	for _, r := range event.Reasons() {
		m.bad.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.events, m.bad, m.lag, m.offset, m.stale)
	}
	return m
}
