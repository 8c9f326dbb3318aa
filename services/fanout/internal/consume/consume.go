// Package consume reads every partition of every served topic (broadcast:
// no consumer group, so every fan-out replica sees the whole stream), warm
// starts from a point in the recent past, decodes and validates each record,
// and counts and skips bad ones without ever stopping a partition.
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ratelog"
)

// Record is one valid event with where it came from. Handlers must not keep
// the pointer: it is reused.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time // Kafka record timestamp
	Lag       int64     // records after this one up to the high-water mark when it was read
	Value     []byte    // the record value (a valid event); only valid during the handler call
	Key       []byte    // the record key, in Raw mode only; only valid during the handler call
	Event     event.Event
}

// Handler receives valid records, in batches of what had arrived (at most
// MaxBatch). It is called from one goroutine per partition, so records of
// one session arrive in order. It must not keep the slice or the records.
type Handler func([]Record)

// MaxBatch is the most records handed over at once: consumers take their
// locks once per batch, not once per record.
const MaxBatch = 256

// Options configure a Consumer.
type Options struct {
	Topics     []string
	Pattern    *regexp.Regexp // more topics to serve: every topic whose whole name matches
	Warmup     time.Duration  // rewind each partition to now - Warmup at start
	Refresh    time.Duration  // how often to look for new topics and partitions
	StaleAfter time.Duration  // the source is stale when Kafka has not answered for this long
	// OnPartition is called when consumption of a partition starts (again)
	// at offset.
	OnPartition func(topic string, partition int32, offset int64)
	Log         *slog.Logger
	Registerer  prometheus.Registerer
	// Health explains, counts and logs connection failures (kafkacfg); with
	// none (unit tests) they are neither logged nor explained.
	Health *kafkacfg.Health
	// Raw hands every record over undecoded (Event is zero): the merge
	// role reads the aggregates topic, whose values are partials, not
	// events, and validates them itself.
	Raw bool
}

// Source states.
const (
	StateConnecting = "connecting"
	StateCatchingUp = "catching_up"
	StateLive       = "live"
	StateStale      = "stale"
)

// Status says how the consumption goes, for the browsers.
type Status struct {
	State      string
	Since      time.Time // when State last changed
	Message    string    // why, when not live
	Partitions int
	Lag        int64 // records behind the high-water marks, summed
}

// Consumer reads the topics.
type Consumer struct {
	opts    Options
	brokers []string
	sc      *sarama.Config
	m       *metrics
	warn    *ratelog.Logger

	mu         sync.Mutex
	partitions map[topicPartition]*partitionState
	resumeAt   map[topicPartition]int64 // where a partition whose consumer stopped continues
	lastPass   time.Time                // start of the previous discovery pass; used by discover only
	connected  atomic.Bool
	// listed is set once the pattern was matched against a complete list
	// of the cluster's topics: with no topic named, matching none is then
	// a complete (empty) view, not a wait.
	listed   atomic.Bool
	lastErr  atomic.Pointer[error]
	lastOK   atomic.Int64 // Unix ns of the last complete successful probe
	probeErr atomic.Pointer[error]
	state    string
	since    time.Time
}

type topicPartition struct {
	topic     string
	partition int32
}

type partitionState struct {
	caughtUp atomic.Bool
	target   int64        // high-water mark at start; caught up once past it
	next     atomic.Int64 // offset of the next record to consume
	hwm      atomic.Int64 // newest high-water mark known
	lastRead atomic.Int64 // Unix ns when a record was last delivered (or the partition started)
}

// settled is how long a partition must deliver nothing, with its
// high-water mark unchanged, to count as read to the end although its
// next offset is below the mark: the offsets left are transaction markers
// (and aborted records), which a read_committed consumer never delivers.
// The collector writes its events in transactions, so the last offset of
// its topic is always a commit marker.
const settled = 3 * time.Second

