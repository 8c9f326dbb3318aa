package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"playpulse.dev/tests/harness"
)

// TestFanoutNeverReadingClient: a client that never reads does not delay
// the others, and is dropped after FANOUT_WRITE_TIMEOUT.
func TestFanoutNeverReadingClient(t *testing.T) {
	// Enough volume to fill the stuck client's socket buffers in seconds:
	// binaries without the race detector, which would slow them 5-10x.
	topic := newTopic(t, 3)
	bin := harness.FastBin(t)
	fanAddr, prodAddr := harness.FreeAddr(t), harness.FreeAddr(t)
	harness.StartFrom(t, bin, "fanout", map[string]string{
		"KAFKA_BROKERS": broker.Addr(), "FANOUT_ADDR": fanAddr, "FANOUT_TOPICS": topic, "FANOUT_TOPIC_PATTERN": "", "FANOUT_TAIL_RATE": "100000",
		"FANOUT_FRAME_HZ": "20", "FANOUT_WRITE_TIMEOUT": "2s", "LOG_LEVEL": "warn",
	})
	harness.WaitReady(t, "http://"+fanAddr+"/readyz", 60*time.Second)
	harness.StartFrom(t, bin, "producer", map[string]string{
		"KAFKA_BROKERS": broker.Addr(), "PRODUCER_TOPIC": topic, "PRODUCER_RATE": "3000", "PRODUCER_ADDR": prodAddr,
		"PRODUCER_STREAM": "e2e", "LOG_LEVEL": "warn",
	})
	harness.WaitReady(t, "http://"+prodAddr+"/readyz", 60*time.Second)
	s := struct{ fanAddr string }{fanAddr}
	// The stuck client has a tiny receive buffer and never reads.
	d := *websocket.DefaultDialer
	nd := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		_ = c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	d.NetDialContext = nd.DialContext
	stuck, _, err := d.DialContext(context.Background(), (&url.URL{Scheme: "ws", Host: s.fanAddr, Path: "/ws"}).String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()

	good := dial(t, s.fanAddr, nil)
	metrics := "http://" + s.fanAddr + "/metrics"
	dropped := func() error {
		v, err := metricSum(metrics, "playpulse_fanout_disconnects_total", `reason="write_timeout"`)
		if err != nil {
			return err
		}
		if v < 1 {
			return fmt.Errorf("no write_timeout disconnect yet")
		}
		return nil
	}
	var worst time.Duration
	last := time.Now()
	frames := 0
	deadline := time.Now().Add(40 * time.Second)
	for dropped() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the stuck client was not dropped within 40 s (%d frames to the good one)", frames)
		}
		m := read(t, good, 5*time.Second)
		if m.Type != "tail" {
			continue
		}
		frames++
		if gap := time.Since(last); gap > worst && frames > 1 {
			worst = gap
		}
		last = time.Now()
	}
	// 20 frames/s are due; a frame held up by the stuck client would wait
	// its 2 s write timeout.
	if worst > 1500*time.Millisecond {
		t.Fatalf("the healthy client waited %s for a frame while another client was stuck", worst)
	}
	harness.Eventually(t, 10*time.Second, "one client left", func() error {
		v, err := metricSum(metrics, "playpulse_fanout_clients", "")
		if err != nil || v != 1 {
			return fmt.Errorf("clients %v %v", v, err)
		}
		return nil
	})
	t.Logf("healthy client: %d frames, longest wait %s", frames, worst.Round(time.Millisecond))
}

