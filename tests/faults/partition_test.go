package faults

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"playpulse.dev/tests/browsertest"
	"playpulse.dev/tests/harness"
)

// partitionFor is how long the fan-out is cut off from the brokers.
const partitionFor = 10 * time.Second

// TestFanoutPartitioned cuts the fan-out off from every broker for 10 s
// (its proxies black-hole all traffic both ways, connections stay open)
// while the producer goes on writing. Browsers, a WebSocket client and the
// dashboard in headless Chromium, stay connected to the fan-out and:
//   - are told the data is stale within 5 s of the cut;
//   - keep the last figures meanwhile;
//   - are told it is live again within 5 s of the heal;
//   - get the tail resumed without a silent hole: every partition's
//     offsets follow each other (or a gap is marked).
func TestFanoutPartitioned(t *testing.T) {
	const topic = "partitioned"
	cluster.CreateTopic(t, topic, 3)
	fan := links[linkFanout]
	t.Cleanup(fan.heal)
	p := startProducer(t, harness.Bin(t), plain(cluster.Bootstrap("PLAINTEXT")), topic, 500, nil)
	// The default FANOUT_STALE_AFTER (3 s): the fan-out notices within 3 to
	// 4 s (its probe runs every second) and the page redraws its freshness
	// every second, so browsers hear of an outage within 5 s.
	f := startFanout(t, harness.Bin(t), plain(fan.bootstrap()), topic, nil)
	p.waitReady(t, 60*time.Second)
	f.waitReady(t, 60*time.Second)

	ws := watch(t, f.addr)
	b := browsertest.New(t)
	b.Open(f.url("/"))
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	b.Wait(30*time.Second, `Number(document.getElementById("kpi-ccv").dataset.value) > 0 && document.getElementById("freshness").dataset.state === "live"`)
	ws.waitState(t, "live", 30*time.Second)
	b.Wait(5*time.Second, `(() => { window.__fresh = [[performance.now(), document.getElementById("freshness").dataset.state]];
		new MutationObserver(() => window.__fresh.push([performance.now(), document.getElementById("freshness").dataset.state]))
			.observe(document.getElementById("freshness"), {attributes: true, attributeFilter: ["data-state"]}); return true; })()`)

	cut := time.Now()
	fan.blackHole(t)
	b.Wait(5*time.Second, `document.getElementById("freshness").dataset.state === "stale" && !document.getElementById("stale").hidden`)
	staleAfter := time.Since(cut)
	ws.waitState(t, "stale", time.Until(cut.Add(5*time.Second)))
	// The last state stays: the page still shows viewers, the socket is up.
	b.Wait(time.Second, `Number(document.getElementById("kpi-ccv").dataset.value) > 0 && document.getElementById("status").dataset.state === "live"`)
	if s := ws.last(); s.Overall.ConcurrentViewers == 0 {
		t.Errorf("the stale snapshot lost the figures: %+v", s)
	}
	time.Sleep(time.Until(cut.Add(partitionFor))) // the fault itself: the partition lasts 10 s

	healed := time.Now()
	fan.heal()
	b.Wait(5*time.Second, `document.getElementById("freshness").dataset.state === "live" && document.getElementById("stale").hidden`)
	liveAfter := time.Since(healed)
	ws.waitState(t, "live", time.Until(healed.Add(5*time.Second)))
	// The tail goes on where it stopped: events written during the
	// partition arrive.
	before := ws.tailEvents()
	harness.Eventually(t, 30*time.Second, "the tail resumed", func() error {
		if n := ws.tailEvents() - before; n < 1000 {
			return fmt.Errorf("%d events since the heal", n)
		}
		return nil
	})
	if err := ws.holes(); err != nil {
		t.Fatal(err)
	}
	b.AssertClean()
	t.Logf("stale %v after the cut, live %v after the heal; page states %v; the tail: %d events, %d accounted for as skipped or lost", staleAfter.Round(10*time.Millisecond), liveAfter.Round(10*time.Millisecond),
		browsertest.Eval[[][]any](b, `window.__fresh`), ws.tailEvents(), ws.accountedFor())
	if f.Exited() || p.Exited() {
		t.Fatal("a service exited")
	}
}

