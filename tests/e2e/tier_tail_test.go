package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/harness"
)

// TestTierTail: in merge mode the live tail is what the aggregators
// forward. Without a filter a browser sees each stream's sample, about
// FANOUT_TAIL_SAMPLE_RATE events a second whatever the raw rate; a browser
// that filters on one user sees every event of that user once the filter
// has reached the aggregators (announced on the filters topic).
func TestTierTail(t *testing.T) {
	const rawRate, sampleRate = 600, 20
	raw := newTopic(t, 3)
	n := topicSeq.Add(1)
	aggTopic, tailTopic, filtersTopic := fmt.Sprintf("tier-aggregates-%d", n), fmt.Sprintf("tier-tail-%d", n), fmt.Sprintf("tier-filters-%d", n)
	for _, tp := range []string{aggTopic, tailTopic, filtersTopic} {
		broker.CreateTopic(t, tp, 3)
	}
	tailEnv := func(e map[string]string) map[string]string {
		e["FANOUT_TAIL_TOPIC"], e["FANOUT_FILTERS_TOPIC"], e["FANOUT_TAIL_SAMPLE_RATE"] = tailTopic, filtersTopic, fmt.Sprint(sampleRate)
		return e
	}
	aggs := []*fanout{
		startAggregatorEnv(t, raw, aggTopic, "tier-"+raw, tailEnv(map[string]string{})),
		startAggregatorEnv(t, raw, aggTopic, "tier-"+raw, tailEnv(map[string]string{})),
	}
	e := tierEnv(raw)
	e["FANOUT_ROLE"], e["FANOUT_AGGREGATES_TOPIC"] = "merge", aggTopic
	merged := startFanout(t, broker.Addr(), raw, tailEnv(e))

	// The raw events, written live; each user's, by time.
	var mu sync.Mutex
	byUser := map[string][]string{} // user → "session/seq@unix ms"
	w := newSimWriter(t, raw, 5, rawRate, time.Now())
	w.seen = func(e *event.Event) {
		mu.Lock()
		byUser[e.UserID] = append(byUser[e.UserID], fmt.Sprintf("%s/%d@%d", e.SessionID, e.Seq, e.TS.UnixMilli()))
		mu.Unlock()
	}
	stopWriting := writeLive(t, w, 0)

	// The sample: about sampleRate events a second, not the raw rate.
	c := dial(t, merged.addr, nil)
	if m := read(t, c, 10*time.Second); m.Type != "hello" {
		t.Fatalf("first message %q", m.Type)
	}
	all := readTail(t, c)
	start := time.Now()
	harness.Eventually(t, 60*time.Second, "sampled events in the tail", func() error {
		if got := all.since(t, start); len(got) == 0 {
			return fmt.Errorf("no events")
		}
		return nil
	})
	from := time.Now()
	harness.Eventually(t, 10*time.Second, "5 s of the sample", func() error {
		if d := time.Since(from); d < 5*time.Second {
			return fmt.Errorf("%s", d)
		}
		return nil
	})
	got := all.since(t, from)
	rate := float64(len(got)) / time.Since(from).Seconds()
	t.Logf("unfiltered tail: %.1f events/s of a raw %d", rate, rawRate)
	if rate < sampleRate/2 || rate > sampleRate*2 {
		t.Errorf("unfiltered tail: %.0f events/s, want about the sample's %d (raw %d)", rate, sampleRate, rawRate)
	}

	// Filters on single users: every one of their events, once announced.
	// The five users with the most events in the last two seconds are
	// likely to be watching still; each gets a browser of its own.
	users := busiestUsers(&mu, byUser, 2*time.Second, 5)
	readers := map[string]*tailReader{}
	for _, u := range users {
		f := dial(t, merged.addr, nil)
		if m := read(t, f, 10*time.Second); m.Type != "hello" {
			t.Fatalf("first message %q", m.Type)
		}
		if err := f.WriteJSON(map[string]any{"type": "filter", "filter": map[string]any{"user_id": u}}); err != nil {
			t.Fatal(err)
		}
		readers[u] = readTail(t, f)
	}
	harness.Eventually(t, 30*time.Second, "the aggregators know the filters", func() error {
		for _, a := range aggs {
			v, err := metricSum(a.url("/metrics"), "playpulse_fanout_tier_tail_filters", "")
			if err != nil {
				return err
			}
			if v != float64(len(users)) {
				return fmt.Errorf("%v filters announced, want %d", v, len(users))
			}
		}
		return nil
	})
	from = time.Now().Add(time.Second)
	to := from.Add(4 * time.Second)
	// Events of the window arrive within seconds of being written.
	harness.Eventually(t, 20*time.Second, "the window written and delivered", func() error {
		if d := time.Until(to.Add(3 * time.Second)); d > 0 {
			return fmt.Errorf("%s to go", d)
		}
		return nil
	})
	compared := 0
	for _, u := range users {
		seen := map[string]bool{}
		for _, e := range readers[u].since(t, time.Time{}) {
			if e.UserID != u {
				t.Fatalf("filtered on user %s, got an event of %s", u, e.UserID)
			}
			seen[fmt.Sprintf("%s/%d@%d", e.SessionID, e.Seq, e.TS.UnixMilli())] = true
		}
		mu.Lock()
		var want []string
		for _, k := range byUser[u] {
			if ms := writtenAt(k); ms >= from.UnixMilli() && ms < to.UnixMilli() {
				want = append(want, k)
			}
		}
		mu.Unlock()
		t.Logf("user %s: %d events in the 4 s compared, %d filtered events received", u, len(want), len(seen))
		compared += len(want)
		for _, k := range want {
			if !seen[k] {
				t.Errorf("event %s of user %s not in the filtered tail", k, u)
			}
		}
	}
	if compared < 3 {
		t.Fatalf("the %d users wrote %d events in the 4 s compared: too few to tell", len(users), compared)
	}
	if err := stopWriting(); err != nil {
		t.Fatal(err)
	}
}

