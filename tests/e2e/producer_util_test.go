package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/benchproducer"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

// producerRun is one producer process started by the producer tests.
type producerRun struct {
	proc *harness.Proc
	addr string
}

func (p producerRun) metricsURL() string { return "http://" + p.addr + "/metrics" }
func (p producerRun) readyURL() string   { return "http://" + p.addr + "/readyz" }

// runProducer starts bin/producer from dir (harness.Bin or harness.FastBin)
// on topic and waits until it is ready.
func runProducer(t *testing.T, dir string, b *kafkatest.Broker, topic, rate string, extra map[string]string) producerRun {
	t.Helper()
	p := startProducerProc(t, dir, b, topic, rate, extra)
	harness.WaitReady(t, p.readyURL(), 60*time.Second)
	return p
}

func startProducerProc(t *testing.T, dir string, b *kafkatest.Broker, topic, rate string, extra map[string]string) producerRun {
	t.Helper()
	addr := harness.FreeAddr(t)
	env := map[string]string{
		"KAFKA_BROKERS":   b.Addr(),
		"PRODUCER_TOPIC":  topic,
		"PRODUCER_RATE":   rate,
		"PRODUCER_ADDR":   addr,
		"PRODUCER_STREAM": "e2e",
		"LOG_LEVEL":       "info",
	}
	for k, v := range extra {
		env[k] = v
	}
	return producerRun{proc: harness.StartFrom(t, dir, "producer", env), addr: addr}
}

// waitAcked waits until the producer has had at least n events acknowledged.
func (p producerRun) waitAcked(t *testing.T, n float64, d time.Duration) {
	t.Helper()
	harness.Eventually(t, d, fmt.Sprintf("%v events acknowledged", n), func() error {
		return metricAtLeast(p.metricsURL(), "playpulse_producer_events_total", n)
	})
}

// finalCounts is the producer's last log line, "producer stopped".
type finalCounts struct {
	Generated    int64 `json:"generated"`
	Acknowledged int64 `json:"acknowledged"`
	Failed       int64 `json:"failed"`
}

// stopProducer sends SIGTERM, requires exit 0 within 10 s, and returns the
// counts the producer logged on the way out.
func stopProducer(t *testing.T, p producerRun) finalCounts {
	t.Helper()
	start := time.Now()
	if err := p.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := p.proc.Wait(10 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("producer: exit %d, %v, %s after SIGTERM", code, err, time.Since(start))
	}
	for _, line := range strings.Split(p.proc.Output(), "\n") {
		if !strings.Contains(line, `"msg":"producer stopped"`) {
			continue
		}
		var c finalCounts
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("final log line %q: %v", line, err)
		}
		if c.Acknowledged+c.Failed != c.Generated {
			t.Fatalf("acknowledged %d + failed %d != generated %d", c.Acknowledged, c.Failed, c.Generated)
		}
		return c
	}
	t.Fatalf("no \"producer stopped\" line in the output:\n%s", p.proc.Output())
	return finalCounts{}
}

// record is one record read back from Kafka.
type record struct {
	partition int32
	offset    int64
	ts        time.Time
	key       string
	ev        event.Event
}

// readAll reads every record of topic, from the beginning up to the
// high-water marks at the time of the call, and decodes each event.
func readAll(t *testing.T, b *kafkatest.Broker, topic string) []record {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Consumer.Fetch.Default = 4 << 20
	c, err := sarama.NewConsumer([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := benchproducer.OpenTopic(b.Addr(), topic)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	var out []record
	for _, p := range parts {
		hw, err := tp.Client().GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if hw == 0 {
			continue
		}
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		timeout := time.After(60 * time.Second)
	loop:
		for {
			select {
			case m := <-pc.Messages():
				r := record{partition: p, offset: m.Offset, ts: m.Timestamp, key: string(m.Key)}
				if err := event.Decode(m.Value, &r.ev); err != nil {
					t.Fatalf("partition %d offset %d: %v: %s", p, m.Offset, err, m.Value)
				}
				out = append(out, r)
				if m.Offset >= hw-1 {
					break loop
				}
			case err := <-pc.Errors():
				t.Fatalf("consume partition %d: %v", p, err)
			case <-timeout:
				t.Fatalf("partition %d: read %d records in 60s, high-water mark %d", p, len(out), hw)
			}
		}
		pc.Close()
	}
	return out
}

// checkExactlyOnce checks what producers wrote to a topic: no event id
// twice, keys equal session ids, each session's events in order with seq 1,
// 2, 3, ... from its start (every session starts in the topic) and
// timestamps never going backwards within a session. It returns the number
// of sessions.
func checkExactlyOnce(t *testing.T, recs []record) int {
	t.Helper()
	ids := make(map[string]struct{}, len(recs))
	lastSeq := map[string]uint64{}
	lastTS := map[string]time.Time{} // per session: several producers interleave in a partition
	for _, r := range recs {
		if _, dup := ids[r.ev.EventID]; dup {
			t.Fatalf("event %s is in the topic twice (partition %d offset %d)", r.ev.EventID, r.partition, r.offset)
		}
		ids[r.ev.EventID] = struct{}{}
		if r.key != r.ev.SessionID {
			t.Fatalf("key %q != session_id %q", r.key, r.ev.SessionID)
		}
		if r.ts.Before(lastTS[r.ev.SessionID]) {
			t.Fatalf("session %s (partition %d offset %d): timestamp %s before its previous event's %s", r.ev.SessionID, r.partition, r.offset, r.ts, lastTS[r.ev.SessionID])
		}
		lastTS[r.ev.SessionID] = r.ts
		if prev := lastSeq[r.ev.SessionID]; r.ev.Seq != prev+1 {
			t.Fatalf("session %s: seq %d after %d (partition %d offset %d): an event is missing or out of order", r.ev.SessionID, r.ev.Seq, prev, r.partition, r.offset)
		}
		lastSeq[r.ev.SessionID] = r.ev.Seq
	}
	return len(lastSeq)
}

// checkPartitionTimes checks that record timestamps never go backwards
// within a partition, which one producer guarantees (events are stamped
// with their due times and each partition is written in order) and the
// rate measurement by timestamp relies on.
func checkPartitionTimes(t *testing.T, recs []record) {
	t.Helper()
	last := map[int32]time.Time{}
	for _, r := range recs {
		if r.ts.Before(last[r.partition]) {
			t.Fatalf("partition %d offset %d: timestamp %s before the previous record's %s", r.partition, r.offset, r.ts, last[r.partition])
		}
		last[r.partition] = r.ts
	}
}
