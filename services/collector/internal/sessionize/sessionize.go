// Package sessionize is the collector's stateful role: a Kafka consumer
// group over the intake topic (cooperative-sticky), so that each intake
// partition, hence each session, has exactly one owner at a time. The owner
// keeps the partition's sessions (package sessions), and writes the events
// they produce to the events topic in Kafka transactions that also commit
// the consumed offset: events and progress become visible together or not
// at all.
//
// On assignment (and after any failed transaction) the owner fences the
// previous owner (its transactional id is per partition), reads the
// committed offset and the partition time stored with it, and rebuilds the
// sessions by replaying the partition from a bounded look-back before that
// offset, emitting nothing. Because a partition's processing depends only on
// its records (time included: tick records), the rebuilt state is the state
// the previous owner had committed, and the events after it are the ones it
// would have written: nothing is lost or doubled across a takeover.
package sessionize

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/collector/internal/cmcd"
	"playpulse.dev/services/collector/internal/intake"
	"playpulse.dev/services/collector/internal/mapping"
	"playpulse.dev/services/collector/internal/sessions"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ratelog"
)

// Options configure a Sessionizer.
type Options struct {
	IntakeTopic, EventsTopic, Group string
	UserIDKey                       string
	MaxLineBytes                    int
	Sessions                        sessions.Options
	// Lookback is how far (in partition time) before the committed
	// offset a new owner replays.
	Lookback time.Duration
	// TSTolerance is the edge's clamp of record timestamps, which the
	// look-back search by timestamp must allow for.
	TSTolerance time.Duration
	// CommitInterval is the longest a transaction stays open.
	CommitInterval time.Duration
	// Health is where Kafka failures are explained, counted and logged.
	Health     *kafkacfg.Health
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// TickInterval is how long an owned partition may be quiet before its
// owner writes a tick record into it (only while a session is live or a
// report is held back): the resolution of inactivity and reorder deadlines
// on a quiet partition.
const TickInterval = 500 * time.Millisecond

// maxTxnRecords bounds the intake records of one transaction.
const maxTxnRecords = 20_000

// Sessionizer runs the consumer group.
type Sessionizer struct {
	sc      *sarama.Config
	brokers []string
	opts    Options
	m       *metrics
	warn    *ratelog.Logger

	connected atomic.Bool
	lastOK    atomic.Int64
	probeErr  atomic.Pointer[error]

	mu      sync.Mutex
	workers map[int32]*worker
}

// New returns a Sessionizer; sc comes from kafkacfg.
func New(sc *sarama.Config, brokers []string, opts Options) *Sessionizer {
	s := &Sessionizer{sc: sc, brokers: brokers, opts: opts, warn: ratelog.New(opts.Log, 10*time.Second), workers: map[int32]*worker{}}
	s.m = newMetrics(opts.Registerer, s)
	return s
}

// Ready reports whether the sessionizer is connected to Kafka and Kafka
// answered within the last few seconds.
func (s *Sessionizer) Ready() error {
	if !s.connected.Load() {
		if e := s.probeErr.Load(); e != nil && *e != nil {
			return fmt.Errorf("not connected to Kafka yet: %w", *e)
		}
		return errors.New("not connected to Kafka yet")
	}
	if since := time.Since(time.Unix(0, s.lastOK.Load())); since > 5*time.Second {
		return fmt.Errorf("Kafka has not answered for %s", since.Round(time.Second))
	}
	return nil
}

// groupConfig is the consumer group's: cooperative-sticky (a rebalance
// moves only the partitions that must move; the others keep their state),
// no automatic offset commits (offsets are committed in the transactions
// only), the oldest offset when the group has none.
func (s *Sessionizer) groupConfig() *sarama.Config {
	c := *s.sc
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyCooperativeSticky()}
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	c.Consumer.Fetch.Default = 1 << 20
	c.Consumer.MaxWaitTime = 50 * time.Millisecond
	c.ChannelBufferSize = 4096
	c.Net.DialTimeout = 5 * time.Second
	return &c
}

