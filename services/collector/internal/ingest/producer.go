package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ratelog"
)

// Producer is the edge's way into Kafka: an idempotent, acks=all sarama
// AsyncProducer behind a bounded count of accepted-but-unacknowledged
// reports. Reserve is the 2xx decision: a request is accepted only when its
// reports fit in the bound and Kafka answered recently; from then on the
// producer retries their records until DeliveryTimeout, and counts the
// reports of any it gives up on as lost. Nothing is dropped without being
// counted. A record's Metadata is the number of reports it holds (an int;
// nil: one).
type Producer struct {
	sc      *sarama.Config
	brokers []string
	topics  []string
	max     int64
	log     *slog.Logger
	warn    *ratelog.Logger
	health  *kafkacfg.Health
	m       *metrics

	inflight  atomic.Int64 // reports
	connected atomic.Bool
	lastOK    atomic.Int64 // Unix ns of the last successful probe
	probeErr  atomic.Pointer[error]

	// queue is between the handlers and sarama: sarama's Input blocks
	// while Kafka is away, and a handler must answer at once. It holds
	// at most max records (Reserve counts their reports, at least one
	// each), so a send never blocks.
	queue chan *sarama.ProducerMessage
	input chan<- *sarama.ProducerMessage // sarama's, once connected
	mu    sync.RWMutex                   // held for reading by Send, for writing when it ends
	ended bool
	done  chan struct{}
}

// probeEvery is how often Kafka is asked for the topics' metadata; downAfter
// without an answer makes the edge answer 503 rather than fill its buffer
// with reports it cannot deliver soon.
const (
	probeEvery = time.Second
	downAfter  = 3 * time.Second
)

// newProducer configures sc for delivery that outlasts an outage of
// deliveryTimeout: idempotent with acks=all (no loss on leader change, no
// duplicate on retry), sends backing off from 100 ms to 1 s.
func newProducer(sc *sarama.Config, brokers, topics []string, maxBuffered int, deliveryTimeout time.Duration, log *slog.Logger, health *kafkacfg.Health, m *metrics) *Producer {
	c := *sc
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1 // sarama's idempotent producer needs it
	c.Producer.Retry.Max = int(deliveryTimeout / time.Second)
	c.Producer.Retry.BackoffFunc = func(retries, _ int) time.Duration {
		return min(100*time.Millisecond<<min(retries, 4), time.Second)
	}
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Compression = sarama.CompressionLZ4
	// A record waits up to 20 ms for others to share its produce request.
	// The 2xx does not wait for it (Reserve is the promise), and a report
	// takes seconds to matter on the dashboard; while the broker's cost is
	// mostly per request: at 5 ms and one report per record it spent
	// 13 µs of CPU per report, at 20 ms 4.9 µs (make bench, same run).
	c.Producer.Flush.Frequency = 20 * time.Millisecond
	c.Producer.Flush.Bytes = 512 << 10
	c.Producer.MaxMessageBytes = 1 << 20
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.ChannelBufferSize = 4096
	c.Metadata.Full = false
	c.Metadata.Retry.Max = int(deliveryTimeout / time.Second)
	c.Metadata.Retry.BackoffFunc = c.Producer.Retry.BackoffFunc
	c.Net.DialTimeout = 5 * time.Second
	return &Producer{sc: &c, brokers: brokers, topics: topics, max: int64(maxBuffered), log: log,
		warn: ratelog.New(log, 10*time.Second), health: health, m: m, done: make(chan struct{}), queue: make(chan *sarama.ProducerMessage, maxBuffered)}
}

// Ready reports whether records can be accepted: connected, Kafka answered
// within downAfter, and room in the buffer.
func (p *Producer) Ready() error {
	if !p.connected.Load() {
		if e := p.probeErr.Load(); e != nil && *e != nil {
			return fmt.Errorf("not connected to Kafka yet: %w", *e)
		}
		return errors.New("not connected to Kafka yet")
	}
	if since := time.Since(time.Unix(0, p.lastOK.Load())); since > downAfter {
		err := fmt.Errorf("Kafka has not answered for %s", since.Round(time.Second))
		if e := p.probeErr.Load(); e != nil && *e != nil {
			err = fmt.Errorf("%w: %w", err, *e)
		}
		return err
	}
	if n := p.inflight.Load(); n >= p.max {
		return fmt.Errorf("send buffer full (%d reports): Kafka is too slow", n)
	}
	return nil
}

// Reserve takes room for n reports, or reports why it cannot (the 503).
func (p *Producer) Reserve(n int) error {
	if err := p.Ready(); err != nil {
		return err
	}
	if p.inflight.Add(int64(n)) > p.max {
		p.inflight.Add(-int64(n))
		return errors.New("send buffer full: Kafka is too slow")
	}
	return nil
}

// Release gives back room taken by Reserve and not used.
func (p *Producer) Release(n int) { p.inflight.Add(-int64(n)) }

