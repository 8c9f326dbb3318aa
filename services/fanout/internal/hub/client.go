package hub

import (
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Protocol limits; docs/protocol.md states them.
const (
	Protocol         = 3
	MaxClientMessage = 4 << 10 // bytes
	maxInvalid       = 10      // invalid client messages before a 1008 close
	maxMsgPerSecond  = 20
	maxPositions     = 256
	replayChunk      = 500 // events per replay frame
	pingEvery        = 20 * time.Second
	pongWait         = 2*pingEvery + 10*time.Second
	// CloseWriteTimeout is sent (best effort) to a client that accepted no
	// data for WriteTimeout.
	CloseWriteTimeout = 4008
)

// client is what the hub and the client's two goroutines share; the
// writer's own state is in frameWriter, the reader's in read's locals.
type client struct {
	h       *Hub
	opts    ClientOptions            // fixed by ServeClient
	conn    *websocket.Conn          // writes: the writer, and shutdown's close frame (gorilla serialises them); reads: the reader
	phase   *phase                   // fixed by Serve
	filter  atomic.Pointer[compiled] // stored by the reader, loaded by the writer
	c0      uint64                   // fixed by Serve: ring position when the client connected
	cursor  atomic.Uint64            // stored by the writer, loaded by the queue-depth gauge
	replies chan []byte              // error replies etc., written by the writer goroutine
	resume  chan resumeRequest       // at most one per connection
	done    chan struct{}            // closed when Serve has finished with the client
	closing chan struct{}            // closed by shutdown; stops the writer
	once    sync.Once                // shutdown runs once, from any goroutine
	reason  atomic.Value             // disconnect reason, for metrics: the first CompareAndSwap wins
}

type resumeRequest struct {
	positions []Position
}

// ErrClosed is returned by Serve when the hub is shutting down.
var ErrClosed = errors.New("hub closed")

// ClientOptions are what a client said when it connected.
type ClientOptions struct {
	// Deltas: the client applies delta messages (protocol 3 on). Clients
	// that did not say so get every periodic snapshot complete.
	Deltas bool
	// Outdated: a page built for an older protocol; it is told, in an
	// error message it shows, to reload.
	Outdated bool
}

// Serve runs one client that asked for nothing until it disconnects; the
// caller has upgraded conn.
func (h *Hub) Serve(conn *websocket.Conn) error { return h.ServeClient(conn, ClientOptions{}) }

// ServeClient runs one client until it disconnects; the caller has
// upgraded conn.
func (h *Hub) ServeClient(conn *websocket.Conn, o ClientOptions) error {
	c := &client{h: h, conn: conn, opts: o, replies: make(chan []byte, 8), resume: make(chan resumeRequest, 1), done: make(chan struct{}), closing: make(chan struct{})}
	all := compiled{all: true}
	c.filter.Store(&all)
	h.cmu.Lock()
	if h.closed {
		h.cmu.Unlock()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		conn.Close()
		return ErrClosed
	}
	c.c0 = h.head()
	c.cursor.Store(c.c0)
	c.phase = h.phases[0]
	for _, p := range h.phases[1:] {
		if p.clients.Load() < c.phase.clients.Load() {
			c.phase = p
		}
	}
	c.phase.clients.Add(1)
	h.clients[c] = struct{}{}
	h.cmu.Unlock()
	h.m.clients.Inc()
	defer func() {
		h.cmu.Lock()
		c.phase.clients.Add(-1)
		delete(h.clients, c)
		h.cmu.Unlock()
		h.m.clients.Dec()
		r, _ := c.reason.Load().(string)
		if r == "" {
			r = "client_closed"
		}
		h.m.disconnects.WithLabelValues(r).Inc()
		close(c.done)
	}()

	conn.EnableWriteCompression(false)
	go c.read()
	c.write()
	return nil
}

// shutdown closes the connection with a close frame; safe from any goroutine.
func (c *client) shutdown(code int, text string) {
	c.once.Do(func() {
		c.reason.CompareAndSwap(nil, closeReason(code))
		close(c.closing)
		batchOf(c.conn).unbatch() // the close frame goes out now, after what the writer held
		_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
		c.conn.Close()
	})
}

func closeReason(code int) string {
	switch code {
	case websocket.CloseGoingAway:
		return "server_shutdown"
	case websocket.ClosePolicyViolation:
		return "policy_violation"
	case websocket.CloseNormalClosure:
		return "client_closed"
	case CloseWriteTimeout:
		return "write_timeout"
	}
	return "close_" + strconv.Itoa(code)
}

// clientMessage is what a browser may send.
type clientMessage struct {
	Type      string     `json:"type"`
	Filter    *Filter    `json:"filter"`
	Positions []Position `json:"positions"`
}

// errRateLimited is answered with code rate_limited.
var errRateLimited = errors.New("more than 20 messages a second")

func (c *client) read() {
	defer c.shutdown(websocket.CloseNormalClosure, "")
	c.conn.SetReadLimit(MaxClientMessage)
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	invalid := 0
	resumed := false
	// 20 messages a second, bursts of 20.
	msgs := newBucket(maxMsgPerSecond, maxMsgPerSecond, time.Now())
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.reason.CompareAndSwap(nil, "message_too_large")
			}
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
		msgs.refill(time.Now())
		if msgs.tokens < 1 {
			err = errRateLimited
		} else {
			msgs.tokens--
			err = c.handle(data, &resumed)
		}
		if err != nil {
			invalid++
			c.h.m.invalid.Inc()
			if invalid >= maxInvalid {
				c.reason.CompareAndSwap(nil, "policy_violation")
				c.shutdown(websocket.ClosePolicyViolation, "too many invalid messages")
				return
			}
			code := "bad_message"
			if err == errRateLimited {
				code = "rate_limited"
			}
			c.reply(errorMessage(code, err.Error()))
		}
	}
}