// New returns a Consumer; sc comes from kafkacfg.
func New(sc *sarama.Config, brokers []string, opts Options) *Consumer {
	sc.Consumer.Return.Errors = true
	// Transactional producers (the collector's sessionizer) write events
	// together with their consumer offsets: read only committed ones, so
	// that an aborted transaction (a rebalance, a crash) is never counted.
	// Records written without a transaction (the producer) are unaffected.
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	sc.Consumer.Fetch.Default = 1 << 20
	sc.Consumer.MaxWaitTime = 100 * time.Millisecond
	sc.Consumer.Retry.Backoff = time.Second
	// Room for a whole fetch response (1 MiB ≈ 2300 events) per partition, so
	// sarama fetches the next one while we process this one.
	sc.ChannelBufferSize = 4096
	sc.Net.DialTimeout = 5 * time.Second
	sc.Metadata.Retry.Max = 1
	if opts.Refresh == 0 {
		opts.Refresh = 5 * time.Second
	}
	if opts.StaleAfter == 0 {
		opts.StaleAfter = 3 * time.Second
	}
	return &Consumer{opts: opts, brokers: brokers, sc: sc, m: newMetrics(opts.Registerer), warn: ratelog.New(opts.Log, 10*time.Second),
		partitions: map[topicPartition]*partitionState{}, resumeAt: map[topicPartition]int64{}, state: StateConnecting, since: time.Now()}
}

