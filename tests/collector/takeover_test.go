package collector

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kcat"
)

// script is one viewing session's reports, in order, and the events (by
// seq = sn×16 + index + 1) the mapping gives for them.
var script = []string{
	"e=ps,sta=s", "e=bc,br=3000", "e=ps,sta=p", "e=t", "e=ps,sta=r", "e=ps,sta=p", "e=t", "e=ps,sta=q",
}

var wantSeqs = map[uint64]event.Type{
	1: event.Start, 2*16 + 1: event.Play, 3*16 + 1: event.Heartbeat, 4*16 + 1: event.BufferStart,
	5*16 + 1: event.BufferEnd, 6*16 + 1: event.Heartbeat, 7*16 + 1: event.Stop,
}

// TestTakeover: two collectors share the sessions (one consumer group over
// the intake topic); one is killed (SIGKILL) mid-run. Its partitions move
// to the other, which rebuilds them from the committed offsets and goes on.
// Over the run every session's events are in the events topic exactly once
// (read committed, as the fan-out reads), none missing, none doubled, and
// the fan-out's figures are exact.
func TestTakeover(t *testing.T) {
	intake, events, group := topics(t, broker, 4, 2)
	f := startFanout(t, events)
	env := map[string]string{"COLLECTOR_INACTIVITY_TIMEOUT": "20s", "COLLECTOR_RATE_LIMIT": "0"}
	a := startCollector(t, broker, intake, events, group, env)
	b := startCollector(t, broker, intake, events, group, env)
	harness.Eventually(t, 60*time.Second, "both collectors own partitions", func() error {
		pa := metric(t, a.url("/metrics"), "playpulse_collector_sessionizer_partitions")
		pb := metric(t, b.url("/metrics"), "playpulse_collector_sessionizer_partitions")
		if pa == 0 || pb == 0 || pa+pb != 4 {
			return fmt.Errorf("partitions: %v and %v", pa, pb)
		}
		return nil
	})

	const sessions = 40
	var wg sync.WaitGroup
	killed := make(chan struct{})
	var once sync.Once
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 150 * time.Millisecond) // staggered starts
			sid := fmt.Sprintf("takeover-%02d", i)
			for sn, keys := range script {
				line := fmt.Sprintf(`cid="m%d",%s,sid="%s",sn=%d,ts=%d,v=2`, i%3, keys, sid, sn, time.Now().UnixMilli())
				code, _, body := post(t, b.url("/v1/cmcd/takeover"), "application/cmcd", line, nil)
				if code != http.StatusNoContent {
					t.Errorf("%s sn %d: %d %s", sid, sn, code, body)
					return
				}
				if i == sessions/3 && sn == 3 {
					once.Do(func() {
						// Mid-run: sessions in every phase on the
						// killed collector's partitions.
						if err := a.proc.Signal(syscall.SIGKILL); err != nil {
							t.Error(err)
						}
						close(killed)
					})
				}
				time.Sleep(250 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	<-killed

	harness.Eventually(t, 90*time.Second, "every session's stop in the events topic", func() error {
		stops := 0
		for _, r := range kcat.Read(t, broker.Addr(), events) {
			if strings.Contains(r.Payload, `"event_type":"stop"`) {
				stops++
			}
		}
		if stops < sessions {
			return fmt.Errorf("%d stops", stops)
		}
		return nil
	})
	if v := metric(t, b.url("/metrics"), "playpulse_collector_sessionizer_partitions"); v != 4 {
		t.Fatalf("the surviving collector owns %v partitions, want 4", v)
	}
	if v := metric(t, b.url("/metrics"), "playpulse_collector_sessionizer_rebuilds_total"); v < 2 {
		t.Fatalf("%v rebuilds on the surviving collector: the killed one's partitions did not move", v)
	}
	seen := map[string]map[uint64]int{}
	for _, r := range kcat.Read(t, broker.Addr(), events) {
		var e event.Event
		if err := event.Decode([]byte(r.Payload), &e); err != nil {
			t.Fatal(err)
		}
		if seen[e.SessionID] == nil {
			seen[e.SessionID] = map[uint64]int{}
		}
		seen[e.SessionID][e.Seq]++
		if want, ok := wantSeqs[e.Seq]; !ok || want != e.Type {
			t.Errorf("%s: unexpected %s with seq %d", e.SessionID, e.Type, e.Seq)
		}
	}
	if len(seen) != sessions {
		t.Errorf("%d sessions in the events topic, want %d", len(seen), sessions)
	}
	for sid, seqs := range seen {
		var bad []string
		for s := range wantSeqs {
			if seqs[s] != 1 {
				bad = append(bad, fmt.Sprintf("seq %d (%s) %d times", s, wantSeqs[s], seqs[s]))
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			t.Errorf("%s: %s", sid, strings.Join(bad, ", "))
		}
	}
	harness.Eventually(t, 20*time.Second, "exact figures on the fan-out", func() error {
		o, err := overallOf(f)
		if err != nil {
			return err
		}
		if o.Attempts != sessions || o.Plays != sessions || o.Stalls != sessions || o.ViewsEnded != sessions {
			return fmt.Errorf("overall %+v, want %d of each", o, sessions)
		}
		return nil
	})
}
