// Package hub delivers the live event tail and the shared snapshots to
// WebSocket clients.
//
// Events go into one bounded ring, encoded once. Each client has its own
// writer goroutine that, at most FrameHz times a second, takes the newest
// events matching its filter from the ring, up to its share of TailRate, and
// counts the rest as skipped. So the cost per client does not grow with the
// ingest rate, a slow client only falls behind in the ring (and is told how
// much it skipped), and a stuck client is disconnected after WriteTimeout
// without delaying anyone else.
package hub

import (
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
)

// Options configure a Hub.
type Options struct {
	TailRate     int           // events per second per client
	FrameHz      int           // tail frames per second per client
	WriteTimeout time.Duration // a client that accepts nothing this long is dropped
	RingSize     int           // events kept for the tail; default 65536
	Log          *slog.Logger
	Registerer   prometheus.Registerer
}

type item struct {
	seq                         uint64
	typ                         event.Type
	stream, movie, user, device string
	json                        []byte
}

// Hub is safe for concurrent use.
type Hub struct {
	opts Options
	m    *metrics

	mu   sync.RWMutex
	ring []item
	next uint64 // seq of the next item; items [next-len(ring), next) are held

	snap atomic.Pointer[snapshot]

	cmu     sync.Mutex
	clients map[*client]struct{}
	closed  bool
}

type snapshot struct {
	version uint64
	msg     *websocket.PreparedMessage
	raw     []byte
}

// New returns a Hub.
func New(opts Options) *Hub {
	if opts.RingSize == 0 {
		opts.RingSize = 1 << 16
	}
	return &Hub{opts: opts, m: newMetrics(opts.Registerer), ring: make([]item, opts.RingSize), clients: map[*client]struct{}{}}
}

// Publish adds one event to the tail. It is called by every partition's
// consumer goroutine.
func (h *Hub) Publish(r *consume.Record) {
	b := make([]byte, 0, 512)
	b = append(b, `{"topic":`...)
	b = event.AppendString(b, r.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, r.Offset, 10)
	b = append(b, `,"kafka_ts":`...)
	b = strconv.AppendInt(b, r.Timestamp.UnixMilli(), 10)
	b = append(b, `,"event":`...)
	b = r.Event.AppendJSON(b)
	b = append(b, '}')
	e := &r.Event
	h.mu.Lock()
	it := &h.ring[h.next%uint64(len(h.ring))]
	*it = item{seq: h.next, typ: e.Type, stream: e.Stream, movie: e.MovieID, user: e.UserID, device: e.Device, json: b}
	h.next++
	h.mu.Unlock()
}

// SetSnapshot replaces the snapshot that every client receives next; the
// encoding is prepared once and shared by all clients.
func (h *Hub) SetSnapshot(raw []byte) error {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, raw)
	if err != nil {
		return err
	}
	var v uint64 = 1
	if old := h.snap.Load(); old != nil {
		v = old.version + 1
	}
	h.snap.Store(&snapshot{version: v, msg: pm, raw: raw})
	return nil
}

// Snapshot returns the last snapshot's JSON, or nil.
func (h *Hub) Snapshot() []byte {
	if s := h.snap.Load(); s != nil {
		return s.raw
	}
	return nil
}

// Clients is the number of connected clients.
func (h *Hub) Clients() int {
	h.cmu.Lock()
	defer h.cmu.Unlock()
	return len(h.clients)
}

// collect appends to dst the newest events after *cursor that match f, at
// most limit of them, oldest first, advances the cursor, and returns how many
// matching events were left out.
func (h *Hub) collect(dst [][]byte, cursor *uint64, f *compiled, limit int) ([][]byte, int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	from, to := *cursor, h.next
	if oldest := to - min(to, uint64(len(h.ring))); from < oldest {
		from = oldest // the ring moved on; those events are gone for this client
	}
	*cursor = to
	if from >= to {
		return dst, 0
	}
	n := len(h.ring)
	if f.all {
		matching := int(to - from)
		take := min(limit, matching)
		for s := to - uint64(take); s < to; s++ {
			dst = append(dst, h.ring[s%uint64(n)].json)
		}
		return dst, matching - take
	}
	// Walk newest to oldest so the newest matching events are kept, then
	// reverse that part to send them oldest first.
	start := len(dst)
	matching := 0
	for s := to; s > from; s-- {
		it := &h.ring[(s-1)%uint64(n)]
		if !f.match(it) {
			continue
		}
		matching++
		if matching <= limit {
			dst = append(dst, it.json)
		}
	}
	for i, j := start, len(dst)-1; i < j; i, j = i+1, j-1 {
		dst[i], dst[j] = dst[j], dst[i]
	}
	return dst, matching - (len(dst) - start)
}

// head returns the seq the next event will get.
func (h *Hub) head() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.next
}

// Close disconnects every client with 1001 (going away) and refuses new ones.
func (h *Hub) Close() {
	h.cmu.Lock()
	h.closed = true
	cs := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		cs = append(cs, c)
	}
	h.cmu.Unlock()
	for _, c := range cs {
		c.shutdown(websocket.CloseGoingAway, "server shutting down")
	}
	for _, c := range cs {
		<-c.done
	}
}