// tailReader reads a WebSocket client's tail frames in the background:
// gorilla's connection cannot be read again after a read deadline, so
// windows are cut by arrival time instead.
type tailReader struct {
	mu   sync.Mutex
	got  []arrived
	err  error
	done chan struct{}
}

type arrived struct {
	at time.Time
	e  event.Event
}

func readTail(t *testing.T, c *websocket.Conn) *tailReader {
	r := &tailReader{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return // closed at cleanup
			}
			var m wsMessage
			if err := json.Unmarshal(b, &m); err != nil {
				r.fail(fmt.Errorf("server sent non-JSON %q: %v", b, err))
				return
			}
			now := time.Now()
			for _, it := range m.Events {
				var e event.Event
				if err := json.Unmarshal(it.Event, &e); err != nil {
					r.fail(err)
					return
				}
				r.mu.Lock()
				r.got = append(r.got, arrived{now, e})
				r.mu.Unlock()
			}
		}
	}()
	return r
}

func (r *tailReader) fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// since returns the events that arrived at or after from.
func (r *tailReader) since(t *testing.T, from time.Time) []event.Event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		t.Fatal(r.err)
	}
	var out []event.Event
	for _, a := range r.got {
		if !a.at.Before(from) {
			out = append(out, a.e)
		}
	}
	return out
}

// writtenAt is the time (Unix ms) of an event recorded as
// "session/seq@ms".
func writtenAt(k string) int64 {
	ms, _ := strconv.ParseInt(k[strings.LastIndexByte(k, '@')+1:], 10, 64)
	return ms
}

// busiestUsers are the n users with the most events written in the last d.
func busiestUsers(mu *sync.Mutex, byUser map[string][]string, d time.Duration, n int) []string {
	mu.Lock()
	defer mu.Unlock()
	cut := time.Now().Add(-d).UnixMilli()
	recent := map[string]int{}
	var users []string
	for u, ks := range byUser {
		for _, k := range ks {
			if writtenAt(k) >= cut {
				recent[u]++
			}
		}
		if recent[u] > 0 {
			users = append(users, u)
		}
	}
	slices.SortFunc(users, func(a, b string) int { return cmp.Or(recent[b]-recent[a], strings.Compare(a, b)) })
	return users[:min(n, len(users))]
}
