package faults

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"playpulse.dev/tests/harness"
)

// TestLeaderKilledUnderLoad is Kafka's promise, end to end: an idempotent
// acks=all producer loses and duplicates nothing while a minority of
// brokers fails. The producer sends 20,000 events/s through proxies that
// first add latency, then cut every connection, and then the leader of a
// partition is SIGKILLed. Afterwards:
//   - acknowledged + failed = generated, and nothing failed;
//   - kcat reads every acknowledged event exactly once (by event_id);
//   - the fan-out, reading through proxies of its own, has counted exactly
//     the records, and its per-second series add up, type by type, to what
//     kcat read.
func TestLeaderKilledUnderLoad(t *testing.T) {
	const topic, rate = "leader-killed", 20000
	began := time.Now()
	phase := func(format string, args ...any) {
		t.Logf("%6.1fs %s", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	cluster.CreateTopic(t, topic, 3)
	prod := links[linkProducer]
	t.Cleanup(prod.heal)
	// Fast binaries: the race detector would slow the producer below the
	// rate; correctness is what this test checks, with exact counts.
	f := startFanout(t, harness.FastBin(t), plain(links[linkFanout].bootstrap()), topic, nil)
	p := startProducer(t, harness.FastBin(t), plain(prod.bootstrap()), topic, rate, nil)
	p.waitReady(t, 60*time.Second)
	f.waitReady(t, 60*time.Second)
	acked := func() float64 { return p.metrics(t).Sum("playpulse_producer_events_total") }
	waitMore := func(what string, n float64, d time.Duration) {
		t.Helper()
		from := acked()
		harness.Eventually(t, d, what, func() error {
			if got := acked() - from; got < n {
				return fmt.Errorf("%.0f more acknowledged", got)
			}
			return nil
		})
	}
	waitMore("the producer at full speed", rate, 30*time.Second)
	loaded, atLoaded := time.Now(), p.metrics(t).Sum("playpulse_producer_events_generated_total")
	phase("producing %d events/s", rate)

	prod.latency(t, 20, 10)
	waitMore("events acknowledged with 20±10 ms latency", rate, 30*time.Second)
	prod.heal()
	phase("latency added and removed")
	prod.cut(t)
	waitMore("events acknowledged after every connection was cut", rate, 30*time.Second)
	phase("every producer connection cut; flowing again")

	victim := cluster.Leader(t, topic, 0)
	killed := time.Now()
	cluster.Node(victim).Kill(t)
	phase("node %d (leader of partition 0) SIGKILLed", victim)
	harness.Eventually(t, 60*time.Second, "new leaders for the killed node's partitions", func() error {
		ps, err := cluster.Partitions(topic)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.Leader == victim || p.Leader < 0 {
				return fmt.Errorf("partition %d led by %d", p.ID, p.Leader)
			}
		}
		return nil
	})
	phase("leaders moved %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	waitMore("events acknowledged by the new leaders", 2*rate, 60*time.Second)
	phase("flowing again")
	if f.Exited() || p.Exited() {
		t.Fatal("a service exited")
	}
	generated := p.metrics(t).Sum("playpulse_producer_events_generated_total")
	c := stopProducer(t, p)
	phase("producer stopped: generated %d, acknowledged %d, failed %d (%.0f events/s achieved since full speed; the rate is make bench's to hold)",
		c.Generated, c.Acknowledged, c.Failed, (generated-atLoaded)/time.Since(loaded).Seconds())
	if c.Failed != 0 {
		t.Errorf("%d events failed; a minority of brokers failing must fail none", c.Failed)
	}

	recs := readEvents(t, topic)
	checkExactlyOnce(t, recs, c.Acknowledged)
	phase("kcat: %d records, every acknowledged event once", len(recs))
	waitFanoutCount(t, f, c.Acknowledged)
	byType := map[string]float64{}
	for _, r := range recs {
		byType[r.Type]++
	}
	harness.Eventually(t, 30*time.Second, "the fan-out's series matching the records type by type", func() error {
		got, err := seriesByType(f)
		if err != nil {
			return err
		}
		if !maps.Equal(got, byType) {
			return fmt.Errorf("the fan-out's series add up to %v; kcat read %v", got, byType)
		}
		return nil
	})
	phase("the fan-out's figures match the records: %v", byType)

	cluster.Node(victim).Restart(t)
	cluster.WaitBrokers(t)
	cluster.WaitInSync(t, topic, 90*time.Second)
	phase("node %d back and in sync", victim)
}

// seriesByType adds up the fan-out's per-second series of events by type
// (GET /api/snapshot?full=1) over its whole window, dropping zero totals.
func seriesByType(f *service) (map[string]float64, error) {
	resp, err := http.Get(f.url("/api/snapshot?full=1"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s struct {
		Series struct {
			Overall struct {
				EventsByType map[string][]float64 `json:"events_by_type"`
			} `json:"overall"`
		} `json:"series"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for typ, xs := range s.Series.Overall.EventsByType {
		var sum float64
		for _, x := range xs {
			sum += x
		}
		if sum != 0 {
			out[typ] = sum
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no series in the snapshot (types %v)", slices.Sorted(maps.Keys(s.Series.Overall.EventsByType)))
	}
	return out, nil
}
