package hub

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
)

// recorder is a net.Conn that records each Write call.
type recorder struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	closed bool
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, bytes.Clone(p))
	r.mu.Unlock()
	if r.Conn == nil {
		return len(p), nil
	}
	return r.Conn.Write(p)
}

func (r *recorder) SetWriteDeadline(t time.Time) error {
	if r.Conn == nil {
		return nil
	}
	return r.Conn.SetWriteDeadline(t)
}

func (r *recorder) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	if r.Conn == nil {
		return nil
	}
	return r.Conn.Close()
}

func (r *recorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, w := range r.writes {
		out = append(out, string(w))
	}
	return out
}

func TestBatchConn(t *testing.T) {
	tests := []struct {
		name string
		run  func(b *batchConn)
		want []string
	}{
		{"unheld writes pass through", func(b *batchConn) {
			b.Write([]byte("a"))
			b.Write([]byte("b"))
		}, []string{"a", "b"}},
		{"one write per hold", func(b *batchConn) {
			b.hold()
			b.Write([]byte("a"))
			b.Write([]byte("b"))
			if err := b.flush(); err != nil {
				t.Fatal(err)
			}
			b.Write([]byte("c"))
		}, []string{"ab", "c"}},
		{"nested holds write at the outermost flush", func(b *batchConn) {
			b.hold()
			b.Write([]byte("a"))
			b.hold()
			b.Write([]byte("b"))
			b.flush()
			b.Write([]byte("c"))
			b.flush()
		}, []string{"abc"}},
		{"an empty hold writes nothing", func(b *batchConn) {
			b.hold()
			b.flush()
		}, nil},
		{"close writes what is held", func(b *batchConn) {
			b.hold()
			b.Write([]byte("a"))
			b.Close()
			b.flush()
		}, []string{"a"}},
		{"after unbatch, holds gather nothing", func(b *batchConn) {
			b.hold()
			b.Write([]byte("a"))
			b.unbatch()
			b.Write([]byte("b"))
			b.hold()
			b.Write([]byte("c"))
			b.flush()
			b.flush()
		}, []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			tt.run(Batching(r).(*batchConn))
			if got := r.calls(); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("writes %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPhaseCount(t *testing.T) {
	for hz, want := range map[int]int{1: 200, 4: 50, 10: 20, 30: 7, 60: 3, 200: 1, 1000: 1} {
		if got := phaseCount(hz); got != want {
			t.Errorf("phaseCount(%d) = %d, want %d", hz, got, want)
		}
	}
}

// serve runs h behind a test server whose connections are batched and
// recorded, and dials n clients.
func serve(t *testing.T, h *Hub, n int) ([]*websocket.Conn, *sync.Map) {
	t.Helper()
	conns := &sync.Map{} // *recorder → struct{}
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(hijack{w, conns}, r, nil)
		if err != nil {
			return
		}
		go h.Serve(c)
	}))
	t.Cleanup(func() { h.Close(); srv.Close() })
	var cs []*websocket.Conn
	for range n {
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs, conns
}

type hijack struct {
	http.ResponseWriter
	conns *sync.Map
}

func (h hijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	r := &recorder{Conn: c}
	h.conns.Store(r, struct{}{})
	return Batching(r), rw, nil
}

func rec(seq int) *consume.Record {
	now := time.Now()
	return &consume.Record{Topic: "t", Offset: int64(seq), Timestamp: now, Event: event.Event{
		V: 1, EventID: "e", SessionID: "s", Seq: uint64(seq), Stream: "x", UserID: "u", MovieID: "m",
		Type: event.Play, Device: "tv", TS: now,
	}}
}

// A tick that has a new snapshot and new events writes both with one
// system call; the client reads them as two messages.
func TestTickIsOneWrite(t *testing.T) {
	h := New(Options{TailRate: 100, FrameHz: 10, MaxFrameHz: 10, WriteTimeout: 2 * time.Second, Log: slog.New(slog.DiscardHandler)})
	cs, conns := serve(t, h, 1)
	c := cs[0]
	readType(t, c, "hello")
	var snapshots, tails atomic.Int64
	go func() { // the client reads everything, as whole JSON messages
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			var m struct{ Type string }
			if json.Unmarshal(b, &m) != nil {
				t.Errorf("not JSON: %q", b)
				return
			}
			switch m.Type {
			case "snapshot":
				snapshots.Add(1)
			case "tail":
				tails.Add(1)
			}
		}
	}()
	both := func() bool {
		found := false
		conns.Range(func(k, _ any) bool {
			for _, w := range k.(*recorder).calls() {
				if strings.Contains(w, `"type":"snapshot"`) && strings.Contains(w, `"type":"tail"`) {
					found = true
				}
			}
			return true
		})
		return found
	}
	// An event, which leaves at once (the leading edge), then within the
	// frame interval after it a snapshot and an event, which leave
	// together at its end; until one tick carries both (the clock may be
	// slow to take the first event on a loaded machine).
	deadline := time.Now().Add(5 * time.Second)
	for i := 1; !both(); i++ {
		if time.Now().After(deadline) {
			t.Fatal("no single write carried a snapshot and a tail frame")
		}
		h.Publish(rec(2 * i))
		time.Sleep(10 * time.Millisecond)
		if err := h.SetSnapshot(fmt.Appendf(nil, `{"type":"snapshot","n":%d,"time":1}`, i)); err != nil {
			t.Fatal(err)
		}
		h.Publish(rec(2*i + 1))
		time.Sleep(2 * time.Second / 10) // two frame intervals
	}
	for snapshots.Load() == 0 || tails.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("client read %d snapshots and %d tail frames", snapshots.Load(), tails.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Clients are spread evenly over the phases of the frame clock, so one
// tick wakes a small share of them.
func TestClientsSpreadOverPhases(t *testing.T) {
	h := New(Options{TailRate: 100, FrameHz: 10, MaxFrameHz: 10, WriteTimeout: 2 * time.Second, Log: slog.New(slog.DiscardHandler)})
	n := 2 * len(h.phases)
	serve(t, h, n)
	deadline := time.Now().Add(5 * time.Second)
	for h.Clients() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d clients connected", h.Clients(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.cmu.Lock()
	defer h.cmu.Unlock()
	for i, p := range h.phases {
		if n := p.clients.Load(); n != 2 {
			t.Errorf("phase %d has %d clients, want 2", i, n)
		}
	}
}

func readType(t *testing.T, c *websocket.Conn, typ string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if bytes.Contains(b, []byte(`"type":"`+typ+`"`)) {
			return
		}
	}
}

// Connections that are not batched (any other net.Conn) have no
// batchConn: its methods do nothing on nil.
func TestNilBatchConn(t *testing.T) {
	var b *batchConn
	b.hold()
	if err := b.flush(); err != nil {
		t.Fatal(err)
	}
	b.unbatch()
}
