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
	Protocol         = 2
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

type client struct {
	h       *Hub
	conn    *websocket.Conn
	phase   *phase
	filter  atomic.Pointer[compiled]
	c0      uint64 // ring position when the client connected
	cursor  atomic.Uint64
	replies chan []byte        // error replies etc., written by the writer goroutine
	resume  chan resumeRequest // at most one per connection
	done    chan struct{}      // closed when Serve has finished with the client
	closing chan struct{}      // closed by shutdown; stops the writer
	once    sync.Once
	reason  atomic.Value // disconnect reason, for metrics
}

type resumeRequest struct {
	positions []Position
}

// ErrClosed is returned by Serve when the hub is shutting down.
var ErrClosed = errors.New("hub closed")

// Serve runs one client until it disconnects; the caller has upgraded conn.
func (h *Hub) Serve(conn *websocket.Conn) error {
	c := &client{h: h, conn: conn, replies: make(chan []byte, 8), resume: make(chan resumeRequest, 1), done: make(chan struct{}), closing: make(chan struct{})}
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
		if p.clients < c.phase.clients {
			c.phase = p
		}
	}
	c.phase.clients++
	h.clients[c] = struct{}{}
	h.cmu.Unlock()
	h.m.clients.Inc()
	defer func() {
		h.cmu.Lock()
		c.phase.clients--
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
	// Token bucket: 20 messages a second, bursts of 20.
	tokens, last := float64(maxMsgPerSecond), time.Now()
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.reason.CompareAndSwap(nil, "message_too_large")
			}
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
		now := time.Now()
		tokens = min(float64(maxMsgPerSecond), tokens+now.Sub(last).Seconds()*maxMsgPerSecond)
		last = now
		if tokens < 1 {
			err = errRateLimited
		} else {
			tokens--
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
	h := c.h
	perFrame := max(1, h.opts.TailRate/h.opts.FrameHz)

	var snapVersion uint64
	var dedupe map[uint32]int64
	skipped, lost := 0, 0
	_, _, lastSeq := h.wait(c.phase)

	fail := func(err error) bool {
		r := writeFailure(err)
		c.reason.CompareAndSwap(nil, r)
		if r == "write_timeout" {
			c.shutdown(CloseWriteTimeout, "write timeout")
		}
		return false
	}
	// Held, because WriteMessage writes its header and payload as two
	// buffers, which only a *net.TCPConn turns into one system call.
	bc := batchOf(c.conn)
	send := func(b []byte) bool {
		bc.hold()
		_ = c.conn.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
		err := c.conn.WriteMessage(websocket.TextMessage, b)
		if ferr := bc.flush(); err == nil {
			err = ferr
		}
		if err != nil {
			return fail(err)
		}
		return true
	}
	// Snapshots are compressed when the client negotiated it: the
	// prepared message compresses once for all clients. Tail frames are
	// not: that would cost CPU per client.
	sendPrepared := func(pm *websocket.PreparedMessage) bool {
		_ = c.conn.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
		c.conn.EnableWriteCompression(true)
		err := c.conn.WritePreparedMessage(pm)
		c.conn.EnableWriteCompression(false)
		if err != nil {
			return fail(err)
		}
		return true
	}
	sendSnapshot := func() bool {
		s := h.snap.Load()
		if s == nil || s.version == snapVersion {
			return true
		}
		if snapVersion != 0 && s.version > snapVersion+1 {
			h.m.droppedSnapshots.Add(float64(s.version - snapVersion - 1))
		}
		snapVersion = s.version
		return sendPrepared(s.msg)
	}
	hello := mustJSON(map[string]any{
		"type": "hello", "protocol": Protocol, "replica": h.opts.Replica, "frame_hz": h.opts.FrameHz, "tail_rate": h.opts.TailRate,
		"snapshot_hz": h.opts.SnapshotHz, "resume_window_s": int(h.opts.ResumeWindow / time.Second), "max_message_bytes": MaxClientMessage,
	})
	if !send(hello) {
		return
	}
	if cur := h.snap.Load(); cur != nil {
		snapVersion = cur.version
	}
	if _, full := h.FullSnapshot(); full != nil {
		if !sendPrepared(full) {
			return
		}
	}
	// frame sends what one tick of the clock has for this client: the
	// snapshot if there is a new one, and a tail frame.
	frame := func(seq uint64) bool {
		// seq+1 is this tick; ticks in between were missed while this
		// client's writer was blocked.
		if missed := seq - lastSeq; missed > 0 {
			h.m.droppedFrames.Add(float64(missed))
		}
		lastSeq = seq + 1
		if !sendSnapshot() {
			return false
		}
		f := c.filter.Load()
		cursor := c.cursor.Load()
		sf := c.phase.shared.Load()
		if f.all && len(dedupe) == 0 && skipped == 0 && lost == 0 && cursor == sf.from {
			// In step with the clock: the shared frame is exactly ours.
			c.cursor.Store(sf.to)
			if sf.pm == nil {
				return true
			}
			_ = c.conn.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
			if err := c.conn.WritePreparedMessage(sf.pm); err != nil {
				fail(err)
				return false
			}
			h.m.sent.Add(float64(sf.n))
			h.m.skipped.Add(float64(sf.skipped))
			h.m.lost.Add(float64(sf.lost))
			return true
		}
		bp := frameBuffers.Get().(*[]byte)
		buf := append((*bp)[:0], `{"type":"tail","skipped":`...)
		mark := len(buf)
		buf = append(buf, `00000000000,"lost":00000000000,"events":[`...)
		n := 0
		wall := time.Now().UnixMilli()
		var s, l int
		// Up to the tick's end, so that from the next tick on this
		// client can take the shared frame.
		buf, s, l = h.collect(buf, &n, &cursor, max(sf.to, cursor), f, perFrame, dedupe, func(ts int64) { h.m.latency.Observe(float64(wall-ts) / 1000) })
		c.cursor.Store(cursor)
		skipped += s
		lost += l
		if n == 0 && skipped == 0 && lost == 0 {
			*bp = buf
			frameBuffers.Put(bp)
			return true
		}
		buf = append(buf, "]}"...)
		// Fill the counters into the fixed-width placeholders.
		head := strconv.AppendInt(nil, int64(skipped), 10)
		head = append(head, `,"lost":`...)
		head = strconv.AppendInt(head, int64(lost), 10)
		head = append(head, `,"events":[`...)
		start := len(`00000000000,"lost":00000000000,"events":[`) - len(head)
		copy(buf[start:], buf[:mark])
		copy(buf[start+mark:], head)
		ok := send(buf[start:])
		*bp = buf
		frameBuffers.Put(bp)
		if !ok {
			return false
		}
		h.m.sent.Add(float64(n))
		h.m.skipped.Add(float64(skipped))
		h.m.lost.Add(float64(lost))
		skipped, lost = 0, 0
		return true
	}
	for {
		tick, ping, seq := h.wait(c.phase)
		select {
		case <-c.closing:
			return
		case r := <-c.replies:
			if !send(r) {
				return
			}
		case req := <-c.resume:
			var ok bool
			if dedupe, ok = c.doResume(req, send); !ok {
				return
			}
		case <-ping:
			_ = c.conn.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				fail(err)
				return
			}
		case <-tick:
			// One tick's messages leave in one write: a snapshot and a
			// tail frame cost the receiver one read and one ACK, not two.
			bc.hold()
			ok := frame(seq)
			if err := bc.flush(); err != nil && ok {
				ok = fail(err)
			}
			if !ok {
				return
			}
		}
	}
}

// doResume answers a resume request: gaps, replay frames, resume_ok.
func (c *client) doResume(req resumeRequest, send func([]byte) bool) (map[uint32]int64, bool) {
	h := c.h
	cutoff := h.opts.Now().Add(-h.opts.ResumeWindow).UnixMilli()
	items, gaps, dedupe := h.replay(req.positions, c.c0, c.filter.Load(), 10*h.opts.TailRate, cutoff)
	for _, g := range gaps {
		if !send(mustJSON(g)) {
			return nil, false
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
		buf = append(buf, "]}"...)
		if !send(buf) {
			return nil, false
		}
		items = items[k:]
	}
	if !send(mustJSON(map[string]any{"type": "resume_ok", "replayed": replayed, "gaps": len(gaps)})) {
		return nil, false
	}
	h.m.sent.Add(float64(replayed))
	h.m.resumes.WithLabelValues(resumeResult(gaps)).Inc()
	return dedupe, true
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
