package hub_test

// The hub's behaviour as a browser sees it, on fake time: every test runs
// in a synctest bubble, the browser is a WebSocket over net.Pipe, and time
// moves only when every goroutine of the bubble waits, so tick counts,
// frame contents and timeouts are exact.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/fanout/internal/hub"
	"playpulse.dev/services/playback/event"
)

// message is any server message, with the fields the tests look at.
type message struct {
	Type    string      `json:"type"`
	Skipped int         `json:"skipped"`
	Lost    int         `json:"lost"`
	Replay  bool        `json:"replay"`
	Events  []tailEvent `json:"events"`
	Code    string      `json:"code"` // error
	N       int         `json:"n"`    // test snapshots
	// gap
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	From      int64  `json:"from_offset"`
	To        *int64 `json:"to_offset"`
	Reason    string `json:"reason"`
	// resume_ok
	Replayed int `json:"replayed"`
	Gaps     int `json:"gaps"`

	Fields map[string]any `json:"-"` // every field
	at     time.Time      // when the browser read it
	raw    string
}

type tailEvent struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	Event     struct {
		EventType string `json:"event_type"`
		Device    string `json:"device"`
		Source    string `json:"source"`
	} `json:"event"`
}

// browser is one WebSocket client of the hub.
type browser struct {
	t    *testing.T
	conn *websocket.Conn
	mu   sync.Mutex
	msgs []message
}

// connect attaches a browser to h over net.Pipe, as web does after the
// upgrade (a batched connection), and returns once the hub serves it.
// The browser reads nothing until read or readAll.
func connect(t *testing.T, h *hub.Hub) *browser {
	t.Helper()
	return connectWith(t, h, hub.ClientOptions{})
}

// connectWith is connect for a client that said what it speaks.
func connectWith(t *testing.T, h *hub.Hub, o hub.ClientOptions) *browser {
	t.Helper()
	srv, cli := net.Pipe()
	go func() {
		br := bufio.NewReader(srv)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		c, err := (&websocket.Upgrader{}).Upgrade(&hijacker{conn: hub.Batching(srv), brw: bufio.NewReadWriter(br, bufio.NewWriter(srv))}, req, nil)
		if err != nil {
			return
		}
		_ = h.ServeClient(c, o)
	}()
	d := websocket.Dialer{NetDialContext: func(context.Context, string, string) (net.Conn, error) { return cli, nil }}
	c, _, err := d.Dial("ws://hub/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &browser{t: t, conn: c}
}

// hijacker is the http.ResponseWriter the upgrader takes over.
type hijacker struct {
	conn net.Conn
	brw  *bufio.ReadWriter
}

func (h *hijacker) Header() http.Header                          { return http.Header{} }
func (h *hijacker) Write(b []byte) (int, error)                  { return h.conn.Write(b) }
func (h *hijacker) WriteHeader(int)                              {}
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) { return h.conn, h.brw, nil }

// read reads the next message.
func (b *browser) read() message {
	b.t.Helper()
	_, data, err := b.conn.ReadMessage()
	if err != nil {
		b.t.Fatalf("read: %v", err)
	}
	return decode(b.t, data)
}

func decode(t *testing.T, data []byte) message {
	t.Helper()
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not JSON: %q", data)
	}
	_ = json.Unmarshal(data, &m.Fields)
	m.at, m.raw = time.Now(), string(data)
	return m
}

// readAll reads every message from now on in the background, as a
// browser keeping up does; take returns them.
func (b *browser) readAll() {
	go func() {
		for {
			_, data, err := b.conn.ReadMessage()
			if err != nil {
				return
			}
			m := decode(b.t, data)
			b.mu.Lock()
			b.msgs = append(b.msgs, m)
			b.mu.Unlock()
		}
	}()
}

// take returns the messages of type typ read so far (all when typ is
// empty) and forgets them.
func (b *browser) take(typ string) []message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out, rest []message
	for _, m := range b.msgs {
		if typ == "" || m.Type == typ {
			out = append(out, m)
		} else {
			rest = append(rest, m)
		}
	}
	b.msgs = rest
	return out
}

// readUntilClosed reads, dropping what comes, until the hub closes the
// connection, which it must do with code.
func (b *browser) readUntilClosed(code int) {
	b.t.Helper()
	for {
		if _, _, err := b.conn.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, code) {
				b.t.Fatalf("want close %d, got %v", code, err)
			}
			return
		}
	}
}

