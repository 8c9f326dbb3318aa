package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/internal/aggregate"
	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/fanout/internal/forward"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ratelog"
)

// Aggregator is the aggregator role: see the package comment.
type Aggregator struct {
	opts    AggregateOptions
	sc      *sarama.Config
	brokers []string
	m       *metrics
	warn    *ratelog.Logger

	connected atomic.Bool
	joined    atomic.Bool // the group gave this member its (possibly empty) assignment
	listed    atomic.Bool // the topic list was complete at least once
	lastErr   atomic.Pointer[error]

	mu     sync.Mutex
	claims map[topicPartition]*claimState

	// filters are the merge-role fan-outs' announced filters, read from
	// FiltersTopic by one goroutine and shared by every claim's sampler.
	filters *forward.Filters
	// tailOK: the tail topic exists (checked with the topic list). Without
	// it nothing is forwarded: sends to a missing topic would hold up the
	// partials' flush with metadata retries.
	tailOK atomic.Bool
}

type topicPartition struct {
	topic     string
	partition int32
}

// claimState is what Ready needs of one owned partition.
type claimState struct {
	caughtUp atomic.Bool
}

// Aggregate runs the aggregator role until ctx ends.
func Aggregate(ctx context.Context, sc *sarama.Config, brokers []string, opts AggregateOptions) error {
	return NewAggregator(sc, brokers, opts).Run(ctx)
}

// NewAggregator returns the aggregator role; sc comes from kafkacfg and is
// copied, not changed.
func NewAggregator(sc *sarama.Config, brokers []string, opts AggregateOptions) *Aggregator {
	if opts.Refresh <= 0 {
		opts.Refresh = 5 * time.Second
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 100 * time.Millisecond
	}
	if opts.newShard == nil {
		so := opts.Shard
		opts.newShard = func(topic string, partition int32, publishFrom int64) shard {
			return aggregate.NewShard(topic, partition, aggregate.ShardOptions{PublishFrom: publishFrom, Aggregator: so})
		}
	}
	if opts.SampleRate <= 0 {
		opts.SampleRate = 100
	}
	return &Aggregator{opts: opts, sc: sc, brokers: brokers, m: newMetrics(opts.Registerer),
		warn: ratelog.New(opts.Log, 10*time.Second), claims: map[topicPartition]*claimState{}, filters: forward.NewFilters()}
}

// groupConfig is the consumer side's: cooperative-sticky, read_committed
// (the collector writes in transactions; an aborted one must never be
// counted), offsets committed in the background from what the claims
// mark, the newest offset for a group with none (the claim's consumer is
// paused anyway: see the package comment).
func (a *Aggregator) groupConfig() *sarama.Config {
	c := *a.sc
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyCooperativeSticky()}
	c.Consumer.Offsets.Initial = sarama.OffsetNewest
	c.Consumer.Offsets.AutoCommit.Enable = true
	c.Consumer.Offsets.AutoCommit.Interval = time.Second
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	c.Consumer.Return.Errors = true
	c.Consumer.Fetch.Default = 1 << 20
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	c.Consumer.Retry.Backoff = time.Second
	c.ChannelBufferSize = 4096
	c.Net.DialTimeout = 5 * time.Second
	return &c
}

// producerConfig is the partials' producer's: idempotent, acks from every
// in-sync replica, so an acknowledged partial survives a broker loss and a
// retried one is not written twice; the key's hash picks the partition, so
// every version of a partial lands in the same one, in order. The minute
// rollups are written the same way, for the same reasons.
func producerConfig(sc *sarama.Config) *sarama.Config {
	c := *sc
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Retry.Max = 10
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Compression = sarama.CompressionLZ4
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Producer.Flush.Frequency = 0 // SendMessages sends at once
	c.Net.DialTimeout = 5 * time.Second
	return &c
}

