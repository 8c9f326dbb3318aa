package tier

// Unit tests of the Kafka plumbing on the in-process kfake broker, with a
// stand-in for aggregate.Shard; against real Kafka, with the real Shard and
// merge, the tier is tested in tests/e2e (tier_test.go).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
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

func saramaConfig(t *testing.T, addr string) *sarama.Config {
	t.Helper()
	kc := kafkacfg.Config{Brokers: []string{addr}, ClientID: "unit", Version: "3.9.0"}
	sc, err := kc.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// fakeShard publishes, at each Flush, one partial naming the offsets added
// since the last: key topic/partition/first offset, value "first-last".
type fakeShard struct {
	mu          sync.Mutex
	partition   int32
	publishFrom int64
	added       []int64 // every offset added, in order
	pending     []int64
	emitted     int64 // next offset after the emitted ones
	// early: flushed before any record was added. With records to replay
	// the real Shard would then close its seconds by the clock and drop
	// the replayed ones older than its ring.
	early bool
}

func (s *fakeShard) AddBatch(rs []consume.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		if r.Event.SessionID == "" || r.Value == nil {
			panic("record without its event")
		}
		s.added = append(s.added, r.Offset)
		if r.Offset >= s.publishFrom {
			s.pending = append(s.pending, r.Offset)
		}
	}
}

func (s *fakeShard) Flush(_ time.Time, emit func(key, value []byte)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.added) == 0 {
		s.early = true
	}
	if len(s.pending) == 0 {
		return
	}
	first, last := s.pending[0], s.pending[len(s.pending)-1]
	emit(fmt.Appendf(nil, "%d/%d", s.partition, first), fmt.Appendf(nil, "%d-%d", first, last))
	s.pending, s.emitted = s.pending[:0], last+1
}

func (s *fakeShard) Committable() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emitted
}

func (s *fakeShard) snapshot() (from int64, added []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.publishFrom, slices.Clone(s.added)
}