func (b *browser) send(t *testing.T, v any) {
	t.Helper()
	if err := b.conn.WriteJSON(v); err != nil {
		t.Fatal(err)
	}
}

// after lets d of fake time pass and waits until the bubble is idle.
func after(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// newHub returns a hub closed when the test ends (after the browsers,
// whose cleanups were registered later and run first).
func newHub(t *testing.T, opts hub.Options) *hub.Hub {
	h := hub.New(opts)
	t.Cleanup(h.Close)
	return h
}

// record is event number off of partition t/0.
func record(off int64, typ event.Type, device string) *consume.Record {
	return &consume.Record{Topic: "t", Offset: off, Timestamp: time.Now(), Event: event.Event{
		V: 1, EventID: fmt.Sprint("e", off), SessionID: "s", Seq: uint64(off), Stream: "x", UserID: "u", MovieID: "m",
		Type: typ, Device: device, TS: time.Now(), StopReason: event.StopQuit,
	}}
}

// publish publishes events from..from+n in one batch: a frame may leave
// at the first event of a Publish loop, when clients are idle.
func publish(h *hub.Hub, from, n int) {
	rs := make([]consume.Record, n)
	for i := range rs {
		rs[i] = *record(int64(from+i), event.Heartbeat, "tv")
	}
	h.PublishBatch(rs)
}

func offsets(ms []message) []int64 {
	var out []int64
	for _, m := range ms {
		for _, e := range m.Events {
			out = append(out, e.Offset)
		}
	}
	return out
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// The hub's zero Options are the fan-out's defaults, announced in hello.
func TestHello(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, hub.Options{Replica: "r1"})
		m := connect(t, h).read()
		want := map[string]any{"type": "hello", "protocol": 3.0, "replica": "r1", "frame_hz": 10.0, "max_frame_hz": 200.0, "tail_rate": 50.0,
			"snapshot_hz": 4.0, "resume_window_s": 60.0, "max_message_bytes": 4096.0}
		for k, v := range want {
			if m.Fields[k] != v {
				t.Errorf("hello %s = %v, want %v", k, m.Fields[k], v)
			}
		}
	})
}

// Each frame carries at most TailRate/FrameHz events (at least one): the
// newest, oldest first; the frame counts the matching events it left out
// as skipped.
func TestTailRateCap(t *testing.T) {
	tests := []struct {
		name              string
		tailRate, frameHz int
		published         int
		wantEvents        []int64
		wantSkipped       int
	}{
		{"under the cap", 100, 10, 7, seq(0, 7), 0},
		{"at the cap", 100, 10, 10, seq(0, 10), 0},
		{"over the cap: the newest", 100, 10, 25, seq(15, 25), 15},
		{"defaults: 5 a frame", 0, 0, 50, seq(45, 50), 45},
		{"rate under frame rate: one a frame", 5, 10, 3, seq(2, 3), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHub(t, hub.Options{TailRate: tt.tailRate, FrameHz: tt.frameHz})
				b := connect(t, h)
				b.read() // hello
				b.readAll()
				publish(h, 0, tt.published)
				after(time.Second)
				frames := b.take("tail")
				if len(frames) != 1 {
					t.Fatalf("%d tail frames, want 1: %v", len(frames), frames)
				}
				if got := offsets(frames); !slices.Equal(got, tt.wantEvents) || frames[0].Skipped != tt.wantSkipped || frames[0].Lost != 0 {
					t.Errorf("frame has events %v, skipped %d, lost %d; want %v, skipped %d, lost 0", got, frames[0].Skipped, frames[0].Lost, tt.wantEvents, tt.wantSkipped)
				}
			})
		})
	}
}