// Send hands over a record for whose reports Reserve took room. It reports
// false when the producer has shut down (the room is given back).
func (p *Producer) Send(msg *sarama.ProducerMessage) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ended {
		p.inflight.Add(-int64(reportsIn(msg)))
		return false
	}
	// Straight into sarama when it takes it at once (the usual case),
	// else into the queue, which never blocks: Reserve took the room.
	// Order between reports does not matter (the sessionizer orders each
	// session by sn).
	select {
	case p.input <- msg:
	default:
		p.queue <- msg
	}
	return true
}

// Buffered is the number of reports accepted and not yet acknowledged.
func (p *Producer) Buffered() int64 { return p.inflight.Load() }

// Run connects (retrying until ctx ends), delivers until ctx ends, then
// flushes what was accepted within flush and returns.
func (p *Producer) Run(ctx context.Context, flush time.Duration) {
	defer close(p.done)
	probe, prod, err := p.connect(ctx)
	if err != nil {
		p.mu.Lock()
		p.ended = true
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	p.input = prod.Input()
	p.mu.Unlock()
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		for msg := range p.queue {
			prod.Input() <- msg
		}
	}()
	p.lastOK.Store(time.Now().UnixNano())
	p.connected.Store(true)

	results := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for msg := range prod.Successes() {
				n := reportsIn(msg)
				p.inflight.Add(-int64(n))
				p.m.delivered.Add(float64(n))
			}
		}()
		go func() {
			defer wg.Done()
			for e := range prod.Errors() {
				n := reportsIn(e.Msg)
				p.inflight.Add(-int64(n))
				p.m.lost.Add(float64(n))
				p.warn.Warn("lost", "record not delivered to Kafka after retries; its reports counted as lost", "topic", e.Msg.Topic, "reports", n, "err", e.Err)
			}
		}()
		wg.Wait()
		close(results)
	}()
	p.probeLoop(ctx, probe)

	// The HTTP server has stopped accepting; flush what it accepted.
	p.mu.Lock()
	p.ended = true
	close(p.queue)
	p.mu.Unlock()
	deadline := time.NewTimer(flush)
	defer deadline.Stop()
	timedOut := false
	select {
	case <-pumped:
		prod.AsyncClose()
	case <-deadline.C:
		timedOut = true
		go func() { <-pumped; prod.AsyncClose() }()
	}
	if !timedOut {
		select {
		case <-results:
		case <-deadline.C:
			timedOut = true
		}
	}
	if timedOut {
		left := p.inflight.Load()
		p.m.lost.Add(float64(left))
		p.log.Error("flush timed out; unacknowledged reports counted as lost", "reports", left)
	}
	go func() { _ = probe.Close() }()
	p.log.Info("intake producer stopped", "buffered", p.inflight.Load())
}

// reportsIn is the number of reports msg holds (its Metadata; nil: one).
func reportsIn(msg *sarama.ProducerMessage) int {
	if n, ok := msg.Metadata.(int); ok {
		return n
	}
	return 1
}

// Done is closed when Run has flushed and returned.
func (p *Producer) Done() <-chan struct{} { return p.done }

func (p *Producer) connect(ctx context.Context) (sarama.Client, sarama.AsyncProducer, error) {
	pc := *p.sc
	pc.Producer.Idempotent = false
	pc.Metadata.Retry.Max = 0
	pc.Metadata.Retry.BackoffFunc = nil
	pc.Metadata.RefreshFrequency = 0
	pc.Net.ReadTimeout = 5 * time.Second
	pc.Net.WriteTimeout = 5 * time.Second
	var probe sarama.Client
	var prod sarama.AsyncProducer
	err := kafkacfg.Retry(ctx, func() (err error) {
		if probe == nil {
			if probe, err = sarama.NewClient(p.brokers, &pc); err != nil {
				return err
			}
		}
		if err = p.check(probe); err != nil {
			return err
		}
		prod, err = sarama.NewAsyncProducer(p.brokers, p.sc) // InitProducerId
		return err
	}, func(err error, wait time.Duration) {
		p.setProbe(p.health.Failed("connect", "Kafka not reachable or topics not ready, retrying", err, "brokers", p.brokers, "topics", p.topics, "retry_in", wait))
	})
	if err != nil {
		if probe != nil {
			_ = probe.Close()
		}
		return nil, nil, err
	}
	return probe, prod, nil
}

// check asks for the topics' metadata (kafkacfg.CheckTopics) and, when
// every partition has a leader, clears the readiness error.
func (p *Producer) check(client sarama.Client) error {
	err := kafkacfg.CheckTopics(client, p.topics...)
	if err == nil {
		p.health.OK()
		p.setProbe(nil)
	}
	return err
}

func (p *Producer) setProbe(err error) {
	p.probeErr.Store(&err)
	if err == nil {
		p.lastOK.Store(time.Now().UnixNano())
	}
}

func (p *Producer) probeLoop(ctx context.Context, probe sarama.Client) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.m.buffered.Set(float64(p.inflight.Load()))
		if err := p.check(probe); err != nil {
			p.setProbe(p.health.Failed("probe", "Kafka metadata unavailable", err, "topics", p.topics))
		}
	}
}
