package web_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/fanout/internal/hub"
	"playpulse.dev/services/fanout/internal/web"
	"playpulse.dev/services/playback/event"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	hub *hub.Hub
	srv *httptest.Server
}

func newFixture(t *testing.T, opts web.Options, hopts hub.Options) *fixture {
	t.Helper()
	if hopts.TailRate == 0 {
		hopts = hub.Options{TailRate: 1000, FrameHz: 50, WriteTimeout: 2 * time.Second}
	}
	hopts.Log = slog.New(slog.DiscardHandler)
	h := hub.New(hopts)
	mux := http.NewServeMux()
	if opts.MaxConnections == 0 {
		opts.MaxConnections = 100
	}
	opts.Log = slog.New(slog.DiscardHandler)
	web.Mount(mux, h, opts)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { h.Close(); srv.Close() })
	return &fixture{hub: h, srv: srv}
}

func newServer(t *testing.T, h http.Handler, hb *hub.Hub) string {
	srv := httptest.NewServer(h)
	t.Cleanup(func() { hb.Close(); srv.Close() })
	return srv.URL
}

func (f *fixture) dial(t *testing.T, origin string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(f.srv.URL, "http")+"/ws", h)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

type msg struct {
	Type    string `json:"type"`
	Skipped int    `json:"skipped"`
	Code    string `json:"code"`
	Events  []struct {
		Event struct {
			EventType string `json:"event_type"`
			Device    string `json:"device"`
			Seq       int    `json:"seq"`
		} `json:"event"`
	} `json:"events"`
}

func next(t *testing.T, c *websocket.Conn, typ string) msg {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = c.SetReadDeadline(deadline)
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %q: %v", typ, err)
		}
		var m msg
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == typ {
			return m
		}
	}
}

func record(seq int, typ event.Type, device string) *consume.Record {
	return &consume.Record{Topic: "t", Timestamp: time.Now(), Event: event.Event{
		V: 1, EventID: "e", SessionID: "s", Seq: uint64(seq), Stream: "x", UserID: "u", MovieID: "m",
		Type: typ, Device: device, TS: time.Now(), StopReason: event.StopQuit,
	}}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{})
	resp, err := http.Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP %q", csp)
	}
	if !strings.Contains(string(body), "Playpulse") || strings.Contains(string(body), "<script>") {
		t.Fatalf("index.html must load script from a file, not inline")
	}
}

func TestOriginCheck(t *testing.T) {
	f := newFixture(t, web.Options{AllowedOrigins: []string{"https://dash.example.com"}}, hub.Options{})
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{f.srv.URL, true},
		{"https://dash.example.com", true},
		{"https://evil.example.com", false},
		{"null", false},
	}
	for _, tt := range tests {
		_, resp, err := f.dial(t, tt.origin)
		if tt.ok && err != nil {
			t.Errorf("origin %q refused: %v", tt.origin, err)
		}
		if !tt.ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Errorf("origin %q: want 403, got %v", tt.origin, err)
		}
	}
}

func TestMaxConnections(t *testing.T) {
	f := newFixture(t, web.Options{MaxConnections: 2}, hub.Options{})
	for i := 0; i < 2; i++ {
		c, _, err := f.dial(t, "")
		if err != nil {
			t.Fatal(err)
		}
		next(t, c, "hello")
	}
	_, resp, err := f.dial(t, "")
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: %v, want 503", err)
	}
}

func TestTailAndFilter(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{})
	c, _, err := f.dial(t, "")
	if err != nil {
		t.Fatal(err)
	}
	next(t, c, "hello")
	if err := c.WriteJSON(map[string]any{"type": "filter", "filter": map[string]any{"types": []string{"pause"}, "device": "tv"}}); err != nil {
		t.Fatal(err)
	}
	next(t, c, "filter_ok")
	f.hub.Publish(record(1, event.Play, "tv"))
	f.hub.Publish(record(2, event.Pause, "mobile"))
	f.hub.Publish(record(3, event.Pause, "tv"))
	m := next(t, c, "tail")
	if len(m.Events) != 1 || m.Events[0].Event.Seq != 3 || m.Skipped != 0 {
		t.Fatalf("filtered tail: %+v", m)
	}
}