// A steady stream (an event a millisecond) reaches a lone client in
// MaxFrameHz frames a second, the first at once; no frame carries more
// than the burst (TailRate/FrameHz), the events sent in a second stay
// within TailRate plus one burst, and every event is sent or counted as
// skipped.
func TestFrameRateCap(t *testing.T) {
	for _, tt := range []struct{ frameHz, maxHz int }{{1, 1}, {4, 4}, {10, 10}, {10, 50}, {10, 200}} {
		t.Run(fmt.Sprint(tt.frameHz, "-", tt.maxHz, "Hz"), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const tailRate = 400
				burst := tailRate / tt.frameHz
				h := newHub(t, hub.Options{TailRate: tailRate, FrameHz: tt.frameHz, MaxFrameHz: tt.maxHz})
				b := connect(t, h)
				b.read() // hello
				b.readAll()
				start := time.Now()
				for i := range 1000 {
					publish(h, i, 1)
					time.Sleep(time.Millisecond)
				}
				after(2 * time.Second) // the last events' frame
				frames := b.take("tail")
				inFirstSecond, sentInFirstSecond, sent, skipped := 0, 0, 0, 0
				for _, f := range frames {
					if f.at.Sub(start) < time.Second {
						inFirstSecond++
						sentInFirstSecond += len(f.Events)
					}
					if len(f.Events) > burst {
						t.Errorf("a frame of %d events, burst %d", len(f.Events), burst)
					}
					sent += len(f.Events)
					skipped += f.Skipped
				}
				if len(frames) == 0 || !frames[0].at.Equal(start) {
					t.Fatalf("first frame %v, want one at the first event", frames)
				}
				if inFirstSecond != tt.maxHz {
					t.Errorf("%d frames in the first second, want %d", inFirstSecond, tt.maxHz)
				}
				if sentInFirstSecond > tailRate+burst {
					t.Errorf("%d events sent in the first second, cap %d + burst %d", sentInFirstSecond, tailRate, burst)
				}
				if sent+skipped != 1000 {
					t.Errorf("sent %d + skipped %d, want 1000 events", sent, skipped)
				}
			})
		})
	}
}

// An event reaches an idle client at once (the leading edge); events
// that come sooner than 1/MaxFrameHz after a frame wait for the end of
// that interval and leave together (the trailing edge).
func TestLeadingEdge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, hub.Options{MaxFrameHz: 200}) // 5 ms
		b := connect(t, h)
		b.read() // hello
		b.readAll()
		synctest.Wait()
		start := time.Now()
		type frame struct {
			at     time.Duration
			events []int64
		}
		steps := []struct {
			at   time.Duration // publish one event then
			want []frame       // frames received by the next step
		}{
			{0, []frame{{0, seq(0, 1)}}},
			{1 * time.Millisecond, nil},
			{2 * time.Millisecond, nil},
			{3 * time.Millisecond, []frame{{5 * time.Millisecond, seq(1, 4)}}},
			{100 * time.Millisecond, []frame{{100 * time.Millisecond, seq(4, 5)}}},
			{200 * time.Millisecond, []frame{{200 * time.Millisecond, seq(5, 6)}}},
		}
		for i, st := range steps {
			time.Sleep(time.Until(start.Add(st.at)))
			publish(h, i, 1)
			synctest.Wait()
			if i+1 < len(steps) {
				time.Sleep(time.Until(start.Add(steps[i+1].at)) - time.Nanosecond)
			}
			synctest.Wait()
			var got []frame
			for _, m := range b.take("tail") {
				got = append(got, frame{m.at.Sub(start), offsets([]message{m})})
			}
			if fmt.Sprint(got) != fmt.Sprint(st.want) {
				t.Errorf("after the event at %v: frames %v, want %v", st.at, got, st.want)
			}
		}
	})
}

// Each client gets FrameBudget/clients frames a second, within
// [FrameHz, MaxFrameHz], on a steady stream.
func TestAdaptiveFrameRate(t *testing.T) {
	for _, tt := range []struct {
		clients, want int
	}{
		{1, 100},  // MaxFrameHz
		{5, 100},  // 200 of the budget, capped
		{20, 50},  // the budget shared
		{100, 20}, // 10 of the budget: the floor
	} {
		t.Run(fmt.Sprint(tt.clients, "clients"), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHub(t, hub.Options{TailRate: 1000, FrameHz: 20, MaxFrameHz: 100, FrameBudget: 1000})
				bs := make([]*browser, tt.clients)
				for i := range bs {
					bs[i] = connect(t, h)
					bs[i].read() // hello
					bs[i].readAll()
				}
				for i := range 200 { // a second of an event every 5 ms: new events at every frame
					publish(h, i, 1)
					time.Sleep(5 * time.Millisecond)
				}
				after(time.Second)
				for i, b := range bs {
					n := len(b.take("tail"))
					if n < tt.want*85/100 || n > tt.want*110/100 {
						t.Errorf("client %d: %d frames in a second, want about %d", i, n, tt.want)
					}
				}
			})
		})
	}
}

