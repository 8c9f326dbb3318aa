// Package publish paces events from a source to Kafka at a target rate and
// accounts for every one of them: each generated event is either
// acknowledged by Kafka or counted as failed with a reason. Nothing is
// dropped silently, and nothing is buffered without a bound: when Kafka
// stops acknowledging, the publisher stops generating.
//
// # Pacing
//
// Event k of a pacing segment is due at start + k/rate and is stamped with
// that time, however the timer ticks fall, so the record timestamps in Kafka
// are evenly spaced and a window of W seconds holds rate·W of them. The rate
// is Source.Rate(now), re-read on every wake-up: constant without the daily
// profile, a slow curve with it; a change starts a new segment at the next
// due time, scaled so that the fraction of an interval already waited
// counts. A pacer that falls more than a second behind (CPU starvation,
// backpressure) restarts the schedule at now instead of bursting the
// backlog.
//
// # Outages
//
// The sarama client retries metadata for about five minutes and sends for
// about as long (see ConfigureProducer), so an outage shorter than that
// fails nothing: sends wait in sarama, generation stops at MaxBuffered
// unacknowledged events, and everything resumes, in order and without
// duplicates (idempotent producer), when Kafka is back. A separate probe
// client with no retries keeps /readyz truthful meanwhile.
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ratelog"
	"playpulse.dev/services/playback/sim"
)

// Source generates events; the simulator implements it.
type Source interface {
	// Next fills e with the next event, stamped at now.
	Next(now time.Time, e *event.Event)
	// SetRate tells the source the average rate it will be asked for.
	SetRate(eventsPerSecond float64)
	// Rate is the rate at which Next should be called at time now (the
	// SetRate value shaped by the daily profile, if any).
	Rate(now time.Time) float64
	// Active is the number of sessions in progress.
	Active() int
}

// StatsSource is a Source that reports what it did; the publisher exports
// the figures as metrics. Stats is called from the goroutine that calls
// Next.
type StatsSource interface {
	Stats() sim.Stats
}

// Options configure a Publisher.
type Options struct {
	Topic       string
	Rate        float64 // average events per second; 0 = paused
	MaxBuffered int     // unacknowledged events at which generation stops
	// Compression of record batches; the zero value is none.
	Compression sarama.CompressionCodec
	// Linger is how long an event may wait for others to share its batch.
	// 0 sends each batch as soon as the connection is free.
	Linger time.Duration
	// FlushTimeout bounds the drain on shutdown; what is still unacknowledged
	// then is counted as failed with reason "shutdown". Default 8s.
	FlushTimeout time.Duration
	Log          *slog.Logger
	Registerer   prometheus.Registerer
	// Health explains, counts and logs connection failures (kafkacfg); with
	// none (unit tests) they are neither logged nor explained.
	Health *kafkacfg.Health
}

const (
	// maxCatchUp bounds how far behind schedule the pacer catches up after a
	// stall (GC pause, CPU starvation, backpressure): beyond it, the
	// schedule restarts rather than bursting a backlog that would distort
	// the rate.
	maxCatchUp = time.Second
	// minSleep: above 1/minSleep events/s the pacer wakes at most this often
	// and sends every event that fell due meanwhile, each stamped with its
	// due time. Bursts let sarama's goroutines hand events on in runs
	// instead of waking for each: 2 ms costs 20% less CPU per event than
	// 0.5 ms at 40,000 events/s, for at most 2 ms more latency at high rates
	// (at low rates the pacer sleeps until each event is due).
	minSleep = 2 * time.Millisecond
	// staleAfter is how long events may wait without any acknowledgement
	// before the publisher reports itself not ready.
	staleAfter = 5 * time.Second
	// probeEvery is the period of the readiness probe's metadata request.
	probeEvery = 2 * time.Second
	// statsEvery is how often the pacer copies the source's Stats.
	statsEvery = time.Second
)

