// Package hub delivers the live event tail and the shared snapshots to
// WebSocket clients.
//
// Events go into one bounded ring, encoded once. Each client has its own
// writer goroutine that, when its frame is due, takes the newest events
// matching its filter from the ring, as many as its TailRate allows, and
// counts the rest as skipped. A frame is due as soon as there is something
// new (the leading edge) unless the client had one less than a frame
// interval ago; the interval adapts to the number of clients, from
// 1/MaxFrameHz while few are connected down to 1/FrameHz, so that all
// clients together get about FrameBudget frames a second. So an event
// reaches a lone dashboard at once, the cost per client does not grow with
// the ingest rate, a slow client only falls behind in the ring (and is
// told how much it skipped or lost), and a stuck client is disconnected
// after WriteTimeout without delaying anyone else.
//
// The ring also serves resume: a reconnecting client names the last offset
// it saw per partition and gets the events it missed, or an explicit gap.
package hub

import (
	"bytes"
	"hash/maphash"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
)

// Options configure a Hub. The zero Options give a working hub: every
// field left zero takes the default it documents (the fan-out's own
// defaults, FANOUT_* in services/fanout/pkg/config).
type Options struct {
	// TailRate is the most live-tail events a second per client; default
	// 50, over three times what the dashboard draws (15 rows a second).
	TailRate int
	// FrameHz is the frame rate every client keeps however many are
	// connected (the floor), and sets the largest burst: TailRate/FrameHz
	// events in one frame; default 10.
	FrameHz int
	// MaxFrameHz caps the frames a second of one client while few are
	// connected; default 200 (an event waits at most 5 ms for its frame).
	MaxFrameHz int
	// FrameBudget is the frames a second the hub aims to write to all
	// clients together: each client gets FrameBudget/clients frames a
	// second, within [FrameHz, MaxFrameHz]; default 20,000 (about a fifth
	// of a core on the machine of docs/benchmarks.md).
	FrameBudget  int
	SnapshotHz   int           // snapshots per second, announced in hello; default 4
	WriteTimeout time.Duration // a client that accepts nothing this long is dropped; default 10 s
	RingSize     int           // events kept for the tail and resume; default 65536
	RingBytes    int           // bytes of encoded events kept at most; default 64 MiB
	ResumeWindow time.Duration // by record timestamp; default 60 s
	// NoDelta sends every client the complete periodic snapshot; by
	// default (false) the clients that ask for deltas get only what
	// changed since the snapshot they had (delta.go).
	NoDelta bool
	// Full returns the full snapshot (15 minutes of series) sent on connect;
	// it is called at most once a second and shared. Nil (the default): the
	// latest periodic snapshot is sent instead.
	Full       func() []byte
	Replica    string                // announced in hello; default the host name
	Now        func() time.Time      // the clock; default time.Now
	Log        *slog.Logger          // default: discard
	Registerer prometheus.Registerer // where the hub's metrics go; default: nowhere
}

type item struct {
	seq    uint64
	offset int64
	ts     int64 // Kafka record timestamp, Unix ms
	pid    uint32
	typ    event.Type
	source uint8 // sourceOf the event
	// Filter fields, hashed: the ring keeps no strings alive.
	stream, movie, user, device uint64
	json                        []byte
}

var seed = maphash.MakeSeed()

func hash(s string) uint64 { return maphash.String(seed, s) }

type topicPartition struct {
	topic     string
	partition int32
}