// Snapshots reach every client on its next tick: only the newest when
// several arrived, never one equal to the last but for its time.
func TestSnapshots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, hub.Options{FrameHz: 10, MaxFrameHz: 10})
		b := connect(t, h)
		b.read() // hello
		b.readAll()
		steps := []struct {
			set  []string
			want []int // n of the snapshots received
		}{
			{[]string{`{"type":"snapshot","n":1,"time":1}`}, []int{1}},
			{[]string{`{"type":"snapshot","n":1,"time":2}`}, nil},
			// 2 leaves at once; 3 and 4 come within the frame interval
			// after it, and only 4 leaves, at its end.
			{[]string{`{"type":"snapshot","n":2,"time":3}`, `{"type":"snapshot","n":3,"time":4}`, `{"type":"snapshot","n":4,"time":5}`}, []int{2, 4}},
			{nil, nil},
		}
		for i, s := range steps {
			for j, raw := range s.set {
				if err := h.SetSnapshot([]byte(raw)); err != nil {
					t.Fatal(err)
				}
				if j == 0 {
					synctest.Wait()
				}
			}
			after(time.Second)
			var got []int
			for _, m := range b.take("snapshot") {
				got = append(got, m.N)
			}
			if !slices.Equal(got, s.want) {
				t.Errorf("step %d: snapshots %v, want %v", i, got, s.want)
			}
		}
		if string(h.Snapshot()) != `{"type":"snapshot","n":4,"time":5}` {
			t.Errorf("Snapshot() = %s", h.Snapshot())
		}
	})
}

// A client gets a snapshot right after hello: the full one when Options.Full
// gives one, else the latest periodic one; then only newer ones.
func TestSnapshotOnConnect(t *testing.T) {
	tests := []struct {
		name string
		full func() []byte
		want int
	}{
		{"latest periodic", nil, 1},
		{"full", func() []byte { return []byte(`{"type":"snapshot","n":100}`) }, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHub(t, hub.Options{Full: tt.full})
				if err := h.SetSnapshot([]byte(`{"type":"snapshot","n":1,"time":1}`)); err != nil {
					t.Fatal(err)
				}
				b := connect(t, h)
				b.read() // hello
				if m := b.read(); m.Type != "snapshot" || m.N != tt.want {
					t.Fatalf("after hello: %s, want snapshot %d", m.raw, tt.want)
				}
				b.readAll()
				after(time.Second)
				if ms := b.take(""); len(ms) != 0 {
					t.Errorf("then %d messages, want none: %v", len(ms), ms)
				}
			})
		})
	}
}

// A client that asked for deltas gets one when it has the snapshot it
// applies to, and the complete snapshot otherwise (after skipping one);
// either way it ends with the snapshot set. Other clients get every
// snapshot complete.
func TestSnapshotDeltas(t *testing.T) {
	snap := func(n int, s string) string {
		return `{"type":"snapshot","full":false,"n":` + strconv.Itoa(n) + `,"time":` + strconv.Itoa(n) + `,"s":` + s + `,"big":"` + strings.Repeat("x", 200) + `"}`
	}
	steps := [][]string{
		{snap(2, "[1,2,3]")},
		{snap(3, "[2,3,4]")},
		// 4 leaves at once (the leading edge); 5 and 6 come within the
		// client's frame interval after it, so 5 is skipped and 6 comes
		// complete.
		{snap(4, "[3,4,5]"), snap(5, "[4,5,6]"), snap(6, "[5,6,7]")},
		{snap(7, "[6,7,8]")},
	}
	tests := []struct {
		name   string
		opts   hub.ClientOptions
		hubOpt hub.Options
		want   []string // the message types after the greeting
	}{
		{"deltas", hub.ClientOptions{Deltas: true}, hub.Options{}, []string{"delta", "delta", "delta", "snapshot", "delta"}},
		{"old client", hub.ClientOptions{}, hub.Options{}, []string{"snapshot", "snapshot", "snapshot", "snapshot", "snapshot"}},
		{"deltas off", hub.ClientOptions{Deltas: true}, hub.Options{NoDelta: true}, []string{"snapshot", "snapshot", "snapshot", "snapshot", "snapshot"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt.hubOpt.FrameHz, tt.hubOpt.MaxFrameHz = 10, 10
				h := newHub(t, tt.hubOpt)
				if err := h.SetSnapshot([]byte(snap(1, "[0,1,2]"))); err != nil {
					t.Fatal(err)
				}
				b := connectWith(t, h, tt.opts)
				b.read() // hello
				have := b.read().Fields
				b.readAll()
				var got []string
				for i, set := range steps {
					for j, raw := range set {
						if err := h.SetSnapshot([]byte(raw)); err != nil {
							t.Fatal(err)
						}
						if j == 0 {
							synctest.Wait()
						}
					}
					after(time.Second)
					for _, m := range b.take("") {
						got = append(got, m.Type)
						if m.Type == "delta" {
							if m.Fields["base"] != have["version"] {
								t.Fatalf("step %d: delta on %v, the client has %v", i, m.Fields["base"], have["version"])
							}
							have = hub.ApplyDelta(have, m.Fields["patch"]).(map[string]any)
							have["version"] = m.Fields["version"]
						} else {
							have = m.Fields
						}
					}
					var want map[string]any
					_ = json.Unmarshal([]byte(set[len(set)-1]), &want)
					snap := maps.Clone(have)
					delete(snap, "version")
					if !reflect.DeepEqual(snap, want) {
						t.Fatalf("step %d: the client has %v, want %v", i, snap, want)
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("messages %v, want %v", got, tt.want)
				}
			})
		})
	}
}

