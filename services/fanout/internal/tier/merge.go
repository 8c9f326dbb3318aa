package tier

import (
	"context"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/internal/aggregate"
	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ratelog"
)

// MergeOptions configure the merge role's reader.
type MergeOptions struct {
	Topic      string        // the aggregates topic
	Since      time.Duration // read from this far back at start (the window the fan-out holds)
	Refresh    time.Duration // how often to look for new partitions
	StaleAfter time.Duration // the source is stale when Kafka has not answered for this long
	// Apply merges one partial (aggregate.Aggregator.ApplyPartial); an error
	// means a bad partial, counted by aggregate.ReasonOf and skipped.
	Apply      func(key, value []byte) error
	Log        *slog.Logger
	Registerer prometheus.Registerer
	Health     *kafkacfg.Health
}

// Merger reads every partition of the aggregates topic into Apply. Status
// and Ready are the consumer's: the page's source state and /readyz work
// as in the single-process fan-out.
type Merger struct {
	*consume.Consumer
	apply func(key, value []byte) error
	bad   *prometheus.CounterVec
	warn  *ratelog.Logger
}

// NewMerger returns the merge role's reader; sc comes from kafkacfg.
func NewMerger(sc *sarama.Config, brokers []string, opts MergeOptions) *Merger {
	m := &Merger{apply: opts.Apply, warn: ratelog.New(opts.Log, 10*time.Second),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_tier_bad_partials_total", Help: "Records of the aggregates topic skipped because they are not valid partials, by reason (the log says more).",
		}, []string{"reason"})}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(m.bad)
	}
	m.Consumer = consume.New(sc, brokers, consume.Options{
		Topics: []string{opts.Topic}, Warmup: opts.Since, Refresh: opts.Refresh, StaleAfter: opts.StaleAfter,
		Log: opts.Log, Registerer: opts.Registerer, Health: opts.Health, Raw: true,
	})
	return m
}

// Run reads until ctx ends.
func (m *Merger) Run(ctx context.Context) error {
	return m.Consumer.Run(ctx, func(rs []consume.Record) {
		for i := range rs {
			r := &rs[i]
			if err := m.apply(r.Key, r.Value); err != nil {
				reason := aggregate.ReasonOf(err)
				m.bad.WithLabelValues(reason).Inc()
				m.warn.Warn("partial:"+reason, "skipping bad partial", "reason", reason, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			}
		}
	})
}
