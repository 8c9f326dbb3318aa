package e2e

import (
	"fmt"
	"maps"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/harness"
)

// TestFanoutTwoReplicasSeeEveryEvent: two fan-outs on one topic each read
// every partition (broadcast, no consumer group) and count every record
// the producer wrote.
func TestFanoutTwoReplicasSeeEveryEvent(t *testing.T) {
	s := startStack(t, stackOpts{rate: "400"})
	b := startFanout(t, broker.Addr(), s.topic, nil)
	a := &fanout{addr: s.fanAddr, proc: s.fanout}
	harness.Eventually(t, 30*time.Second, "producer wrote 800 events", func() error {
		return metricAtLeast("http://"+s.prodAddr+"/metrics", "playpulse_producer_events_total", 800)
	})
	s.producer.Stop(10 * time.Second)

	client, err := sarama.NewClient([]string{broker.Addr()}, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var total int64
	hwm := map[int32]int64{}
	for p := int32(0); p < 3; p++ {
		off, err := client.GetOffset(s.topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		hwm[p] = off
		total += off
	}
	for name, f := range map[string]*fanout{"replica A": a, "replica B": b} {
		harness.Eventually(t, 30*time.Second, name+" counts every record", func() error {
			snap := snapshotOf(t, f, false)
			if int64(snap.EventsTotal) != total {
				return fmt.Errorf("events_total %d, topic holds %d", snap.EventsTotal, total)
			}
			for p, off := range hwm {
				v, err := metricSum(f.url("/metrics"), "playpulse_fanout_partition_offset", fmt.Sprintf(`partition="%d"`, p))
				if err != nil {
					return err
				}
				if int64(v) != off-1 {
					return fmt.Errorf("partition %d at offset %v, last is %d", p, v, off-1)
				}
			}
			return nil
		})
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := admin.ListConsumerGroups()
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 0 {
		t.Fatalf("consumer groups %v: the fan-out must not join one", groups)
	}
}

// TestFanoutWarmStart: records from the last FANOUT_WARMUP are replayed
// before /readyz says ready; older ones are not.
func TestFanoutWarmStart(t *testing.T) {
	topic := newTopic(t, 3)
	p := syncProducer(t, broker.Addr())
	now := time.Now()
	for i := range 20 { // 10 minutes ago: outside the 5-minute warm-up
		ts := now.Add(-10 * time.Minute).Add(time.Duration(i) * time.Second)
		send(t, p, topic, int32(i%3), ts, validEvent(fmt.Sprint("old", i), 1, event.Start, ts))
	}
	const sessions = 60
	for i := range sessions { // between 4 and 1 minutes ago
		ts := now.Add(-4 * time.Minute).Add(time.Duration(i) * 3 * time.Second)
		id := fmt.Sprint("warm", i)
		send(t, p, topic, int32(i%3), ts, validEvent(id, 1, event.Start, ts))
		send(t, p, topic, int32(i%3), ts.Add(time.Second), validEvent(id, 2, event.Play, ts.Add(time.Second)))
	}
	f := startFanout(t, broker.Addr(), topic, map[string]string{"FANOUT_WARMUP": "5m"})
	snap := snapshotOf(t, f, true) // right at readiness
	if snap.EventsTotal != 2*sessions {
		t.Fatalf("ready with %d events, want the %d of the warm-up window", snap.EventsTotal, 2*sessions)
	}
	attempts := 0.0
	for _, v := range snap.Series.Overall.Attempts {
		attempts += v
	}
	if !snap.Full || snap.Series.Length != 900 || attempts != sessions {
		t.Fatalf("full series: full=%v length %d, %v attempts; want 900 points holding %d", snap.Full, snap.Series.Length, attempts, sessions)
	}
	if snap.Source.State != "live" {
		t.Fatalf("source %+v after catch-up", snap.Source)
	}
	var streams struct {
		Streams []struct {
			Name        string `json:"name"`
			EventsTotal uint64 `json:"events_total"`
		} `json:"streams"`
	}
	if err := getJSON(f.url("/api/streams"), &streams); err != nil {
		t.Fatal(err)
	}
	if len(streams.Streams) != 1 || streams.Streams[0].Name != "e2e" || streams.Streams[0].EventsTotal != 2*sessions {
		t.Fatalf("/api/streams %+v", streams)
	}
}

// TestFanoutBadRecordsCountedAndSkipped writes bad records of every kind
// with kcat between valid ones: each is counted under its reason, none
// reaches a browser, the valid ones all do, and the process keeps going.
func TestFanoutBadRecordsCountedAndSkipped(t *testing.T) {
	topic := newTopic(t, 1)
	f := startFanout(t, broker.Addr(), topic, nil)
	c := dial(t, f.addr, nil)
	now := time.Now()
	valid := string(validEvent("k1", 1, event.Start, now))
	bad := map[string]string{
		"not_json":            `this is not json`,
		"wrong_type":          strings.Replace(valid, `"seq":1`, `"seq":"1"`, 1),
		"unknown_type":        strings.Replace(valid, `"event_type":"start"`, `"event_type":"rewind"`, 1),
		"missing_field":       strings.Replace(valid, `"user_id":"u1",`, ``, 1),
		"invalid_value":       strings.Replace(valid, `"seq":1`, `"seq":0`, 1),
		"unsupported_version": strings.Replace(valid, `"v":1`, `"v":2`, 1),
		"too_large":           strings.Replace(valid, `"v":1`, `"v":1,"pad":"`+strings.Repeat("x", 70<<10)+`"`, 1),
	}
	var values []string
	for _, v := range bad {
		values = append(values, v, valid)
	}
	values = append(values, string(validEvent("k2", 1, event.Start, now)))
	kcatProduce(t, topic, values...)
	wantValid := len(bad) + 1

	got := 0
	deadline := time.Now().Add(20 * time.Second)
	for got < wantValid && time.Now().Before(deadline) {
		m := read(t, c, 10*time.Second)
		if m.Type != "tail" {
			continue
		}
		for _, it := range m.Events {
			var e event.Event
			if err := event.Decode(it.Event, &e); err != nil {
				t.Fatalf("a bad record reached the browser: %s", it.Event)
			}
			got++
		}
	}
	if got != wantValid {
		t.Fatalf("browser got %d valid events, want %d", got, wantValid)
	}
	for reason := range bad {
		harness.Eventually(t, 10*time.Second, "bad records of "+reason+" counted", func() error {
			v, err := metricSum(f.url("/metrics"), "playpulse_fanout_bad_records_total", `reason="`+reason+`"`)
			if err != nil {
				return err
			}
			if v != 1 {
				return fmt.Errorf("%v", v)
			}
			return nil
		})
	}
	// Snapshots are periodic (FANOUT_SNAPSHOT_HZ): the figures follow the
	// tail within one interval.
	harness.Eventually(t, 5*time.Second, "events_total counts the valid events only", func() error {
		if snap := snapshotOf(t, f, false); snap.EventsTotal != uint64(wantValid) {
			return fmt.Errorf("events_total %d, want %d", snap.EventsTotal, wantValid)
		}
		return nil
	})
	if f.proc.Exited() {
		t.Fatal("the fan-out exited")
	}
	_ = f.proc.Signal(syscall.SIGTERM)
	if code, err := f.proc.Wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d %v after bad records", code, err)
	}
}

// TestFanoutDiscoversTopicsAndPartitions: a topic created after start that
// matches FANOUT_TOPIC_PATTERN, and partitions added to a served topic, are
// consumed within 10 s without a restart.
func TestFanoutDiscoversTopicsAndPartitions(t *testing.T) {
	prefix := fmt.Sprintf("disc%d-", time.Now().UnixNano())
	first := prefix + "a"
	broker.CreateTopic(t, first, 1)
	f := startFanout(t, broker.Addr(), "", map[string]string{
		"FANOUT_TOPICS": "", "FANOUT_TOPIC_PATTERN": prefix + ".*", "FANOUT_DISCOVERY_INTERVAL": "2s",
	})
	second := prefix + "b"
	broker.CreateTopic(t, second, 1)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	admin, err := sarama.NewClusterAdmin([]string{broker.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreatePartitions(first, 2, nil, false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pcfg := sarama.NewConfig()
	pcfg.Version = sarama.V3_9_0_0
	pcfg.Producer.Return.Successes = true
	pcfg.Producer.Partitioner = sarama.NewManualPartitioner
	client, err := sarama.NewClient([]string{broker.Addr()}, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	p, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	harness.Eventually(t, 20*time.Second, "new partition's metadata", func() error {
		if err := client.RefreshMetadata(first); err != nil {
			return err
		}
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: first, Partition: 1, Value: sarama.ByteEncoder(validEvent("d1", 1, event.Start, time.Now()))})
		return err
	})
	send(t, p, second, 0, time.Now(), validEvent("d2", 1, event.Start, time.Now()))
	harness.Eventually(t, 10*time.Second, "events of the new topic and partition", func() error {
		if n := snapshotOf(t, f, false).EventsTotal; n != 2 {
			return fmt.Errorf("events_total %d", n)
		}
		return nil
	})
	t.Logf("new topic and partition consumed %s after their creation", time.Since(start).Round(100*time.Millisecond))
}

// TestFanoutNewTopicWithoutWarmup: with FANOUT_WARMUP=0 a fan-out starts
// at the end of the partitions it has at start, but a topic created later
// is read from before the discovery pass that found it: the events written
// between its creation and that pass are not skipped.
func TestFanoutNewTopicWithoutWarmup(t *testing.T) {
	prefix := fmt.Sprintf("nowarm%d-", time.Now().UnixNano())
	old := prefix + "old"
	broker.CreateTopic(t, old, 1)
	p := syncProducer(t, broker.Addr())
	send(t, p, old, 0, time.Now(), validEvent("w0", 1, event.Start, time.Now())) // before start: not served
	f := startFanout(t, broker.Addr(), "", map[string]string{
		"FANOUT_TOPICS": "", "FANOUT_TOPIC_PATTERN": prefix + ".*", "FANOUT_DISCOVERY_INTERVAL": "2s", "FANOUT_WARMUP": "0",
	})
	fresh := prefix + "new"
	broker.CreateTopic(t, fresh, 1)
	harness.Eventually(t, 20*time.Second, "first event on the new topic", func() error {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: fresh, Partition: 0, Value: sarama.ByteEncoder(validEvent("w1", 1, event.Start, time.Now()))})
		return err
	})
	harness.Eventually(t, 10*time.Second, "the new topic's first event", func() error {
		if n := snapshotOf(t, f, false).EventsTotal; n != 1 {
			return fmt.Errorf("events_total %d, want 1 (the new topic's event, not the one written before start)", n)
		}
		return nil
	})
}

// TestFanoutDiscoversStreamTopicsByDefault: a fan-out started with no topic
// configuration at all serves the topic the controller gives a
// PlaybackStream by default, playback-<stream>, including one created while
// it runs, so a new stream reaches the dashboard without configuration.
func TestFanoutDiscoversStreamTopicsByDefault(t *testing.T) {
	nano := time.Now().UnixNano()
	// Stream names as the controller gets them (Kubernetes names), and
	// their topics as it names them by default.
	early, late := fmt.Sprintf("early-%d", nano), fmt.Sprintf("foo-%d", nano)
	earlyTopic, lateTopic := "playback-"+early, "playback-"+late
	broker.CreateTopic(t, earlyTopic, 1) // served from the start
	f := &fanout{addr: harness.FreeAddr(t)}
	// No FANOUT_TOPICS, FANOUT_TOPIC_PATTERN or FANOUT_DISCOVERY_INTERVAL: the defaults are
	// under test. Other tests' playback-* topics are served too, with
	// their last 5 minutes (the warm-up): more streams than the default
	// FANOUT_MAX_STREAMS (20) when the tests before ran fast, which would
	// count these two overall only, so the cap is raised.
	f.proc = harness.Start(t, "fanout", map[string]string{
		"KAFKA_BROKERS": broker.Addr(), "FANOUT_ADDR": f.addr, "LOG_LEVEL": "warn", "FANOUT_MAX_STREAMS": "1000",
	})
	harness.WaitReady(t, f.url("/readyz"), 60*time.Second)
	broker.CreateTopic(t, lateTopic, 2)
	created := time.Now()
	p := syncProducer(t, broker.Addr())
	for i, c := range []struct {
		topic, stream string
		partition     int32
	}{{earlyTopic, early, 0}, {lateTopic, late, 0}, {lateTopic, late, 1}} {
		now := time.Now()
		e := event.Event{V: 1, EventID: fmt.Sprint("dflt", i, "-1"), SessionID: fmt.Sprint("dflt", i), Seq: 1, Stream: c.stream, UserID: "u1",
			MovieID: "m0001", Type: event.Start, Device: "tv", TS: now}
		send(t, p, c.topic, c.partition, now, e.AppendJSON(nil))
	}
	want := map[string]uint64{early: 1, late: 2}
	harness.Eventually(t, 15*time.Second, "events of both stream topics", func() error {
		var got struct {
			Streams []struct {
				Name        string `json:"name"`
				EventsTotal uint64 `json:"events_total"`
			} `json:"streams"`
		}
		if err := getJSON(f.url("/api/streams"), &got); err != nil {
			return err
		}
		seen := map[string]uint64{}
		for _, s := range got.Streams {
			if _, ok := want[s.Name]; ok {
				seen[s.Name] = s.EventsTotal
			}
		}
		if !maps.Equal(seen, want) {
			return fmt.Errorf("events by stream %v, want %v", seen, want)
		}
		return nil
	})
	t.Logf("topic %s served %s after its creation, with the default configuration", lateTopic, time.Since(created).Round(100*time.Millisecond))
}
