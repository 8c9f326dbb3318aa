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
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/ratelog"
)

// Record is one valid event with where it came from. Handlers must not keep
// the pointer: it is reused.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time // Kafka record timestamp
	Event     event.Event
}

// Handler receives valid records. It is called from one goroutine per
// partition, so records of one session arrive in order.
type Handler func(*Record)

// Options configure a Consumer.
type Options struct {
	Topics     []string
	Warmup     time.Duration // rewind each partition to now - Warmup at start
	Refresh    time.Duration // how often to look for new topics and partitions
	Log        *slog.Logger
	Registerer prometheus.Registerer
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
	connected  atomic.Bool
	lastErr    atomic.Pointer[error]
}

type topicPartition struct {
	topic     string
	partition int32
}

type partitionState struct {
	caughtUp atomic.Bool
	target   int64 // high-water mark at start; caught up once past it
}

// New returns a Consumer; sc comes from kafkacfg.
func New(sc *sarama.Config, brokers []string, opts Options) *Consumer {
	sc.Consumer.Return.Errors = true
	sc.Consumer.Fetch.Default = 1 << 20
	sc.Consumer.MaxWaitTime = 100 * time.Millisecond
	sc.Consumer.Retry.Backoff = time.Second
	sc.ChannelBufferSize = 1024
	if opts.Refresh == 0 {
		opts.Refresh = 5 * time.Second
	}
	return &Consumer{opts: opts, brokers: brokers, sc: sc, m: newMetrics(opts.Registerer), warn: ratelog.New(opts.Log, 10*time.Second), partitions: map[topicPartition]*partitionState{}}
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
	c.connected.Store(true)

	var wg sync.WaitGroup
	defer wg.Wait()
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
	backoff := 500 * time.Millisecond
	for {
		client, err := sarama.NewClient(c.brokers, c.sc)
		if err == nil {
			return client, nil
		}
		c.lastErr.Store(&err)
		c.warn.Warn("connect", "cannot reach Kafka, retrying", "brokers", c.brokers, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// discover starts a consumer for every partition not yet consumed.
func (c *Consumer) discover(ctx context.Context, client sarama.Client, consumer sarama.Consumer, handle Handler, wg *sync.WaitGroup) {
	if err := client.RefreshMetadata(c.opts.Topics...); err != nil {
		c.warn.Warn("metadata", "cannot refresh topic metadata", "topics", c.opts.Topics, "err", err)
	}
	for _, topic := range c.opts.Topics {
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
			st, pc, err := c.open(client, consumer, tp)
			if err != nil {
				c.warn.Warn("open:"+topic, "cannot open partition", "topic", topic, "partition", p, "err", err)
				continue
			}
			c.mu.Lock()
			c.partitions[tp] = st
			c.mu.Unlock()
			c.opts.Log.Info("consuming partition", "topic", topic, "partition", p)
			wg.Add(2)
			go func() { defer wg.Done(); c.partitionLoop(ctx, tp, st, pc, handle) }()
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
// whose timestamp is at or after now - Warmup, or the end if none is.
func (c *Consumer) open(client sarama.Client, consumer sarama.Consumer, tp topicPartition) (*partitionState, sarama.PartitionConsumer, error) {
	newest, err := client.GetOffset(tp.topic, tp.partition, sarama.OffsetNewest)
	if err != nil {
		return nil, nil, err
	}
	start := newest
	if c.opts.Warmup > 0 {
		off, err := client.GetOffset(tp.topic, tp.partition, time.Now().Add(-c.opts.Warmup).UnixMilli())
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
	rec := &Record{Topic: tp.topic, Partition: tp.partition}
	for msg := range pc.Messages() {
		pos.Set(float64(msg.Offset))
		lag.Set(float64(pc.HighWaterMarkOffset() - msg.Offset - 1))
		if !st.caughtUp.Load() && msg.Offset+1 >= st.target {
			st.caughtUp.Store(true)
		}
		if err := event.Decode(msg.Value, &rec.Event); err != nil {
			reason := event.ReasonOf(err)
			c.m.bad.WithLabelValues(reason).Inc()
			c.warn.Warn("bad:"+reason, "skipping bad record", "reason", reason, "topic", tp.topic, "partition", tp.partition, "offset", msg.Offset, "err", err)
			continue
		}
		c.m.events.Inc()
		rec.Offset, rec.Timestamp = msg.Offset, msg.Timestamp
		handle(rec)
	}
}
