package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"playpulse.dev/tests/harness"
)

// stack is one producer and one fan-out on a topic of the shared broker.
type stack struct {
	topic    string
	fanout   *harness.Proc
	producer *harness.Proc
	fanAddr  string
	prodAddr string
}

type stackOpts struct {
	rate        string
	partitions  int32
	fanoutEnv   map[string]string
	producerEnv map[string]string
	noProducer  bool
}

func startStack(t *testing.T, o stackOpts) *stack {
	t.Helper()
	if o.partitions == 0 {
		o.partitions = 3
	}
	if o.rate == "" {
		o.rate = "200"
	}
	s := &stack{topic: newTopic(t, o.partitions), fanAddr: harness.FreeAddr(t), prodAddr: harness.FreeAddr(t)}
	env := map[string]string{
		"KAFKA_BROKERS": broker.Addr(),
		"FANOUT_ADDR":   s.fanAddr,
		"FANOUT_TOPICS": s.topic,
		// Only this stack's topic, not every playback-* topic on the broker.
		"FANOUT_TOPIC_PATTERN": "",
		"FANOUT_TAIL_RATE":     "100000", // the tests count every event
		"FANOUT_FRAME_HZ":      "20",
		"LOG_LEVEL":            "warn",
	}
	for k, v := range o.fanoutEnv {
		env[k] = v
	}
	s.fanout = harness.Start(t, "fanout", env)
	harness.WaitReady(t, "http://"+s.fanAddr+"/readyz", 60*time.Second)
	if !o.noProducer {
		s.producer = s.startProducer(t, o.rate, o.producerEnv)
	}
	return s
}

func (s *stack) startProducer(t *testing.T, rate string, extra map[string]string) *harness.Proc {
	env := map[string]string{
		"KAFKA_BROKERS":   broker.Addr(),
		"PRODUCER_TOPIC":  s.topic,
		"PRODUCER_RATE":   rate,
		"PRODUCER_ADDR":   s.prodAddr,
		"PRODUCER_STREAM": "e2e",
		"LOG_LEVEL":       "warn",
	}
	for k, v := range extra {
		env[k] = v
	}
	p := harness.Start(t, "producer", env)
	harness.WaitReady(t, "http://"+s.prodAddr+"/readyz", 60*time.Second)
	return p
}

// wsMessage is any server message; fields by type per docs/protocol.md.
type wsMessage struct {
	Type    string          `json:"type"`
	Skipped int             `json:"skipped"`
	Events  []tailItem      `json:"events"`
	Code    string          `json:"code"`
	Raw     json.RawMessage `json:"-"`
}

type tailItem struct {
	Topic     string          `json:"topic"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	KafkaTS   int64           `json:"kafka_ts"`
	Event     json.RawMessage `json:"event"`
}

func dial(t *testing.T, addr string, header http.Header) *websocket.Conn {
	t.Helper()
	u := url.URL{Scheme: "ws", Host: addr, Path: "/ws"}
	c, resp, err := websocket.DefaultDialer.Dial(u.String(), header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", u.String(), err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *websocket.Conn, d time.Duration) wsMessage {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m wsMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("server sent non-JSON %q: %v", b, err)
	}
	m.Raw = b
	return m
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
