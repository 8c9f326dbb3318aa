package hub

import (
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Batching wraps the connection under a client's WebSocket so that the
// hub can write the messages of one clock tick with one system call.
// Without it (any other net.Conn) every message is its own write.
func Batching(c net.Conn) net.Conn { return &batchConn{Conn: c} }

// batchOf returns the batchConn under conn, or nil; hold, flush and
// unbatch on nil do nothing, so callers need not check.
func batchOf(conn *websocket.Conn) *batchConn {
	b, _ := conn.NetConn().(*batchConn)
	return b
}

// batchConn gathers writes between hold and flush. On loopback and on a
// real NIC alike, a send costs more per call (the TCP transmit path, the
// receiver's read and ACK) than per byte, and a tick that carries a
// snapshot and a tail frame would otherwise cost two.
type batchConn struct {
	net.Conn
	// mu guards depth, buf and off, never the socket write. The writer
	// and shutdown (any goroutine) take it.
	mu    sync.Mutex
	depth int     // guarded by mu; holds not yet flushed
	buf   *[]byte // guarded by mu; non-nil while held; from frameBuffers, so idle clients hold none
	off   bool    // guarded by mu; unbatched: holds gather nothing any more
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.buf != nil {
		*b.buf = append(*b.buf, p...)
		b.mu.Unlock()
		return len(p), nil
	}
	b.mu.Unlock()
	// Concurrent writes (a close frame from another goroutine) are
	// serialised whole by the net.Conn, so frames never interleave.
	return b.Conn.Write(p)
}

// hold starts gathering; holds nest, and the outermost flush writes.
func (b *batchConn) hold() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.depth++
	if b.buf == nil && !b.off {
		b.buf = frameBuffers.Get().(*[]byte)
		*b.buf = (*b.buf)[:0]
	}
	b.mu.Unlock()
}

// flush ends a hold; the outermost writes what was gathered, with the
// write deadline the WebSocket set last, and stops gathering.
func (b *batchConn) flush() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	if b.depth--; b.depth > 0 {
		b.mu.Unlock()
		return nil
	}
	bp := b.buf
	b.buf = nil
	b.mu.Unlock()
	if bp == nil {
		return nil
	}
	var err error
	if len(*bp) > 0 {
		_, err = b.Conn.Write(*bp)
	}
	frameBuffers.Put(bp)
	return err
}

// unbatch writes what is held and stops gathering for good. A close
// frame written by another goroutine (a shutdown, gorilla's reply to the
// client's close) while the writer holds is in that buffer, so it must go
// out, not be dropped; the 1 s bound is the one a close frame had before.
func (b *batchConn) unbatch() {
	if b == nil {
		return
	}
	b.mu.Lock()
	bp := b.buf
	b.buf = nil
	b.off = true
	b.mu.Unlock()
	if bp == nil {
		return
	}
	if len(*bp) > 0 {
		_ = b.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = b.Conn.Write(*bp)
	}
	frameBuffers.Put(bp)
}

func (b *batchConn) Close() error {
	b.unbatch()
	return b.Conn.Close()
}
