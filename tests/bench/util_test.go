package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/gorilla/websocket"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
	"playpulse.dev/tests/harness"
)

// fanout starts the real fan-out binary (built without the race detector
// when the benchmarks run without it) and waits until it is ready.
func startFanout(b *testing.B, topic string, env map[string]string) (*harness.Proc, string) {
	b.Helper()
	addr := harness.FreeAddr(b)
	e := map[string]string{
		"KAFKA_BROKERS": broker.Addr(), "FANOUT_ADDR": addr, "FANOUT_TOPICS": topic, "LOG_LEVEL": "warn",
		"FANOUT_MAX_CONNECTIONS": "20000", "FANOUT_MAX_CONNECTIONS_PER_IP": "0",
	}
	for k, v := range env {
		e[k] = v
	}
	p := harness.Start(b, "fanout", e)
	harness.WaitReady(b, "http://"+addr+"/readyz", 120*time.Second)
	return p, addr
}

// freshFanout creates topic (3 partitions) and starts a fan-out on it from
// the end (FANOUT_WARMUP=0), with env over the defaults.
func freshFanout(b *testing.B, topic string, env map[string]string) (*harness.Proc, string) {
	b.Helper()
	broker.CreateTopic(b, topic, 3)
	e := map[string]string{"FANOUT_WARMUP": "0"}
	for k, v := range env {
		e[k] = v
	}
	return startFanout(b, topic, e)
}

func startProducer(b *testing.B, topic string, rate int) (*harness.Proc, string) {
	b.Helper()
	addr := harness.FreeAddr(b)
	p := harness.Start(b, "producer", map[string]string{
		"KAFKA_BROKERS": broker.Addr(), "PRODUCER_TOPIC": topic, "PRODUCER_RATE": strconv.Itoa(rate),
		"PRODUCER_ADDR": addr, "PRODUCER_STREAM": "bench", "LOG_LEVEL": "warn",
	})
	harness.WaitReady(b, "http://"+addr+"/readyz", 60*time.Second)
	return p, addr
}

// metric reads one unlabelled sample (or the sum of a family).
func metric(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return math.NaN()
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	sum, found := 0.0, false
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, name) || len(line) == len(name) || (line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return math.NaN()
	}
	return sum
}

// rssKB is the resident memory of a process.
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return n
		}
	}
	return 0
}

// prefill writes n simulated events to topic, timestamped over the last
// span, as fast as the broker takes them.
func prefill(b testing.TB, topic string, n int, span time.Duration) {
	b.Helper()
	sc := sim.DefaultConfig()
	sc.Seed = 7
	s, err := sim.New(sc, "bench", "pf")
	if err != nil {
		b.Fatal(err)
	}
	fastWrite(b, topic, s, float64(n)/span.Seconds(), time.Now().Add(-span), span, 0)
}

// fastWrite writes the events of s whose times fall in [from, from+span),
// at rate events per second of event time, with an async producer (keyed
// by session id, hash partitioned, the event time as the record
// timestamp): as fast as it takes them, or spread evenly over at least
// wall when wall is not 0. It returns the number written once all are
// acknowledged.
func fastWrite(b testing.TB, topic string, s *sim.Sim, rate float64, from time.Time, span, wall time.Duration) int {
	b.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Producer.RequiredAcks = sarama.WaitForLocal
	cfg.Producer.Return.Successes = false
	cfg.Producer.Return.Errors = true
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	cfg.Producer.Flush.Bytes = 256 << 10
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	cfg.Producer.MaxMessageBytes = 900 << 10 // the broker takes batches up to 1 MiB
	cfg.ChannelBufferSize = 8192
	p, err := sarama.NewAsyncProducer([]string{broker.Addr()}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	var failed atomic.Int64
	var first atomic.Value
	done := make(chan struct{})
	go func() {
		for err := range p.Errors() {
			first.CompareAndSwap(nil, err.Err.Error())
			failed.Add(1)
		}
		close(done)
	}()
	s.SetRate(rate)
	n := int(rate * span.Seconds())
	step := time.Duration(float64(time.Second) / rate)
	at := from
	var e event.Event
	start := time.Now()
	for i := range n {
		if wall > 0 && i%1000 == 0 {
			time.Sleep(time.Until(start.Add(time.Duration(float64(wall) * float64(i) / float64(n)))))
		}
		s.Next(at, &e)
		p.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(e.SessionID), Value: sarama.ByteEncoder(e.AppendJSON(nil)), Timestamp: e.TS.Truncate(time.Millisecond)}
		at = at.Add(step)
	}
	p.AsyncClose()
	<-done
	if f := failed.Load(); f > 0 {
		b.Fatalf("fastWrite: %d records failed, first: %v", f, first.Load())
	}
	return n
}

