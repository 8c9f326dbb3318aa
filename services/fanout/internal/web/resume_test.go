package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/fanout/internal/hub"
	"playpulse.dev/services/fanout/internal/web"
	"playpulse.dev/services/playback/event"
)

type anyMsg struct {
	Type      string            `json:"type"`
	Replay    bool              `json:"replay"`
	Skipped   int               `json:"skipped"`
	Lost      int               `json:"lost"`
	Replayed  int               `json:"replayed"`
	Gaps      int               `json:"gaps"`
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	From      int64             `json:"from_offset"`
	To        *int64            `json:"to_offset"`
	Reason    string            `json:"reason"`
	Full      bool              `json:"full"`
	Protocol  int               `json:"protocol"`
	Code      string            `json:"code"`
	Filter    map[string]any    `json:"filter"`
	Events    []json.RawMessage `json:"events"`
}

func readAny(t *testing.T, c *websocket.Conn) anyMsg {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m anyMsg
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func rec(part int32, off int64, ts time.Time, typ event.Type) *consume.Record {
	r := record(int(off)+1, typ, "tv")
	r.Partition, r.Offset, r.Timestamp = part, off, ts
	return r
}

// TestResumeReplaysExactlyTheMissedEvents: a client that saw offsets up to
// 4 of partition 0 and up to 1 of partition 1 gets exactly the later events
// received before it connected, oldest first, then resume_ok; the live tail
// carries only newer events.
func TestResumeReplaysExactlyTheMissedEvents(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{})
	now := time.Now()
	f.hub.PartitionStarted("t", 0, 0)
	f.hub.PartitionStarted("t", 1, 0)
	for off := int64(0); off < 10; off++ {
		f.hub.Publish(rec(0, off, now, event.Heartbeat))
		f.hub.Publish(rec(1, off, now, event.Heartbeat))
	}
	c, _, err := f.dial(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if m := readAny(t, c); m.Type != "hello" || m.Protocol != 2 {
		t.Fatalf("hello %+v", m)
	}
	f.hub.Publish(rec(0, 10, now, event.Heartbeat)) // after connecting: live
	if err := c.WriteJSON(map[string]any{"type": "resume", "positions": []map[string]any{
		{"topic": "t", "partition": 0, "offset": 4}, {"topic": "t", "partition": 1, "offset": 1},
	}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	replayed := 0
	for {
		m := readAny(t, c)
		if m.Type == "resume_ok" {
			if m.Gaps != 0 || m.Replayed != replayed {
				t.Fatalf("resume_ok %+v after %d replayed", m, replayed)
			}
			break
		}
		if m.Type == "gap" {
			t.Fatalf("unexpected gap %+v", m)
		}
		for _, raw := range m.Events {
			var it struct {
				Partition int32 `json:"partition"`
				Offset    int64 `json:"offset"`
			}
			_ = json.Unmarshal(raw, &it)
			key := fmt.Sprint(it.Partition, "/", it.Offset)
			if m.Replay {
				replayed++
				if got[key] {
					t.Fatalf("%s twice", key)
				}
				got[key] = true
			} else if it.Offset != 10 {
				t.Fatalf("live tail carried old event %s", key)
			}
		}
	}
	for p, from := range map[int]int{0: 5, 1: 2} {
		for off := from; off < 10; off++ {
			if !got[fmt.Sprint(p, "/", off)] {
				t.Errorf("missed event %d/%d not replayed", p, off)
			}
		}
	}
	if len(got) != 5+8 {
		t.Fatalf("replayed %d events, want 13: %v", len(got), got)
	}
}

func TestResumeGaps(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{TailRate: 1000, FrameHz: 50, WriteTimeout: 2 * time.Second, RingSize: 8, ResumeWindow: time.Minute})
	old := time.Now().Add(-2 * time.Minute)
	f.hub.PartitionStarted("t", 0, 100)
	for off := int64(100); off < 110; off++ { // ring of 8: 100 and 101 are gone
		f.hub.Publish(rec(0, off, time.Now(), event.Heartbeat))
	}
	f.hub.Publish(rec(1, 5, old, event.Heartbeat)) // older than the window; evicts 102
	c, _, err := f.dial(t, "")
	if err != nil {
		t.Fatal(err)
	}
	readAny(t, c) // hello
	_ = c.WriteJSON(map[string]any{"type": "resume", "positions": []map[string]any{
		{"topic": "t", "partition": 0, "offset": 99}, {"topic": "t", "partition": 1, "offset": 3}, {"topic": "other", "partition": 0, "offset": 7},
	}})
	gaps := map[string]anyMsg{}
	replayed := 0
	for {
		m := readAny(t, c)
		if m.Type == "gap" {
			gaps[fmt.Sprint(m.Topic, "/", m.Partition)] = m
		}
		if m.Replay {
			replayed += len(m.Events)
		}
		if m.Type == "resume_ok" {
			break
		}
	}
	if g := gaps["t/0"]; g.Reason != hub.GapExpired || g.From != 100 || g.To == nil || *g.To != 102 {
		t.Errorf("partition 0 gap %+v, want 100-102 expired", g)
	}
	if g := gaps["t/1"]; g.Reason != hub.GapExpired || g.From != 4 || g.To == nil || *g.To != 5 {
		t.Errorf("partition 1 gap %+v, want 4-5 expired", g)
	}
	if g := gaps["other/0"]; g.Reason != hub.GapUnknown || g.From != 8 || g.To != nil {
		t.Errorf("unknown partition gap %+v", g)
	}
	if replayed != 7 {
		t.Errorf("replayed %d, want 103..109", replayed)
	}
	// A second resume is refused.
	_ = c.WriteJSON(map[string]any{"type": "resume", "positions": []any{}})
	for {
		if m := readAny(t, c); m.Type == "error" {
			break
		}
	}
}

func TestResumeTooMany(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{TailRate: 10, FrameHz: 10, WriteTimeout: 2 * time.Second})
	for off := int64(0); off < 150; off++ {
		f.hub.Publish(rec(0, off, time.Now(), event.Heartbeat))
	}
	c, _, _ := f.dial(t, "")
	readAny(t, c)
	_ = c.WriteJSON(map[string]any{"type": "resume", "positions": []map[string]any{{"topic": "t", "partition": 0, "offset": 9}}})
	var gap anyMsg
	replayed := 0
	for {
		m := readAny(t, c)
		if m.Type == "gap" {
			gap = m
		}
		if m.Replay {
			replayed += len(m.Events)
		}
		if m.Type == "resume_ok" {
			break
		}
	}
	// Limit 10 × tail_rate = 100: offsets 50..149 sent, 10..49 in a gap.
	if replayed != 100 || gap.Reason != hub.GapTooMany || gap.From != 10 || *gap.To != 49 {
		t.Fatalf("replayed %d, gap %+v", replayed, gap)
	}
}

func TestFullSnapshotOnConnect(t *testing.T) {
	h := hub.New(hub.Options{TailRate: 100, FrameHz: 10, WriteTimeout: time.Second, Full: func() []byte { return []byte(`{"type":"snapshot","full":true}`) }})
	mux := http.NewServeMux()
	web.Mount(mux, h, web.Options{MaxConnections: 10})
	srv := newServer(t, mux, h)
	_ = h.SetSnapshot([]byte(`{"type":"snapshot","full":false}`))
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m := readAny(t, c); m.Type != "hello" {
		t.Fatal(m)
	}
	if m := readAny(t, c); m.Type != "snapshot" || !m.Full {
		t.Fatalf("second message %+v, want the full snapshot", m)
	}
	resp, err := http.Get(srv + "/api/snapshot?full=1")
	if err != nil {
		t.Fatal(err)
	}
	var m anyMsg
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if !m.Full {
		t.Fatal("/api/snapshot?full=1 is not the full snapshot")
	}
}

func TestAuthToken(t *testing.T) {
	f := newFixture(t, web.Options{AuthToken: "s3cret"}, hub.Options{})
	for _, tc := range []struct {
		path, header string
		want         int
	}{
		{"/api/snapshot", "", 401},
		{"/api/snapshot", "Bearer nope", 401},
		{"/api/snapshot", "Bearer s3cret", 200},
		{"/api/snapshot?access_token=s3cret", "", 200},
		{"/api/streams", "", 401},
		{"/", "", 200},
	} {
		req, _ := http.NewRequest("GET", f.srv.URL+tc.path, nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %q: %d, want %d", tc.path, tc.header, resp.StatusCode, tc.want)
		}
	}
	ws := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(ws, nil); err == nil || resp.StatusCode != 401 {
		t.Fatalf("ws without token: %v", err)
	}
	c, _, err := websocket.DefaultDialer.Dial(ws+"?access_token=s3cret", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestPerIPLimit(t *testing.T) {
	f := newFixture(t, web.Options{MaxConnectionsPerIP: 2}, hub.Options{})
	for i := 0; i < 2; i++ {
		c, _, err := f.dial(t, "")
		if err != nil {
			t.Fatal(err)
		}
		next(t, c, "hello")
	}
	_, resp, err := f.dial(t, "")
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection from one address: %v, want 503", err)
	}
}

func TestMessageRateLimit(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{})
	c, _, _ := f.dial(t, "")
	next(t, c, "hello")
	for i := 0; i < 25; i++ {
		_ = c.WriteJSON(map[string]any{"type": "filter"})
	}
	if m := next(t, c, "error"); m.Code != "rate_limited" {
		t.Fatalf("error %+v", m)
	}
}