func (c *client) handle(data []byte, resumed *bool) error {
	var m clientMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return errors.New("not a JSON object of the protocol: " + err.Error())
	}
	switch m.Type {
	case "filter":
		return c.setFilter(m.Filter)
	case "resume":
		if *resumed {
			return errors.New("resume may be sent once per connection")
		}
		if len(m.Positions) > maxPositions {
			return errors.New("at most 256 positions")
		}
		for _, p := range m.Positions {
			if p.Topic == "" || len(p.Topic) > 249 || p.Partition < 0 || p.Offset < -1 {
				return errors.New("a position needs a topic, a partition ≥ 0 and an offset ≥ -1")
			}
		}
		if m.Filter != nil {
			if err := c.setFilter(m.Filter); err != nil {
				return err
			}
		}
		*resumed = true
		c.resume <- resumeRequest{positions: m.Positions}
		return nil
	case "":
		return errors.New(`missing "type"`)
	default:
		return errors.New("unknown message type " + strconv.Quote(m.Type))
	}
}

func (c *client) setFilter(p *Filter) error {
	var f Filter
	if p != nil {
		f = *p
	}
	cf, err := f.compile()
	if err != nil {
		return err
	}
	c.filter.Store(&cf)
	c.reply(mustJSON(map[string]any{"type": "filter_ok", "filter": f}))
	return nil
}

// reply queues a message for the writer. The queue is bounded: a client
// flooding us loses its oldest replies, never the newest.
func (c *client) reply(b []byte) {
	for {
		select {
		case c.replies <- b:
			return
		default:
		}
		select {
		case <-c.replies:
		default:
		}
	}
}