// watcher is a WebSocket client of the fan-out that records the source
// state of every snapshot and checks the tail's offsets.
type watcher struct {
	conn *websocket.Conn
	mu   sync.Mutex
	snap wsSnapshot
	tail int
	next map[int32]int64 // per partition: the offset expected next
	// accounted is the events the server said it did not send (skipped
	// by the rate cap, lost).
	accounted int64
	hole      error
	err       error
	done      chan struct{}
}

type wsSnapshot struct {
	Stale  bool `json:"stale"`
	Source struct {
		State   string `json:"state"`
		Message string `json:"message"`
	} `json:"source"`
	Overall struct {
		ConcurrentViewers int64 `json:"concurrent_viewers"`
	} `json:"overall"`
}

type wsMessage struct {
	Type    string `json:"type"`
	Lost    int64  `json:"lost"`
	Skipped int64  `json:"skipped"`
	Events  []struct {
		Partition int32 `json:"partition"`
		Offset    int64 `json:"offset"`
	} `json:"events"`
	Partition int32 `json:"partition"`
	To        int64 `json:"to_offset"`
}

func watch(t *testing.T, addr string) *watcher {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	w := &watcher{conn: conn, next: map[int32]int64{}, done: make(chan struct{})}
	go w.read()
	t.Cleanup(func() { conn.Close(); <-w.done })
	return w
}

func (w *watcher) read() {
	defer close(w.done)
	for {
		_, b, err := w.conn.ReadMessage()
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		var m wsMessage
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		w.mu.Lock()
		switch m.Type {
		case "snapshot":
			var s wsSnapshot
			if json.Unmarshal(b, &s) == nil {
				w.snap = s
			}
		case "gap": // marked: the next offset after the gap is expected
			w.next[m.Partition] = m.To + 1
		case "tail":
			// Events not sent are accounted for: skipped (the client's
			// rate cap, the oldest of a burst) or lost (too slow). The
			// offsets may jump by as many as the frame accounts for, no
			// more.
			var jumped int64
			for _, e := range m.Events {
				if want, ok := w.next[e.Partition]; ok && e.Offset != want {
					if e.Offset < want && w.hole == nil {
						w.hole = fmt.Errorf("partition %d: offset %d after %d, out of order", e.Partition, e.Offset, want-1)
					}
					jumped += e.Offset - want
				}
				w.next[e.Partition] = e.Offset + 1
				w.tail++
			}
			w.accounted += m.Skipped + m.Lost
			if jumped > m.Skipped+m.Lost && w.hole == nil {
				w.hole = fmt.Errorf("a tail frame jumped over %d offsets and accounts for %d (skipped %d, lost %d): a silent hole", jumped, m.Skipped+m.Lost, m.Skipped, m.Lost)
			}
		}
		w.mu.Unlock()
	}
}

func (w *watcher) last() wsSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap
}

func (w *watcher) tailEvents() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tail
}

func (w *watcher) accountedFor() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.accounted
}

func (w *watcher) holes() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hole
}

// waitState waits until the latest snapshot's source state is state.
func (w *watcher) waitState(t *testing.T, state string, d time.Duration) {
	t.Helper()
	harness.Eventually(t, max(d, 0), "the WebSocket client told "+state, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.err != nil {
			t.Fatalf("the WebSocket closed: %v", w.err)
		}
		if w.snap.Source.State != state || w.snap.Stale != (state == "stale") {
			return fmt.Errorf("state %q (stale %v): %s", w.snap.Source.State, w.snap.Stale, w.snap.Source.Message)
		}
		return nil
	})
}
