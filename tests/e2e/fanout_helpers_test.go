package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/gorilla/websocket"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/harness"
)

// fanout is one fan-out process on the shared broker.
type fanout struct {
	addr string
	proc *harness.Proc
}

func (f *fanout) url(path string) string { return "http://" + f.addr + path }

// startFanout runs a fan-out on topic with the e2e defaults plus env, and
// waits until it is ready.
func startFanout(t *testing.T, brokers, topic string, env map[string]string) *fanout {
	t.Helper()
	f := &fanout{addr: harness.FreeAddr(t)}
	e := map[string]string{
		"KAFKA_BROKERS": brokers,
		"FANOUT_ADDR":   f.addr,
		"FANOUT_TOPICS": topic,
		// Only the test's own topic: the default pattern, playback-.*,
		// would also serve every other test's topic on the shared broker.
		"FANOUT_TOPIC_PATTERN": "",
		"FANOUT_TAIL_RATE":     "100000",
		"FANOUT_FRAME_HZ":      "20",
		"LOG_LEVEL":            "warn",
	}
	for k, v := range env {
		e[k] = v
	}
	f.proc = harness.Start(t, "fanout", e)
	harness.WaitReady(t, f.url("/readyz"), 60*time.Second)
	return f
}

// fanSnapshot is the part of a snapshot the tests look at.
type fanSnapshot struct {
	Type        string `json:"type"`
	Full        bool   `json:"full"`
	Stale       bool   `json:"stale"`
	EventsTotal uint64 `json:"events_total"`
	Source      struct {
		State   string `json:"state"`
		Message string `json:"message"`
	} `json:"source"`
	Overall struct {
		ConcurrentViewers int64             `json:"concurrent_viewers"`
		Attempts          uint64            `json:"attempts"`
		EventsByType      map[string]uint64 `json:"events_by_type"`
	} `json:"overall"`
	Streams []string `json:"streams"`
	Series  struct {
		Start   int64 `json:"start"`
		Length  int   `json:"length"`
		Overall struct {
			Attempts          []float64 `json:"attempts"`
			ConcurrentViewers []float64 `json:"concurrent_viewers"`
		} `json:"overall"`
	} `json:"series"`
}

func snapshotOf(t *testing.T, f *fanout, full bool) fanSnapshot {
	t.Helper()
	var s fanSnapshot
	path := "/api/snapshot"
	if full {
		path += "?full=1"
	}
	if err := getJSON(f.url(path), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// syncProducer writes records with chosen timestamps.
func syncProducer(t *testing.T, brokers string) sarama.SyncProducer {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer([]string{brokers}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// validEvent is a start event of session id at ts.
func validEvent(id string, seq uint64, typ event.Type, ts time.Time) []byte {
	e := event.Event{V: 1, EventID: fmt.Sprint(id, "-", seq), SessionID: id, Seq: seq, Stream: "e2e", UserID: "u1",
		MovieID: "m0001", Type: typ, Device: "tv", TS: ts, StopReason: event.StopQuit}
	if typ == event.Play {
		e.FirstFrame, e.StartupMS, e.Bitrate = true, 1200, 3000
	}
	return e.AppendJSON(nil)
}

func send(t *testing.T, p sarama.SyncProducer, topic string, partition int32, ts time.Time, value []byte) {
	t.Helper()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: partition, Timestamp: ts, Value: sarama.ByteEncoder(value)}); err != nil {
		t.Fatal(err)
	}
}

// wsDial opens /ws with a header and returns the HTTP status on failure.
func wsDial(addr string, header http.Header, local string) (*websocket.Conn, int, error) {
	d := *websocket.DefaultDialer
	if local != "" {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		d.NetDialContext = nd.DialContext
	}
	u := url.URL{Scheme: "ws", Host: addr, Path: "/ws"}
	c, resp, err := d.DialContext(context.Background(), u.String(), header)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	return c, status, err
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