// Ready reports whether the aggregator is in the group and every partition
// it owns has replayed up to where it stood when taken: until then its
// partials are not all published yet.
func (a *Aggregator) Ready() error {
	if !a.connected.Load() {
		if e := a.lastErr.Load(); e != nil {
			return fmt.Errorf("not connected to Kafka: %w", *e)
		}
		return errors.New("not connected to Kafka yet")
	}
	if !a.joined.Load() {
		if len(a.opts.Topics) == 0 && a.listed.Load() {
			return nil // only a pattern, matching no topic yet: nothing to own
		}
		return fmt.Errorf("joining consumer group %s", a.opts.Group)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	behind := 0
	for _, c := range a.claims {
		if !c.caughtUp.Load() {
			behind++
		}
	}
	if behind > 0 {
		return fmt.Errorf("replaying: %d owned partitions behind", behind)
	}
	return nil
}

// Run aggregates until ctx ends.
func (a *Aggregator) Run(ctx context.Context) error {
	var client, pclient sarama.Client
	var group sarama.ConsumerGroup
	var prod sarama.SyncProducer
	closeAll := func() {
		if group != nil {
			_ = group.Close()
		}
		if prod != nil {
			_ = prod.Close()
		}
		for _, c := range []sarama.Client{client, pclient} {
			if c != nil {
				_ = c.Close()
			}
		}
	}
	err := kafkacfg.Retry(ctx, func() (err error) {
		if client == nil {
			if client, err = sarama.NewClient(a.brokers, a.groupConfig()); err != nil {
				return err
			}
		}
		if pclient == nil {
			if pclient, err = sarama.NewClient(a.brokers, producerConfig(a.sc)); err != nil {
				return err
			}
		}
		if prod == nil {
			if prod, err = sarama.NewSyncProducerFromClient(pclient); err != nil {
				return err
			}
		}
		group, err = sarama.NewConsumerGroupFromClient(a.opts.Group, client)
		return err
	}, func(err error, wait time.Duration) {
		err = a.opts.Health.Failed("connect", "cannot reach Kafka, retrying", err, "brokers", a.brokers, "retry_in", wait)
		a.lastErr.Store(&err)
	})
	if err != nil {
		closeAll()
		return nil // ctx ended
	}
	defer closeAll()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	a.opts.Health.OK()
	a.connected.Store(true)
	go func() {
		for err := range group.Errors() {
			a.warn.Warn("group", "consumer group error", "err", err)
		}
	}()
	if a.opts.TailTopic != "" && a.opts.FiltersTopic != "" {
		go a.readFilters(ctx)
	}
	h := &handler{a: a, client: client, consumer: consumer, group: group, prod: prod}
	t := time.NewTicker(a.opts.Refresh)
	defer t.Stop()
	for ctx.Err() == nil {
		topics, layout := a.topics(client)
		if len(topics) == 0 {
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			continue
		}
		a.opts.Log.Info("joining consumer group", "group", a.opts.Group, "topics", topics)
		// Consume runs until the topics or their partition counts change
		// (sarama follows neither new topics nor, before its metadata
		// refresh of 10 minutes, new partitions), or, with an eager strategy
		// or an error, until the session ends; it is then called again.
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- group.Consume(cctx, topics, h) }()
	wait:
		for {
			select {
			case err := <-done:
				if err != nil && ctx.Err() == nil {
					a.warn.Warn("consume", "consumer group session ended, rejoining", "err", err)
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
				break wait
			case <-t.C:
				if now, nowLayout := a.topics(client); !slices.Equal(nowLayout, layout) {
					a.opts.Log.Info("topics or partitions changed, rejoining", "topics", now, "partitions", nowLayout)
					cancel()
					<-done
					break wait
				}
			}
		}
		cancel()
		a.joined.Store(false)
	}
	return nil
}

// topics lists the raw topics that exist now, sorted: the configured ones
// and those matching the pattern, and each with its partition count
// ("topic/count"). Consume refuses a topic that does not exist, so a
// configured one is joined once created.
func (a *Aggregator) topics(client sarama.Client) (topics, layout []string) {
	refreshErr := client.RefreshMetadata()
	if refreshErr != nil {
		a.warn.Warn("metadata", "cannot refresh metadata", "err", refreshErr)
	}
	all, err := client.Topics()
	if err != nil {
		a.warn.Warn("topics", "cannot list topics", "err", err)
		return nil, nil
	}
	if refreshErr == nil {
		a.listed.Store(true)
	}
	if tail := a.opts.TailTopic; tail != "" {
		ok := slices.Contains(all, tail)
		if was := a.tailOK.Swap(ok); was != ok {
			a.opts.Log.Info("tail topic", "topic", tail, "exists", ok)
		}
	}
	for _, t := range all {
		if t == a.opts.AggregatesTopic || t == a.opts.TailTopic || t == a.opts.FiltersTopic {
			continue // never aggregate the tier's own topics
		}
		if slices.Contains(a.opts.Topics, t) || a.opts.Pattern != nil && a.opts.Pattern.MatchString(t) {
			topics = append(topics, t)
		}
	}
	slices.Sort(topics)
	for _, t := range topics {
		parts, _ := client.Partitions(t)
		layout = append(layout, fmt.Sprintf("%s/%d", t, len(parts)))
	}
	return topics, layout
}

// handler is the sarama.ConsumerGroupHandler.
type handler struct {
	a        *Aggregator
	client   sarama.Client
	consumer sarama.Consumer
	group    sarama.ConsumerGroup
	prod     sarama.SyncProducer
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.a.joined.Store(true)
	h.a.m.joins.Inc()
	h.a.opts.Log.Info("joined consumer group", "group", h.a.opts.Group, "member", s.MemberID(), "claims", s.Claims())
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim aggregates one partition: see the package comment.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	a := h.a
	tp := topicPartition{claim.Topic(), claim.Partition()}
	// The claim's consumer would fetch from the committed offset what the
	// claim's own consumer reads anyway: it only signals the revocation.
	h.group.Pause(map[string][]int32{tp.topic: {tp.partition}})
	st := &claimState{}
	a.mu.Lock()
	a.claims[tp] = st
	a.mu.Unlock()
	a.m.owned.Inc()
	a.m.moves.WithLabelValues("taken").Inc()
	defer func() {
		a.mu.Lock()
		if a.claims[tp] == st {
			delete(a.claims, tp)
		}
		a.mu.Unlock()
		a.m.owned.Dec()
		a.m.moves.WithLabelValues("released").Inc()
	}()
	ctx, cancel := context.WithCancel(sess.Context())
	defer cancel()
	go func() {
		// Drain what the claim fetched before the pause; its channel closes
		// on revocation.
		for range claim.Messages() {
		}
		cancel()
	}()
	log := a.opts.Log.With("topic", tp.topic, "partition", tp.partition)

	var p plan
	err := kafkacfg.Retry(ctx, func() (err error) {
		p, err = h.plan(ctx, tp, claim.InitialOffset())
		return err
	}, func(err error, wait time.Duration) {
		a.warn.Warn("plan:"+tp.topic, "cannot find where to replay from, retrying", "topic", tp.topic, "partition", tp.partition, "err", err, "retry_in", wait)
	})
	if err != nil {
		return nil // revoked or session over
	}
	log.Info("partition taken", "committed", claim.InitialOffset(), "publish_from", p.publishFrom, "replay_from", p.replayFrom, "high_water_mark", p.target)
	if p.replayFrom >= p.target {
		st.caughtUp.Store(true)
	}
	w := &worker{h: h, sess: sess, tp: tp, st: st, p: p, sh: a.opts.newShard(tp.topic, tp.partition, p.publishFrom), marked: claim.InitialOffset()}
	w.run(ctx)
	log.Info("partition released")
	return nil
}

// plan is where a claim reads from and publishes from.
type plan struct {
	publishFrom int64 // first offset whose seconds are published
	replayFrom  int64 // first offset read
	target      int64 // high-water mark when taken: caught up past it
}

// plan finds the offsets of a claim whose group committed offset is
// committed (negative: none).
func (h *handler) plan(ctx context.Context, tp topicPartition, committed int64) (plan, error) {
	c, a := h.client, h.a
	newest, err := c.GetOffset(tp.topic, tp.partition, sarama.OffsetNewest)
	if err != nil {
		return plan{}, err
	}
	oldest, err := c.GetOffset(tp.topic, tp.partition, sarama.OffsetOldest)
	if err != nil {
		return plan{}, err
	}
	p := plan{target: newest}
	at := time.Now() // the timestamp of the record at publishFrom
	switch {
	case committed >= 0:
		p.publishFrom = min(max(committed, oldest), newest)
		if p.publishFrom < newest {
			if at, err = h.timestampAt(ctx, tp, p.publishFrom); err != nil {
				return plan{}, err
			}
		}
	default:
		// A new group: publish what the single-process fan-out's warm start
		// would show.
		p.publishFrom = newest
		at = time.Now().Add(-a.opts.Warmup)
		if off, err := c.GetOffset(tp.topic, tp.partition, at.UnixMilli()); err != nil {
			return plan{}, err
		} else if off >= 0 {
			p.publishFrom = off
		}
	}
	p.replayFrom = p.publishFrom
	if off, err := c.GetOffset(tp.topic, tp.partition, at.Add(-a.opts.Replay).UnixMilli()); err != nil {
		return plan{}, err
	} else if off >= 0 && off < p.replayFrom {
		p.replayFrom = max(off, oldest)
	}
	return p, nil
}

// timestampAt reads the timestamp of the first record delivered at or
// after offset.
func (h *handler) timestampAt(ctx context.Context, tp topicPartition, offset int64) (time.Time, error) {
	pc, err := h.consumer.ConsumePartition(tp.topic, tp.partition, offset)
	if err != nil {
		return time.Time{}, err
	}
	defer pc.Close()
	// Only markers or aborted records after offset: nothing is delivered.
	idle := time.NewTimer(settled)
	defer idle.Stop()
	select {
	case msg, ok := <-pc.Messages():
		if !ok {
			return time.Time{}, errors.New("partition consumer closed")
		}
		return msg.Timestamp, nil
	case err := <-pc.Errors():
		return time.Time{}, err
	case <-idle.C:
		return time.Now(), nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// worker is one claim's goroutine: it alone touches the Shard.
type worker struct {
	h      *handler
	sess   sarama.ConsumerGroupSession
	tp     topicPartition
	st     *claimState
	p      plan
	sh     shard
	marked int64 // offset last marked

	next     int64 // offset of the next record to read
	got      bool  // a record was read: the Shard knows whether it replays
	lastRead time.Time
	msgs     []*sarama.ProducerMessage
	tail     []*sarama.ProducerMessage // forwarded since the last flush
	sampler  *forward.Sampler          // nil without a tail topic
}

func (w *worker) run(ctx context.Context) {
	a := w.h.a
	w.next, w.lastRead = w.p.replayFrom, time.Now()
	if a.opts.TailTopic != "" {
		// Each partition's share of the stream's sample: together the
		// owners of a topic forward SampleRate events a second of each of
		// its streams.
		parts, _ := w.h.client.Partitions(w.tp.topic)
		w.sampler = forward.NewSampler(forward.Options{SampleRate: a.opts.SampleRate / float64(max(len(parts), 1))}, a.filters)
	}
	lag := a.m.lag.WithLabelValues(w.tp.topic, strconv.Itoa(int(w.tp.partition)))
	defer a.m.lag.DeleteLabelValues(w.tp.topic, strconv.Itoa(int(w.tp.partition)))
	tick := time.NewTicker(a.opts.FlushEvery)
	defer tick.Stop()
	batch := make([]consume.Record, consume.MaxBatch)
	// One decoder per partition: it interns the low-cardinality strings.
	var dec event.Decoder
	take := func(msg *sarama.ConsumerMessage, n int) int {
		w.next = msg.Offset + 1
		rec := &batch[n]
		if err := dec.Decode(msg.Value, &rec.Event); err != nil {
			reason := event.ReasonOf(err)
			a.m.bad.WithLabelValues(reason).Inc()
			a.warn.Warn("bad:"+reason, "skipping bad record", "reason", reason, "topic", w.tp.topic, "partition", w.tp.partition, "offset", msg.Offset, "err", err)
			return n
		}
		rec.Topic, rec.Partition = w.tp.topic, w.tp.partition
		rec.Offset, rec.Timestamp, rec.Value = msg.Offset, msg.Timestamp, msg.Value
		// The previous owner forwarded what lies before publishFrom.
		if w.sampler != nil && msg.Offset >= w.p.publishFrom && a.tailOK.Load() {
			switch w.sampler.Take(&rec.Event, msg.Timestamp) {
			case forward.Sample:
				w.forward(msg)
				a.m.forwarded.WithLabelValues("sample").Inc()
			case forward.Asked:
				w.forward(msg)
				a.m.forwarded.WithLabelValues("filter").Inc()
			}
		}
		return n + 1
	}
	for ctx.Err() == nil {
		pc, err := w.open()
		if err != nil {
			a.warn.Warn("open:"+w.tp.topic, "cannot read partition, retrying", "topic", w.tp.topic, "partition", w.tp.partition, "offset", w.next, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		w.read(ctx, pc, tick.C, batch, take, lag)
		pc.Close()
	}
}

// open starts the claim's own partition consumer at the next offset (the
// oldest one if retention took it).
func (w *worker) open() (sarama.PartitionConsumer, error) {
	pc, err := w.h.consumer.ConsumePartition(w.tp.topic, w.tp.partition, w.next)
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		pc, err = w.h.consumer.ConsumePartition(w.tp.topic, w.tp.partition, sarama.OffsetOldest)
	}
	return pc, err
}

// read reads until ctx ends or the partition consumer stops (then run
// opens it again where it was).
func (w *worker) read(ctx context.Context, pc sarama.PartitionConsumer, tick <-chan time.Time, batch []consume.Record, take func(*sarama.ConsumerMessage, int) int, lag prometheus.Gauge) {
	a := w.h.a
	msgs, errs := pc.Messages(), pc.Errors()
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-errs:
			if !ok {
				errs = nil // closed with the consumer: msgs closes too
				continue
			}
			a.warn.Warn("consume:"+w.tp.topic, "partition consumer error", "topic", w.tp.topic, "partition", w.tp.partition, "err", err.Err)
		case now := <-tick:
			// Before its first record the Shard cannot tell a replay from
			// the live edge (the records' lag tells it): a flush then would
			// close the seconds by the clock, and the replayed seconds
			// older than the Shard's ring (128 s) would never be published
			// (a warm-up or a history longer than that). So nothing is
			// flushed before the first record, unless there is nothing to
			// replay or only markers (settled).
			if w.got || w.next >= w.p.target || now.Sub(w.lastRead) > settled {
				w.flush(ctx, now)
			}
			if !w.st.caughtUp.Load() && (w.next >= w.p.target || now.Sub(w.lastRead) > settled) {
				w.st.caughtUp.Store(true)
			}
		case msg, ok := <-msgs:
			if !ok {
				return
			}
			w.got = true
			n := take(msg, 0)
		drain:
			for n < consume.MaxBatch {
				select {
				case m, ok := <-msgs:
					if !ok {
						break drain
					}
					n = take(m, n)
				default:
					break drain
				}
			}
			w.lastRead = time.Now()
			// The Shard tells a replay from the live edge by the lag: while
			// behind, the records' time closes the seconds, not the clock,
			// and sessions do not expire against the clock.
			hwm := pc.HighWaterMarkOffset()
			for i := range n {
				batch[i].Lag = max(hwm-batch[i].Offset-1, 0)
			}
			lag.Set(float64(max(hwm-w.next, 0)))
			a.m.events.Add(float64(n))
			if n > 0 {
				w.sh.AddBatch(batch[:n])
			}
			for i := range n {
				batch[i].Value = nil // do not pin sarama's fetch buffers
			}
			if !w.st.caughtUp.Load() && w.next >= w.p.target {
				w.st.caughtUp.Store(true)
			}
		}
	}
}

// flush publishes the due partials, waits for their acknowledgement, then
// marks the offset they cover. A partial that cannot be sent is sent again
// (it replaces itself) before anything else is read: the offset must not
// pass records whose partials are not in Kafka.
func (w *worker) flush(ctx context.Context, now time.Time) {
	a := w.h.a
	w.msgs = w.msgs[:0]
	var size int
	w.sh.Flush(now, func(key, value []byte) {
		// The Shard may reuse its buffers after emit returns.
		size += len(key) + len(value)
		// The record's timestamp is the last millisecond of the partial's
		// second, not when it was sent: /api/history finds the partials of
		// a past window by time (ListOffsets), and a republished or
		// replayed partial must be found by its second too.
		sec, _ := aggregate.PartialSecond(key)
		w.msgs = append(w.msgs, &sarama.ProducerMessage{Topic: a.opts.AggregatesTopic, Timestamp: time.UnixMilli((sec+1)*1000 - 1),
			Key: sarama.ByteEncoder(append([]byte(nil), key...)), Value: sarama.ByteEncoder(append([]byte(nil), value...))})
	})
	partials := len(w.msgs)
	w.sendTail()
	pending := w.msgs
	wait := 100 * time.Millisecond
	for len(pending) > 0 {
		err := w.h.prod.SendMessages(pending)
		if err == nil {
			break
		}
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) {
			pending = pending[:0:0]
			for _, pe := range perrs {
				pending = append(pending, pe.Msg)
			}
		}
		a.m.sendErrors.Inc()
		a.warn.Warn("publish", "cannot publish partials, retrying", "topic", a.opts.AggregatesTopic, "partials", len(pending), "err", err)
		select {
		case <-ctx.Done():
			return // not marked: the next owner publishes them again
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
	if partials > 0 {
		a.m.partials.Add(float64(partials))
		a.m.bytes.Add(float64(size))
	}
	clear(w.msgs) // do not pin the values until the next flush
	if off := w.sh.Committable(); off > w.marked && off >= w.p.publishFrom {
		w.sess.MarkOffset(w.tp.topic, w.tp.partition, off, "")
		w.marked = off
	}
}

// sendTail sends the events forwarded since the last flush. The tail is a
// view, not a record of account: what cannot be sent is counted and
// dropped, never retried ahead of the partials.
func (w *worker) sendTail() {
	a := w.h.a
	if ov := w.overCap(); ov > 0 {
		a.m.forwarded.WithLabelValues("over_cap").Add(float64(ov))
	}
	if len(w.tail) == 0 {
		return
	}
	if err := w.h.prod.SendMessages(w.tail); err != nil {
		failed := len(w.tail)
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) {
			failed = len(perrs)
		}
		a.m.forwarded.WithLabelValues("failed").Add(float64(failed))
		a.warn.Warn("tail", "cannot forward tail events, dropped", "topic", a.opts.TailTopic, "events", failed, "err", err)
	}
	clear(w.tail)
	w.tail = w.tail[:0]
}

// forward queues a raw record for the tail topic, with its key and
// timestamp, sent with the next flush.
func (w *worker) forward(msg *sarama.ConsumerMessage) {
	w.tail = append(w.tail, &sarama.ProducerMessage{Topic: w.h.a.opts.TailTopic, Timestamp: msg.Timestamp,
		Key: sarama.ByteEncoder(bytes.Clone(msg.Key)), Value: sarama.ByteEncoder(bytes.Clone(msg.Value))})
}

// overCap is the filtered events dropped over their cap since the last call.
func (w *worker) overCap() uint64 {
	if w.sampler == nil {
		return 0
	}
	d := w.sampler.Dropped
	w.sampler.Dropped = 0
	return d
}

// readFilters follows the filters topic (the merge-role fan-outs'
// announcements, compacted) into the shared filter set. Announcements
// expire by themselves, so reading from a minute back is enough.
func (a *Aggregator) readFilters(ctx context.Context) {
	c := consume.New(a.groupConfigCopy(), a.brokers, consume.Options{
		Topics: []string{a.opts.FiltersTopic}, Warmup: time.Minute, Refresh: a.opts.Refresh, StaleAfter: time.Minute, Raw: true, Log: a.opts.Log,
	})
	_ = c.Run(ctx, func(rs []consume.Record) {
		for i := range rs {
			if err := a.filters.Set(string(rs[i].Key), rs[i].Value); err != nil {
				a.warn.Warn("filters", "skipping bad filter announcement", "topic", a.opts.FiltersTopic, "offset", rs[i].Offset, "err", err)
			}
		}
		a.m.filters.Set(float64(a.filters.Len()))
	})
}

// groupConfigCopy is a copy of the Kafka settings for another client.
func (a *Aggregator) groupConfigCopy() *sarama.Config {
	c := *a.sc
	return &c
}