// TestFanoutResume: a client that reconnects with its last positions gets
// exactly the events it missed: per partition, the offsets after the
// reconnect continue the ones before, with no hole and no repeat.
func TestFanoutResume(t *testing.T) {
	s := startStack(t, stackOpts{rate: "300"})
	before := map[int32]int64{}
	c1 := dial(t, s.fanAddr, nil)
	n := 0
	for n < 300 {
		m := read(t, c1, 10*time.Second)
		if m.Type != "tail" {
			continue
		}
		if m.Skipped != 0 {
			t.Fatalf("skipped %d below the cap", m.Skipped)
		}
		for _, it := range m.Events {
			if last, ok := before[it.Partition]; ok && it.Offset != last+1 {
				t.Fatalf("partition %d: offset %d after %d", it.Partition, it.Offset, last)
			}
			before[it.Partition] = it.Offset
			n++
		}
	}
	c1.Close()
	total := snapshotOf(t, &fanout{addr: s.fanAddr}, false).EventsTotal
	harness.Eventually(t, 20*time.Second, "300 more events while disconnected", func() error {
		if now := snapshotOf(t, &fanout{addr: s.fanAddr}, false).EventsTotal; now < total+300 {
			return fmt.Errorf("%d new", now-total)
		}
		return nil
	})

	c2 := dial(t, s.fanAddr, nil)
	var positions []map[string]any
	for p, off := range before {
		positions = append(positions, map[string]any{"topic": s.topic, "partition": p, "offset": off})
	}
	if err := c2.WriteJSON(map[string]any{"type": "resume", "positions": positions}); err != nil {
		t.Fatal(err)
	}
	after := map[int32][]int64{}
	replayed, resumed := 0, false
	deadline := time.Now().Add(30 * time.Second)
	for !resumed || n < 900 {
		if time.Now().After(deadline) {
			t.Fatalf("resume incomplete: resumed=%v, %d events", resumed, n)
		}
		m := read(t, c2, 10*time.Second)
		switch m.Type {
		case "gap":
			t.Fatalf("gap within the resume window: %s", m.Raw)
		case "resume_ok":
			var ok struct {
				Replayed int `json:"replayed"`
				Gaps     int `json:"gaps"`
			}
			_ = json.Unmarshal(m.Raw, &ok)
			// At least 300 events were produced while away, give or take
			// the snapshot period the count was read from.
			if ok.Replayed != replayed || ok.Gaps != 0 || replayed < 200 {
				t.Fatalf("resume_ok %s after %d replayed events", m.Raw, replayed)
			}
			resumed = true
		case "tail":
			var r struct {
				Replay bool `json:"replay"`
			}
			_ = json.Unmarshal(m.Raw, &r)
			for _, it := range m.Events {
				after[it.Partition] = append(after[it.Partition], it.Offset)
				n++
				if r.Replay {
					replayed++
				}
			}
		}
	}
	// Replayed events come first per partition in offset order; live
	// events that arrived before the replay are newer: sort by offset and
	// check there is neither a hole nor a repeat.
	for p, offs := range after {
		seen := map[int64]bool{}
		lo, hi := offs[0], offs[0]
		for _, o := range offs {
			if seen[o] {
				t.Fatalf("partition %d: offset %d twice", p, o)
			}
			seen[o] = true
			lo, hi = min(lo, o), max(hi, o)
		}
		if want := before[p] + 1; lo != want {
			t.Fatalf("partition %d resumed at %d, want %d", p, lo, want)
		}
		if int64(len(offs)) != hi-lo+1 {
			t.Fatalf("partition %d: %d offsets in %d..%d: a hole", p, len(offs), lo, hi)
		}
	}
	t.Logf("%d events replayed, %d in total after the reconnect", replayed, n)
}

func TestFanoutOriginCheck(t *testing.T) {
	topic := newTopic(t, 1)
	f := startFanout(t, broker.Addr(), topic, map[string]string{"FANOUT_ALLOWED_ORIGINS": "https://dash.example.com"})
	for origin, want := range map[string]int{
		"http://" + f.addr:         101,
		"https://dash.example.com": 101,
		"https://evil.example.com": 403,
		"null":                     403,
	} {
		c, status, err := wsDial(f.addr, http.Header{"Origin": {origin}}, "")
		if want == 101 {
			if err != nil {
				t.Errorf("origin %s refused: %v (%d)", origin, err, status)
				continue
			}
			c.Close()
		} else if err == nil || status != want {
			t.Errorf("origin %s: status %d, want %d", origin, status, want)
		}
	}
}

// TestFanoutConnectionLimits: per-address and total limits answer 503,
// and the token is required when set.
func TestFanoutConnectionLimits(t *testing.T) {
	topic := newTopic(t, 1)
	f := startFanout(t, broker.Addr(), topic, map[string]string{
		"FANOUT_MAX_CONNECTIONS": "3", "FANOUT_MAX_CONNECTIONS_PER_IP": "2", "FANOUT_AUTH_TOKEN": "t0ken",
	})
	auth := http.Header{"Authorization": {"Bearer t0ken"}}
	if _, status, err := wsDial(f.addr, nil, ""); err == nil || status != 401 {
		t.Fatalf("no token: status %d, want 401", status)
	}
	if err := getJSON(f.url("/api/snapshot"), &struct{}{}); err == nil {
		t.Fatal("/api/snapshot without the token must fail")
	}
	open := func(local string, want int) {
		t.Helper()
		c, status, err := wsDial(f.addr, auth, local)
		if want == 101 {
			if err != nil {
				t.Fatalf("from %s: %v (%d)", local, err, status)
			}
			t.Cleanup(func() { c.Close() })
			read(t, c, 5*time.Second) // hello: the server holds the connection
			return
		}
		if err == nil || status != want {
			t.Fatalf("from %s: status %d, want %d", local, status, want)
		}
	}
	open("127.0.0.1", 101)
	open("127.0.0.1", 101)
	open("127.0.0.1", 503) // per address
	open("127.0.0.2", 101)
	open("127.0.0.3", 503) // in total
	v, err := metricSum(f.url("/metrics"), "playpulse_fanout_connections_refused_total", "")
	if err != nil || v != 3 {
		t.Fatalf("refused connections metric %v %v, want 3", v, err)
	}
}