func errorMessage(code, msg string) []byte {
	return mustJSON(map[string]string{"type": "error", "code": code, "message": msg})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// frameBuffers are shared by all writers: a frame is built, written and
// the buffer returned, so an idle client holds none.
var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func (c *client) write() {
	defer c.shutdown(websocket.CloseNormalClosure, "")
	w := newFrameWriter(c)
	if !w.greet() {
		return
	}
	w.run()
}

// frameWriter is the state of one client's writer goroutine. It is owned
// by that goroutine alone, so none of it is locked: what other goroutines
// see of the client (its cursor, filter, reason) lives in client.
type frameWriter struct {
	c  *client
	h  *Hub
	bc *batchConn // nil when the socket is not Batching
	// The client's token bucket for tail events: TailRate a second, at
	// most Options.burst. The shared frames were built within the
	// phase's bucket, which this one follows when they are taken.
	tokens bucket

	snapVersion uint64           // version of the last snapshot sent; 0: none yet
	periodic    uint64           // version of the last periodic snapshot the client has, a delta's base; 0: none
	lastSeq     uint64           // the phase tick number expected next: a later one means ticks were missed
	dedupe      map[uint32]int64 // resume positions the live tail must not repeat
	// Counted since the last tail frame this client received, and told
	// in the next one.
	skipped, lost int
}

func newFrameWriter(c *client) *frameWriter {
	h := c.h
	w := &frameWriter{c: c, h: h, bc: batchOf(c.conn), tokens: newBucket(float64(h.opts.TailRate), h.opts.burst(), time.Now())}
	_, _, w.lastSeq = h.wait(c.phase)
	return w
}

// fail records why the socket failed and returns false, so that callers
// can return its result. Only a timeout gets a close frame: after another
// error the socket is gone.
func (w *frameWriter) fail(err error) bool {
	r := writeFailure(err)
	w.c.reason.CompareAndSwap(nil, r)
	if r == "write_timeout" {
		w.c.shutdown(CloseWriteTimeout, "write timeout")
	}
	return false
}

func (w *frameWriter) deadline() {
	_ = w.c.conn.SetWriteDeadline(time.Now().Add(w.h.opts.WriteTimeout))
}

// send writes one text message. Held, because WriteMessage writes its
// header and payload as two buffers, which only a *net.TCPConn turns into
// one system call.
func (w *frameWriter) send(b []byte) bool {
	w.bc.hold()
	w.deadline()
	err := w.c.conn.WriteMessage(websocket.TextMessage, b)
	if ferr := w.bc.flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return w.fail(err)
	}
	return true
}

// sendCompressed writes a snapshot, compressed when the client negotiated
// it: the prepared message compresses once for all clients. Tail frames
// are not compressed: that would cost CPU per client.
func (w *frameWriter) sendCompressed(pm *websocket.PreparedMessage) bool {
	w.deadline()
	w.c.conn.EnableWriteCompression(true)
	err := w.c.conn.WritePreparedMessage(pm)
	w.c.conn.EnableWriteCompression(false)
	if err != nil {
		return w.fail(err)
	}
	return true
}

// greet sends hello (and to an outdated page the error that tells it to
// reload), then the full snapshot, or without Options.Full the periodic
// one. The periodic snapshot current now is not sent again: the full one
// is at least as new.
func (w *frameWriter) greet() bool {
	h := w.h
	hello := mustJSON(map[string]any{
		"type": "hello", "protocol": Protocol, "replica": h.opts.Replica, "frame_hz": h.opts.FrameHz, "max_frame_hz": h.opts.MaxFrameHz, "tail_rate": h.opts.TailRate,
		"snapshot_hz": h.opts.SnapshotHz, "resume_window_s": int(h.opts.ResumeWindow / time.Second), "max_message_bytes": MaxClientMessage,
	})
	if !w.send(hello) {
		return false
	}
	if w.c.opts.Outdated && !w.send(errorMessage("outdated_page", "this page is older than the server (protocol "+strconv.Itoa(Protocol)+"): reload it")) {
		return false
	}
	cur := h.snap.Load()
	if h.opts.Full == nil { // the periodic snapshot is the greeting: deltas apply to it
		if cur == nil {
			return true
		}
		w.snapVersion, w.periodic = cur.version, cur.version
		return w.sendCompressed(cur.msg)
	}
	if cur != nil {
		w.snapVersion = cur.version
	}
	if _, full := h.FullSnapshot(); full != nil {
		return w.sendCompressed(full)
	}
	return true
}

