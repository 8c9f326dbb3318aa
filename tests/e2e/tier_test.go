package e2e

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
	"playpulse.dev/tests/harness"
)

// The aggregation tier (issue 17, docs/tier.md) on the real broker: the
// aggregator and merge roles of the fan-out binary against the
// single-process fan-out on the same records.

// tierEnv is what every process of a tier test shares: sessions that do
// not time out while the test runs, so the figures of "now" do not move
// between two snapshots of the same second.
func tierEnv(raw string) map[string]string {
	return map[string]string{"FANOUT_SESSION_TIMEOUT": "10m", "FANOUT_TOPICS": raw}
}

// startAggregator runs an aggregator-role fan-out on raw into aggTopic, in
// group, and waits until it is in the group with its partitions replayed.
func startAggregator(t *testing.T, raw, aggTopic, group string) *fanout {
	t.Helper()
	return startAggregatorEnv(t, raw, aggTopic, group, nil)
}

// startAggregatorEnv is startAggregator with more settings.
func startAggregatorEnv(t *testing.T, raw, aggTopic, group string, extra map[string]string) *fanout {
	t.Helper()
	f := &fanout{addr: harness.FreeAddr(t)}
	e := tierEnv(raw)
	for k, v := range extra {
		e[k] = v
	}
	for k, v := range map[string]string{
		"KAFKA_BROKERS": broker.Addr(), "FANOUT_ADDR": f.addr, "FANOUT_TOPIC_PATTERN": "", "LOG_LEVEL": "info",
		"FANOUT_ROLE": "aggregator", "FANOUT_AGGREGATES_TOPIC": aggTopic, "FANOUT_GROUP": group,
	} {
		e[k] = v
	}
	f.proc = harness.Start(t, "fanout", e)
	harness.WaitReady(t, f.url("/readyz"), 60*time.Second)
	return f
}

// startMerge runs a merge-role fan-out on aggTopic.
func startMerge(t *testing.T, raw, aggTopic string) *fanout {
	t.Helper()
	e := tierEnv(raw)
	e["FANOUT_ROLE"], e["FANOUT_AGGREGATES_TOPIC"] = "merge", aggTopic
	return startFanout(t, broker.Addr(), raw, e)
}

// simWriter writes a deterministic simulator workload, keyed by session id
// (so a session stays in one partition, as the collector and the producer
// write it), with the events' times as the record timestamps.
type simWriter struct {
	t     *testing.T
	topic string
	s     *sim.Sim
	p     sarama.SyncProducer
	rate  float64
	at    time.Time          // time of the next event
	n     atomic.Int64       // events written; read while the writer runs
	seen  func(*event.Event) // when set, told of every event written
}

func newSimWriter(t *testing.T, topic string, seed uint64, rate float64, from time.Time) *simWriter {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Seed = seed
	// Short views and frequent faults: every kind of event and outcome
	// shows in a minute.
	cfg.MeanWatchTime = time.Minute
	cfg.RebufferRatio, cfg.StartFailureRate, cfg.PlaybackErrorRate = 0.05, 0.1, 0.05
	cfg.HeartbeatInterval = 2 * time.Second
	s, err := sim.New(cfg, "tier", "tier")
	if err != nil {
		t.Fatal(err)
	}
	s.SetRate(rate)
	pc := sarama.NewConfig()
	pc.Version = sarama.V3_9_0_0
	pc.Producer.Return.Successes = true
	pc.Producer.RequiredAcks = sarama.WaitForAll
	pc.Producer.Partitioner = sarama.NewHashPartitioner
	p, err := sarama.NewSyncProducer([]string{broker.Addr()}, pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &simWriter{t: t, topic: topic, s: s, p: p, rate: rate, at: from}
}

// written is the number of events written so far.
func (w *simWriter) written() int { return int(w.n.Load()) }

// writeUntil writes the events due before until; it returns an error
// rather than failing, so that a goroutine can call it.
func (w *simWriter) writeUntil(until time.Time) error {
	step := time.Duration(float64(time.Second) / w.rate)
	var msgs []*sarama.ProducerMessage
	var e event.Event
	for ; w.at.Before(until); w.at = w.at.Add(step) {
		w.s.Next(w.at, &e)
		ts := e.TS.Truncate(time.Millisecond)
		if w.seen != nil {
			w.seen(&e)
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: w.topic, Key: sarama.StringEncoder(e.SessionID), Timestamp: ts, Value: sarama.ByteEncoder(e.AppendJSON(nil))})
		if len(msgs) == 1000 {
			if err := w.p.SendMessages(msgs); err != nil {
				return err
			}
			w.n.Add(int64(len(msgs)))
			msgs = msgs[:0]
		}
	}
	if len(msgs) > 0 {
		if err := w.p.SendMessages(msgs); err != nil {
			return err
		}
		w.n.Add(int64(len(msgs)))
	}
	return nil
}