// hwmSum is the number of records in a topic.
func hwms(b *testing.B, topic string) map[int32]int64 {
	b.Helper()
	c, err := sarama.NewClient([]string{broker.Addr()}, sarama.NewConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		b.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		if out[p], err = c.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// clients is a crowd of WebSocket clients that read everything and, when
// lat is set, record the latency of every tail event they receive.
type clients struct {
	conns []*websocket.Conn
	wg    sync.WaitGroup
	lat   *latHist
	msgs  atomic.Int64
}

// dialClients connects n clients; the first sample of them record
// latencies into lat (parsing costs the client side CPU that the fan-out
// would compete with on this machine), the others only read.
func dialClients(b *testing.B, addr string, n, sample int, lat *latHist) *clients {
	b.Helper()
	cs := &clients{lat: lat}
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 1024}
	cs.dial(b, &d, "ws://"+addr+"/ws", n, func(i int, c *websocket.Conn) {
		if lat != nil && i < sample {
			cs.read(c)
		} else {
			cs.discard(c)
		}
	})
	return cs
}

// dial connects n clients with d, each served by its own goroutine
// running serve, which calls wg.Done when it returns.
func (cs *clients) dial(b *testing.B, d *websocket.Dialer, url string, n int, serve func(i int, c *websocket.Conn)) {
	b.Helper()
	for i := 0; i < n; i++ {
		c, _, err := d.DialContext(context.Background(), url, nil)
		if err != nil {
			b.Fatalf("client %d: %v", i, err)
		}
		cs.conns = append(cs.conns, c)
		cs.wg.Add(1)
		go serve(i, c)
	}
}

func (cs *clients) discard(c *websocket.Conn) {
	defer cs.wg.Done()
	buf := make([]byte, 4096)
	for {
		_, r, err := c.NextReader()
		if err != nil {
			return
		}
		cs.msgs.Add(1)
		if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
			return
		}
	}
}

var kafkaTS = []byte(`"kafka_ts":`)

func (cs *clients) read(c *websocket.Conn) {
	defer cs.wg.Done()
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		cs.msgs.Add(1)
		if cs.lat == nil || !bytes.HasPrefix(data, []byte(`{"type":"tail"`)) {
			continue
		}
		now := time.Now().UnixMicro()
		newest := int64(-1)
		for {
			i := bytes.Index(data, kafkaTS)
			if i < 0 {
				break
			}
			data = data[i+len(kafkaTS):]
			j := 0
			for j < len(data) && data[j] >= '0' && data[j] <= '9' {
				j++
			}
			ts, _ := strconv.ParseInt(string(data[:j]), 10, 64)
			cs.lat.add(now - ts*1000)
			newest = max(newest, ts)
		}
		if newest >= 0 && cs.lat.frames != nil {
			cs.lat.frames.add(now - newest*1000)
		}
	}
}

func (cs *clients) close() {
	for _, c := range cs.conns {
		c.Close()
	}
	cs.wg.Wait()
}

// latHist is a histogram of latencies in 100 µs steps up to 10 s.
type latHist struct {
	on     atomic.Bool
	counts [100001]atomic.Int64
	// frames, when set, gets one sample per tail frame: the latency of its
	// newest event, which leaves out the wait for the next frame that the
	// per-client frame rate imposes on every other event.
	frames *latHist
}

func (h *latHist) record(on bool) {
	h.on.Store(on)
	if h.frames != nil {
		h.frames.on.Store(on)
	}
}

func (h *latHist) add(us int64) {
	if !h.on.Load() {
		return
	}
	i := max(us/100, 0)
	if i >= int64(len(h.counts)) {
		i = int64(len(h.counts) - 1)
	}
	h.counts[i].Add(1)
}

func (h *latHist) n() int64 {
	var n int64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// quantile in milliseconds.
func (h *latHist) quantile(q float64) float64 {
	n := h.n()
	rank := int64(math.Ceil(q * float64(n)))
	var cum int64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if cum >= max(rank, 1) {
			return float64(i) / 10
		}
	}
	return math.NaN()
}