// Status reports the source state: connecting, catching up, live or stale.
func (c *Consumer) Status() Status {
	now := time.Now()
	st := Status{}
	c.mu.Lock()
	defer c.mu.Unlock()
	behind := 0
	for _, p := range c.partitions {
		st.Partitions++
		if !p.caughtUp.Load() {
			behind++
		}
		st.Lag += max(p.hwm.Load()-p.next.Load(), 0)
	}
	state := StateLive
	switch {
	case !c.connected.Load():
		state = StateConnecting
		if e := c.lastErr.Load(); e != nil {
			st.Message = "kafka: " + (*e).Error()
		} else {
			st.Message = "connecting to Kafka"
		}
	case now.Sub(time.Unix(0, c.lastOK.Load())) > c.opts.StaleAfter:
		state = StateStale
		st.Message = "kafka: no answer for more than " + c.opts.StaleAfter.String()
		if e := c.probeErr.Load(); e != nil {
			st.Message = "kafka: " + (*e).Error()
		}
	case st.Partitions == 0:
		state = StateConnecting
		st.Message = "no partitions found yet"
	case behind > 0:
		state = StateCatchingUp
		st.Message = fmt.Sprintf("replaying the warm-up window: %d partitions behind", behind)
	}
	if state != c.state {
		c.state, c.since = state, now
		c.m.stale.Set(b2f(state == StateStale))
	}
	st.State, st.Since = c.state, c.since
	return st
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Ready reports whether the consumer is connected and every partition has
// caught up with where it stood at start, so the aggregates are complete.
func (c *Consumer) Ready() error {
	if !c.connected.Load() {
		if e := c.lastErr.Load(); e != nil {
			return fmt.Errorf("not connected to Kafka: %w", *e)
		}
		return errors.New("not connected to Kafka yet")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.partitions) == 0 {
		if len(c.opts.Topics) == 0 && c.listed.Load() {
			// Only a pattern, and no topic matches it yet (a fresh install
			// before the first PlaybackStream): there is nothing to replay,
			// and a fan-out that is not ready would take the dashboard away.
			return nil
		}
		return fmt.Errorf("no partitions found for topics %v", c.opts.Topics)
	}
	behind := 0
	for _, p := range c.partitions {
		if !p.caughtUp.Load() {
			behind++
		}
	}
	if behind > 0 {
		return fmt.Errorf("catching up: %d partitions still replaying the warm-up window", behind)
	}
	return nil
}

// Run consumes until ctx ends.
func (c *Consumer) Run(ctx context.Context, handle Handler) error {
	client, err := c.connect(ctx)
	if err != nil {
		return nil
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	c.lastOK.Store(time.Now().UnixNano())
	c.connected.Store(true)

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); c.probe(ctx, client) }()
	t := time.NewTicker(c.opts.Refresh)
	defer t.Stop()
	for {
		c.discover(ctx, client, consumer, handle, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (c *Consumer) connect(ctx context.Context) (sarama.Client, error) {
	var client sarama.Client
	err := kafkacfg.Retry(ctx, func() (err error) {
		client, err = sarama.NewClient(c.brokers, c.sc)
		return err
	}, func(err error, wait time.Duration) {
		err = c.opts.Health.Failed("connect", "cannot reach Kafka, retrying", err, "brokers", c.brokers, "retry_in", wait)
		c.lastErr.Store(&err)
	})
	return client, err
}

// probe asks Kafka for every partition's high-water mark once a second:
// it keeps the lag of quiet partitions right and tells when Kafka stops
// answering (the source is then stale).
func (c *Consumer) probe(ctx context.Context, client sarama.Client) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		tps := make([]topicPartition, 0, len(c.partitions))
		sts := make([]*partitionState, 0, len(c.partitions))
		for tp, st := range c.partitions {
			tps, sts = append(tps, tp), append(sts, st)
		}
		c.mu.Unlock()
		var failed error
		for i, tp := range tps {
			hwm, err := client.GetOffset(tp.topic, tp.partition, sarama.OffsetNewest)
			if err != nil {
				failed = err
				break
			}
			st := sts[i]
			prev := st.hwm.Swap(max(st.hwm.Load(), hwm))
			next := st.next.Load()
			if next < hwm && hwm == prev && time.Since(time.Unix(0, st.lastRead.Load())) > settled {
				st.next.CompareAndSwap(next, hwm) // only markers left
				next = hwm
			}
			if next >= hwm {
				st.caughtUp.Store(true)
				c.m.lag.WithLabelValues(tp.topic, fmt.Sprint(tp.partition)).Set(0)
			}
			if ctx.Err() != nil {
				return
			}
		}
		if failed != nil {
			failed = c.opts.Health.Failed("probe", "Kafka does not answer", failed)
			c.probeErr.Store(&failed)
			continue
		}
		c.opts.Health.OK()
		c.probeErr.Store(nil)
		c.lastOK.Store(time.Now().UnixNano())
	}
}

// topics lists the topics to serve now: the configured ones and those
// matching the pattern.
func (c *Consumer) topics(client sarama.Client) []string {
	if c.opts.Pattern == nil {
		if err := client.RefreshMetadata(c.opts.Topics...); err != nil {
			c.warn.Warn("metadata", "cannot refresh topic metadata", "topics", c.opts.Topics, "err", err)
		}
		return c.opts.Topics
	}
	refreshErr := client.RefreshMetadata()
	if refreshErr != nil {
		c.warn.Warn("metadata", "cannot refresh metadata", "err", refreshErr)
	}
	all, err := client.Topics()
	if err != nil {
		c.warn.Warn("topics", "cannot list topics", "err", err)
	}
	if refreshErr == nil && err == nil {
		c.listed.Store(true)
	}
	out := append([]string(nil), c.opts.Topics...)
	for _, t := range all {
		if c.opts.Pattern.MatchString(t) && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// discover starts a consumer for every partition not yet consumed.
func (c *Consumer) discover(ctx context.Context, client sarama.Client, consumer sarama.Consumer, handle Handler, wg *sync.WaitGroup) {
	since := c.lastPass
	c.lastPass = time.Now()
	for _, topic := range c.topics(client) {
		parts, err := client.Partitions(topic)
		if err != nil {
			c.warn.Warn("partitions:"+topic, "topic not available yet", "topic", topic, "err", err)
			continue
		}
		for _, p := range parts {
			tp := topicPartition{topic, p}
			c.mu.Lock()
			_, known := c.partitions[tp]
			c.mu.Unlock()
			if known {
				continue
			}
			c.mu.Lock()
			at, restart := c.resumeAt[tp]
			c.mu.Unlock()
			st, pc, err := c.open(client, consumer, tp, at, restart, since)
			if err != nil {
				c.warn.Warn("open:"+topic, "cannot open partition", "topic", topic, "partition", p, "err", err)
				continue
			}
			c.mu.Lock()
			c.partitions[tp] = st
			delete(c.resumeAt, tp)
			c.mu.Unlock()
			if c.opts.OnPartition != nil {
				c.opts.OnPartition(tp.topic, tp.partition, st.next.Load())
			}
			c.opts.Log.Info("consuming partition", "topic", topic, "partition", p, "offset", st.next.Load())
			wg.Add(2)
			go func() {
				defer wg.Done()
				c.partitionLoop(ctx, tp, st, pc, handle)
				if ctx.Err() == nil {
					// sarama gave up on the partition (e.g. offset out of
					// range): the next discovery reopens it where it was.
					c.warn.Warn("stopped:"+tp.topic, "partition consumer stopped; reopening", "topic", tp.topic, "partition", tp.partition, "offset", st.next.Load())
					c.mu.Lock()
					delete(c.partitions, tp)
					c.resumeAt[tp] = st.next.Load()
					c.mu.Unlock()
				}
			}()
			go func() {
				defer wg.Done()
				for err := range pc.Errors() {
					c.warn.Warn("consume:"+topic, "partition consumer error", "topic", topic, "partition", err.Partition, "err", err.Err)
				}
			}()
		}
	}
}

// open starts a partition consumer at the warm-up offset: the first offset
// whose timestamp is at or after now - Warmup, or the end if none is. A
// partition found by a later discovery pass starts no later than since,
// when the previous pass started (zero on the first pass): with a short
// warm-up, its first records, written before this pass saw it, would
// otherwise be skipped without a trace.
func (c *Consumer) open(client sarama.Client, consumer sarama.Consumer, tp topicPartition, at int64, restart bool, since time.Time) (*partitionState, sarama.PartitionConsumer, error) {
	newest, err := client.GetOffset(tp.topic, tp.partition, sarama.OffsetNewest)
	if err != nil {
		return nil, nil, err
	}
	start := newest
	if restart {
		oldest, err := client.GetOffset(tp.topic, tp.partition, sarama.OffsetOldest)
		if err != nil {
			return nil, nil, err
		}
		start = min(max(at, oldest), newest)
	} else if c.opts.Warmup > 0 || !since.IsZero() {
		from := time.Now().Add(-c.opts.Warmup)
		if !since.IsZero() && since.Before(from) {
			from = since
		}
		off, err := client.GetOffset(tp.topic, tp.partition, from.UnixMilli())
		if err != nil {
			return nil, nil, err
		}
		if off >= 0 {
			start = off
		}
	}
	pc, err := consumer.ConsumePartition(tp.topic, tp.partition, start)
	if err != nil {
		return nil, nil, err
	}
	st := &partitionState{target: newest}
	st.lastRead.Store(time.Now().UnixNano())
	st.next.Store(start)
	st.hwm.Store(newest)
	if start >= newest {
		st.caughtUp.Store(true)
	}
	return st, pc, nil
}

func (c *Consumer) partitionLoop(ctx context.Context, tp topicPartition, st *partitionState, pc sarama.PartitionConsumer, handle Handler) {
	go func() { <-ctx.Done(); pc.AsyncClose() }()
	partLabel := fmt.Sprint(tp.partition)
	lag := c.m.lag.WithLabelValues(tp.topic, partLabel)
	pos := c.m.offset.WithLabelValues(tp.topic, partLabel)
	batch := make([]Record, MaxBatch)
	var events float64
	// One decoder per partition: it interns the low-cardinality strings
	// (stream, title, device, ...), so most records decode without
	// allocating them again.
	var dec event.Decoder
	take := func(msg *sarama.ConsumerMessage, n int) int {
		if !st.caughtUp.Load() && msg.Offset+1 >= st.target {
			st.caughtUp.Store(true)
		}
		rec := &batch[n]
		if c.opts.Raw {
			rec.Topic, rec.Partition = tp.topic, tp.partition
			rec.Offset, rec.Timestamp, rec.Value, rec.Key = msg.Offset, msg.Timestamp, msg.Value, msg.Key
			return n + 1
		}
		if err := dec.Decode(msg.Value, &rec.Event); err != nil {
			reason := event.ReasonOf(err)
			c.m.bad.WithLabelValues(reason).Inc()
			c.warn.Warn("bad:"+reason, "skipping bad record", "reason", reason, "topic", tp.topic, "partition", tp.partition, "offset", msg.Offset, "err", err)
			return n
		}
		events++
		rec.Topic, rec.Partition = tp.topic, tp.partition
		rec.Offset, rec.Timestamp, rec.Value = msg.Offset, msg.Timestamp, msg.Value
		return n + 1
	}
	msgs := pc.Messages()
	for msg := range msgs {
		// Take what has already arrived, up to MaxBatch.
		n, last, open := take(msg, 0), msg, true
	drain:
		for n < MaxBatch {
			select {
			case m, ok := <-msgs:
				if !ok {
					open = false
					break drain
				}
				n, last = take(m, n), m
			default:
				break drain
			}
		}
		hwm := pc.HighWaterMarkOffset()
		behind := max(hwm-last.Offset-1, 0)
		for i := range n {
			batch[i].Lag = max(hwm-batch[i].Offset-1, 0)
		}
		c.lastOK.Store(time.Now().UnixNano())
		st.lastRead.Store(time.Now().UnixNano())
		st.next.Store(last.Offset + 1)
		st.hwm.Store(hwm)
		pos.Set(float64(last.Offset))
		lag.Set(float64(behind))
		c.m.events.Add(events)
		events = 0
		if n > 0 {
			handle(batch[:n])
		}
		for i := range n {
			batch[i].Value, batch[i].Key = nil, nil // do not pin sarama's fetch buffers
		}
		if !open {
			return
		}
	}
}
