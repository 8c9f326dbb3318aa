package e2e

import (
	"fmt"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/player"
	"playpulse.dev/tests/harness"
)

// TestPipeline: producer → real Kafka → fan-out → WebSocket client. Every
// event arrives valid, with its Kafka timestamp equal to the event time, and
// each session's events arrive in order with no gap.
func TestPipeline(t *testing.T) {
	s := startStack(t, stackOpts{rate: "300"})
	c := dial(t, s.fanAddr, nil)
	if m := read(t, c, 5*time.Second); m.Type != "hello" {
		t.Fatalf("first message %q, want hello", m.Type)
	}

	const want = 600
	lastSeq := map[string]uint64{}
	checker := &player.Checker{}
	got := 0
	deadline := time.Now().Add(30 * time.Second)
	for got < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d events arrived", got, want)
		}
		m := read(t, c, 10*time.Second)
		if m.Type != "tail" {
			continue
		}
		if m.Skipped != 0 {
			t.Fatalf("server skipped %d events below the tail cap", m.Skipped)
		}
		for _, it := range m.Events {
			var e event.Event
			if err := event.Decode(it.Event, &e); err != nil {
				t.Fatalf("invalid event on the wire: %v: %s", err, it.Event)
			}
			if it.Topic != s.topic {
				t.Fatalf("topic %q", it.Topic)
			}
			if it.KafkaTS != e.TS.UnixMilli() {
				t.Fatalf("record timestamp %d != event ts %d", it.KafkaTS, e.TS.UnixMilli())
			}
			if e.Stream != "e2e" {
				t.Fatalf("stream %q, want e2e", e.Stream)
			}
			// Sessions already running before the client joined may start
			// mid-way; after that, seq must go up by exactly one.
			if prev, ok := lastSeq[e.SessionID]; ok && e.Seq != prev+1 {
				t.Fatalf("session %s: seq %d after %d", e.SessionID, e.Seq, prev)
			}
			lastSeq[e.SessionID] = e.Seq
			// Sessions seen from their start are checked transition by
			// transition.
			if _, tracked := checker.State(e.SessionID); tracked || e.Seq == 1 {
				if err := checker.Observe(&e); err != nil {
					t.Fatalf("invalid session walk: %v", err)
				}
			}
			got++
		}
	}
	if len(lastSeq) < 5 {
		t.Fatalf("only %d sessions in %d events; the simulator should interleave many", len(lastSeq), got)
	}

	var snap struct {
		Type        string   `json:"type"`
		EventsTotal uint64   `json:"events_total"`
		Streams     []string `json:"streams"`
	}
	harness.Eventually(t, 5*time.Second, "snapshot counts what the client received", func() error {
		if err := getJSON(fmt.Sprintf("http://%s/api/snapshot", s.fanAddr), &snap); err != nil {
			return err
		}
		if snap.Type != "snapshot" || snap.EventsTotal < want || len(snap.Streams) != 1 || snap.Streams[0] != "e2e" {
			return fmt.Errorf("snapshot %+v", snap)
		}
		return nil
	})
}
