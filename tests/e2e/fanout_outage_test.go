package e2e

import (
	"fmt"
	"testing"
	"time"

	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

// TestFanoutSurvivesBrokerRestart: while the broker is down the fan-out
// keeps serving the last state and tells browsers the source is stale; when
// the broker is back it resumes where it was, without a hole.
func TestFanoutSurvivesBrokerRestart(t *testing.T) {
	b := kafkatest.Start(t) // its own broker: stopping the shared one would disturb other tests
	b.CreateTopic(t, "outage", 2)
	f := startFanout(t, b.Addr(), "outage", map[string]string{"FANOUT_STALE_AFTER": "2s"})
	prodAddr := harness.FreeAddr(t)
	harness.Start(t, "producer", map[string]string{
		"KAFKA_BROKERS": b.Addr(), "PRODUCER_TOPIC": "outage", "PRODUCER_RATE": "100", "PRODUCER_ADDR": prodAddr,
		"PRODUCER_STREAM": "e2e", "LOG_LEVEL": "warn",
	})
	c := dial(t, f.addr, nil)
	last := map[int32]int64{}
	check := func(m wsMessage) {
		t.Helper()
		for _, it := range m.Events {
			if prev, ok := last[it.Partition]; ok && it.Offset != prev+1 {
				t.Fatalf("partition %d: offset %d after %d: a silent hole", it.Partition, it.Offset, prev)
			}
			last[it.Partition] = it.Offset
		}
	}
	// readUntil reads the WebSocket until cond holds for the latest snapshot.
	readUntil := func(what string, d time.Duration, cond func(s fanSnapshot) bool) fanSnapshot {
		t.Helper()
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			m := read(t, c, 10*time.Second)
			switch m.Type {
			case "tail":
				check(m)
			case "snapshot":
				var s fanSnapshot
				if err := jsonUnmarshal(m.Raw, &s); err != nil {
					t.Fatal(err)
				}
				if cond(s) {
					return s
				}
			}
		}
		t.Fatalf("%s: not within %s", what, d)
		return fanSnapshot{}
	}
	before := readUntil("events flowing", 30*time.Second, func(s fanSnapshot) bool { return s.EventsTotal > 200 && !s.Stale })

	b.Stop(t)
	stale := readUntil("snapshot says stale", 20*time.Second, func(s fanSnapshot) bool { return s.Stale })
	if stale.Source.State != "stale" || stale.Source.Message == "" || stale.EventsTotal < before.EventsTotal {
		t.Fatalf("stale snapshot %+v", stale.Source)
	}
	// The last state is still served, over HTTP too.
	if s := snapshotOf(t, f, false); !s.Stale || s.Overall.ConcurrentViewers == 0 {
		t.Fatalf("during the outage: stale=%v, %d viewers (the last state must be kept)", s.Stale, s.Overall.ConcurrentViewers)
	}

	b.Restart(t)
	back := readUntil("live again with new events", 60*time.Second, func(s fanSnapshot) bool {
		return !s.Stale && s.EventsTotal > stale.EventsTotal+100
	})
	if f.proc.Exited() {
		t.Fatal("the fan-out exited")
	}
	t.Logf("events: %d before, %d at the outage, %d after; positions %v", before.EventsTotal, stale.EventsTotal, back.EventsTotal, fmt.Sprint(last))
}