// Hub is safe for concurrent use.
//
// Lock order: cmu before mu (Serve reads a new client's start under
// cmu); no other two hub locks are held together (the clock builds a
// phase's shared frame before it takes tmu to publish it). mu is a leaf, and so
// is a client's batchConn.mu. fmu is held while Options.Full runs, which
// takes the fan-out's consumer and aggregator locks, one after the other.
// No socket write happens under a hub lock, so a slow client holds none
// of them. The goroutines and what each owns: docs/architecture.md,
// "Concurrency".
type Hub struct {
	opts Options // read-only after New
	m    *metrics

	// mu guards the ring: writers are Publish, PublishBatch and
	// PartitionStarted; readers collect (client writers, the clock),
	// replay and head.
	mu    sync.RWMutex
	ring  []item // guarded by mu
	next  uint64 // guarded by mu; seq of the next item
	first uint64 // guarded by mu; seq of the oldest item held: items [first, next) are held
	bytes int    // guarded by mu; encoded bytes held
	// Partitions by small id, guarded by mu. covered[pid]: every event of
	// the partition with a greater offset that arrived is still in the
	// ring.
	pids    map[topicPartition]uint32
	parts   []topicPartition
	covered []int64

	snap atomic.Pointer[snapshot] // the latest periodic snapshot; replaced, never changed

	fmu      sync.Mutex                 // guards the full snapshot cache, held while Options.Full runs
	full     *websocket.PreparedMessage // guarded by fmu
	fullRaw  []byte                     // guarded by fmu
	fullTime time.Time                  // guarded by fmu

	cmu     sync.Mutex
	clients map[*client]struct{} // guarded by cmu
	closed  bool                 // guarded by cmu; Serve refuses clients once set

	// One frame clock, in phases: each client belongs to one phase, and
	// the clock ticks the phases in turn. A phase ticks when something
	// arrived since its last tick (events, or a snapshot), at once if its
	// last tick is 1/MaxFrameHz old (the leading edge), else when it is.
	// After each tick the clock waits the phase's share of FrameBudget
	// (its clients/FrameBudget, at most 1/(FrameHz × phases)) before the
	// next, so a publish reaches a few clients at once, and the writes to
	// many are spread over the interval: waking every client on the same
	// tick made the writes one burst that held both cores for
	// milliseconds, delaying the last clients of the burst and the broker
	// alike. A phase's tick channel is closed and replaced only when there
	// is something new to look at, so idle clients never wake, and an idle
	// clock sleeps until a publish wakes it.
	tmu      sync.Mutex    // guards each phase's tick, tickSeq and ping
	phases   []*phase      // fixed after New
	wake     chan struct{} // buffered 1: a publish or a snapshot while the clock sleeps
	sleeping atomic.Bool   // set by the clock before it waits for wake
	stop     chan struct{}
	stopOnce sync.Once
	clockWG  sync.WaitGroup
}

// phaseSlot is the target time between two phases' ticks at the floor
// rate, FrameHz.
const phaseSlot = 5 * time.Millisecond

// phase is one group of clients that get their frames on the same tick.
type phase struct {
	shared  atomic.Pointer[sharedFrame] // stored by the clock, before it closes tick
	tick    chan struct{}               // guarded by Hub.tmu
	tickSeq uint64                      // guarded by Hub.tmu
	ping    chan struct{}               // guarded by Hub.tmu
	clients atomic.Int64                // changed under Hub.cmu; read by the clock
	// Used by the clock only.
	nextPing time.Time
	lastHead uint64
	lastSnap uint64
	last     time.Time // the phase's last tick
	tokens   bucket    // tail events the next shared frame may carry: TailRate a second, at most the burst
}

// phaseCount spreads the floor's frame interval into slots of about
// phaseSlot.
func phaseCount(frameHz int) int {
	return max(1, int((time.Second/time.Duration(frameHz)+phaseSlot/2)/phaseSlot))
}

// snapshot is one periodic snapshot as the clients get it: complete, or
// as a delta from the version before for the clients that have that one.
type snapshot struct {
	version uint64
	msg     *websocket.PreparedMessage // complete, with its version
	delta   *websocket.PreparedMessage // from version-1; nil when none is smaller
	raw     []byte                     // as /api/snapshot returns it
	tree    any                        // raw decoded, to diff the next one against; nil without deltas
}