// Publisher sends events from a Source to Kafka.
type Publisher struct {
	opts    Options
	brokers []string
	sc      *sarama.Config
	src     Source
	m       *metrics
	warn    *ratelog.Logger
	free    freeList

	// Each counter has its own cache line: the pacer writes generated, the
	// collectors acked and failed, hundreds of thousands of times a second.
	generated padded
	acked     padded
	failed    padded
	// lastProgress is the unix nanos of the last acknowledgement or failure,
	// or of the send that found nothing in flight: readiness measures how
	// long events have waited from it.
	lastProgress atomic.Int64
	connected    atomic.Bool
	// resMu guards closed: once the flush timed out and what was left was
	// counted as failed, late results from sarama are not counted again.
	resMu    sync.Mutex
	closed   bool
	probeErr atomic.Pointer[error]

	statsMu  sync.Mutex
	simStats sim.Stats
	hasStats bool
}

// New returns a Publisher. sc is the connection config from kafkacfg; New
// sets the producer-specific parts on it (ConfigureProducer).
func New(sc *sarama.Config, brokers []string, src Source, opts Options) *Publisher {
	opts.Linger = EffectiveLinger(opts.Linger, opts.Rate)
	ConfigureProducer(sc, opts.Compression, opts.Linger)
	if opts.FlushTimeout == 0 {
		opts.FlushTimeout = 8 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{opts: opts, brokers: brokers, sc: sc, src: src, warn: ratelog.New(opts.Log, 10*time.Second)}
	p.free.max = min(opts.MaxBuffered, 1<<16)
	p.m = newMetrics(opts.Registerer, p)
	src.SetRate(opts.Rate)
	p.m.target.Set(src.Rate(time.Now()))
	return p
}

// ConfigureProducer applies Playpulse's producer settings:
//   - idempotent with acks=all: no loss on leader change, no duplicates on
//     retry (the broker drops a resent batch it already has);
//   - the codec (lz4 by default: the highest throughput of none, snappy, lz4
//     and zstd in make bench) and the linger (see EffectiveLinger; a batch
//     also goes out when 512 KiB are waiting, and events gather while the
//     previous request is in flight, one per broker as idempotence needs);
//   - retries that outlast an outage of about five minutes: metadata
//     requests back off from 250 ms to 1 s for up to 300 attempts, sends
//     from 100 ms to 1 s for up to 100 attempts (each of which waits for
//     metadata first). An event still unsent after that is counted as
//     failed. (A large Retry.Max is not free: sarama allocates retry state
//     per partition proportional to it.)
func ConfigureProducer(sc *sarama.Config, codec sarama.CompressionCodec, linger time.Duration) {
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1 // required by sarama's idempotent producer
	sc.Producer.Retry.Max = 100
	sc.Producer.Retry.BackoffFunc = expBackoff(100*time.Millisecond, time.Second)
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Compression = codec
	sc.Producer.CompressionLevel = sarama.CompressionLevelDefault
	sc.Producer.Flush.Frequency = linger
	sc.Producer.Flush.Bytes = 512 << 10
	if linger == 0 {
		sc.Producer.Flush.Bytes = 0 // all triggers 0: flush as soon as possible
	}
	sc.Producer.Flush.MaxMessages = 0
	sc.Producer.MaxMessageBytes = 1 << 20
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	sc.ChannelBufferSize = 4096
	sc.Metadata.Full = false // metadata of our topic only, fetched when needed
	sc.Metadata.Retry.Max = 300
	sc.Metadata.Retry.BackoffFunc = expBackoff(250*time.Millisecond, time.Second)
	sc.Metadata.RefreshFrequency = 30 * time.Second
}

// EffectiveLinger is the linger the producer uses at rate events/s: the
// configured one, or none when fewer than one other event would arrive
// during it. A linger pays only by sharing a batch: at 10 events/s a 5 ms
// linger would add 5 ms to every event and save nothing, while at 10,000
// events/s it turns 50 requests into one, which make bench shows the
// broker needs when it shares the machine (Kafka's own latency doubled
// without it at that rate).
func EffectiveLinger(linger time.Duration, rate float64) time.Duration {
	if rate*linger.Seconds() < 1 {
		return 0
	}
	return linger
}

// expBackoff doubles from first up to most.
func expBackoff(first, most time.Duration) func(retries, maxRetries int) time.Duration {
	return func(retries, _ int) time.Duration {
		d := first
		for range min(retries, 16) {
			d *= 2
			if d >= most {
				return most
			}
		}
		return d
	}
}

// padded is an atomic counter alone on its cache line.
type padded struct {
	atomic.Int64
	_ [56]byte
}

// Stats is a consistent-enough view of the counters for logs and tests.
type Stats struct{ Generated, Acked, Failed int64 }

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	return Stats{p.generated.Load(), p.acked.Load(), p.failed.Load()}
}