// run serves the client until it closes or a write fails.
func (w *frameWriter) run() {
	c := w.c
	for {
		tick, ping, seq := w.h.wait(c.phase)
		if seq != w.lastSeq {
			// The phase ticked while this writer was busy (greeting,
			// writing): its frame is due now, not at the next tick.
			if !w.frame(seq - 1) {
				return
			}
			continue
		}
		select {
		case <-c.closing:
			return
		case r := <-c.replies:
			if !w.send(r) {
				return
			}
		case req := <-c.resume:
			if !w.resume(req) {
				return
			}
		case <-ping:
			w.deadline()
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				w.fail(err)
				return
			}
		case <-tick:
			if !w.frame(seq) {
				return
			}
		}
	}
}

// frame sends what the phase's tick after seq has for this client. One
// tick's messages leave in one write: a snapshot and a tail frame cost
// the receiver one read and one ACK, not two.
func (w *frameWriter) frame(seq uint64) bool {
	w.bc.hold()
	ok := w.tick(seq)
	if err := w.bc.flush(); err != nil && ok {
		ok = w.fail(err)
	}
	return ok
}

// tick sends what one tick of the clock has for this client: the
// snapshot if there is a new one, and a tail frame.
func (w *frameWriter) tick(seq uint64) bool {
	// seq+1 is this tick; ticks in between were missed while this
	// client's writer was blocked.
	if missed := seq - w.lastSeq; missed > 0 {
		w.h.m.droppedFrames.Add(float64(missed))
	}
	w.lastSeq = seq + 1
	if !w.snapshot() {
		return false
	}
	w.tokens.refill(time.Now())
	f := w.c.filter.Load()
	sf := w.c.phase.shared.Load()
	if f.all && len(w.dedupe) == 0 && w.skipped == 0 && w.lost == 0 && w.c.cursor.Load() == sf.from {
		return w.shared(sf)
	}
	return w.tail(f, sf)
}

// snapshot sends the latest snapshot if this client has not had it: as a
// delta when the client has the one it applies to, else complete (after
// the full snapshot of greet, or after skipping versions).
func (w *frameWriter) snapshot() bool {
	h := w.h
	s := h.snap.Load()
	if s == nil || s.version == w.snapVersion {
		return true
	}
	if w.snapVersion != 0 && s.version > w.snapVersion+1 {
		h.m.droppedSnapshots.Add(float64(s.version - w.snapVersion - 1))
	}
	w.snapVersion = s.version
	msg := s.msg
	if w.c.opts.Deltas && s.delta != nil && w.periodic != 0 && w.periodic == s.version-1 {
		msg = s.delta
	}
	w.periodic = s.version
	return w.sendCompressed(msg)
}

// shared sends the phase's shared frame to a client in step with the
// clock: unfiltered, owing no counts, its cursor where the frame starts.
func (w *frameWriter) shared(sf *sharedFrame) bool {
	w.c.cursor.Store(sf.to)
	if sf.pm == nil {
		return true
	}
	w.tokens.tokens -= float64(sf.n)
	w.deadline()
	if err := w.c.conn.WritePreparedMessage(sf.pm); err != nil {
		return w.fail(err)
	}
	w.h.m.sent.Add(float64(sf.n))
	w.h.m.skipped.Add(float64(sf.skipped))
	w.h.m.lost.Add(float64(sf.lost))
	return true
}