// run runs an aggregator on raw into agg until stop is called; shards
// gets every shard it makes, by partition.
func run(t *testing.T, addr string, shards map[int32]*fakeShard, mu *sync.Mutex) (a *Aggregator, stop func()) {
	t.Helper()
	a = NewAggregator(saramaConfig(t, addr), []string{addr}, AggregateOptions{
		Topics: []string{"raw", "missing"}, Refresh: 200 * time.Millisecond, Group: "g", AggregatesTopic: "agg",
		Replay: time.Minute, Warmup: 5 * time.Minute, FlushEvery: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(),
		newShard: func(topic string, partition int32, publishFrom int64) shard {
			s := &fakeShard{partition: partition, publishFrom: publishFrom}
			mu.Lock()
			shards[partition] = s
			mu.Unlock()
			return s
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return a, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestAggregateFollowsNewPartitions: a partition added to a raw topic is
// owned and published within the discovery interval.
func TestAggregateFollowsNewPartitions(t *testing.T) {
	cl, err := kfake.NewCluster(kfake.SeedTopics(2, "raw", "agg"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	addr := cl.ListenAddrs()[0]
	produceEvents(t, addr, 0, 3)
	var mu sync.Mutex
	shards := map[int32]*fakeShard{}
	_, stop := run(t, addr, shards, &mu)
	defer stop()
	eventually(t, "partition 0 committed", func() error {
		if c := committed(t, addr); c[0] != 3 {
			return fmt.Errorf("committed %v", c)
		}
		return nil
	})
	admin, err := sarama.NewClusterAdmin([]string{addr}, saramaConfig(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	err = admin.CreatePartitions("raw", 3, nil, false)
	admin.Close()
	if err != nil {
		t.Fatal(err)
	}
	produceEvents(t, addr, 2, 4)
	eventually(t, "the new partition 2 owned and committed", func() error {
		if c := committed(t, addr); c[2] != 4 {
			return fmt.Errorf("committed %v", c)
		}
		return nil
	})
}

func produceEvents(t *testing.T, addr string, partition int32, n int) {
	t.Helper()
	sc := saramaConfig(t, addr)
	sc.Producer.Return.Successes = true
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer([]string{addr}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range n {
		id := fmt.Sprint("s", partition, "-", i)
		e := event.Event{V: 1, EventID: id, SessionID: id, Seq: 1, Stream: "e2e", UserID: "u1", MovieID: "m0001",
			Type: event.Start, Device: "tv", TS: time.Now()}
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "raw", Partition: partition, Value: sarama.ByteEncoder(e.AppendJSON(nil))}); err != nil {
			t.Fatal(err)
		}
	}
	// A bad record: counted and skipped, the partition goes on.
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "raw", Partition: partition, Value: sarama.StringEncoder("not json")}); err != nil {
		t.Fatal(err)
	}
}

// published reads the aggregates topic: the offsets covered per partial key.
func published(t *testing.T, addr string) map[string]string {
	t.Helper()
	c, err := sarama.NewConsumer([]string{addr}, saramaConfig(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client, err := sarama.NewClient([]string{addr}, saramaConfig(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	out := map[string]string{}
	parts, _ := client.Partitions("agg")
	for _, p := range parts {
		hwm, err := client.GetOffset("agg", p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if hwm == 0 {
			continue
		}
		pc, err := c.ConsumePartition("agg", p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for m := range pc.Messages() {
			out[string(m.Key)] = string(m.Value)
			if m.Offset+1 >= hwm {
				break
			}
		}
		pc.Close()
	}
	return out
}

// coveredCount is how many offsets the partials cover.
func coveredCount(parts map[string]string) int {
	n := 0
	for _, v := range parts {
		a, b, _ := strings.Cut(v, "-")
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		n += y - x + 1
	}
	return n
}

func committed(t *testing.T, addr string) map[int32]int64 {
	t.Helper()
	admin, err := sarama.NewClusterAdmin([]string{addr}, saramaConfig(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	resp, err := admin.ListConsumerGroupOffsets("g", map[string][]int32{"raw": {0, 1, 2}})
	if err != nil {
		return nil // no group yet
	}
	out := map[int32]int64{}
	for p, b := range resp.Blocks["raw"] {
		out[p] = b.Offset
	}
	return out
}

func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAggregatePublishesAndCommits: a new group publishes the partials of
// every record of the warm-up window and commits past them; an aggregator
// taking the partitions over replays the records before the committed
// offset into a fresh shard that publishes from the committed offset on.
func TestAggregatePublishesAndCommits(t *testing.T) {
	cl, err := kfake.NewCluster(kfake.SeedTopics(2, "raw", "agg"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	addr := cl.ListenAddrs()[0]
	produceEvents(t, addr, 0, 30)
	produceEvents(t, addr, 1, 20)
	const total = 30 + 1 + 20 + 1 // the bad records are in a partial's range, not added

	var mu sync.Mutex
	shards := map[int32]*fakeShard{}
	a, stop := run(t, addr, shards, &mu)
	eventually(t, "every offset published and committed", func() error {
		if err := a.Ready(); err != nil {
			return err
		}
		if n := coveredCount(published(t, addr)); n != total-2 {
			return fmt.Errorf("%d offsets in partials", n)
		}
		if c := committed(t, addr); c[0] != 30 || c[1] != 20 {
			return fmt.Errorf("committed %v", c)
		}
		return nil
	})
	mu.Lock()
	for p, s := range shards {
		if from, added := s.snapshot(); from != 0 || len(added) != map[int32]int{0: 30, 1: 20}[p] {
			t.Errorf("partition %d: published from %d, %d records added", p, from, len(added))
		}
		if s.early {
			t.Errorf("partition %d: flushed before its first record, with records to replay", p)
		}
	}
	mu.Unlock()
	stop()

	// A new owner: it replays the partition and publishes what follows the
	// committed offset only.
	produceEvents(t, addr, 0, 5)
	shards = map[int32]*fakeShard{}
	_, stop = run(t, addr, shards, &mu)
	defer stop()
	eventually(t, "the new records published", func() error {
		if c := committed(t, addr); c[0] != 36 {
			return fmt.Errorf("committed %v", c)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	from, added := shards[0].snapshot()
	if from != 30 || len(added) != 35 || added[0] != 0 {
		t.Fatalf("partition 0: published from %d, %d records added from %v, want 30, 35 from 0", from, len(added), added[:1])
	}
}