func (p *Publisher) inflight() int64 {
	return p.generated.Load() - p.acked.Load() - p.failed.Load()
}

// Ready reports whether events are flowing to Kafka.
func (p *Publisher) Ready() error {
	if !p.connected.Load() {
		if e := p.probeErr.Load(); e != nil && *e != nil {
			return fmt.Errorf("not connected to Kafka yet: %w", *e)
		}
		return errors.New("not connected to Kafka yet")
	}
	if e := p.probeErr.Load(); e != nil && *e != nil {
		return *e
	}
	n := p.inflight()
	if waited := time.Since(time.Unix(0, p.lastProgress.Load())); n > 0 && waited > staleAfter {
		return fmt.Errorf("Kafka has acknowledged nothing for %s while %d events wait", waited.Round(time.Second), n)
	}
	if n >= int64(p.opts.MaxBuffered) {
		return fmt.Errorf("send buffer full (%d events): Kafka is too slow or down", n)
	}
	return nil
}

// Run connects (retrying until ctx ends), sends at the target rate until ctx
// ends, then flushes for at most FlushTimeout and returns within about a
// second more, whatever state Kafka is in. It has no error to return: Kafka
// being down is waited out, and events that cannot be delivered are counted
// as failed by reason.
func (p *Publisher) Run(ctx context.Context) {
	probe, err := p.connectProbe(ctx)
	if err != nil {
		return // ctx ended before Kafka was reachable: nothing was generated
	}
	client, prod, err := p.connectProducer(ctx)
	if err != nil {
		closeWithin(time.Second, probe)
		return
	}
	p.connected.Store(true)
	p.lastProgress.Store(time.Now().UnixNano())

	results := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); p.collectSuccesses(prod) }()
		go func() { defer wg.Done(); p.collectErrors(prod) }()
		wg.Wait()
		close(results)
	}()
	bgCtx, stopBg := context.WithCancel(ctx)
	bgDone := make(chan struct{})
	go func() {
		var bg sync.WaitGroup
		bg.Add(2)
		go func() { defer bg.Done(); p.probeLoop(bgCtx, probe) }()
		go func() { defer bg.Done(); p.sampleLoop(bgCtx) }()
		bg.Wait()
		close(bgDone)
	}()

	p.pace(ctx, prod)
	stopBg()

	// Drain: AsyncClose flushes what is buffered; the collectors end when
	// sarama closes its result channels.
	prod.AsyncClose()
	deadline := time.NewTimer(p.opts.FlushTimeout)
	defer deadline.Stop()
	flushed := true
	select {
	case <-results:
	case <-deadline.C:
		flushed = false
		p.resMu.Lock()
		p.closed = true
		left := p.inflight()
		p.failed.Add(left)
		p.resMu.Unlock()
		p.m.failed.WithLabelValues("shutdown").Add(float64(left))
		p.opts.Log.Error("flush timed out; unacknowledged events counted as failed", "events", left, "reason", "shutdown")
	}
	// The probe may be in the middle of a request to an unreachable broker:
	// wait for it only briefly, and close the clients in the background if
	// they do not close at once (a broker still dialling holds its lock up
	// to Net.DialTimeout).
	select {
	case <-bgDone:
	case <-time.After(500 * time.Millisecond):
	}
	if flushed {
		closeWithin(500*time.Millisecond, client, probe)
	} else {
		go closeWithin(0, client, probe)
	}
	s := p.Stats()
	p.opts.Log.Info("producer stopped", "generated", s.Generated, "acknowledged", s.Acked, "failed", s.Failed)
}

// closeWithin closes the clients, waiting at most d for them.
func closeWithin(d time.Duration, clients ...sarama.Client) {
	done := make(chan struct{})
	go func() {
		for _, c := range clients {
			_ = c.Close()
		}
		close(done)
	}()
	if d > 0 {
		select {
		case <-done:
		case <-time.After(d):
		}
	}
}