// A filter selects the events of a client's tail; every set field must
// match.
func TestFilters(t *testing.T) {
	// Events of partition t/0 at offsets 0 to 5.
	events := []struct {
		typ    event.Type
		device string
		source string
	}{
		{event.Play, "tv", ""},
		{event.Pause, "mobile", "cmcd"},
		{event.Pause, "tv", "cmcd"},
		{event.Heartbeat, "tv", "beacon"},
		{event.Play, "desktop", "beacon"},
		{event.Stop, "tv", ""},
	}
	tests := []struct {
		name   string
		filter map[string]any
		want   []int64
	}{
		{"none", map[string]any{}, seq(0, 6)},
		{"type", map[string]any{"types": []string{"pause"}}, []int64{1, 2}},
		{"types", map[string]any{"types": []string{"play", "stop"}}, []int64{0, 4, 5}},
		{"type and device", map[string]any{"types": []string{"pause"}, "device": "tv"}, []int64{2}},
		{"source", map[string]any{"source": "beacon"}, []int64{3, 4}},
		{"unknown source", map[string]any{"source": "unknown"}, []int64{0, 5}},
		{"no match", map[string]any{"stream": "y"}, nil},
		{"stream, movie, user", map[string]any{"stream": "x", "movie_id": "m", "user_id": "u"}, seq(0, 6)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHub(t, hub.Options{TailRate: 200})
				b := connect(t, h)
				b.read() // hello
				b.readAll()
				b.send(t, map[string]any{"type": "filter", "filter": tt.filter})
				after(time.Second)
				if ok := b.take("filter_ok"); len(ok) != 1 {
					t.Fatalf("%d filter_ok replies, want 1", len(ok))
				}
				for i, e := range events {
					r := record(int64(i), e.typ, e.device)
					r.Event.Source = e.source
					h.Publish(r)
				}
				after(time.Second)
				frames := b.take("tail")
				if got := offsets(frames); !slices.Equal(got, tt.want) {
					t.Errorf("events %v, want %v", got, tt.want)
				}
				for _, f := range frames {
					if f.Skipped != 0 || f.Lost != 0 {
						t.Errorf("frame skipped %d, lost %d", f.Skipped, f.Lost)
					}
				}
			})
		})
	}
}