// tail builds and sends this client's own tail frame, from its cursor up
// to the end of the tick's shared frame, so that from the next tick on it
// can take the shared frame. Counts not told yet carry over when there is
// nothing to send; events wait for the next tick while the bucket holds
// less than one.
func (w *frameWriter) tail(f *compiled, sf *sharedFrame) bool {
	h := w.h
	limit := int(w.tokens.tokens)
	if limit < 1 {
		return true
	}
	bp := frameBuffers.Get().(*[]byte)
	defer frameBuffers.Put(bp)
	// The header's counters are known only after collect: room is kept
	// for the longest header, and the real one is put right before the
	// events.
	buf := append((*bp)[:0], make([]byte, tailHeadRoom)...)
	cursor := w.c.cursor.Load()
	n := 0
	wall := time.Now().UnixMilli()
	var s, l int
	buf, s, l = h.collect(buf, &n, &cursor, max(sf.to, cursor), f, limit, w.dedupe, func(ts int64) { h.m.latency.Observe(float64(wall-ts) / 1000) })
	*bp = buf
	w.c.cursor.Store(cursor)
	w.tokens.tokens -= float64(n)
	w.skipped += s
	w.lost += l
	if n == 0 && w.skipped == 0 && w.lost == 0 {
		return true
	}
	var room [tailHeadRoom]byte
	head := appendTailHead(room[:0], w.skipped, w.lost)
	start := tailHeadRoom - len(head)
	copy(buf[start:], head)
	buf = appendTailEnd(buf)
	*bp = buf
	if !w.send(buf[start:]) {
		return false
	}
	h.m.sent.Add(float64(n))
	h.m.skipped.Add(float64(w.skipped))
	h.m.lost.Add(float64(w.lost))
	w.skipped, w.lost = 0, 0
	return true
}

// appendTailHead appends the opening of a live tail frame, up to its
// events; appendTailEnd closes it. Every tail frame, shared or one
// client's, is built by these two.
func appendTailHead(dst []byte, skipped, lost int) []byte {
	dst = append(dst, `{"type":"tail","skipped":`...)
	dst = strconv.AppendInt(dst, int64(skipped), 10)
	dst = append(dst, `,"lost":`...)
	dst = strconv.AppendInt(dst, int64(lost), 10)
	return append(dst, `,"events":[`...)
}

func appendTailEnd(dst []byte) []byte { return append(dst, "]}"...) }

// tailHeadRoom is the longest appendTailHead: both counters of 20
// characters, the most an int64 takes.
const tailHeadRoom = len(`{"type":"tail","skipped":`) + 20 + len(`,"lost":`) + 20 + len(`,"events":[`)

// resume answers a resume request: gaps, replay frames, resume_ok. The
// positions it returns keep the live tail from repeating what was
// replayed.
func (w *frameWriter) resume(req resumeRequest) bool {
	c, h := w.c, w.h
	cutoff := h.opts.Now().Add(-h.opts.ResumeWindow).UnixMilli()
	items, gaps, dedupe := h.replay(req.positions, c.c0, c.filter.Load(), 10*h.opts.TailRate, cutoff)
	for _, g := range gaps {
		if !w.send(mustJSON(g)) {
			return false
		}
	}
	replayed := len(items)
	for len(items) > 0 {
		k := min(len(items), replayChunk)
		buf := append([]byte(nil), `{"type":"tail","replay":true,"skipped":0,"lost":0,"events":[`...)
		for i, it := range items[:k] {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, it...)
		}
		buf = appendTailEnd(buf)
		if !w.send(buf) {
			return false
		}
		items = items[k:]
	}
	if !w.send(mustJSON(map[string]any{"type": "resume_ok", "replayed": replayed, "gaps": len(gaps)})) {
		return false
	}
	w.dedupe = dedupe
	h.m.sent.Add(float64(replayed))
	h.m.resumes.WithLabelValues(resumeResult(gaps)).Inc()
	return true
}

func resumeResult(gaps []Gap) string {
	if len(gaps) > 0 {
		return "gap"
	}
	return "complete"
}

func writeFailure(err error) string {
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return "write_timeout"
	}
	return "write_error"
}
