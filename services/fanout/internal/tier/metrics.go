package tier

import (
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/playback/event"
)

type metrics struct {
	events     prometheus.Counter
	bad        *prometheus.CounterVec
	partials   prometheus.Counter
	bytes      prometheus.Counter
	sendErrors prometheus.Counter
	owned      prometheus.Gauge
	moves      *prometheus.CounterVec
	joins      prometheus.Counter
	lag        *prometheus.GaugeVec
	forwarded  *prometheus.CounterVec
	filters    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		// The same names as the single-process fan-out's (consume): one
		// dashboard panel serves both roles.
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "playpulse_fanout_events_total", Help: "Valid events consumed from Kafka (replays included).",
		}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_bad_records_total", Help: "Records skipped because they are not valid events, by reason.",
		}, []string{"reason"}),
		partials: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "playpulse_fanout_tier_partials_total", Help: "Partials published to the aggregates topic and acknowledged (republished ones included).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "playpulse_fanout_tier_partial_bytes_total", Help: "Bytes of key and value of the partials published.",
		}),
		sendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "playpulse_fanout_tier_publish_errors_total", Help: "Failed attempts to publish partials (sent again before the partition goes on).",
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "playpulse_fanout_tier_partitions_owned", Help: "Raw partitions this aggregator owns in the consumer group.",
		}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_tier_partition_moves_total", Help: "Partitions taken and released by rebalances (change: taken, released).",
		}, []string{"change"}),
		joins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "playpulse_fanout_tier_group_joins_total", Help: "Consumer group sessions started (cooperative rebalances keep the session; a topic list change or an error starts a new one).",
		}),
		// The chart's HPA scales the aggregators on this (through a metrics
		// adapter) when KEDA is not there to read the group's lag itself.
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "playpulse_aggregator_lag", Help: "Records of an owned raw partition not read yet (high-water mark minus the next offset).",
		}, []string{"topic", "partition"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_tier_tail_events_total", Help: "Raw events forwarded to the tail topic, by why: sample (each stream's fair sample) or filter (a browser's user or title filter asked for it); over_cap counts those a filter asked for beyond its cap, failed those Kafka refused (dropped).",
		}, []string{"why"}),
		filters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "playpulse_fanout_tier_tail_filters", Help: "Users and titles the merge-role fan-outs' browsers filter on, announced on the filters topic.",
		}),
	}
	for _, w := range []string{"sample", "filter", "over_cap", "failed"} {
		m.forwarded.WithLabelValues(w)
	}
	for _, r := range event.Reasons() {
		m.bad.WithLabelValues(r)
	}
	m.moves.WithLabelValues("taken")
	m.moves.WithLabelValues("released")
	if reg != nil {
		reg.MustRegister(m.events, m.bad, m.partials, m.bytes, m.sendErrors, m.owned, m.moves, m.joins, m.lag, m.forwarded, m.filters)
	}
	return m
}