// Invalid messages are answered with an error and change nothing; the
// tenth closes the connection with 1008.
func TestInvalidMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, hub.Options{})
		b := connect(t, h)
		b.read() // hello
		bad := []string{`nope`, `{"type":"dance"}`, `{}`, `{"type":"filter","filter":{"types":["rewind"]}}`,
			`{"type":"filter","filter":{"source":"browser"}}`, `{"type":"filter","filter":{"source":"Sim"}}`,
			`{"type":"filter","filter":{"source":"` + strings.Repeat("s", 300) + `"}}`,
			`{"type":"resume","positions":[{"topic":"","partition":0,"offset":1}]}`}
		for _, bad := range bad {
			if err := b.conn.WriteMessage(websocket.TextMessage, []byte(bad)); err != nil {
				t.Fatal(err)
			}
			if m := b.read(); m.Type != "error" || m.Code != "bad_message" {
				t.Fatalf("%s: reply %s, want a bad_message error", bad, m.raw)
			}
		}
		for range 10 - len(bad) {
			_ = b.conn.WriteMessage(websocket.TextMessage, []byte(`{}`))
		}
		b.readUntilClosed(websocket.ClosePolicyViolation)
	})
}

// A client that accepts nothing is closed after WriteTimeout (its close
// frame gets another second), counted as a write timeout, while another
// client gets every frame on time.
func TestSlowClientDropped(t *testing.T) {
	tests := []struct {
		name         string
		writeTimeout time.Duration
		want         time.Duration
	}{
		{"default", 0, 10 * time.Second},
		{"2s", 2 * time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				reg := prometheus.NewRegistry()
				h := newHub(t, hub.Options{WriteTimeout: tt.writeTimeout, Registerer: reg})
				stuck := connect(t, h)
				stuck.read() // hello, then nothing
				good := connect(t, h)
				good.read() // hello
				good.readAll()
				// Ticks come every 100 ms: let each take the same time.
				start := time.Now()
				var gone time.Duration
				for i := 0; time.Since(start) < tt.want+5*time.Second; i++ {
					publish(h, i, 1)
					after(100 * time.Millisecond)
					if gone == 0 && h.Clients() == 1 {
						gone = time.Since(start)
					}
				}
				// The stuck client's first frame blocks at its first tick,
				// within the first 100 ms.
				if gone < tt.want || gone > tt.want+time.Second+200*time.Millisecond {
					t.Errorf("stuck client dropped after %s, want %s + its close frame's second", gone, tt.want)
				}
				frames := good.take("tail")
				for i := 1; i < len(frames); i++ {
					if d := frames[i].at.Sub(frames[i-1].at); d != 100*time.Millisecond {
						t.Fatalf("healthy client: %s between frames %d and %d", d, i-1, i)
					}
				}
				if got := offsets(frames); !slices.Equal(got, seq(0, int64(len(got)))) || len(got) < int((tt.want+5*time.Second)/(100*time.Millisecond))-1 {
					t.Errorf("healthy client got events %v", got)
				}
				if n := counterValue(t, reg, "playpulse_fanout_disconnects_total", "write_timeout"); n != 1 {
					t.Errorf("%v write-timeout disconnects, want 1", n)
				}
			})
		})
	}
}

// counterValue returns the counter of the family name with the given
// label value.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

// A client message over MaxClientMessage closes the connection with 1009.
func TestOversizedMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, hub.Options{})
		b := connect(t, h)
		b.read() // hello
		msg := `{"type":"filter","x":"` + strings.Repeat("a", hub.MaxClientMessage) + `"}`
		go func() { _ = b.conn.WriteMessage(websocket.TextMessage, []byte(msg)) }()
		b.readUntilClosed(websocket.CloseMessageTooBig)
	})
}

// Twenty messages a second, in bursts of twenty: the rest are answered
// with rate_limited (the newest reply always reaches the client), and the
// bucket refills with time.
func TestMessageRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, hub.Options{})
		b := connect(t, h)
		b.read() // hello
		b.readAll()
		for range 25 {
			b.send(t, map[string]any{"type": "filter"})
		}
		after(0)
		ms := b.take("")
		if len(ms) == 0 || ms[len(ms)-1].Type != "error" || ms[len(ms)-1].Code != "rate_limited" {
			t.Fatalf("replies %v, want the last rate_limited", ms)
		}
		after(time.Second / 20)
		b.send(t, map[string]any{"type": "filter"})
		after(0)
		if ms := b.take(""); len(ms) != 1 || ms[0].Type != "filter_ok" {
			t.Fatalf("after 50 ms: %v, want filter_ok", ms)
		}
	})
}

// resume sends a resume request and reads up to resume_ok.
func (b *browser) resume(t *testing.T, positions ...hub.Position) []message {
	t.Helper()
	b.send(t, map[string]any{"type": "resume", "positions": positions})
	var out []message
	for {
		m := b.read()
		out = append(out, m)
		if m.Type == "resume_ok" {
			return out
		}
	}
}

