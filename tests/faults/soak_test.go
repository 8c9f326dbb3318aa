//go:build soak

package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
	"github.com/gorilla/websocket"

	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

// TestSoak is `make soak`, never part of make test: SOAK_DURATION (default
// 1h) at SOAK_RATE events/s (10,000) through the real producer and fan-out
// on the three-node cluster, SOAK_CLIENTS WebSocket clients (500) that
// connect, read for 5 to 60 s and leave, over and over, and one broker
// restarted every SOAK_RESTART_EVERY (10m; a sixth of a shorter run). Every
// 10 s it samples each service's RSS, goroutines, open files and Kafka lag
// (the producer's unacknowledged events, the fan-out's records behind the
// high-water marks) and each broker's RSS; at the end it prints them as a
// table with their slope per hour after the first minute, and checks that
// nothing was lost or duplicated: acknowledged + failed = generated with
// nothing failed, every acknowledged event in Kafka once (by event_id),
// the fan-out's count equal. It fails on a loss, a duplicate, or
// goroutines or open files that keep growing.
func TestSoak(t *testing.T) {
	duration := envDuration(t, "SOAK_DURATION", time.Hour)
	rate := envInt(t, "SOAK_RATE", 10000)
	clients := envInt(t, "SOAK_CLIENTS", 500)
	restartEvery := envDuration(t, "SOAK_RESTART_EVERY", min(10*time.Minute, duration/6))
	const topic, sampleEvery, warmup = "soak", 10 * time.Second, time.Minute
	t.Logf("soak: %v at %d events/s, %d WebSocket clients churning, a broker restarted every %v", duration, rate, clients, restartEvery)

	cluster.CreateTopic(t, topic, 3)
	f := startFanout(t, harness.FastBin(t), plain(cluster.Bootstrap(kafkatest.Plaintext)), topic,
		map[string]string{"FANOUT_MAX_CONNECTIONS_PER_IP": "0", "LOG_LEVEL": "warn"})
	p := startProducer(t, harness.FastBin(t), plain(cluster.Bootstrap(kafkatest.Plaintext)), topic, rate, nil) // info: its last line has the counts
	p.waitReady(t, 60*time.Second)
	f.waitReady(t, 60*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	var sessions atomic.Int64
	var wsErrors causes
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			churn(ctx, f.addr, uint64(i), &sessions, &wsErrors)
		}()
	}

	samples := map[string][]sample{}
	add := func(key string, at time.Time, v float64) { samples[key] = append(samples[key], sample{at, v}) }
	start := time.Now()
	nextRestart := start.Add(restartEvery)
	restarts := 0
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
sampling:
	for {
		select {
		case <-ctx.Done():
			break sampling
		case now := <-tick.C:
			for _, svc := range []*service{p, f} {
				m := svc.metrics(t)
				add(svc.Name+"\trss_mb", now, m.Sum("process_resident_memory_bytes")/(1<<20))
				add(svc.Name+"\tgoroutines", now, m.Sum("go_goroutines"))
				add(svc.Name+"\topen_files", now, m.Sum("process_open_fds"))
			}
			add("producer\tlag (unacknowledged events)", now, p.metrics(t).Sum("playpulse_producer_buffered_events"))
			add("fanout\tlag (records behind)", now, f.metrics(t).Sum("playpulse_fanout_partition_lag"))
			add("fanout\twebsocket clients", now, f.metrics(t).Sum("playpulse_fanout_clients"))
			for id := int32(1); id <= int32(cluster.Nodes()); id++ {
				add(fmt.Sprintf("broker-%d\trss_mb", id), now, rssMB(cluster.Node(id).Pid()))
			}
			if p.Exited() || f.Exited() {
				t.Fatal("a service exited")
			}
			if now.After(nextRestart) {
				id := int32(restarts%cluster.Nodes()) + 1
				t0 := time.Now()
				cluster.Node(id).Restart(t)
				cluster.WaitBrokers(t)
				restarts++
				t.Logf("%6.0fs broker %d restarted in %v", time.Since(start).Seconds(), id, time.Since(t0).Round(100*time.Millisecond))
				nextRestart = nextRestart.Add(restartEvery)
			}
		}
	}
	wg.Wait()

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "service\tmetric\tat 1 min\tend\tmin\tmax\tslope per hour\t\n")
	keys := slices.Sorted(maps.Keys(samples))
	var growing []string
	for _, k := range keys {
		s := samples[k]
		var steady []sample
		for _, x := range s {
			if x.at.Sub(start) >= warmup {
				steady = append(steady, x)
			}
		}
		if len(steady) < 2 {
			steady = s
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, x := range steady {
			lo, hi = min(lo, x.v), max(hi, x.v)
		}
		first, last := steady[0].v, steady[len(steady)-1].v
		slope := slopePerHour(steady)
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.1f\t%+.1f\t\n", k, first, last, lo, hi, slope)
		if (strings.HasSuffix(k, "goroutines") || strings.HasSuffix(k, "open_files")) && last > first*1.25+10 && slope > 0 {
			growing = append(growing, strings.ReplaceAll(k, "\t", " "))
		}
	}
	tw.Flush()
	t.Logf("soak: %v, %d broker restarts, %d WebSocket sessions (%d ended in an error%s)\n%s", time.Since(start).Round(time.Second), restarts, sessions.Load(), wsErrors.total(), &wsErrors, b.String())

	// Nothing lost, nothing duplicated.
	c := stopProducer(t, p)
	cluster.WaitInSync(t, topic, 2*time.Minute)
	records, distinct := countDistinct(t, topic)
	waitFanoutCount(t, f, c.Acknowledged)
	t.Logf("generated %d, acknowledged %d, failed %d; Kafka holds %d records, %d distinct events; the fan-out counted them all", c.Generated, c.Acknowledged, c.Failed, records, distinct)
	if c.Failed != 0 || records != c.Acknowledged || distinct != c.Acknowledged {
		t.Errorf("LOST OR DUPLICATED: generated %d, acknowledged %d, failed %d, records %d, distinct %d", c.Generated, c.Acknowledged, c.Failed, records, distinct)
	} else {
		t.Logf("nothing lost, nothing duplicated")
	}
	if len(growing) > 0 {
		t.Errorf("still growing after the first minute: %v", growing)
	}
}