// Run consumes until ctx ends. On return every owned partition has
// committed or aborted its open transaction.
func (s *Sessionizer) Run(ctx context.Context) error {
	var client sarama.Client
	var group sarama.ConsumerGroup
	var ticks sarama.SyncProducer
	err := kafkacfg.Retry(ctx, func() (err error) {
		if client == nil {
			if client, err = sarama.NewClient(s.brokers, s.groupConfig()); err != nil {
				return err
			}
		}
		if err = client.RefreshMetadata(s.opts.IntakeTopic, s.opts.EventsTopic); err != nil {
			return err
		}
		for _, t := range []string{s.opts.IntakeTopic, s.opts.EventsTopic} {
			if parts, err := client.Partitions(t); err != nil || len(parts) == 0 {
				return fmt.Errorf("topic %s: %w", t, errors.Join(err, sarama.ErrUnknownTopicOrPartition))
			}
		}
		if ticks == nil {
			if ticks, err = sarama.NewSyncProducer(s.brokers, s.tickConfig()); err != nil {
				return err
			}
		}
		if group, err = sarama.NewConsumerGroup(s.brokers, s.opts.Group, s.groupConfig()); err == nil {
			s.opts.Health.OK()
			s.setProbe(nil)
		}
		return err
	}, func(err error, wait time.Duration) {
		s.setProbe(s.opts.Health.Failed("connect", "Kafka not reachable or topics not ready, retrying", err, "brokers", s.brokers, "retry_in", wait))
	})
	if err != nil {
		if ticks != nil {
			_ = ticks.Close()
		}
		if client != nil {
			_ = client.Close()
		}
		return nil
	}
	defer client.Close()
	defer ticks.Close()
	s.connected.Store(true)
	go s.probeLoop(ctx, client)
	go func() {
		for err := range group.Errors() {
			s.warn.Warn("group", "consumer group error", "err", err)
		}
	}()
	h := &handler{s: s, client: client, ticks: ticks}
	for ctx.Err() == nil {
		if err := group.Consume(ctx, []string{s.opts.IntakeTopic}, h); err != nil && ctx.Err() == nil {
			s.warn.Warn("consume", "consumer group session ended, rejoining", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return group.Close()
}

func (s *Sessionizer) tickConfig() *sarama.Config {
	c := *s.sc
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.RequiredAcks = sarama.WaitForLocal
	c.Producer.Return.Successes = true
	c.Producer.Retry.Max = 1
	c.Net.DialTimeout = 5 * time.Second
	return &c
}

func (s *Sessionizer) setProbe(err error) {
	s.probeErr.Store(&err)
	if err == nil {
		s.lastOK.Store(time.Now().UnixNano())
	}
}

func (s *Sessionizer) probeLoop(ctx context.Context, client sarama.Client) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := client.RefreshMetadata(s.opts.IntakeTopic); err != nil {
			s.setProbe(s.opts.Health.Failed("probe", "Kafka metadata unavailable", err))
		} else {
			s.opts.Health.OK()
			s.setProbe(nil)
		}
	}
}

// handler is the sarama.ConsumerGroupHandler: one worker per claimed
// partition.
type handler struct {
	s      *Sessionizer
	client sarama.Client
	ticks  sarama.SyncProducer
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	w := &worker{s: h.s, h: h, sess: sess, claim: claim, partition: claim.Partition(), committed: -1}
	h.s.mu.Lock()
	h.s.workers[w.partition] = w
	h.s.mu.Unlock()
	h.s.m.partitions.Inc()
	defer func() {
		h.s.mu.Lock()
		delete(h.s.workers, w.partition)
		h.s.mu.Unlock()
		h.s.m.partitions.Dec()
	}()
	w.run()
	return nil
}

// sessionsHeld sums the workers' tables, for the gauge.
func (s *Sessionizer) sessionsHeld() (live, all float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.workers {
		live += float64(w.live.Load())
		all += float64(w.held.Load())
	}
	return live, all
}

// worker owns one intake partition.
type worker struct {
	s         *Sessionizer
	h         *handler
	sess      sarama.ConsumerGroupSession
	claim     sarama.ConsumerGroupClaim
	partition int32
	log       *slog.Logger

	prod      sarama.AsyncProducer
	txnErr    atomic.Pointer[error]
	prodDone  chan struct{}
	table     *sessions.Table
	stats     sessions.Stats // counted into the metrics so far
	committed int64          // next offset to process; -1: none committed
	first     int64          // first offset processed by this worker, for a start without a committed offset
	last      int64          // last offset processed (in the open transaction or committed)
	inTxn     bool
	quietFrom time.Time
	events    []event.Event
	live      atomic.Int64
	held      atomic.Int64
}

func (w *worker) ctx() context.Context { return w.sess.Context() }

func (w *worker) run() {
	w.log = w.s.opts.Log.With("topic", w.s.opts.IntakeTopic, "partition", w.partition)
	w.first, w.last = -1, -1
	if !w.recover(false) {
		return
	}
	defer w.closeProducer()
	commit := time.NewTimer(time.Hour)
	commit.Stop()
	tick := time.NewTicker(TickInterval)
	defer tick.Stop()
	w.quietFrom = time.Now()
	for {
		select {
		case <-w.ctx().Done():
			w.finish()
			return
		case msg, ok := <-w.claim.Messages():
			if !ok {
				w.finish()
				return
			}
			if w.committed >= 0 && msg.Offset < w.committed {
				continue // replayed or committed already
			}
			w.quietFrom = time.Now()
			if !w.inTxn {
				for {
					err := w.begin()
					if err == nil {
						break
					}
					if w.fail("begin", err); w.ctx().Err() != nil {
						return
					}
				}
				commit.Reset(w.s.opts.CommitInterval)
				if w.committed >= 0 && msg.Offset < w.committed {
					continue // the recovery above re-read it
				}
			}
			if w.first < 0 {
				w.first = msg.Offset
			}
			w.last = msg.Offset
			w.process(msg, true)
			if w.last-w.committed >= maxTxnRecords {
				commit.Stop()
				w.commit()
			}
		case <-commit.C:
			w.commit()
		case <-tick.C:
			w.tick()
		}
	}
}

// finish commits the open transaction when the partition is revoked or the
// process stops: the next owner starts where this one ended.
func (w *worker) finish() {
	if w.inTxn {
		w.commit()
	}
}

func (w *worker) begin() error {
	if err := w.prod.BeginTxn(); err != nil {
		return err
	}
	w.inTxn = true
	return nil
}

// process applies one intake record; emit sends the events it produces.
func (w *worker) process(msg *sarama.ConsumerMessage, emit bool) {
	meta, err := intake.ParseHeaders(msg.Headers)
	if err != nil {
		w.s.m.badIntake.WithLabelValues("headers").Inc()
		w.s.warn.Warn("intake", "intake record skipped", "offset", msg.Offset, "err", err)
		return
	}
	w.events = w.events[:0]
	if meta.Tick {
		w.events = w.table.Tick(meta.Received, w.events)
	} else {
		// One or more reports of one session, in the order they came.
		ctx := mapping.Context{Stream: meta.Stream, Device: meta.Device, Country: meta.Country}
		for line := range bytes.SplitSeq(msg.Value, []byte{'\n'}) {
			rep, err := cmcd.Parse(line, cmcd.Options{MaxLine: w.s.opts.MaxLineBytes, UserIDKey: w.s.opts.UserIDKey})
			if err != nil {
				w.s.m.badIntake.WithLabelValues(cmcd.ReasonOf(err)).Inc()
				w.s.warn.Warn("intake", "intake report skipped", "offset", msg.Offset, "err", err)
				continue
			}
			w.events = w.table.Add(mapping.Input{Report: rep, Ctx: ctx}, meta.Received, w.events)
		}
	}
	if !emit {
		return
	}
	for i := range w.events {
		e := &w.events[i]
		w.prod.Input() <- &sarama.ProducerMessage{
			Topic: w.s.opts.EventsTopic, Key: sarama.StringEncoder(e.SessionID), Value: sarama.ByteEncoder(e.AppendJSON(nil)),
			Headers: schemaHeader, Timestamp: e.TS,
		}
	}
}

var schemaHeader = []sarama.RecordHeader{{Key: []byte(event.HeaderSchema), Value: []byte(strconv.Itoa(event.Version))}}

// commit adds the consumed offset (and the partition time, as its
// metadata) to the open transaction and commits it.
func (w *worker) commit() {
	if !w.inTxn {
		return
	}
	start := time.Now()
	meta := strconv.FormatInt(w.table.Now(), 10)
	offsets := map[string][]*sarama.PartitionOffsetMetadata{
		w.s.opts.IntakeTopic: {{Partition: w.partition, Offset: w.last + 1, Metadata: &meta}},
	}
	gm := sarama.NewConsumerGroupMetadataFromSession(w.sess, w.s.opts.Group, nil)
	err := w.prod.AddOffsetsToTxnWithGroupMetadata(offsets, gm)
	if err == nil {
		err = w.prod.CommitTxn()
	}
	if err == nil {
		if e := w.txnErr.Load(); e != nil && *e != nil {
			err = *e
		}
	}
	w.inTxn = false
	if err != nil {
		w.fail("commit", err)
		return
	}
	w.committed = w.last + 1
	w.s.m.txns.WithLabelValues("committed").Inc()
	w.s.m.commitSeconds.Observe(time.Since(start).Seconds())
	w.count()
}

// count adds the table's counters since the last count to the metrics.
func (w *worker) count() {
	st := w.table.Stats()
	d := func(now, was uint64) float64 { return float64(now - was) }
	m := w.s.m
	m.reports.Add(d(st.Reports, w.stats.Reports))
	m.dropped.WithLabelValues("duplicate").Add(d(st.Duplicates, w.stats.Duplicates))
	m.dropped.WithLabelValues("after_stop").Add(d(st.AfterStop, w.stats.AfterStop))
	m.dropped.WithLabelValues("not_represented").Add(d(st.Unmapped, w.stats.Unmapped))
	m.gaps.Add(d(st.Gaps, w.stats.Gaps))
	m.ended.WithLabelValues("inactivity").Add(d(st.TimedOut, w.stats.TimedOut))
	m.ended.WithLabelValues("evicted").Add(d(st.Evicted, w.stats.Evicted))
	m.events.Add(d(st.Events, w.stats.Events))
	w.stats = st
	w.live.Store(int64(w.table.Live()))
	w.held.Store(int64(w.table.Len()))
}

// fail handles a failed transaction step: abort, and rebuild from what
// is committed (the in-memory state is ahead of it).
func (w *worker) fail(step string, err error) {
	w.s.m.txns.WithLabelValues("aborted").Inc()
	w.s.warn.Warn("txn", "transaction failed; rebuilding the partition from its committed offset", "step", step, "partition", w.partition, "err", err)
	if w.inTxn {
		_ = w.prod.AbortTxn()
		w.inTxn = false
	}
	w.recover(true)
}

// recover (re)creates the transactional producer, which fences any other
// producer of this partition and aborts its open transaction, then reads
// the committed offset, replays the look-back, and, when catchUp is set,
// re-processes (emitting) what this worker had consumed beyond the commit.
// It retries until it succeeds or the claim ends.
func (w *worker) recover(catchUp bool) bool {
	upTo := w.last + 1
	wait := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if w.ctx().Err() != nil {
			return false
		}
		if attempt > 0 {
			select {
			case <-w.ctx().Done():
				return false
			case <-time.After(wait):
			}
			wait = min(wait*2, 10*time.Second)
		}
		w.closeProducer()
		if err := w.newProducer(); err != nil {
			w.s.warn.Warn("recover", "cannot create the transactional producer, retrying", "partition", w.partition, "err", err)
			continue
		}
		if err := w.rebuild(); err != nil {
			w.s.warn.Warn("recover", "cannot rebuild the partition's sessions, retrying", "partition", w.partition, "err", err)
			continue
		}
		from := w.committed
		if from < 0 {
			from = w.first
		}
		if !catchUp || from < 0 || from >= upTo {
			return true
		}
		if err := w.begin(); err != nil {
			w.s.warn.Warn("recover", "cannot begin a transaction, retrying", "partition", w.partition, "err", err)
			continue
		}
		if err := w.readRange(from, upTo, true); err != nil {
			_ = w.prod.AbortTxn()
			w.inTxn = false
			w.s.warn.Warn("recover", "cannot re-read the partition, retrying", "partition", w.partition, "err", err)
			continue
		}
		w.last = upTo - 1
		w.commit()
		return true
	}
}

