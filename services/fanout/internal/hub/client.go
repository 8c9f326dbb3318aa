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
	MaxClientMessage = 4 << 10 // bytes
	maxInvalid       = 10      // invalid client messages before a 1008 close
	pingEvery        = 20 * time.Second
	pongWait         = 2*pingEvery + 10*time.Second
)

type client struct {
	h       *Hub
	conn    *websocket.Conn
	filter  atomic.Pointer[compiled]
	replies chan []byte   // error replies etc., written by the writer goroutine
	done    chan struct{} // closed when Serve has finished with the client
	closing chan struct{} // closed by shutdown; stops the writer
	once    sync.Once
	reason  atomic.Value // disconnect reason, for metrics
}

// ErrClosed is returned by Serve when the hub is shutting down.
var ErrClosed = errors.New("hub closed")

// Serve runs one client until it disconnects; the caller has upgraded conn.
func (h *Hub) Serve(conn *websocket.Conn) error {
	c := &client{h: h, conn: conn, replies: make(chan []byte, 8), done: make(chan struct{}), closing: make(chan struct{})}
	all := compiled{all: true}
	c.filter.Store(&all)
	h.cmu.Lock()
	if h.closed {
		h.cmu.Unlock()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		conn.Close()
		return ErrClosed
	}
	h.clients[c] = struct{}{}
	h.cmu.Unlock()
	h.m.clients.Inc()
	defer func() {
		h.cmu.Lock()
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

	go c.read()
	c.write()
	return nil
}

// shutdown closes the connection with a close frame; safe from any goroutine.
func (c *client) shutdown(code int, text string) {
	c.once.Do(func() {
		c.reason.CompareAndSwap(nil, closeReason(code))
		close(c.closing)
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
	}
	return "close_" + strconv.Itoa(code)
}

// clientMessage is what a browser may send.
type clientMessage struct {
	Type   string  `json:"type"`
	Filter *Filter `json:"filter"`
}

func (c *client) read() {
	defer c.shutdown(websocket.CloseNormalClosure, "")
	c.conn.SetReadLimit(MaxClientMessage)
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	invalid := 0
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.reason.CompareAndSwap(nil, "message_too_large")
			}
			return
		}
		if err := c.handle(data); err != nil {
			invalid++
			c.h.m.invalid.Inc()
			if invalid >= maxInvalid {
				c.reason.CompareAndSwap(nil, "policy_violation")
				c.shutdown(websocket.ClosePolicyViolation, "too many invalid messages")
				return
			}
			c.reply(errorMessage("bad_message", err.Error()))
		}
	}
}

func (c *client) handle(data []byte) error {
	var m clientMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return errors.New("not a JSON object")
	}
	switch m.Type {
	case "filter":
		var f Filter
		if m.Filter != nil {
			f = *m.Filter
		}
		cf, err := f.compile()
		if err != nil {
			return err
		}
		c.filter.Store(&cf)
		c.reply(mustJSON(map[string]any{"type": "filter_ok", "filter": f}))
		return nil
	case "":
		return errors.New(`missing "type"`)
	default:
		return errors.New("unknown message type " + strconv.Quote(m.Type))
	}
}

func (c *client) reply(b []byte) {
	select {
	case c.replies <- b:
	default: // a client flooding us with bad messages does not get to grow a queue
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

func (c *client) write() {
	defer c.shutdown(websocket.CloseNormalClosure, "")
	h := c.h
	frame := time.NewTicker(time.Second / time.Duration(h.opts.FrameHz))
	defer frame.Stop()
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	perFrame := max(1, h.opts.TailRate/h.opts.FrameHz)

	var snapVersion uint64
	cursor := h.head()
	var items [][]byte
	buf := make([]byte, 0, 16<<10)
	skipped := 0

	send := func(typ int, b []byte) bool {
		_ = c.conn.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
		if err := c.conn.WriteMessage(typ, b); err != nil {
			c.reason.CompareAndSwap(nil, writeFailure(err))
			return false
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
		_ = c.conn.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
		if err := c.conn.WritePreparedMessage(s.msg); err != nil {
			c.reason.CompareAndSwap(nil, writeFailure(err))
			return false
		}
		return true
	}
	if !send(websocket.TextMessage, mustJSON(map[string]any{"type": "hello", "protocol": 1, "frame_hz": h.opts.FrameHz, "tail_rate": h.opts.TailRate})) || !sendSnapshot() {
		return
	}
	for {
		select {
		case <-c.closing:
			return
		case r := <-c.replies:
			if !send(websocket.TextMessage, r) {
				return
			}
		case <-ping.C:
			_ = c.conn.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				c.reason.CompareAndSwap(nil, writeFailure(err))
				return
			}
		case <-frame.C:
			if !sendSnapshot() {
				return
			}
			var n int
			items, n = h.collect(items[:0], &cursor, c.filter.Load(), perFrame)
			skipped += n
			if len(items) == 0 && skipped == 0 {
				continue
			}
			buf = append(buf[:0], `{"type":"tail","skipped":`...)
			buf = strconv.AppendInt(buf, int64(skipped), 10)
			buf = append(buf, `,"events":[`...)
			for i, it := range items {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = append(buf, it...)
			}
			buf = append(buf, "]}"...)
			if !send(websocket.TextMessage, buf) {
				return
			}
			h.m.sent.Add(float64(len(items)))
			h.m.skipped.Add(float64(skipped))
			skipped = 0
		}
	}
}

func writeFailure(err error) string {
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return "write_timeout"
	}
	return "write_error"
}