// connectProbe creates the probe client (no metadata retries, so that it
// answers at once) and waits until the topic's metadata is readable.
func (p *Publisher) connectProbe(ctx context.Context) (sarama.Client, error) {
	pc := *p.sc
	pc.Producer.Idempotent = false
	pc.Metadata.Full = false
	pc.Metadata.Retry.Max = 0
	pc.Metadata.Retry.BackoffFunc = nil
	pc.Metadata.RefreshFrequency = 0
	pc.Net.DialTimeout = min(pc.Net.DialTimeout, 5*time.Second)
	pc.Net.ReadTimeout = min(pc.Net.ReadTimeout, 5*time.Second)
	pc.Net.WriteTimeout = min(pc.Net.WriteTimeout, 5*time.Second)
	var client sarama.Client
	err := kafkacfg.Retry(ctx, func() (err error) {
		if client == nil {
			client, err = sarama.NewClient(p.brokers, &pc)
		}
		if err == nil {
			err = kafkacfg.CheckTopics(client, p.opts.Topic)
		}
		if err == nil {
			p.opts.Health.OK()
			p.setProbeErr(nil)
		}
		return err
	}, func(err error, wait time.Duration) {
		p.setProbeErr(p.opts.Health.Failed("connect", "Kafka not reachable or topic not ready, retrying", err, "brokers", p.brokers, "topic", p.opts.Topic, "retry_in", wait))
	})
	if err != nil {
		if client != nil {
			_ = client.Close()
		}
		return nil, err
	}
	return client, nil
}

// connectProducer creates the producer's client and AsyncProducer. Kafka
// answered the probe just before, so this normally succeeds at once.
func (p *Publisher) connectProducer(ctx context.Context) (client sarama.Client, prod sarama.AsyncProducer, err error) {
	err = kafkacfg.Retry(ctx, func() (err error) {
		if client, err = sarama.NewClient(p.brokers, p.sc); err != nil {
			return err
		}
		if prod, err = sarama.NewAsyncProducerFromClient(client); err != nil { // InitProducerId
			_ = client.Close()
		}
		return err
	}, func(err error, wait time.Duration) {
		p.opts.Health.Failed("connect", "cannot create the Kafka producer, retrying", err, "brokers", p.brokers, "retry_in", wait)
	})
	if err != nil {
		return nil, nil, err
	}
	return client, prod, nil
}

func (p *Publisher) setProbeErr(err error) {
	if err != nil {
		err = fmt.Errorf("Kafka metadata for topic %s unavailable: %w", p.opts.Topic, err)
	}
	p.probeErr.Store(&err)
}

// probeLoop checks the topic's metadata periodically, so /readyz tells the
// truth even when nothing is being sent (rate 0) or Kafka went away.
func (p *Publisher) probeLoop(ctx context.Context, client sarama.Client) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := kafkacfg.CheckTopics(client, p.opts.Topic)
		if err != nil {
			err = p.opts.Health.Failed("probe", "Kafka metadata unavailable", err, "topic", p.opts.Topic)
		} else {
			p.opts.Health.OK()
		}
		p.setProbeErr(err)
	}
}

// sampleLoop feeds the achieved-rate window once a second.
func (p *Publisher) sampleLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		p.m.achieved.sample(time.Now(), p.acked.Load())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// schedule hands out due times at a rate that may change.
type schedule struct {
	start time.Time // due time of event 0 of the current segment
	k     int64     // events handed out in this segment
	rate  float64   // events per second; 0 = paused
}

// due is the due time of the next event.
func (s *schedule) due() time.Time {
	return s.start.Add(time.Duration(float64(s.k) * 1e9 / s.rate))
}

// setRate switches to rate r at now. From a pause the schedule starts at
// now; otherwise the part of the current interval still to wait is scaled
// to the new rate, so a slowly moving rate is followed exactly.
func (s *schedule) setRate(r float64, now time.Time) {
	switch {
	case r == s.rate:
		return
	case r <= 0:
		s.rate = 0
		return
	case s.rate <= 0:
		s.start, s.k, s.rate = now, 0, r
		return
	}
	next := s.due()
	if wait := next.Sub(now); wait > 0 {
		next = now.Add(time.Duration(float64(wait) * s.rate / r))
	}
	s.start, s.k, s.rate = next, 0, r
}

