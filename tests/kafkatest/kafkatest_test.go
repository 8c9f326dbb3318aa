package kafkatest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/tests/kafkatest"
)

// TestBrokerProduceConsumeRestart runs a real broker: it creates a
// 3-partition topic, produces and consumes a record, then stops and restarts
// the broker on the same data dir and port and reads the record again.
func TestBrokerProduceConsumeRestart(t *testing.T) {
	t0 := time.Now()
	b := kafkatest.Start(t)
	t.Logf("broker ready at %s in %v", b.Addr(), time.Since(t0).Round(time.Millisecond))
	addr := b.Addr()
	if addr == "" {
		t.Fatal("empty broker address")
	}

	const topic = "kafkatest-playback-events"
	b.CreateTopic(t, topic, 3)

	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner

	admin, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("cluster admin: %v", err)
	}
	meta, err := admin.DescribeTopics([]string{topic})
	admin.Close()
	if err != nil || len(meta) != 1 || !errors.Is(meta[0].Err, sarama.ErrNoError) || len(meta[0].Partitions) != 3 {
		t.Fatalf("describe %s: err=%v meta=%+v", topic, err, meta)
	}

	producer, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	msg := &sarama.ProducerMessage{
		Topic:     topic,
		Partition: 1,
		Key:       sarama.StringEncoder("session-42"),
		Value:     sarama.StringEncoder(`{"event":"play","position_ms":0}`),
	}
	partition, offset, err := producer.SendMessage(msg)
	if cerr := producer.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	if partition != 1 {
		t.Fatalf("produced to partition %d, want 1", partition)
	}

	check := func(when string) {
		t.Helper()
		got := consumeOne(t, addr, cfg, topic, partition, offset)
		if string(got.Key) != "session-42" || string(got.Value) != `{"event":"play","position_ms":0}` {
			t.Fatalf("%s: consumed key=%q value=%q", when, got.Key, got.Value)
		}
	}
	check("before restart")

	t0 = time.Now()
	b.Stop(t)
	t.Logf("stopped in %v", time.Since(t0).Round(time.Millisecond))
	if _, err := sarama.NewClient([]string{addr}, quickConfig()); err == nil {
		t.Fatalf("broker still answers at %s after Stop", addr)
	}

	t0 = time.Now()
	b.Restart(t)
	t.Logf("restarted in %v", time.Since(t0).Round(time.Millisecond))
	if b.Addr() != addr {
		t.Fatalf("address changed across restart: %s -> %s", addr, b.Addr())
	}
	check("after restart")
}

func consumeOne(t *testing.T, addr string, cfg *sarama.Config, topic string, partition int32, offset int64) *sarama.ConsumerMessage {
	t.Helper()
	consumer, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, partition, offset)
	if err != nil {
		t.Fatalf("consume partition %d: %v", partition, err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		if m.Offset != offset {
			t.Fatalf("consumed offset %d, want %d", m.Offset, offset)
		}
		return m
	case err := <-pc.Errors():
		t.Fatalf("consume: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatalf("no record at %s/%d@%d within 30s", topic, partition, offset)
	}
	return nil
}

func quickConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Net.DialTimeout = 2 * time.Second
	cfg.Metadata.Retry.Max = 0
	return cfg
}