func TestInvalidMessagesGetErrorsThen1008(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{})
	c, _, err := f.dial(t, "")
	if err != nil {
		t.Fatal(err)
	}
	next(t, c, "hello")
	for _, bad := range []string{`nope`, `{"type":"dance"}`, `{"type":"filter","filter":{"types":["rewind"]}}`} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(bad)); err != nil {
			t.Fatal(err)
		}
		if m := next(t, c, "error"); m.Code != "bad_message" {
			t.Fatalf("reply %+v", m)
		}
	}
	for i := 0; i < 10; i++ {
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{}`))
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
			t.Fatalf("want close 1008, got %v", err)
		}
		return
	}
}

func TestOversizedMessageCloses(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{})
	c, _, err := f.dial(t, "")
	if err != nil {
		t.Fatal(err)
	}
	next(t, c, "hello")
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"filter","x":"`+strings.Repeat("a", hub.MaxClientMessage)+`"}`))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
				t.Fatalf("want close 1009, got %v", err)
			}
			return
		}
	}
}

// TestStuckClientDoesNotDelayOthers: one client never reads; another keeps
// getting every frame on time, and the stuck one is dropped after the
// write timeout.
func TestStuckClientDoesNotDelayOthers(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{TailRate: 5000, FrameHz: 50, WriteTimeout: time.Second})
	stuck, _, err := f.dial(t, "")
	if err != nil {
		t.Fatal(err)
	}
	_ = stuck // never read from
	good, _, err := f.dial(t, "")
	if err != nil {
		t.Fatal(err)
	}
	next(t, good, "hello")

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // a fast, steady producer: fills the stuck client's socket buffers
		defer close(done)
		seq := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := 0; i < 200; i++ {
				seq++
				f.hub.Publish(record(seq, event.Heartbeat, strings.Repeat("d", 200)))
			}
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() { close(stop); <-done }()

	deadline := time.Now().Add(4 * time.Second)
	frames := 0
	for time.Now().Before(deadline) {
		start := time.Now()
		next(t, good, "tail")
		// The stuck client is dropped only after 1 s; a healthy frame
		// waiting on it would take that long. 900 ms leaves room for a
		// loaded 2-core machine running the race detector.
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Fatalf("a frame took %s to reach the healthy client", d)
		}
		frames++
	}
	if frames < 50 {
		t.Fatalf("healthy client got only %d frames in 4s", frames)
	}
	waitFor(t, 15*time.Second, func() bool { return f.hub.Clients() == 1 })
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSnapshotSharedAndAPI(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{})
	if err := f.hub.SetSnapshot([]byte(`{"type":"snapshot","events_total":7}`)); err != nil {
		t.Fatal(err)
	}
	c, _, err := f.dial(t, "")
	if err != nil {
		t.Fatal(err)
	}
	next(t, c, "snapshot")
	resp, err := http.Get(f.srv.URL + "/api/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		EventsTotal int `json:"events_total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || s.EventsTotal != 7 {
		t.Fatalf("api snapshot %+v %v", s, err)
	}
}

// TestZeroOptions: a hub made with zero Options works with the defaults its
// Options document (it once divided by its zero frame rate), announces them
// in hello and delivers the tail.
func TestZeroOptions(t *testing.T) {
	h := hub.New(hub.Options{})
	mux := http.NewServeMux()
	web.Mount(mux, h, web.Options{MaxConnections: 10, Log: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { h.Close(); srv.Close() })
	f := &fixture{hub: h, srv: srv}
	c, _, err := f.dial(t, "")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hello map[string]any
	if err := c.ReadJSON(&hello); err != nil {
		t.Fatal(err)
	}
	if hello["type"] != "hello" || hello["frame_hz"] != 10.0 || hello["tail_rate"] != 200.0 || hello["snapshot_hz"] != 4.0 {
		t.Fatalf("hello %v, want frame_hz 10, tail_rate 200, snapshot_hz 4", hello)
	}
	h.Publish(record(1, event.Play, "tv"))
	if m := next(t, c, "tail"); len(m.Events) != 1 || m.Events[0].Event.Seq != 1 {
		t.Fatalf("tail %+v", m)
	}
}