// waitCounted waits until each fan-out's events_total is n: the
// reference has read every event, a merge-role fan-out counts each once.
func waitCounted(t *testing.T, n int, fs ...*fanout) {
	t.Helper()
	for i, f := range fs {
		harness.Eventually(t, 60*time.Second, fmt.Sprintf("fan-out %d counts the %d events once", i, n), func() error {
			if s := snapshotOf(t, f, false); s.EventsTotal != uint64(n) {
				return fmt.Errorf("events_total %d, want %d", s.EventsTotal, n)
			}
			return nil
		})
	}
}

// sameSecond takes the full snapshots of the reference and of a
// merge-role fan-out of one second (a few tries: the seconds turn).
func sameSecond(ref, merged *fanout) (a, b map[string]any, err error) {
	for range 5 {
		if err := getJSON(ref.url("/api/snapshot?full=1"), &a); err != nil {
			return nil, nil, err
		}
		if err := getJSON(merged.url("/api/snapshot?full=1"), &b); err != nil {
			return nil, nil, err
		}
		if a["second"] == b["second"] {
			return a, b, nil
		}
	}
	return nil, nil, fmt.Errorf("snapshots of seconds %v and %v", a["second"], b["second"])
}

// sameFigures compares the full snapshots of the reference and of a
// merge-role fan-out, taken in the same second (the QoE objects cover the
// last 60 s, so two seconds differ). Counts and sums must be equal; the
// startup percentiles within tolerance (the sketch's relative error).
func sameFigures(ref, merged *fanout, tolerance float64) error {
	a, b, err := sameSecond(ref, merged)
	if err != nil {
		return err
	}
	// Not figures: when and how each process reads Kafka, its own
	// sessions table (the merge role holds none), its alerts.
	for _, k := range []string{"time", "source", "stale", "sessions", "latest_kafka_ts", "alerts"} {
		delete(a, k)
		delete(b, k)
	}
	var diffs []string
	diffJSON("", a, b, tolerance, false, &diffs)
	if len(diffs) > 0 {
		return fmt.Errorf("%d differences, first: %s", len(diffs), strings.Join(diffs[:min(len(diffs), 15)], "; "))
	}
	return nil
}

// diffJSON appends where b differs from a. Under a key naming a
// percentile, numbers may differ by tolerance (relative).
func diffJSON(path string, a, b any, tolerance float64, pct bool, out *[]string) {
	if len(*out) >= 50 {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: %T vs %T", path, a, b))
			return
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			diffJSON(path+"."+k, av[k], bv[k], tolerance, pct || strings.Contains(k, "_p5") || strings.Contains(k, "_p9"), out)
		}
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			*out = append(*out, fmt.Sprintf("%s: %v vs %v", path, a, b))
			return
		}
		for i := range av {
			diffJSON(path+"["+strconv.Itoa(i)+"]", av[i], bv[i], tolerance, pct, out)
		}
	case float64:
		bv, ok := b.(float64)
		if !ok || av != bv && !(pct && math.Abs(av-bv) <= tolerance*math.Max(math.Abs(av), math.Abs(bv))) {
			*out = append(*out, fmt.Sprintf("%s: %v vs %v", path, a, b))
		}
	default:
		if a != b {
			*out = append(*out, fmt.Sprintf("%s: %v vs %v", path, a, b))
		}
	}
}

// percentileTolerance is the relative error allowed on a startup
// percentile merged from sketches (the sketches' stated relative accuracy
// is 1%; twice that covers a percentile that falls between two buckets).
const percentileTolerance = 0.02

