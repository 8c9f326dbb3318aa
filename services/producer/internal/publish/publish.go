// Package publish paces events from a source to Kafka at a target rate and
// accounts for every one of them: each generated event is either
// acknowledged by Kafka or counted as failed with a reason. Nothing is
// dropped silently, and nothing is buffered without a bound: when Kafka
// stops acknowledging, the publisher stops generating.
package publish

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/ratelog"
)

// Source generates events; the simulator implements it.
type Source interface {
	// Next fills e with the next event, stamped at now.
	Next(now time.Time, e *event.Event)
	// SetRate tells the source the rate it will be asked for.
	SetRate(eventsPerSecond float64)
	// Active is the number of sessions in progress.
	Active() int
}

// Options configure a Publisher.
type Options struct {
	Topic       string
	Rate        float64 // events per second; 0 = paused
	MaxBuffered int     // unacknowledged events at which generation stops
	// FlushTimeout bounds the drain on shutdown; what is still unacknowledged
	// then is counted as failed with reason "shutdown".
	FlushTimeout time.Duration
	Log          *slog.Logger
	Registerer   prometheus.Registerer
}

// maxCatchUp bounds how far behind schedule the pacer catches up after a
// stall (GC pause, backpressure): beyond it, the schedule restarts rather
// than bursting a backlog that would distort the rate.
const maxCatchUp = time.Second

// staleAfter is how long unacknowledged events may wait before the
// publisher reports itself not ready: acks are normally milliseconds away.
const staleAfter = 5 * time.Second

// Publisher sends events from a Source to Kafka.
type Publisher struct {
	opts    Options
	brokers []string
	sc      *sarama.Config
	src     Source
	m       *metrics
	warn    *ratelog.Logger

	generated, acked, failed atomic.Int64
	lastAck                  atomic.Int64 // unix nanos of the last ack
	connected                atomic.Bool
	metaErr                  atomic.Pointer[error]
}

// New returns a Publisher. sc is the connection config from kafkacfg; New
// sets the producer-specific parts on it.
func New(sc *sarama.Config, brokers []string, src Source, opts Options) *Publisher {
	ConfigureProducer(sc)
	if opts.FlushTimeout == 0 {
		opts.FlushTimeout = 8 * time.Second
	}
	p := &Publisher{opts: opts, brokers: brokers, sc: sc, src: src, m: newMetrics(opts.Registerer), warn: ratelog.New(opts.Log, 10*time.Second)}
	p.m.target.Set(opts.Rate)
	p.m.active.Set(0)
	return p
}

// ConfigureProducer applies Playpulse's producer settings: idempotent with
// acks=all (no duplicates on retry, no loss on leader change), lz4
// (cheapest CPU per byte saved in the benchmarks), and a 5 ms linger so
// that a low rate adds at most a few milliseconds of latency while a high
// rate still fills large batches.
func ConfigureProducer(sc *sarama.Config) {
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Retry.Max = 1_000_000 // retries are bounded by MaxBuffered backpressure, not a count
	sc.Producer.Retry.Backoff = 250 * time.Millisecond
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Compression = sarama.CompressionLZ4
	sc.Producer.Flush.Frequency = 5 * time.Millisecond
	sc.Producer.Flush.Bytes = 512 << 10
	sc.Producer.Flush.MaxMessages = 0
	sc.Producer.MaxMessageBytes = 1 << 20
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	sc.ChannelBufferSize = 4096
	sc.Metadata.RefreshFrequency = 30 * time.Second
}

// Stats is a consistent-enough view of the counters for logs and tests.
type Stats struct{ Generated, Acked, Failed int64 }

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	return Stats{p.generated.Load(), p.acked.Load(), p.failed.Load()}
}

// Ready reports whether events are flowing to Kafka.
func (p *Publisher) Ready() error {
	if !p.connected.Load() {
		return errors.New("not connected to Kafka yet")
	}
	if e := p.metaErr.Load(); e != nil && *e != nil {
		return *e
	}
	inflight := p.generated.Load() - p.acked.Load() - p.failed.Load()
	if inflight > 0 && time.Since(time.Unix(0, p.lastAck.Load())) > staleAfter {
		return errors.New("Kafka has acknowledged nothing for over 5s")
	}
	if inflight >= int64(p.opts.MaxBuffered) {
		return errors.New("send buffer full: Kafka is too slow or down")
	}
	return nil
}

// Run connects (retrying until ctx ends), sends at the target rate until ctx
// ends, then flushes. It returns nil on a clean shutdown.
func (p *Publisher) Run(ctx context.Context) error {
	client, err := p.connect(ctx)
	if err != nil {
		return nil // ctx ended while connecting: nothing was generated
	}
	defer client.Close()
	prod, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return err
	}
	p.connected.Store(true)
	p.lastAck.Store(time.Now().UnixNano())

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); p.collectSuccesses(prod) }()
	go func() { defer wg.Done(); p.collectErrors(prod) }()
	probeCtx, stopProbe := context.WithCancel(ctx)
	go func() { defer wg.Done(); p.probe(probeCtx, client) }()

	p.pace(ctx, prod)
	stopProbe()

	// Drain: AsyncClose flushes what is buffered; the collectors end when
	// sarama closes its result channels.
	prod.AsyncClose()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(p.opts.FlushTimeout):
		left := p.generated.Load() - p.acked.Load() - p.failed.Load()
		p.failed.Add(left)
		p.m.failed.WithLabelValues("shutdown").Add(float64(left))
		p.opts.Log.Error("flush timed out; unacknowledged events counted as failed", "events", left)
	}
	s := p.Stats()
	p.opts.Log.Info("producer stopped", "generated", s.Generated, "acknowledged", s.Acked, "failed", s.Failed)
	return nil
}