// recordAt is a heartbeat of partition t/part at offset off, written at ts.
func recordAt(part int32, off int64, ts time.Time) *consume.Record {
	r := record(off, event.Heartbeat, "tv")
	r.Partition, r.Timestamp = part, ts
	return r
}

// A client that saw offsets up to 4 of partition 0 and up to 1 of
// partition 1 gets exactly the later events received before it connected,
// oldest first, then resume_ok; the live tail carries only newer events.
func TestResumeReplaysExactlyTheMissedEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, hub.Options{})
		h.PartitionStarted("t", 0, 0)
		h.PartitionStarted("t", 1, 0)
		for off := range int64(10) {
			h.Publish(recordAt(0, off, time.Now()))
			h.Publish(recordAt(1, off, time.Now()))
		}
		b := connect(t, h)
		b.read()                               // hello
		h.Publish(recordAt(0, 10, time.Now())) // after connecting: live
		after(time.Second)                     // its frame waits for the browser
		ms := b.resume(t, hub.Position{Topic: "t", Partition: 0, Offset: 4}, hub.Position{Topic: "t", Partition: 1, Offset: 1})
		var replayed, live []string
		for _, m := range ms {
			for _, e := range m.Events {
				k := fmt.Sprint(e.Partition, "/", e.Offset)
				if m.Replay {
					replayed = append(replayed, k)
				} else {
					live = append(live, k)
				}
			}
			if m.Type == "gap" {
				t.Errorf("unexpected gap %s", m.raw)
			}
		}
		var want []string
		for off := 2; off < 10; off++ {
			if off > 4 {
				want = append(want, fmt.Sprint("0/", off))
			}
			want = append(want, fmt.Sprint("1/", off))
		}
		if !slices.Equal(replayed, want) {
			t.Errorf("replayed %v, want %v", replayed, want)
		}
		if ok := ms[len(ms)-1]; ok.Replayed != len(want) || ok.Gaps != 0 {
			t.Errorf("resume_ok %s", ok.raw)
		}
		if !slices.Equal(live, []string{"0/10"}) {
			t.Errorf("live tail %v, want 0/10", live)
		}
	})
}

// Missed events the ring no longer holds, or older than ResumeWindow, or
// of a partition the hub never saw, are gaps; a second resume is refused.
func TestResumeGaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, hub.Options{RingSize: 8, ResumeWindow: time.Minute})
		h.PartitionStarted("t", 0, 100)
		for off := int64(100); off < 110; off++ { // ring of 8: 100 and 101 are gone
			h.Publish(recordAt(0, off, time.Now()))
		}
		h.Publish(recordAt(1, 5, time.Now().Add(-2*time.Minute))) // older than the window; evicts 102
		b := connect(t, h)
		b.read() // hello
		ms := b.resume(t, hub.Position{Topic: "t", Partition: 0, Offset: 99}, hub.Position{Topic: "t", Partition: 1, Offset: 3},
			hub.Position{Topic: "other", Partition: 0, Offset: 7})
		gaps := map[string]string{}
		replayed := 0
		for _, m := range ms {
			if m.Type == "gap" {
				to := "null"
				if m.To != nil {
					to = fmt.Sprint(*m.To)
				}
				gaps[fmt.Sprint(m.Topic, "/", m.Partition)] = fmt.Sprint(m.From, "-", to, " ", m.Reason)
			}
			if m.Replay {
				replayed += len(m.Events)
			}
		}
		want := map[string]string{"t/0": "100-102 expired", "t/1": "4-5 expired", "other/0": "8-null unknown"}
		if !maps.Equal(gaps, want) {
			t.Errorf("gaps %v, want %v", gaps, want)
		}
		if replayed != 7 {
			t.Errorf("replayed %d, want 103..109", replayed)
		}
		b.send(t, map[string]any{"type": "resume", "positions": []any{}})
		if m := b.read(); m.Type != "error" || m.Code != "bad_message" {
			t.Errorf("second resume: %s, want an error", m.raw)
		}
	})
}