// catchUp restarts the schedule at now if it is more than maxCatchUp
// behind.
func (s *schedule) catchUp(now time.Time) {
	if s.rate > 0 && now.Sub(s.due()) > maxCatchUp {
		s.start, s.k = now, 0
	}
}

// pace generates events on the schedule until ctx ends.
func (p *Publisher) pace(ctx context.Context, prod sarama.AsyncProducer) {
	stats, hasStats := p.src.(StatsSource)
	if p.opts.Rate <= 0 {
		p.opts.Log.Info("rate is 0: paused, connected, sending nothing")
	}
	var (
		sch       schedule
		ev        event.Event
		nextStats time.Time
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	input := prod.Input()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		r := p.src.Rate(now)
		p.m.target.Set(r)
		sch.setRate(r, now)
		sch.catchUp(now)
		if hasStats && !now.Before(nextStats) {
			p.copyStats(stats.Stats())
			nextStats = now.Add(statsEvery)
		}
		if sch.rate <= 0 {
			timer.Reset(250 * time.Millisecond)
			continue
		}
		n := p.inflight()
		if n == 0 {
			// Nothing waits: readiness measures waiting from here.
			p.lastProgress.Store(now.UnixNano())
		}
		// budget is how many events may be generated before the buffer is
		// full; acks only raise it, so it is re-read only when spent (the
		// acked counter is written by another core at the same rate).
		budget := int64(p.opts.MaxBuffered) - n
		for {
			due := sch.due()
			if wait := due.Sub(now); wait > 0 {
				timer.Reset(max(wait, minSleep))
				break
			}
			if budget <= 0 {
				if budget = int64(p.opts.MaxBuffered) - p.inflight(); budget <= 0 {
					// Backpressure: wait for acks instead of growing a buffer.
					timer.Reset(10 * time.Millisecond)
					break
				}
			}
			p.src.Next(due, &ev)
			r := p.newRecord(&ev, due)
			select {
			case input <- &r.msg: // non-blocking fast path, no selectgo
			default:
				select {
				case input <- &r.msg:
				case <-ctx.Done():
					p.release(r)
					return
				}
			}
			p.generated.Add(1)
			budget--
			sch.k++
		}
	}
}

func (p *Publisher) copyStats(s sim.Stats) {
	p.statsMu.Lock()
	p.simStats, p.hasStats = s, true
	p.statsMu.Unlock()
}

func (p *Publisher) simStatsSnapshot() (sim.Stats, bool) {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	return p.simStats, p.hasStats
}

// record is one event on its way to Kafka: the sarama message and the bytes
// it points to, recycled through the publisher's free list once Kafka answered.
type record struct {
	msg     sarama.ProducerMessage
	buf     []byte // key (session_id) followed by the JSON value
	keyLen  int
	created int64 // event time, unix nanos
	typ     event.Type
}

// keyEncoder and valueEncoder are sarama.Encoders over a record's buffer;
// as pointer types they go into the interface without an allocation.
type (
	keyEncoder   record
	valueEncoder record
)

func (k *keyEncoder) Encode() ([]byte, error)   { return k.buf[:k.keyLen:k.keyLen], nil }
func (k *keyEncoder) Length() int               { return k.keyLen }
func (v *valueEncoder) Encode() ([]byte, error) { return v.buf[v.keyLen:], nil }
func (v *valueEncoder) Length() int             { return len(v.buf) - v.keyLen }

var schemaHeader = []sarama.RecordHeader{{Key: []byte(event.HeaderSchema), Value: []byte{'0' + event.Version}}}