func (w *worker) newProducer() error {
	c := *w.s.sc
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Net.MaxOpenRequests = 1
	c.Producer.Transaction.ID = w.s.opts.Group + "-" + w.s.opts.IntakeTopic + "-" + strconv.Itoa(int(w.partition))
	c.Producer.Transaction.Timeout = time.Minute
	c.Producer.Return.Errors = true
	c.Producer.Return.Successes = false
	c.Producer.Compression = sarama.CompressionLZ4
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	c.Producer.Flush.Bytes = 256 << 10
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Producer.Retry.Max = 10
	c.Producer.Retry.Backoff = 200 * time.Millisecond
	c.Metadata.Full = false
	c.Net.DialTimeout = 5 * time.Second
	prod, err := sarama.NewAsyncProducer(w.s.brokers, &c) // InitProducerId: fences the previous owner
	if err != nil {
		return err
	}
	w.prod = prod
	w.txnErr.Store(nil)
	w.prodDone = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		for e := range prod.Errors() {
			err := error(e)
			w.txnErr.Store(&err)
		}
	}(w.prodDone)
	return nil
}

func (w *worker) closeProducer() {
	if w.prod == nil {
		return
	}
	_ = w.prod.Close()
	<-w.prodDone
	w.prod = nil
}

// rebuild reads the committed offset and partition time and replays the
// look-back into a fresh table, emitting nothing.
func (w *worker) rebuild() error {
	committed, ptime, err := w.fetchCommitted()
	if err != nil {
		return err
	}
	w.table = sessions.New(w.s.opts.Sessions)
	w.stats = sessions.Stats{}
	w.committed = committed
	if committed < 0 {
		w.count()
		return nil
	}
	if ptime <= 0 {
		ptime = time.Now().UnixMilli()
	}
	from, err := w.h.client.GetOffset(w.s.opts.IntakeTopic, w.partition, ptime-(w.s.opts.Lookback+w.s.opts.TSTolerance).Milliseconds())
	if err != nil {
		return fmt.Errorf("offset for the look-back: %w", err)
	}
	if from < 0 || from > committed {
		from = committed // nothing after that time: nothing to replay
	}
	start := time.Now()
	if err := w.readRange(from, committed, false); err != nil {
		return err
	}
	w.stats = w.table.Stats() // the replay is not counted again
	w.live.Store(int64(w.table.Live()))
	w.held.Store(int64(w.table.Len()))
	w.s.m.rebuilds.Inc()
	w.s.m.replayed.Add(float64(committed - from))
	w.log.Info("partition rebuilt", "committed", committed, "replayed_from", from, "records", committed-from,
		"sessions", w.table.Len(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// fetchCommitted asks the group coordinator for the committed offset,
// waiting for transactions still being committed (require_stable).
func (w *worker) fetchCommitted() (offset, ptime int64, err error) {
	for i := 0; ; i++ {
		coord, err := w.h.client.Coordinator(w.s.opts.Group)
		if err != nil {
			return 0, 0, err
		}
		req := sarama.NewOffsetFetchRequest(w.s.sc.Version, w.s.opts.Group, map[string][]int32{w.s.opts.IntakeTopic: {w.partition}})
		req.RequireStable = true
		resp, err := coord.FetchOffset(req)
		if err != nil {
			_ = w.h.client.RefreshCoordinator(w.s.opts.Group)
			return 0, 0, err
		}
		b := resp.GetBlock(w.s.opts.IntakeTopic, w.partition)
		if b == nil {
			return 0, 0, errors.New("no offset block in the answer")
		}
		if errors.Is(b.Err, sarama.ErrUnstableOffsetCommit) && i < 50 {
			select {
			case <-w.ctx().Done():
				return 0, 0, w.ctx().Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if b.Err != sarama.ErrNoError {
			return 0, 0, b.Err
		}
		ptime, _ = strconv.ParseInt(b.Metadata, 10, 64)
		return b.Offset, ptime, nil
	}
}

// readRange processes the records from offset from up to (not including)
// to, with a consumer of its own.
func (w *worker) readRange(from, to int64, emit bool) error {
	if from >= to {
		return nil
	}
	consumer, err := sarama.NewConsumerFromClient(w.h.client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(w.s.opts.IntakeTopic, w.partition, from)
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		pc, err = consumer.ConsumePartition(w.s.opts.IntakeTopic, w.partition, sarama.OffsetOldest)
	}
	if err != nil {
		return err
	}
	defer pc.Close()
	idle := time.NewTimer(30 * time.Second)
	defer idle.Stop()
	for {
		select {
		case msg, ok := <-pc.Messages():
			if !ok {
				return errors.New("partition consumer closed")
			}
			if msg.Offset >= to {
				return nil
			}
			w.process(msg, emit)
			if msg.Offset == to-1 {
				return nil
			}
			idle.Reset(30 * time.Second)
		case err := <-pc.Errors():
			return err
		case <-idle.C:
			return fmt.Errorf("no record for 30 s while re-reading offsets %d to %d", from, to)
		case <-w.ctx().Done():
			return w.ctx().Err()
		}
	}
}

// tick writes a tick record into the partition when it has been quiet for
// TickInterval and something waits on time.
func (w *worker) tick() {
	if time.Since(w.quietFrom) < TickInterval || !w.table.Waiting() {
		return
	}
	now := time.Now()
	_, _, err := w.h.ticks.SendMessage(&sarama.ProducerMessage{
		Topic: w.s.opts.IntakeTopic, Partition: w.partition, Timestamp: now,
		Headers: intake.Meta{Received: now.UnixMilli(), Tick: true}.Headers(),
	})
	if err != nil {
		w.s.warn.Warn("tick", "cannot write a tick record", "partition", w.partition, "err", err)
		return
	}
	w.s.m.ticks.Inc()
	w.quietFrom = now
}
