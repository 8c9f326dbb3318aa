package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkBytesPerClient: what one dashboard receives per second at the
// fan-out's defaults, 2,000 events/s from the producer, on the wire (TCP
// bytes read), with and without permessage-deflate, and its messages
// uncompressed split into snapshots (with deltas) and tail. In one run:
// the defaults before protocol 3 (every snapshot complete, 200 tail events
// a second), deltas alone, and the defaults now (deltas, 50 tail events a
// second, over three times the 15 rows a second the page draws).
func BenchmarkBytesPerClient(b *testing.B) {
	runOnce(b, func(b *testing.B) {
		const (
			rate    = 2000
			clients = 20 // of each kind: with and without deflate
			settle  = 3 * time.Second
			window  = 20 * time.Second
		)
		type result struct{ plain, deflate wireBytes }
		configs := []struct {
			what string
			env  map[string]string
		}{
			{"the defaults before (complete snapshots, tail 200/s)", map[string]string{"FANOUT_SNAPSHOT_DELTA": "false", "FANOUT_TAIL_RATE": "200"}},
			{"deltas, tail 200/s", map[string]string{"FANOUT_TAIL_RATE": "200"}},
			{"the defaults (deltas, tail 50/s)", nil},
		}
		res := make([]result, len(configs))
		for i, cf := range configs {
			topic := fmt.Sprintf("bench-bytes-%d", i)
			fp, addr := freshFanout(b, topic, cf.env)
			pp, _ := startProducer(b, topic, rate)
			time.Sleep(settle) // the producer up to its rate
			plain := dialCounted(b, addr, clients, false)
			deflate := dialCounted(b, addr, clients, true)
			time.Sleep(settle) // past the greeting's full snapshot
			p0, d0 := plain.total(), deflate.total()
			time.Sleep(window)
			p1, d1 := plain.total(), deflate.total()
			plain.close()
			deflate.close()
			pp.Stop(10 * time.Second)
			fp.Stop(10 * time.Second)
			per := float64(clients) * window.Seconds()
			res[i] = result{p1.sub(p0).div(per), d1.sub(d0).div(per)}
			p, d := res[i].plain, res[i].deflate
			report(fmt.Sprintf("bytes/s per client, %d events/s, %s, uncompressed: wire (snapshots + tail)", rate, cf.what),
				fmt.Sprintf("%.1f KB (%.1f + %.1f)", p.wire/1000, p.snap/1000, p.tail/1000), "", nil)
			// Tail frames are never compressed: the rest of the wire is
			// the compressed snapshots (and a few bytes of frame headers).
			report(fmt.Sprintf("bytes/s per client, %d events/s, %s, permessage-deflate: wire (snapshots + tail)", rate, cf.what),
				fmt.Sprintf("%.1f KB (%.1f + %.1f)", d.wire/1000, (d.wire-d.tail-d.other)/1000, d.tail/1000), "", nil)
		}
		before, deltas, after := res[0].plain, res[1].plain, res[2].plain
		ratio := after.wire / before.wire
		b.ReportMetric(after.wire, "B/s/client")
		report("bytes/s per client, defaults now / before: uncompressed", fmt.Sprintf("%.2f×", ratio), "≤ 0.5×", pass(ratio <= 0.5))
		report("bytes/s per client, defaults now / before: permessage-deflate", fmt.Sprintf("%.2f×", res[2].deflate.wire/res[0].deflate.wire), "", nil)
		report("bytes/s per client, deltas / complete snapshots (tail 200/s): uncompressed, snapshots alone", fmt.Sprintf("%.2f×", deltas.snap/before.snap), "", nil)
		report("bytes/s per client, deltas / complete snapshots (tail 200/s): uncompressed, snapshots + tail", fmt.Sprintf("%.2f×", deltas.wire/before.wire), "", nil)
	})
}

// wireBytes are the bytes a client read: on the wire, and per kind of
// message once decompressed.
type wireBytes struct{ wire, snap, tail, other float64 }

func (w wireBytes) sub(o wireBytes) wireBytes {
	return wireBytes{w.wire - o.wire, w.snap - o.snap, w.tail - o.tail, w.other - o.other}
}

func (w wireBytes) div(n float64) wireBytes {
	return wireBytes{w.wire / n, w.snap / n, w.tail / n, w.other / n}
}

// countedClients read everything and count what they read.
type countedClients struct {
	clients
	wire, snap, tail, other atomic.Int64
}

// countConn counts the bytes read from the socket.
type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func dialCounted(b *testing.B, addr string, n int, compress bool) *countedClients {
	b.Helper()
	cs := &countedClients{}
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, EnableCompression: compress,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countConn{c, &cs.wire}, nil
		}}
	// The page's URL: it asks for deltas.
	cs.dial(b, &d, "ws://"+addr+"/ws?protocol=3", n, func(_ int, c *websocket.Conn) { cs.read(c) })
	return cs
}

var tailPrefix = []byte(`{"type":"tail"`)

func (cs *countedClients) read(c *websocket.Conn) {
	defer cs.wg.Done()
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		start := data[:min(len(data), 64)]
		switch {
		case bytes.HasPrefix(data, tailPrefix):
			cs.tail.Add(int64(len(data)))
		case bytes.Contains(start, []byte(`"delta"`)) || bytes.Contains(start, []byte(`"snapshot"`)):
			cs.snap.Add(int64(len(data)))
		default:
			cs.other.Add(int64(len(data)))
		}
	}
}

func (cs *countedClients) total() wireBytes {
	return wireBytes{float64(cs.wire.Load()), float64(cs.snap.Load()), float64(cs.tail.Load()), float64(cs.other.Load())}
}