func (p *Publisher) connect(ctx context.Context) (sarama.Client, error) {
	backoff := 500 * time.Millisecond
	for {
		client, err := sarama.NewClient(p.brokers, p.sc)
		if err == nil {
			return client, nil
		}
		p.setMetaErr(err)
		p.warn.Warn("connect", "cannot reach Kafka, retrying", "brokers", p.brokers, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (p *Publisher) setMetaErr(err error) {
	if err != nil {
		err = errors.New("Kafka metadata for the topic unavailable: " + err.Error())
	}
	p.metaErr.Store(&err)
}

// probe refreshes the topic's metadata periodically so /readyz tells the
// truth even when nothing is being sent (rate 0) or the topic is missing.
func (p *Publisher) probe(ctx context.Context, client sarama.Client) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		err := client.RefreshMetadata(p.opts.Topic)
		if err == nil {
			_, err = client.Partitions(p.opts.Topic)
		}
		p.setMetaErr(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pace generates events at the target rate. Event k of a schedule is due at
// start + k/rate and is stamped with that time, so the timestamps are evenly
// spaced however the ticks fall.
func (p *Publisher) pace(ctx context.Context, prod sarama.AsyncProducer) {
	rate := p.opts.Rate
	p.src.SetRate(rate)
	if rate <= 0 {
		p.opts.Log.Info("rate is 0: paused, connected, sending nothing")
		<-ctx.Done()
		return
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var k int64
	timer := time.NewTimer(0)
	defer timer.Stop()
	var ev event.Event
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		if behind := now.Sub(start.Add(time.Duration(k) * interval)); behind > maxCatchUp {
			start, k = now, 0
		}
		for {
			due := start.Add(time.Duration(k) * interval)
			if due.After(now) {
				timer.Reset(due.Sub(now))
				break
			}
			if p.generated.Load()-p.acked.Load()-p.failed.Load() >= int64(p.opts.MaxBuffered) {
				// Backpressure: wait for acks instead of growing a buffer.
				timer.Reset(10 * time.Millisecond)
				break
			}
			p.src.Next(due, &ev)
			msg := &sarama.ProducerMessage{
				Topic:     p.opts.Topic,
				Key:       sarama.StringEncoder(ev.SessionID),
				Value:     sarama.ByteEncoder(ev.AppendJSON(make([]byte, 0, 384))),
				Headers:   schemaHeader,
				Timestamp: ev.TS,
				Metadata:  sendInfo{created: due, typ: ev.Type},
			}
			select {
			case prod.Input() <- msg:
			case <-ctx.Done():
				return
			}
			p.generated.Add(1)
			k++
		}
		p.m.active.Set(float64(p.src.Active()))
	}
}

var schemaHeader = []sarama.RecordHeader{{Key: []byte(event.HeaderSchema), Value: []byte{'0' + event.Version}}}

type sendInfo struct {
	created time.Time
	typ     event.Type
}

func (p *Publisher) collectSuccesses(prod sarama.AsyncProducer) {
	for msg := range prod.Successes() {
		info := msg.Metadata.(sendInfo)
		now := time.Now()
		p.acked.Add(1)
		p.lastAck.Store(now.UnixNano())
		p.m.events.WithLabelValues(info.typ.String()).Inc()
		p.m.latency.Observe(now.Sub(info.created).Seconds())
		p.m.achieved.observe(now)
	}
}

func (p *Publisher) collectErrors(prod sarama.AsyncProducer) {
	for perr := range prod.Errors() {
		reason := failureReason(perr.Err)
		p.failed.Add(1)
		p.m.failed.WithLabelValues(reason).Inc()
		p.warn.Warn(reason, "event not delivered", "reason", reason, "err", perr.Err, "topic", perr.Msg.Topic)
	}
}

// failureReason maps sarama's errors onto a small fixed label set.
func failureReason(err error) string {
	var kerr sarama.KError
	switch {
	case errors.As(err, &kerr):
		switch kerr {
		case sarama.ErrUnknownTopicOrPartition:
			return "unknown_topic"
		case sarama.ErrMessageSizeTooLarge:
			return "too_large"
		case sarama.ErrNotEnoughReplicas, sarama.ErrNotEnoughReplicasAfterAppend:
			return "not_enough_replicas"
		case sarama.ErrTopicAuthorizationFailed, sarama.ErrClusterAuthorizationFailed:
			return "not_authorized"
		}
		return "broker_error"
	case errors.Is(err, sarama.ErrOutOfBrokers):
		return "out_of_brokers"
	case errors.Is(err, sarama.ErrShuttingDown), errors.Is(err, sarama.ErrClosedClient):
		return "shutdown"
	}
	return "other"
}