// New returns a Hub.
func New(opts Options) *Hub {
	if opts.TailRate == 0 {
		opts.TailRate = 50
	}
	if opts.FrameHz == 0 {
		opts.FrameHz = 10
	}
	if opts.MaxFrameHz == 0 {
		opts.MaxFrameHz = 200
	}
	opts.MaxFrameHz = max(opts.MaxFrameHz, opts.FrameHz)
	if opts.FrameBudget == 0 {
		opts.FrameBudget = 20000
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.RingSize == 0 {
		opts.RingSize = 1 << 16
	}
	if opts.RingBytes == 0 {
		opts.RingBytes = 64 << 20
	}
	if opts.ResumeWindow == 0 {
		opts.ResumeWindow = time.Minute
	}
	if opts.SnapshotHz == 0 {
		opts.SnapshotHz = 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Replica == "" {
		opts.Replica, _ = os.Hostname()
	}
	h := &Hub{opts: opts, ring: make([]item, opts.RingSize), clients: map[*client]struct{}{}, pids: map[topicPartition]uint32{},
		stop: make(chan struct{}), wake: make(chan struct{}, 1)}
	for range phaseCount(opts.FrameHz) {
		p := &phase{tick: make(chan struct{}), ping: make(chan struct{}), nextPing: time.Now().Add(pingEvery),
			tokens: newBucket(float64(opts.TailRate), opts.burst(), time.Now())}
		p.shared.Store(&sharedFrame{}) // the ring is empty: from = to = 0
		h.phases = append(h.phases, p)
	}
	h.m = newMetrics(opts.Registerer, h)
	h.clockWG.Add(1)
	go h.clock()
	return h
}

// sharedFrame is the tail frame of one tick for every client without a
// filter that was served up to the previous tick: encoded once.
type sharedFrame struct {
	from, to uint64 // ring positions the frame covers
	pm       *websocket.PreparedMessage
	n        int // events in it
	skipped  int
	lost     int
}

// burst is the most tail events one frame carries: a frame's share at the
// floor rate.
func (o *Options) burst() float64 { return float64(max(1, o.TailRate/o.FrameHz)) }

// buildShared encodes the newest events of [from, to), at most limit, as
// every unfiltered client would.
func (h *Hub) buildShared(from, to uint64, limit int) *sharedFrame {
	bp := frameBuffers.Get().(*[]byte)
	defer frameBuffers.Put(bp)
	buf := (*bp)[:0]
	n := 0
	wall := time.Now().UnixMilli()
	cursor := from
	all := compiled{all: true}
	var events []byte
	events, skipped, lost := h.collect(buf, &n, &cursor, to, &all, limit, nil, func(ts int64) { h.m.latency.Observe(float64(wall-ts) / 1000) })
	sf := &sharedFrame{from: from, to: cursor, n: n, skipped: skipped, lost: lost}
	if n > 0 || skipped > 0 || lost > 0 {
		msg := appendTailHead(make([]byte, 0, len(events)+64), skipped, lost)
		msg = appendTailEnd(append(msg, events...))
		sf.pm, _ = websocket.NewPreparedMessage(websocket.TextMessage, msg)
	}
	*bp = events
	return sf
}

// clock ticks the phases that have something new, in turn, each as soon
// as its interval allows, paced by the frame budget; and sends the pings
// (spread over phases like frames).
func (h *Hub) clock() {
	defer h.clockWG.Done()
	o := &h.opts
	minGap := time.Second / time.Duration(o.MaxFrameHz)
	maxSlot := time.Second / time.Duration(o.FrameHz*len(h.phases))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	k := 0              // the phase considered first: round robin
	var paced time.Time // no phase ticks before: the last ticks' share of the budget
	for {
		now := time.Now()
		wait := h.pings(now)
		head, snap := h.head(), h.snapVersion()
		pending := false
		if d := paced.Sub(now); d > 100*time.Microsecond {
			pending, wait = true, min(wait, d)
		} else {
			for i := range h.phases {
				j := (k + i) % len(h.phases)
				p := h.phases[j]
				n := p.clients.Load()
				if n == 0 {
					// Nothing to send: a client that joins starts from here.
					p.lastHead, p.lastSnap = head, snap
					continue
				}
				d, ok := h.due(p, now, head, snap, minGap)
				if !ok {
					continue
				}
				pending = true
				if d > 0 {
					wait = min(wait, d)
					continue
				}
				h.tickPhase(p, now, head, snap)
				k = j + 1
				// Slots too short to sleep accumulate until one is worth it.
				paced = later(paced, now).Add(min(maxSlot, time.Duration(n)*time.Second/time.Duration(o.FrameBudget)))
				wait = 0
				break
			}
		}
		if wait == 0 {
			continue
		}
		if !pending {
			// Sleep until a publish, unless one came since head was read.
			h.sleeping.Store(true)
			if h.head() != head || h.snapVersion() != snap {
				h.sleeping.Store(false)
				continue
			}
		}
		timer.Reset(wait)
		select {
		case <-h.stop:
			return
		case <-h.wake:
		case <-timer.C:
		}
		h.sleeping.Store(false)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// due says whether phase p has something new since its last tick and how
// long until it may tick: 1/MaxFrameHz after its last tick and, when only
// events are new, once its token bucket holds one.
func (h *Hub) due(p *phase, now time.Time, head, snap uint64, minGap time.Duration) (time.Duration, bool) {
	newEvents, newSnap := head != p.lastHead, snap != p.lastSnap
	if !newEvents && !newSnap {
		return 0, false
	}
	at := p.last.Add(minGap)
	if !newSnap {
		p.tokens.refill(now)
		at = later(at, now.Add(p.tokens.untilOne()))
	}
	return max(0, at.Sub(now)), true
}

// tickPhase builds phase p's shared frame and wakes its clients.
func (h *Hub) tickPhase(p *phase, now time.Time, head, snap uint64) {
	p.tokens.refill(now)
	sf := &sharedFrame{from: p.lastHead, to: p.lastHead}
	if limit := int(p.tokens.tokens); head != p.lastHead && limit > 0 {
		sf = h.buildShared(p.lastHead, head, limit)
		p.tokens.tokens -= float64(sf.n)
		p.lastHead = sf.to
	}
	p.lastSnap, p.last = snap, now
	h.tmu.Lock()
	p.shared.Store(sf)
	close(p.tick)
	p.tick = make(chan struct{})
	p.tickSeq++
	h.tmu.Unlock()
}

// pings wakes the phases whose ping is due and returns the time until the
// next one.
func (h *Hub) pings(now time.Time) time.Duration {
	next := pingEvery
	h.tmu.Lock()
	defer h.tmu.Unlock()
	for _, p := range h.phases {
		if !now.Before(p.nextPing) {
			p.nextPing = now.Add(pingEvery)
			close(p.ping)
			p.ping = make(chan struct{})
		}
		next = min(next, p.nextPing.Sub(now))
	}
	return next
}

// poke wakes the clock if it sleeps.
func (h *Hub) poke() {
	if h.sleeping.Load() {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

func (h *Hub) snapVersion() uint64 {
	if s := h.snap.Load(); s != nil {
		return s.version
	}
	return 0
}

// wait returns the channels closed by the next tick of phase p and the
// next ping, and the sequence number of p's last tick.
func (h *Hub) wait(p *phase) (tick, ping <-chan struct{}, seq uint64) {
	h.tmu.Lock()
	defer h.tmu.Unlock()
	return p.tick, p.ping, p.tickSeq
}

// pid returns the id of a partition; the caller holds mu for writing.
func (h *Hub) pid(topic string, partition int32) uint32 {
	tp := topicPartition{topic, partition}
	id, ok := h.pids[tp]
	if !ok {
		id = uint32(len(h.parts))
		h.pids[tp] = id
		h.parts = append(h.parts, tp)
		h.covered = append(h.covered, -1<<62) // unknown until the first record or PartitionStarted
	}
	return id
}

// PartitionStarted tells the hub that consumption of a partition starts at
// offset: records before it were never held, so a resume from before it
// gets a gap.
func (h *Hub) PartitionStarted(topic string, partition int32, offset int64) {
	h.mu.Lock()
	id := h.pid(topic, partition)
	h.covered[id] = max(h.covered[id], offset-1)
	h.mu.Unlock()
}

// Publish adds one event to the tail. It is called by every partition's
// consumer goroutine. The event is the record value as written by the
// producer (already validated), or re-encoded when the record has none.
func (h *Hub) Publish(r *consume.Record) {
	it := encode(r)
	h.mu.Lock()
	h.insert(r, it)
	h.mu.Unlock()
	h.poke()
}

// PublishBatch is Publish for records in order: encoded outside the lock,
// inserted under one lock.
func (h *Hub) PublishBatch(rs []consume.Record) {
	its := make([]item, len(rs))
	for i := range rs {
		its[i] = encode(&rs[i])
	}
	h.mu.Lock()
	for i := range rs {
		h.insert(&rs[i], its[i])
	}
	h.mu.Unlock()
	h.poke()
}

func encode(r *consume.Record) item {
	n := len(r.Value)
	if n == 0 {
		n = 512
	}
	b := make([]byte, 0, n+96+len(r.Topic))
	b = append(b, `{"topic":`...)
	b = event.AppendString(b, r.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, r.Offset, 10)
	b = append(b, `,"kafka_ts":`...)
	ts := r.Timestamp.UnixMilli()
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"event":`...)
	if len(r.Value) > 0 {
		b = append(b, r.Value...)
	} else {
		b = r.Event.AppendJSON(b)
	}
	b = append(b, '}')
	e := &r.Event
	return item{offset: r.Offset, ts: ts, typ: e.Type, source: sourceOf(e.Source), stream: hash(e.Stream), movie: hash(e.MovieID), user: hash(e.UserID), device: hash(e.Device), json: b}
}

// insert puts an encoded item in the ring; the caller holds mu.
func (h *Hub) insert(r *consume.Record, it item) {
	size := uint64(len(h.ring))
	it.pid = h.pid(r.Topic, r.Partition)
	if h.covered[it.pid] == -1<<62 {
		h.covered[it.pid] = r.Offset - 1
	}
	// Make room: the slot of the new item, and bytes over the budget.
	for h.first < h.next && (h.next-h.first >= size || h.bytes+len(it.json) > h.opts.RingBytes) {
		old := &h.ring[h.first%size]
		h.covered[old.pid] = max(h.covered[old.pid], old.offset)
		h.bytes -= len(old.json)
		old.json = nil
		h.first++
	}
	it.seq = h.next
	h.ring[h.next%size] = it
	h.bytes += len(it.json)
	h.next++
}

// SetSnapshot replaces the snapshot that every client receives next; the
// encodings, complete and as a delta from the previous one, are prepared
// once and shared by all clients. A snapshot equal to the previous one but
// for its "time" is not sent again. It is called from one goroutine.
func (h *Hub) SetSnapshot(raw []byte) error {
	old := h.snap.Load()
	if old != nil && sameButTime(old.raw, raw) {
		return nil
	}
	var v uint64 = 1
	if old != nil {
		v = old.version + 1
	}
	complete := withVersion(raw, v)
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, complete)
	if err != nil {
		return err
	}
	s := &snapshot{version: v, msg: pm, raw: raw}
	if !h.opts.NoDelta {
		s.tree, _ = decode(raw)
		if old != nil && old.tree != nil && s.tree != nil {
			// A delta no smaller than the snapshot is not worth its rule.
			if d := deltaMessage(old.version, old.tree, s.tree); d != nil && len(d) < len(complete) {
				if s.delta, err = websocket.NewPreparedMessage(websocket.TextMessage, d); err != nil {
					return err
				}
			}
		}
	}
	h.snap.Store(s)
	h.poke()
	return nil
}

// sameButTime compares two snapshots after their "time" field.
func sameButTime(a, b []byte) bool {
	key := []byte(`"time":`)
	i, j := bytes.Index(a, key), bytes.Index(b, key)
	if i < 0 || j < 0 || !bytes.Equal(a[:i], b[:j]) {
		return false
	}
	skip := func(s []byte) []byte {
		s = s[len(key):]
		for len(s) > 0 && s[0] >= '0' && s[0] <= '9' {
			s = s[1:]
		}
		return s
	}
	return bytes.Equal(skip(a[i:]), skip(b[j:]))
}

// Snapshot returns the last snapshot's JSON, or nil.
func (h *Hub) Snapshot() []byte {
	if s := h.snap.Load(); s != nil {
		return s.raw
	}
	return nil
}

// FullSnapshot returns the full snapshot (computed at most once a second)
// as JSON and as a prepared message, or nil when there is none.
func (h *Hub) FullSnapshot() ([]byte, *websocket.PreparedMessage) {
	if h.opts.Full == nil {
		if s := h.snap.Load(); s != nil {
			return s.raw, s.msg
		}
		return nil, nil
	}
	h.fmu.Lock()
	defer h.fmu.Unlock()
	now := time.Now()
	if h.full == nil || now.Sub(h.fullTime) >= time.Second {
		raw := h.opts.Full()
		if raw == nil {
			return nil, nil
		}
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, raw)
		if err != nil {
			return nil, nil
		}
		h.full, h.fullRaw, h.fullTime = pm, raw, now
	}
	return h.fullRaw, h.full
}

// Clients is the number of connected clients.
func (h *Hub) Clients() int {
	h.cmu.Lock()
	defer h.cmu.Unlock()
	return len(h.clients)
}

// scanFactor bounds the ring items one frame looks at to this many times
// the frame's share: the rest count as lost, so a filtered client's cost
// does not grow with the ingest rate either.
const scanFactor = 64

// collect appends to dst the newest events in [*cursor, end) that match f, at
// most limit of them, oldest first, advances the cursor, and returns how
// many matching events were left out and how many were never looked at
// (they left the ring before this client was served, or were beyond the
// scan bound).
func (h *Hub) collect(dst []byte, n *int, cursor *uint64, end uint64, f *compiled, limit int, dedupe map[uint32]int64, lat func(int64)) (out []byte, skipped, lost int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	from, to := *cursor, min(h.next, end)
	if oldest := h.first; from < oldest {
		lost += int(oldest - from)
		from = oldest
	}
	if scan := uint64(max(limit*scanFactor, 4096)); !f.all && to-from > scan {
		lost += int(to - from - scan)
		from = to - scan
	}
	*cursor = to
	if from >= to {
		return dst, 0, lost
	}
	size := uint64(len(h.ring))
	if f.all && len(dedupe) == 0 {
		matching := int(to - from)
		take := min(limit, matching)
		for s := to - uint64(take); s < to; s++ {
			it := &h.ring[s%size]
			dst = appendItem(dst, n, it)
			lat(it.ts)
		}
		return dst, matching - take, lost
	}
	// Walk newest to oldest to find the first of the newest matching
	// events, then append forwards.
	matching := 0
	first := to
	var passed []uint32 // dedupe partitions now past their position
	for s := to; s > from; s-- {
		it := &h.ring[(s-1)%size]
		if len(dedupe) > 0 {
			if pos, ok := dedupe[it.pid]; ok {
				if it.offset <= pos {
					continue
				}
				passed = append(passed, it.pid)
			}
		}
		if !f.match(it) {
			continue
		}
		matching++
		if matching <= limit {
			first = s - 1
		}
	}
	for s := first; s < to; s++ {
		it := &h.ring[s%size]
		if f.match(it) && !dupe(dedupe, it) {
			dst = appendItem(dst, n, it)
			lat(it.ts)
		}
	}
	for _, pid := range passed {
		delete(dedupe, pid)
	}
	return dst, max(matching-limit, 0), lost
}

func dupe(d map[uint32]int64, it *item) bool {
	if len(d) == 0 {
		return false
	}
	pos, ok := d[it.pid]
	return ok && it.offset <= pos
}

func appendItem(dst []byte, n *int, it *item) []byte {
	if *n > 0 {
		dst = append(dst, ',')
	}
	*n++
	return append(dst, it.json...)
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
	h.stopOnce.Do(func() { close(h.stop) })
	h.clockWG.Wait()
}

// Narrow lists the distinct users and titles the connected clients filter
// on. In the aggregation tier's merge mode the tail is a sample, and these
// filters are announced to the aggregators, which then forward every
// event that matches them (internal/forward).
func (h *Hub) Narrow() (users, movies []string) {
	seenU, seenM := map[string]bool{}, map[string]bool{}
	h.cmu.Lock()
	defer h.cmu.Unlock()
	for c := range h.clients {
		f := c.filter.Load()
		if f == nil {
			continue
		}
		if f.userID != "" && !seenU[f.userID] {
			seenU[f.userID] = true
			users = append(users, f.userID)
		}
		if f.movieID != "" && !seenM[f.movieID] {
			seenM[f.movieID] = true
			movies = append(movies, f.movieID)
		}
	}
	return users, movies
}