// TestTierEqualsSingle: three aggregators and two merge-role fan-outs on a
// simulator workload written a minute to a few seconds in the past show
// the figures of the single-process fan-out on the same records: every
// count and sum, per second and in the QoE objects, equal; percentiles
// within percentileTolerance.
func TestTierEqualsSingle(t *testing.T) {
	raw := newTopic(t, 6)
	aggTopic := fmt.Sprintf("tier-aggregates-%d", topicSeq.Add(1))
	broker.CreateTopic(t, aggTopic, 3)
	w := newSimWriter(t, raw, 17, 400, time.Now().Add(-65*time.Second))
	if err := w.writeUntil(time.Now().Add(-5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events written", w.written())

	ref := startFanout(t, broker.Addr(), raw, tierEnv(raw))
	var aggs []*fanout
	for range 3 {
		aggs = append(aggs, startAggregator(t, raw, aggTopic, "tier-"+raw))
	}
	merges := []*fanout{startMerge(t, raw, aggTopic), startMerge(t, raw, aggTopic)}
	// An aggregator serves the ops endpoints only: no dashboard, no API.
	for _, path := range []string{"/", "/api/snapshot"} {
		resp, err := http.Get(aggs[0].url(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("aggregator GET %s: %s, want 404", path, resp.Status)
		}
	}

	waitCounted(t, w.written(), ref)
	harness.Eventually(t, 60*time.Second, "the aggregators own the 6 partitions", func() error {
		owned, err := partitionsOwned(aggs)
		if err != nil {
			return err
		}
		if owned != 6 {
			return fmt.Errorf("%v partitions owned", owned)
		}
		return nil
	})
	for i, m := range merges {
		waitCounted(t, w.written(), m)
		harness.Eventually(t, 60*time.Second, fmt.Sprintf("merge fan-out %d shows the reference's figures", i), func() error {
			return sameFigures(ref, m, percentileTolerance)
		})
	}
}

// TestTierAggregatorKilled: an aggregator killed (SIGKILL) while events
// are being written: its partitions move to the others, which replay them
// and publish again from the committed offsets; over the whole run every
// second's counts equal the single-process reference's, none missing, none
// counted twice.
func TestTierAggregatorKilled(t *testing.T) {
	raw := newTopic(t, 6)
	aggTopic := fmt.Sprintf("tier-aggregates-%d", topicSeq.Add(1))
	broker.CreateTopic(t, aggTopic, 3)
	group := "tier-" + raw
	// A workload that begins 30 s in the past, then goes on live, each
	// event written a second after its time.
	w := newSimWriter(t, raw, 42, 300, time.Now().Add(-30*time.Second))
	if err := w.writeUntil(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	ref := startFanout(t, broker.Addr(), raw, tierEnv(raw))
	aggs := []*fanout{startAggregator(t, raw, aggTopic, group), startAggregator(t, raw, aggTopic, group), startAggregator(t, raw, aggTopic, group)}
	merged := startMerge(t, raw, aggTopic)

	stopWriting := writeLive(t, w, time.Second)

	// Kill an aggregator once the live writing has gone on for a few
	// seconds and it has partitions and has published (and so committed).
	live := time.Now()
	victim := -1
	harness.Eventually(t, 60*time.Second, "3 s of live writing, an aggregator owns partitions and published", func() error {
		if time.Since(live) < 3*time.Second {
			return fmt.Errorf("%s of live writing", time.Since(live))
		}
		for i, a := range aggs {
			owned, err := metricSum(a.url("/metrics"), "playpulse_fanout_tier_partitions_owned", "")
			if err != nil {
				return err
			}
			sent, err := metricSum(a.url("/metrics"), "playpulse_fanout_tier_partials_total", "")
			if err != nil {
				return err
			}
			if owned > 0 && sent > 0 {
				victim = i
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	if err := aggs[victim].proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	t.Logf("aggregator %d killed with %d events written", victim, w.written())
	rest := slices.Delete(slices.Clone(aggs), victim, victim+1)
	harness.Eventually(t, 90*time.Second, "the other aggregators own the 6 partitions again", func() error {
		owned, err := partitionsOwned(rest)
		if err != nil {
			return err
		}
		if owned != 6 {
			return fmt.Errorf("%v partitions owned", owned)
		}
		for _, a := range rest {
			resp, err := http.Get(a.url("/readyz"))
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("aggregator not ready: %s", resp.Status)
			}
		}
		return nil
	})
	t.Logf("rebalanced %s after the kill", time.Since(killedAt).Round(100*time.Millisecond))
	// Go on writing a few seconds past the rebalance, then stop.
	harness.Eventually(t, 30*time.Second, "5 s written after the rebalance", func() error {
		if time.Since(killedAt) < 5*time.Second {
			return fmt.Errorf("%s since the kill", time.Since(killedAt))
		}
		return nil
	})
	if err := stopWriting(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events written", w.written())
	waitCounted(t, w.written(), ref, merged)
	harness.Eventually(t, 60*time.Second, "the merge fan-out shows the reference's figures, every second", func() error {
		return sameFigures(ref, merged, percentileTolerance)
	})
}
