package tier

import (
	"context"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/internal/aggregate"
	"playpulse.dev/services/playback/ratelog"
)

// RollupOptions configure the merge role's writer of minute rollups
// (docs/tier.md, "The last 24 hours"). Zero values take the defaults.
type RollupOptions struct {
	Topic string // the rollups topic (FANOUT_ROLLUPS_TOPIC)
	// Settle is how long after its end a minute is first written (default
	// 30 s): the partials of its last seconds are in by then.
	Settle time.Duration
	// Every is how often the held minutes are looked at (default 10 s). A
	// minute is written again whenever its record would change (a late
	// record's partial, a new owner's republished one), for as long as
	// the merge holds it (15 minutes).
	Every time.Duration
	// From is the first second this fan-out has every partial of (its
	// start less the window it read back); earlier minutes are not its
	// to write: they would be short.
	From time.Time
	// Rollup is aggregate.Aggregator.Rollup of the merged figures.
	Rollup func(minute int64) (key, value []byte, ok bool)
	// Ready reports whether the merge has caught up with the aggregates
	// topic (the merger's Ready); nothing is written until it has.
	Ready      func() error
	Now        func() time.Time // default time.Now
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// Rollups writes the minute rollups of a merge-role fan-out. Every merge
// replica writes them: each writes the same record for a minute once it
// holds all of it, so the newest one of a key is right whichever replica
// wrote it, and the minutes keep coming while any replica runs.
type Rollups struct {
	opts    RollupOptions
	sc      *sarama.Config
	brokers []string
	written map[int64]uint64 // minute → hash of the record last written
	warn    *ratelog.Logger

	records *prometheus.CounterVec
}

// NewRollups returns the writer; sc comes from kafkacfg.
func NewRollups(sc *sarama.Config, brokers []string, opts RollupOptions) *Rollups {
	if opts.Settle <= 0 {
		opts.Settle = 30 * time.Second
	}
	if opts.Every <= 0 {
		opts.Every = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	r := &Rollups{opts: opts, sc: producerConfig(sc), brokers: brokers, written: map[int64]uint64{},
		warn: ratelog.New(opts.Log, 10*time.Second),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_rollups_total", Help: "Minute rollups by outcome: written (first time), rewritten (the minute changed after it was written), error (Kafka refused; retried at the next look).",
		}, []string{"outcome"}),
	}
	for _, o := range []string{"written", "rewritten", "error"} {
		r.records.WithLabelValues(o)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(r.records)
	}
	return r
}

// Run writes rollups until ctx ends.
func (r *Rollups) Run(ctx context.Context) error {
	var prod sarama.SyncProducer
	defer func() {
		if prod != nil {
			_ = prod.Close()
		}
	}()
	t := time.NewTicker(r.opts.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if r.opts.Ready != nil && r.opts.Ready() != nil {
			continue
		}
		if prod == nil {
			p, err := sarama.NewSyncProducer(r.brokers, r.sc)
			if err != nil {
				r.records.WithLabelValues("error").Inc()
				r.warn.Warn("rollup:connect", "cannot reach Kafka to write minute rollups, retrying", "err", err)
				continue
			}
			prod = p
		}
		if err := r.Once(r.opts.Now(), prod); err != nil {
			r.warn.Warn("rollup:write", "writing minute rollups failed, retrying", "topic", r.opts.Topic, "err", err)
		}
	}
}

// Once writes the rollups of the held minutes that ended Settle before now
// and are new or changed since they were last written.
func (r *Rollups) Once(now time.Time, prod sarama.SyncProducer) error {
	last := now.Add(-r.opts.Settle).Unix()/aggregate.RollupStep*aggregate.RollupStep - aggregate.RollupStep
	first := (r.opts.From.Unix() + aggregate.RollupStep - 1) / aggregate.RollupStep * aggregate.RollupStep
	first = max(first, last-int64(aggregate.Window/time.Second))
	var msgs []*sarama.ProducerMessage
	var hashes []uint64
	var minutes []int64
	for m := first; m <= last; m += aggregate.RollupStep {
		k, v, ok := r.opts.Rollup(m)
		if !ok {
			continue
		}
		h := fnv.New64a()
		h.Write(v)
		sum := h.Sum64()
		if old, ok := r.written[m]; ok && old == sum {
			continue
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: r.opts.Topic, Key: sarama.ByteEncoder(k), Value: sarama.ByteEncoder(v)})
		hashes, minutes = append(hashes, sum), append(minutes, m)
	}
	for m := range r.written {
		if m < first {
			delete(r.written, m) // no longer held: never written again
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := prod.SendMessages(msgs); err != nil {
		r.records.WithLabelValues("error").Add(float64(len(msgs)))
		return err
	}
	for i, m := range minutes {
		outcome := "written"
		if _, ok := r.written[m]; ok {
			outcome = "rewritten"
		}
		r.records.WithLabelValues(outcome).Inc()
		r.written[m] = hashes[i]
	}
	r.opts.Log.Debug("minute rollups written", "records", len(msgs), "first", minutes[0], "last", minutes[len(minutes)-1])
	return nil
}
