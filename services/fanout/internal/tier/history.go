package tier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/internal/aggregate"
	"playpulse.dev/services/playback/ratelog"
)

// HistoryOptions configure the merge role's /api/history (docs/tier.md,
// "History"). Zero values take the defaults.
type HistoryOptions struct {
	Topic string // the aggregates topic
	// RollupsTopic holds the minute rollups the merge role writes
	// (Rollups): resolution=60 reads it. Empty: only resolution 1.
	RollupsTopic string
	// Margin is how far past the window's end the partials are read, by
	// record time (the end of the partial's second): a partial published
	// again later (late records, a new owner's takeover) is written after
	// the first one, and replaces it. Default 7 min: the replay of a new
	// owner (FANOUT_AGGREGATOR_REPLAY, 6 min) plus a minute. The read
	// stops at the first record stamped past the margin in each
	// partition, so a partial published later than that after its second
	// (an aggregator that was further behind) is not read: the margin
	// must cover the longest an aggregator is behind (FANOUT_HISTORY_MARGIN).
	Margin time.Duration
	// Concurrent bounds the requests read at once (default 2); the others
	// are answered 503 with Retry-After.
	Concurrent int
	// Timeout bounds one request (default 10 s): 504 past it.
	Timeout time.Duration
	// MaxBytes bounds the keys and values one request reads (default
	// 256 MiB): 503 past it.
	MaxBytes int64
	// Aggregate configures the history's aggregator as the live one's
	// (MaxStreams); Registerer and Export are ignored.
	Aggregate  aggregate.Options
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// History serves past windows of the series read back from the
// aggregates topic: one request reads, from every partition, the partials
// of the window's seconds (found by record time with ListOffsets) and
// applies them into an aggregate.History. The Kafka client is made on
// the first request and kept.
type History struct {
	opts    HistoryOptions
	sc      *sarama.Config
	brokers []string
	sem     chan struct{}

	mu     sync.Mutex
	client sarama.Client

	requests *prometheus.CounterVec
	bad      *prometheus.CounterVec
	warn     *ratelog.Logger
	read     prometheus.Counter
	seconds  prometheus.Histogram
}

// HistoryStats says what one read cost.
type HistoryStats struct {
	Partitions int
	Records    int
	Bytes      int64
}

// Errors of a read, each answered with its own status.
var (
	ErrHistoryBusy     = errors.New("too many history requests at once; retry in a second")
	ErrHistoryTooLarge = errors.New("the window holds more partials than one request may read")
)

// NewHistory returns the history reader; sc comes from kafkacfg.
func NewHistory(sc *sarama.Config, brokers []string, opts HistoryOptions) *History {
	if opts.Margin <= 0 {
		opts.Margin = 7 * time.Minute
	}
	if opts.Concurrent <= 0 {
		opts.Concurrent = 2
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	c := *sc
	// Partials come in large runs: fewer, larger fetches.
	c.Consumer.Fetch.Default = 8 << 20
	c.Consumer.Return.Errors = true
	h := &History{opts: opts, sc: &c, brokers: brokers, sem: make(chan struct{}, opts.Concurrent), warn: ratelog.New(opts.Log, 10*time.Second),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_history_requests_total", Help: "Requests of /api/history by outcome: ok, bad_request, busy (over the concurrency cap), too_large (over the byte cap), timeout, error (Kafka).",
		}, []string{"outcome"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "playpulse_fanout_history_bad_records_total", Help: "Records read back for /api/history and skipped because they are not partials (aggregates topic) or rollups (rollups topic), by reason (the log says more).",
		}, []string{"reason"}),
		read: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "playpulse_fanout_history_bytes_total", Help: "Bytes of partials (keys and values) read back from the aggregates topic for /api/history.",
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "playpulse_fanout_history_seconds", Help: "Time to read and answer one /api/history request that was read.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	for _, o := range []string{"ok", "bad_request", "busy", "too_large", "timeout", "error"} {
		h.requests.WithLabelValues(o)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(h.requests, h.bad, h.read, h.seconds)
	}
	return h
}

// Close closes the Kafka client.
func (h *History) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client == nil {
		return nil
	}
	err := h.client.Close()
	h.client = nil
	return err
}

func (h *History) kafka() (sarama.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client != nil && !h.client.Closed() {
		return h.client, nil
	}
	c, err := sarama.NewClient(h.brokers, h.sc)
	if err != nil {
		return nil, err
	}
	h.client = c
	return c, nil
}