type sample struct {
	at time.Time
	v  float64
}

// slopePerHour is the least-squares slope of the samples, per hour.
func slopePerHour(s []sample) float64 {
	n := float64(len(s))
	var sx, sy, sxx, sxy float64
	for _, x := range s {
		h := x.at.Sub(s[0].at).Hours()
		sx, sy, sxx, sxy = sx+h, sy+x.v, sxx+h*h, sxy+h*x.v
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// churn is one WebSocket client that connects, reads for 5 to 60 s,
// leaves, and comes back, until ctx ends.
func churn(ctx context.Context, addr string, seed uint64, sessions *atomic.Int64, errs *causes) {
	r := rand.New(rand.NewPCG(seed, 42))
	for ctx.Err() == nil {
		conn, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+addr+"/ws", nil)
		if err != nil {
			if ctx.Err() == nil {
				errs.add("connect", err, resp)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		resp.Body.Close()
		sessions.Add(1)
		stay := time.Duration(5+r.IntN(56)) * time.Second
		deadline := time.Now().Add(stay)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			if _, _, err := conn.ReadMessage(); err != nil {
				errs.add("read", err, nil)
				break
			}
		}
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		conn.Close()
	}
}

// causes counts the WebSocket sessions that ended in an error by why: the
// close code and reason the fan-out sent, a read timeout, the handshake's
// HTTP status, or the error's type. At most maxCauses kinds are kept apart
// (the rest are "other"), so a hostile variety of messages cannot grow it.
type causes struct {
	mu sync.Mutex
	n  map[string]int64
}

const maxCauses = 20

func (c *causes) add(when string, err error, resp *http.Response) {
	var why string
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		why = fmt.Sprintf("closed %d %q", ce.Code, ce.Text)
	case errors.As(err, &ne) && ne.Timeout():
		why = "timeout"
	case resp != nil:
		why = fmt.Sprintf("HTTP %d", resp.StatusCode)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		why = "connection closed without a close frame"
	case errors.Is(err, syscall.ECONNREFUSED):
		why = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		why = "connection reset"
	default:
		why = fmt.Sprintf("%T", err)
	}
	key := when + ": " + why
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int64{}
	}
	if _, ok := c.n[key]; !ok && len(c.n) >= maxCauses {
		key = when + ": other"
	}
	c.n[key]++
}

func (c *causes) total() (n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.n {
		n += v
	}
	return n
}

// String lists the causes, the most frequent first: ": read: timeout 12, ...".
func (c *causes) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := slices.SortedFunc(maps.Keys(c.n), func(a, b string) int {
		if d := c.n[b] - c.n[a]; d != 0 {
			return int(d)
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	sep := ": "
	for _, k := range keys {
		fmt.Fprintf(&b, "%s%s %d", sep, k, c.n[k])
		sep = ", "
	}
	return b.String()
}

// countDistinct reads the whole topic and returns its records and the
// distinct event ids among them (64-bit hashes, sorted: an hour at 10,000
// events/s is 36 million ids, 288 MB).
func countDistinct(t *testing.T, topic string) (records, distinct int64) {
	t.Helper()
	cfg := cluster.Config()
	cfg.Consumer.Fetch.Default = 8 << 20
	cfg.ChannelBufferSize = 8192
	client, err := sarama.NewClient(cluster.Brokers(kafkatest.Plaintext), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var hashes []uint64
	var wg sync.WaitGroup
	for _, part := range parts {
		end, err := client.GetOffset(topic, part, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, part, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			local := make([]uint64, 0, end)
			var e struct {
				ID string `json:"event_id"`
			}
			for m := range pc.Messages() {
				e.ID = ""
				if json.Unmarshal(m.Value, &e) == nil && e.ID != "" {
					h := fnv.New64a()
					h.Write([]byte(e.ID))
					local = append(local, h.Sum64())
				}
				if m.Offset >= end-1 {
					break
				}
			}
			mu.Lock()
			hashes = append(hashes, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(hashes)
	return int64(len(hashes)), int64(len(slices.Compact(hashes)))
}

// rssMB is a process's resident memory, with its children (hack/kafka.sh
// runs the JVM), from /proc.
func rssMB(pid int) float64 {
	if pid == 0 {
		return 0
	}
	total := 0.0
	pids := []int{pid}
	for len(pids) > 0 {
		p := pids[0]
		pids = pids[1:]
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", p)); err == nil {
			if f := strings.Fields(string(b)); len(f) > 1 {
				pages, _ := strconv.ParseFloat(f[1], 64)
				total += pages * float64(os.Getpagesize()) / (1 << 20)
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p, p)); err == nil {
			for _, c := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(c); err == nil {
					pids = append(pids, n)
				}
			}
		}
	}
	return total
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 10m", name, v)
	}
	return d
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
