package consume_test

// Unit tests on the in-process kfake broker; against real Kafka the
// consumer is tested in tests/e2e and tests/faults.

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/kafkacfg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func saramaConfig(t *testing.T, addr string) *sarama.Config {
	t.Helper()
	kc := kafkacfg.Config{Brokers: []string{addr}, ClientID: "unit", Version: "3.9.0"}
	sc, err := kc.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// produce writes values to topic/partition, in order, stamped now.
func produce(t *testing.T, addr, topic string, partition int32, values ...[]byte) {
	t.Helper()
	sc := saramaConfig(t, addr)
	sc.Producer.Return.Successes = true
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer([]string{addr}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var msgs []*sarama.ProducerMessage
	for _, v := range values {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: partition, Value: sarama.ByteEncoder(v), Timestamp: time.Now()})
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

// valid is a valid event with sequence number seq (from 1).
func valid(t *testing.T, seq int) []byte {
	t.Helper()
	now := time.Now()
	e := event.Event{V: 1, EventID: fmt.Sprint("e", seq), SessionID: "s", Seq: uint64(seq), Stream: "x", UserID: "u", MovieID: "m",
		Type: event.Pause, Device: "tv", TS: now}
	b := e.AppendJSON(nil)
	var d event.Decoder
	var check event.Event
	if err := d.Decode(b, &check); err != nil {
		t.Fatalf("test event %s: %v", b, err)
	}
	return b
}

// got is what a handler saw of one record.
type got struct {
	topic     string
	partition int32
	offset    int64
	lag       int64
	seq       uint64
}

// run runs a consumer until the test ends and collects what it delivers.
type run struct {
	c   *consume.Consumer
	reg *prometheus.Registry
	mu  sync.Mutex
	got []got
	// partitions OnPartition was called for, as topic/partition@offset.
	started []string
}

func start(t *testing.T, addr string, opts consume.Options) *run {
	t.Helper()
	r := &run{reg: prometheus.NewRegistry()}
	opts.Log = slog.New(slog.DiscardHandler)
	opts.Registerer = r.reg
	opts.OnPartition = func(topic string, partition int32, offset int64) {
		r.mu.Lock()
		r.started = append(r.started, fmt.Sprintf("%s/%d@%d", topic, partition, offset))
		r.mu.Unlock()
	}
	r.c = consume.New(saramaConfig(t, addr), []string{addr}, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.c.Run(ctx, func(rs []consume.Record) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, rec := range rs {
				r.got = append(r.got, got{rec.Topic, rec.Partition, rec.Offset, rec.Lag, rec.Event.Seq})
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s of cancel")
		}
	})
	return r
}

func (r *run) records() []got {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *run) partitions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := slices.Clone(r.started)
	slices.Sort(s)
	return s
}

// metric returns the value of the counter or gauge name whose labels
// include every pair of labels.
func (r *run) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 15 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every partition of every topic matching the pattern is consumed, and a
// matching topic created later is found by a later discovery pass with
// its first records: written before that pass (with a pass a second, it
// usually is), they are read although the warm-up window is zero,
// because a partition found late starts no later than the previous pass.
func TestDiscoveryByPattern(t *testing.T) {
	cl := newCluster(t, kfake.SeedTopics(2, "playback-a", "playback-b", "other"))
	addr := cl.ListenAddrs()[0]
	r := start(t, addr, consume.Options{Pattern: regexp.MustCompile(`^(?:playback-.*)$`), Refresh: time.Second})
	want := []string{"playback-a/0@0", "playback-a/1@0", "playback-b/0@0", "playback-b/1@0"}
	waitFor(t, "the four partitions", func() bool { return slices.Equal(r.partitions(), want) })
	if s := r.c.Status(); s.Partitions != 4 {
		t.Errorf("Status().Partitions = %d, want 4", s.Partitions)
	}

	admin, err := sarama.NewClusterAdmin([]string{addr}, saramaConfig(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic("playback-c", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	produce(t, addr, "playback-c", 0, valid(t, 1), valid(t, 2))
	produce(t, addr, "other", 0, valid(t, 3))
	waitFor(t, "playback-c's two records", func() bool { return len(r.records()) == 2 })
	for i, g := range r.records() {
		if g.topic != "playback-c" || g.offset != int64(i) {
			t.Errorf("record %d: %+v, want playback-c offset %d", i, g, i)
		}
	}
	if p := r.partitions(); !slices.Contains(p, "playback-c/0@0") || slices.ContainsFunc(p, func(s string) bool { return strings.HasPrefix(s, "other") }) {
		t.Errorf("partitions started: %v", p)
	}
}

// Valid records reach the handler in order with their position and lag;
// bad ones are counted by reason and skipped, and the partition goes on.
func TestDecodeAndBadRecords(t *testing.T) {
	cl := newCluster(t, kfake.SeedTopics(1, "events"))
	addr := cl.ListenAddrs()[0]
	produce(t, addr, "events", 0,
		valid(t, 1), []byte("nope"), valid(t, 3), []byte(`{}`), []byte(`{"v":99}`), valid(t, 6))
	r := start(t, addr, consume.Options{Topics: []string{"events"}, Warmup: time.Hour})
	waitFor(t, "three valid records", func() bool { return len(r.records()) == 3 })
	// Read after all six were written: the high-water mark was 6.
	want := []got{{"events", 0, 0, 5, 1}, {"events", 0, 2, 3, 3}, {"events", 0, 5, 0, 6}}
	if g := r.records(); !slices.Equal(g, want) {
		t.Errorf("handler got %+v, want %+v", g, want)
	}
	for reason, n := range map[string]float64{"not_json": 1, "missing_field": 1, "unsupported_version": 1, "wrong_type": 0} {
		if v := r.metric(t, "playpulse_fanout_bad_records_total", "reason", reason); v != n {
			t.Errorf("bad records %s: %v, want %v", reason, v, n)
		}
	}
	if v := r.metric(t, "playpulse_fanout_events_total"); v != 3 {
		t.Errorf("events_total %v, want 3", v)
	}
	if v := r.metric(t, "playpulse_fanout_partition_offset", "topic", "events", "partition", "0"); v != 5 {
		t.Errorf("partition offset %v, want 5", v)
	}
	if v := r.metric(t, "playpulse_fanout_partition_lag", "topic", "events", "partition", "0"); v != 0 {
		t.Errorf("partition lag %v, want 0", v)
	}
}

// Not ready until connected and caught up with the warm-up window; live
// then, with no lag; stale once the broker stops answering for StaleAfter.
func TestReadyAndStale(t *testing.T) {
	cl := newCluster(t, kfake.SeedTopics(1, "events"))
	addr := cl.ListenAddrs()[0]
	var values [][]byte
	for i := range 100 {
		values = append(values, valid(t, i+1))
	}
	produce(t, addr, "events", 0, values...)
	r := start(t, addr, consume.Options{Topics: []string{"events"}, Warmup: time.Hour, StaleAfter: time.Second})
	waitFor(t, "ready", func() bool { return r.c.Ready() == nil })
	if n := len(r.records()); n != 100 {
		t.Errorf("ready after %d of 100 records of the warm-up window", n)
	}
	waitFor(t, "live", func() bool { return r.c.Status().State == consume.StateLive })
	if s := r.c.Status(); s.Lag != 0 || s.Partitions != 1 || s.Message != "" {
		t.Errorf("live status %+v", s)
	}
	if v := r.metric(t, "playpulse_fanout_source_stale"); v != 0 {
		t.Errorf("source_stale %v while live", v)
	}

	cl.Close()
	waitFor(t, "stale", func() bool { return r.c.Status().State == consume.StateStale })
	if s := r.c.Status(); !strings.HasPrefix(s.Message, "kafka: ") {
		t.Errorf("stale message %q", s.Message)
	}
	if v := r.metric(t, "playpulse_fanout_source_stale"); v != 1 {
		t.Errorf("source_stale %v while stale", v)
	}
}

// With no broker to reach, the consumer says it is connecting, is not
// ready, and stops when its context ends.
func TestConnecting(t *testing.T) {
	cl := newCluster(t)
	addr := cl.ListenAddrs()[0]
	cl.Close() // nothing listens there now
	r := start(t, addr, consume.Options{Topics: []string{"events"}})
	if err := r.c.Ready(); err == nil {
		t.Error("ready without a broker")
	}
	waitFor(t, "a connection error", func() bool { return strings.HasPrefix(r.c.Status().Message, "kafka: ") })
	if s := r.c.Status(); s.State != consume.StateConnecting {
		t.Errorf("state %q, want connecting", s.State)
	}
	if err := r.c.Ready(); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("Ready() = %v, want not connected", err)
	}
}