func (p *Publisher) newRecord(e *event.Event, created time.Time) *record {
	r := p.free.get()
	if r.buf == nil {
		r.buf = make([]byte, 0, 512)
	}
	r.buf = append(r.buf[:0], e.SessionID...)
	r.keyLen = len(r.buf)
	r.buf = e.AppendJSON(r.buf)
	r.created = created.UnixNano()
	r.typ = e.Type
	r.msg = sarama.ProducerMessage{
		Topic:     p.opts.Topic,
		Key:       (*keyEncoder)(r),
		Value:     (*valueEncoder)(r),
		Headers:   schemaHeader,
		Timestamp: created,
		Metadata:  r,
	}
	return r
}

func (p *Publisher) release(r *record) {
	if cap(r.buf) > 4<<10 {
		r.buf = nil // an unusually large event: do not keep its buffer
	}
	r.msg = sarama.ProducerMessage{}
	p.free.put(r)
}

// freeList recycles records once Kafka answered. Unlike a sync.Pool it is
// not emptied by every garbage collection (which at high rates would
// reallocate the whole in-flight set each cycle), and it hands out the
// most recently released records first, which are still in the CPU cache.
// get is called by the pacer only; put by the result collectors.
type freeList struct {
	mu     sync.Mutex
	shared []*record // released, most recent last
	local  []*record // the pacer's, taken from shared in one swap
	max    int
}

func (f *freeList) get() *record {
	if len(f.local) == 0 {
		f.mu.Lock()
		f.local, f.shared = f.shared, f.local
		f.mu.Unlock()
		if len(f.local) == 0 {
			return new(record)
		}
	}
	r := f.local[len(f.local)-1]
	f.local[len(f.local)-1] = nil
	f.local = f.local[:len(f.local)-1]
	return r
}

func (f *freeList) put(r *record) {
	f.mu.Lock()
	if len(f.shared) < f.max {
		f.shared = append(f.shared, r)
	}
	f.mu.Unlock()
}

func (p *Publisher) collectSuccesses(prod sarama.AsyncProducer) {
	for msg := range prod.Successes() {
		r := msg.Metadata.(*record)
		p.resMu.Lock()
		if p.closed {
			p.resMu.Unlock()
			continue
		}
		p.acked.Add(1)
		p.resMu.Unlock()
		now := time.Now()
		p.lastProgress.Store(now.UnixNano())
		if c := p.m.events[r.typ]; c != nil {
			c.Inc()
		}
		p.m.latency.Observe(float64(now.UnixNano()-r.created) / 1e9)
		p.release(r)
	}
}

func (p *Publisher) collectErrors(prod sarama.AsyncProducer) {
	for perr := range prod.Errors() {
		r, _ := perr.Msg.Metadata.(*record)
		p.resMu.Lock()
		if p.closed {
			p.resMu.Unlock()
			continue
		}
		p.failed.Add(1)
		p.resMu.Unlock()
		reason := failureReason(perr.Err)
		p.lastProgress.Store(time.Now().UnixNano())
		p.m.failed.WithLabelValues(reason).Inc()
		args := []any{"reason", reason, "err", perr.Err, "topic", p.opts.Topic}
		if r != nil {
			args = append(args, "session_id", string(r.buf[:r.keyLen]), "event_type", r.typ.String())
			p.release(r)
		}
		p.warn.Warn(reason, "event not delivered", args...)
	}
}

// failureReason maps sarama's errors onto a small fixed label set.
func failureReason(err error) string {
	var kerr sarama.KError
	var cerr sarama.ConfigurationError
	switch {
	case errors.Is(err, sarama.ErrOutOfBrokers):
		return "out_of_brokers"
	case errors.Is(err, sarama.ErrShuttingDown), errors.Is(err, sarama.ErrClosedClient):
		return "shutdown"
	case errors.As(err, &cerr):
		return "too_large" // the only per-message configuration error: over MaxMessageBytes
	case errors.As(err, &kerr):
		switch kerr {
		case sarama.ErrUnknownTopicOrPartition:
			return "unknown_topic"
		case sarama.ErrMessageSizeTooLarge, sarama.ErrInvalidMessageSize:
			return "too_large"
		case sarama.ErrNotEnoughReplicas, sarama.ErrNotEnoughReplicasAfterAppend:
			return "not_enough_replicas"
		case sarama.ErrTopicAuthorizationFailed, sarama.ErrClusterAuthorizationFailed:
			return "not_authorized"
		}
		return "broker_error"
	}
	return "other"
}