// ServeHTTP answers GET /api/history?from=&to=[&resolution=] (Unix
// seconds) with {"series": …}, the shape of a snapshot's series: one point
// a second over at most aggregate.MaxHistorySpan seconds, read from the
// aggregates topic, or with resolution=60 one point a minute over at most
// aggregate.MaxRollupSpan, read from the rollups topic (from rounded down
// and to up to their minutes).
func (h *History) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	from, to, res, err := historyWindow(r, time.Now())
	// Said first: no window at one point a minute is served without the
	// rollups, whatever else is wrong with it.
	if r.URL.Query().Get("resolution") == "60" && h.opts.RollupsTopic == "" {
		err = errors.New("resolution=60 needs the minute rollups: FANOUT_ROLLUPS_TOPIC is empty")
	}
	if err != nil {
		h.requests.WithLabelValues("bad_request").Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	select {
	case h.sem <- struct{}{}:
		defer func() { <-h.sem }()
	default:
		h.requests.WithLabelValues("busy").Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, ErrHistoryBusy.Error(), http.StatusServiceUnavailable)
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	read := h.Read
	if res == aggregate.RollupStep {
		read = h.ReadRollups
	}
	series, st, err := read(ctx, from, to)
	if err != nil {
		status, outcome := http.StatusBadGateway, "error"
		switch {
		case errors.Is(err, ErrHistoryTooLarge):
			status, outcome = http.StatusServiceUnavailable, "too_large"
		case errors.Is(err, context.DeadlineExceeded):
			status, outcome = http.StatusGatewayTimeout, "timeout"
		}
		h.requests.WithLabelValues(outcome).Inc()
		h.opts.Log.Warn("history request failed", "from", from, "to", to, "outcome", outcome, "err", err)
		http.Error(w, "history: "+err.Error(), status)
		return
	}
	b, err := json.Marshal(map[string]any{"series": series})
	if err != nil {
		h.requests.WithLabelValues("error").Inc()
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.requests.WithLabelValues("ok").Inc()
	h.seconds.Observe(time.Since(start).Seconds())
	h.opts.Log.Debug("history", "from", from, "to", to, "partitions", st.Partitions, "records", st.Records, "bytes", st.Bytes, "took", time.Since(start))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// historyWindow parses and checks from, to and resolution; with
// resolution 60, from and to are widened to whole minutes.
func historyWindow(r *http.Request, now time.Time) (from, to int64, res int, err error) {
	q := r.URL.Query()
	from, err1 := strconv.ParseInt(q.Get("from"), 10, 64)
	to, err2 := strconv.ParseInt(q.Get("to"), 10, 64)
	res, span := 1, int64(aggregate.MaxHistorySpan)
	switch q.Get("resolution") {
	case "", "1":
	case "60":
		res, span = aggregate.RollupStep, aggregate.MaxRollupSpan
		from = floorDiv(from, aggregate.RollupStep) * aggregate.RollupStep
		to = floorDiv(to, aggregate.RollupStep)*aggregate.RollupStep + aggregate.RollupStep - 1
	default:
		return 0, 0, 0, errors.New("resolution must be 1 (a point a second) or 60 (a point a minute)")
	}
	switch {
	case err1 != nil || err2 != nil:
		return 0, 0, 0, errors.New("from and to must be Unix times in seconds")
	case to < from:
		return 0, 0, 0, errors.New("to must not be before from")
	case to-from+1 > span:
		return 0, 0, 0, fmt.Errorf("the window spans at most %d seconds (to - from + 1) at resolution %d", span, res)
	case to >= now.Unix():
		return 0, 0, 0, errors.New("to must be a past second (before now)")
	}
	return from, to, res, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// rollupsMargin is how long after its end a minute's rollup may still be
// written: the merge writes the minutes it holds, the last 15, and again
// whenever one changes.
const rollupsMargin = aggregate.Window + 2*time.Minute

// ReadRollups returns the series of the minutes [from, to] (from and to
// whole minutes' first and last seconds) from the rollups topic: every
// partition is read from the first record written after from's minute
// ended up to the first one rollupsMargin past to.
func (h *History) ReadRollups(ctx context.Context, from, to int64) (aggregate.SeriesSet, HistoryStats, error) {
	w := aggregate.NewRollups(from, to+1-aggregate.RollupStep, h.opts.Aggregate.MaxStreams)
	st, err := h.readTopic(ctx, h.opts.RollupsTopic, (from+aggregate.RollupStep)*1000, (to+1)*1000+rollupsMargin.Milliseconds(), func(m *sarama.ConsumerMessage) {
		h.skipBad(m, w.Apply(m.Key, m.Value))
	})
	if err != nil {
		return aggregate.SeriesSet{}, st, err
	}
	return w.Series(), st, nil
}

// Read returns the series of the seconds [from, to] from the aggregates
// topic: every partition is read concurrently from the first partial
// whose record time is at or after the first smoothed second's start up
// to the first one Margin past to's end (or the end of the partition).
func (h *History) Read(ctx context.Context, from, to int64) (aggregate.SeriesSet, HistoryStats, error) {
	hist := aggregate.NewHistory(h.opts.Aggregate, from, to)
	startMS := (from - aggregate.Smoothing + 1) * 1000
	endMS := (to+1)*1000 + h.opts.Margin.Milliseconds()
	st, err := h.readTopic(ctx, h.opts.Topic, startMS, endMS, func(m *sarama.ConsumerMessage) {
		h.skipBad(m, hist.Apply(m.Key, m.Value))
	})
	if err != nil {
		return aggregate.SeriesSet{}, st, err
	}
	return hist.Series(), st, nil
}

// skipBad counts and logs a record Apply refused; it was skipped.
func (h *History) skipBad(m *sarama.ConsumerMessage, err error) {
	if err == nil {
		return
	}
	reason := aggregate.ReasonOf(err)
	h.bad.WithLabelValues(reason).Inc()
	h.warn.Warn("history:"+reason, "skipping a bad record of the history", "reason", reason, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
}

// readTopic reads every partition of topic concurrently from the first
// record stamped at or after startMS to the first at or after endMS (or
// the end), into apply from this goroutine, up to MaxBytes.
func (h *History) readTopic(ctx context.Context, topic string, startMS, endMS int64, apply func(*sarama.ConsumerMessage)) (HistoryStats, error) {
	var st HistoryStats
	client, err := h.kafka()
	if err != nil {
		return st, err
	}
	if err := client.RefreshMetadata(topic); err != nil {
		return st, err
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		return st, err
	}
	st.Partitions = len(parts)
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return st, err
	}
	defer consumer.Close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type batch struct{ msgs []*sarama.ConsumerMessage }
	out := make(chan batch, 2*len(parts))
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.readPartition(ctx, client, consumer, topic, p, startMS, endMS, func(b []*sarama.ConsumerMessage) bool {
				select {
				case out <- batch{b}:
					return true
				case <-ctx.Done():
					return false
				}
			}); err != nil {
				cancel(fmt.Errorf("partition %d: %w", p, err))
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()

	for b := range out {
		for _, m := range b.msgs {
			st.Records++
			n := int64(len(m.Key) + len(m.Value))
			st.Bytes += n
			h.read.Add(float64(n))
			if st.Bytes > h.opts.MaxBytes {
				cancel(ErrHistoryTooLarge)
				continue
			}
			apply(m)
		}
	}
	return st, context.Cause(ctx)
}

// readPartition delivers the records of one partition from the first with
// a timestamp at or after startMS to the last before the first at or
// after endMS (or before the end of the partition as it is now), in
// batches; deliver returns false to stop.
func (h *History) readPartition(ctx context.Context, client sarama.Client, consumer sarama.Consumer, topic string, p int32, startMS, endMS int64, deliver func([]*sarama.ConsumerMessage) bool) error {
	newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return err
	}
	start, err := client.GetOffset(topic, p, startMS)
	if err != nil {
		return err
	}
	end, err := client.GetOffset(topic, p, endMS)
	if err != nil {
		return err
	}
	if start < 0 {
		return nil // no partial of the window or later
	}
	if end < 0 || end > newest {
		end = newest
	}
	if start >= end {
		return nil
	}
	pc, err := consumer.ConsumePartition(topic, p, start)
	if err != nil {
		return err
	}
	defer pc.AsyncClose()
	const batchSize = 512
	b := make([]*sarama.ConsumerMessage, 0, batchSize)
	// The offsets just before end may hold nothing (compacted away): a
	// partition that delivers nothing for this long is read to its end.
	idle := time.NewTimer(settled)
	defer idle.Stop()
	for {
		select {
		case <-idle.C:
			return h.flush(b, deliver)
		case m, ok := <-pc.Messages():
			if !ok {
				return errors.New("partition consumer closed")
			}
			idle.Reset(settled)
			if m.Offset >= end {
				// Offsets compacted away: the end is passed.
				return h.flush(b, deliver)
			}
			b = append(b, m)
			if m.Offset >= end-1 {
				return h.flush(b, deliver)
			}
			if len(b) == batchSize || len(pc.Messages()) == 0 {
				if !deliver(b) {
					return nil
				}
				b = make([]*sarama.ConsumerMessage, 0, batchSize)
			}
		case err := <-pc.Errors():
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func (h *History) flush(b []*sarama.ConsumerMessage, deliver func([]*sarama.ConsumerMessage) bool) error {
	if len(b) > 0 {
		deliver(b)
	}
	return nil
}