// A resume replays at most ten times TailRate events, the newest; the
// older ones are a too_many gap.
func TestResumeTooMany(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, hub.Options{TailRate: 10})
		for off := range int64(150) {
			h.Publish(recordAt(0, off, time.Now()))
		}
		b := connect(t, h)
		b.read() // hello
		var gaps []string
		var replayed []int64
		for _, m := range b.resume(t, hub.Position{Topic: "t", Partition: 0, Offset: 9}) {
			if m.Type == "gap" {
				gaps = append(gaps, fmt.Sprint(m.From, "-", *m.To, " ", m.Reason))
			}
			if m.Replay {
				replayed = append(replayed, offsets([]message{m})...)
			}
		}
		if !slices.Equal(replayed, seq(50, 150)) || !slices.Equal(gaps, []string{"10-49 too_many"}) {
			t.Errorf("replayed %v, gaps %v; want 50..149 and 10-49 too_many", replayed, gaps)
		}
	})
}

// The filter of a resume request applies to the replay as to the live
// tail, and filter_ok states it. Sources: "unknown" is no source field.
func TestResumeWithFilter(t *testing.T) {
	sources := []string{event.SourceSim, event.SourceCMCD, event.SourceBeacon, "", event.SourceCMCD}
	devices := []string{"tv", "tv", "mobile", "tv", "mobile"}
	for _, tc := range []struct {
		name   string
		filter map[string]any
		want   []int64 // offsets modulo len(sources)
	}{
		{"cmcd", map[string]any{"source": "cmcd"}, []int64{1, 4}},
		{"sim", map[string]any{"source": "sim"}, []int64{0}},
		{"beacon", map[string]any{"source": "beacon"}, []int64{2}},
		{"unknown is no source field", map[string]any{"source": "unknown"}, []int64{3}},
		{"with a device", map[string]any{"source": "cmcd", "device": "mobile"}, []int64{4}},
		{"none", map[string]any{}, []int64{0, 1, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHub(t, hub.Options{})
				publish := func(off0 int64) {
					for i, src := range sources {
						r := record(off0+int64(i), event.Heartbeat, devices[i])
						r.Event.Source = src
						h.Publish(r)
					}
				}
				h.PartitionStarted("t", 0, 0)
				publish(0) // before connecting: reached by the resume
				b := connect(t, h)
				b.read() // hello
				b.send(t, map[string]any{"type": "resume", "filter": tc.filter, "positions": []hub.Position{{Topic: "t", Partition: 0, Offset: -1}}})
				var ok *message
				var replay []int64
				// filter_ok may come before, within or after the replay.
				for done := false; !done || ok == nil; {
					m := b.read()
					switch m.Type {
					case "filter_ok":
						ok = &m
					case "tail":
						replay = append(replay, offsets([]message{m})...)
					case "resume_ok":
						done = true
					}
				}
				if ok == nil || fmt.Sprint(ok.Fields["filter"]) != fmt.Sprint(tc.filter) {
					t.Errorf("filter_ok %v, want the filter %v", ok, tc.filter)
				}
				b.readAll()
				publish(int64(len(sources))) // live
				after(time.Second)
				var live []int64
				for _, o := range offsets(b.take("tail")) {
					live = append(live, o-int64(len(sources)))
				}
				if !slices.Equal(replay, tc.want) || !slices.Equal(live, tc.want) {
					t.Errorf("replayed %v, live %v; want %v", replay, live, tc.want)
				}
			})
		})
	}
}

// Narrow lists each user and title filtered on once, and forgets a
// client's filter when it changes it.
func TestNarrow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub(t, hub.Options{TailRate: 200})
		var bs []*browser
		for _, f := range []map[string]any{{"user_id": "u1"}, {"user_id": "u1", "movie_id": "m2"}, {"stream": "s"}} {
			b := connect(t, h)
			b.read() // hello
			b.send(t, map[string]any{"type": "filter", "filter": f})
			bs = append(bs, b)
		}
		after(time.Second)
		users, movies := h.Narrow()
		if !slices.Equal(users, []string{"u1"}) || !slices.Equal(movies, []string{"m2"}) {
			t.Errorf("narrow = %v, %v; want [u1], [m2]", users, movies)
		}
		bs[1].send(t, map[string]any{"type": "filter", "filter": map[string]any{}})
		after(time.Second)
		if users, movies := h.Narrow(); !slices.Equal(users, []string{"u1"}) || len(movies) != 0 {
			t.Errorf("after a filter change: %v, %v; want [u1], []", users, movies)
		}
	})
}
