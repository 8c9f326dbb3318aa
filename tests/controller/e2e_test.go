package controller

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"playpulse.dev/services/controller/api/v1alpha1"
	fanoutcfg "playpulse.dev/services/fanout/pkg/config"
	"playpulse.dev/services/playback/envconf"
)

// rateMeter measures the rate of a stream in its Kafka topic by event time:
// the producer stamps every record with the time its pacer scheduled it, so
// the number of records whose timestamp falls in [from, to) over to-from
// is the rate the topic received, independent of delivery delays (which a
// count of offsets between two instants would mix in: on a loaded 2-core
// machine they vary by hundreds of milliseconds).
type rateMeter struct {
	client sarama.Client
	topic  string
}

func newRateMeter(t *testing.T, addr, topic string) *rateMeter {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	c, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rateMeter{client: c, topic: topic}
}

// settle is how far beyond a window the records of every partition must
// reach before the window counts as complete: records of several producers
// may arrive out of timestamp order by up to the delivery delay.
const settle = 3 * time.Second

// record is what the meter keeps of an event: when, from which producer
// process, and for start events the viewer, title and device drawn.
type record struct {
	ts       time.Time
	instance string // the session id without its counter: the producer's instance id
	start    string // "user movie device" of a start event, else ""
}

// parseRecord reads a record's value. A value that is not an event of the
// producer's form fails the test: the topic holds nothing else.
func parseRecord(t *testing.T, msg *sarama.ConsumerMessage) record {
	t.Helper()
	var ev struct {
		SessionID string `json:"session_id"`
		Type      string `json:"event_type"`
		UserID    string `json:"user_id"`
		MovieID   string `json:"movie_id"`
		Device    string `json:"device"`
	}
	if err := json.Unmarshal(msg.Value, &ev); err != nil {
		t.Fatalf("record %d/%d: %v: %s", msg.Partition, msg.Offset, err, msg.Value)
	}
	i := strings.LastIndexByte(ev.SessionID, '-')
	if i <= 0 {
		t.Fatalf("record %d/%d: session id %q lacks the instance prefix", msg.Partition, msg.Offset, ev.SessionID)
	}
	r := record{ts: msg.Timestamp, instance: ev.SessionID[:i]}
	if ev.Type == "start" {
		r.start = ev.UserID + " " + ev.MovieID + " " + ev.Device
	}
	return r
}

// timestamps returns the timestamps of the topic's records in [from, to),
// sorted.
func (m *rateMeter) timestamps(t *testing.T, from, to time.Time) []time.Time {
	t.Helper()
	recs := m.records(t, from, to)
	out := make([]time.Time, len(recs))
	for i, r := range recs {
		out[i] = r.ts
	}
	return out
}

// records returns the topic's records in [from, to), sorted by timestamp.
// It waits (up to a minute) until every partition holds a record stamped at
// or after to+settle.
func (m *rateMeter) records(t *testing.T, from, to time.Time) []record {
	t.Helper()
	if err := m.client.RefreshMetadata(m.topic); err != nil {
		t.Fatal(err)
	}
	parts, err := m.client.Partitions(m.topic)
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := sarama.NewConsumerFromClient(m.client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var out []record
	deadline := time.After(time.Until(to.Add(settle)) + time.Minute)
	for _, p := range parts {
		start, err := m.client.GetOffset(m.topic, p, from.Add(-settle).UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		if start < 0 { // no record that late yet: start at the end
			if start, err = m.client.GetOffset(m.topic, p, sarama.OffsetNewest); err != nil {
				t.Fatal(err)
			}
		}
		pc, err := consumer.ConsumePartition(m.topic, p, start)
		if err != nil {
			t.Fatal(err)
		}
	read:
		for {
			select {
			case msg := <-pc.Messages():
				ts := msg.Timestamp
				if !ts.Before(to.Add(settle)) {
					break read
				}
				if !ts.Before(from) && ts.Before(to) {
					out = append(out, parseRecord(t, msg))
				}
			case <-deadline:
				pc.Close()
				t.Fatalf("partition %d of %s has no record stamped after %s yet", p, m.topic, to.Add(settle).Format(time.RFC3339Nano))
			}
		}
		pc.Close()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ts.Before(out[j].ts) })
	return out
}

// measure returns the rate over the window [from, from+d) by event time,
// waiting for the window to pass and its records to arrive.
func (m *rateMeter) measure(t *testing.T, from time.Time, d time.Duration) float64 {
	t.Helper()
	ts := m.timestamps(t, from, from.Add(d))
	return float64(len(ts)) / d.Seconds()
}

// byInstance measures the window [from, from+d) per producer process: its
// rate, and the first n start events it drew.
func (m *rateMeter) byInstance(t *testing.T, from time.Time, d time.Duration, n int) (map[string]float64, map[string][]string) {
	t.Helper()
	rates, starts := map[string]float64{}, map[string][]string{}
	for _, r := range m.records(t, from, from.Add(d)) {
		rates[r.instance] += 1 / d.Seconds()
		if r.start != "" && len(starts[r.instance]) < n {
			starts[r.instance] = append(starts[r.instance], r.start)
		}
	}
	return rates, starts
}

// follow returns the end of the first window of length w, measured from
// since, whose rate is within tol of want, and that rate; it fails the test
// if no window ending at most limit after since qualifies.
func (m *rateMeter) follow(t *testing.T, since time.Time, want, tol float64, w, limit time.Duration) (time.Duration, float64) {
	t.Helper()
	ts := m.timestamps(t, since, since.Add(limit))
	const step = 100 * time.Millisecond
	last := 0.0
	lo, hi := 0, 0
	for end := since.Add(w); !end.After(since.Add(limit)); end = end.Add(step) {
		start := end.Add(-w)
		for lo < len(ts) && ts[lo].Before(start) {
			lo++
		}
		for hi < len(ts) && ts[hi].Before(end) {
			hi++
		}
		last = float64(hi-lo) / w.Seconds()
		if math.Abs(last-want) <= tol*want {
			return end.Sub(since), last
		}
	}
	t.Fatalf("the rate did not come within %.0f%% of %.0f/s in any %s window ending within %s of the change; the last: %.1f/s", tol*100, want, w, limit, last)
	return 0, 0
}

// checkStreamField reads a few records and checks each names the stream.
func checkStreamField(t *testing.T, addr, topic, stream string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	c, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	timeout := time.After(30 * time.Second)
	for i := 0; i < 20; i++ {
		select {
		case m := <-pc.Messages():
			var ev struct{ Stream string }
			if err := json.Unmarshal(m.Value, &ev); err != nil || ev.Stream != stream {
				t.Fatalf("record %d: stream %q (err %v), want %q: %s", m.Offset, ev.Stream, err, stream, m.Value)
			}
		case <-timeout:
			t.Fatalf("only %d records read from %s/0", i, topic)
		}
	}
}

// checkFanoutServes: the stream's topic is the controller's default form,
// and a fan-out with its default configuration serves it, so the stream
// shows on the dashboard with no configuration (tests/e2e checks that the
// fan-out does discover such a topic while it runs).
func checkFanoutServes(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("status.topicName %q, want %q", got, want)
	}
	vars, err := envconf.Vars(&fanoutcfg.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		t.Setenv(v.Name, "") // restored after the test
		os.Unsetenv(v.Name)
	}
	var c fanoutcfg.Config
	if err := envconf.Load(&c); err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Pattern; !slices.Contains(r.Topics, got) && (p == nil || !p.MatchString(got)) {
		t.Errorf("topic %q is not served by a fan-out with the default FANOUT_TOPICS %v and FANOUT_TOPIC_PATTERN %q", got, r.Topics, r.TopicPattern)
	}
}

func within(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }

// TestEndToEnd is the way users change the load: kubectl apply a stream at
// 200 events/s, then at 2,000/s, then kubectl scale it to 3 replicas, and
// measure what arrives in the real Kafka topic each time.
//
//	go test -race -count=1 -v -run TestEndToEnd ./tests/controller/
func TestEndToEnd(t *testing.T) {
	b := kafka(t)
	p := controlPlane(t, false)
	ns := p.namespace(t)
	startController(t, p, ns, map[string]string{"KAFKA_BROKERS": b.Addr()}) // auto: no Strimzi, Kafka admin mode
	k := startKubelet(t, p, ns)
	defer k.stop()

	const name, topic, dep = "live", "playback-live", "live-producer"
	apply := func(rate int) time.Time {
		p.kubectl(t, fmt.Sprintf(`apiVersion: playpulse.dev/v1alpha1
kind: PlaybackStream
metadata:
  name: %s
  namespace: %s
spec:
  eventsPerSecond: %d
`, name, ns, rate), "apply", "-f", "-")
		return time.Now()
	}
	ready := func(replicas int32) {
		t.Helper()
		waitFor(t, 90*time.Second, fmt.Sprintf("stream producing with %d ready replicas", replicas), func() error {
			if err := conditionIs(p, ns, name, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonProducing); err != nil {
				return err
			}
			if s := getStream(t, p, ns, name); s.Status.ReadyReplicas != replicas {
				return fmt.Errorf("readyReplicas %d", s.Status.ReadyReplicas)
			}
			if n := len(k.running(dep)); n != int(replicas) {
				return fmt.Errorf("%d producer processes", n)
			}
			return nil
		})
	}

	start := apply(200)
	ready(1)
	t.Logf("200/s stream ready (topic created, producer running and ready) %s after kubectl apply", time.Since(start).Round(time.Millisecond))
	m := newRateMeter(t, b.Addr(), topic)
	r200 := m.measure(t, time.Now(), 10*time.Second)
	t.Logf("measured at 200/s, 1 replica: %.1f events/s over 10 s", r200)
	if !within(r200, 200, 0.05) {
		t.Errorf("rate %.1f/s, want 200 ± 5%%", r200)
	}
	checkStreamField(t, b.Addr(), topic, name)
	checkFanoutServes(t, getStream(t, p, ns, name).Status.TopicName, topic)

	start = apply(2000)
	took, r := m.follow(t, start, 2000, 0.05, 2*time.Second, 15*time.Second)
	t.Logf("after kubectl apply of 2000/s, the first 2 s window within 5%% (%.1f/s) ended %s later", r, took.Round(10*time.Millisecond))
	ready(1)
	r2000 := m.measure(t, time.Now(), 10*time.Second)
	t.Logf("measured at 2000/s, 1 replica: %.1f events/s over 10 s", r2000)
	if !within(r2000, 2000, 0.05) {
		t.Errorf("rate %.1f/s, want 2000 ± 5%%", r2000)
	}

	start = time.Now()
	p.kubectl(t, "", "-n", ns, "scale", "playbackstream/"+name, "--replicas=3")
	ready(3)
	t.Logf("3 producer processes ready %s after kubectl scale: %v", time.Since(start).Round(time.Millisecond), k.running(dep))
	if s := getStream(t, p, ns, name); s.Status.EventsPerSecondPerReplica < 666.6 || s.Status.EventsPerSecondPerReplica > 666.7 {
		t.Errorf("eventsPerSecondPerReplica %v, want 666.67", s.Status.EventsPerSecondPerReplica)
	}
	d, err := getDeployment(p, ns, dep)
	if err != nil {
		t.Fatal(err)
	}
	if got := envOf(t, d)["PRODUCER_RATE"]; !strings.HasPrefix(got, "666.66") {
		t.Errorf("PRODUCER_RATE %q, want 2000/3", got)
	}
	seed := envOf(t, d)["PRODUCER_SEED"]
	if seed == "" || seed == "0" {
		t.Errorf("PRODUCER_SEED %q: every stream gets a seed, derived from its UID when spec.profile.seed is unset", seed)
	}
	// The three processes, seen in Kafka: each sends its share, and, though
	// they share PRODUCER_SEED, they simulate different viewers.
	const firstStarts = 20
	rates, starts := m.byInstance(t, time.Now(), 10*time.Second, firstStarts)
	r3 := 0.0
	for _, r := range rates {
		r3 += r
	}
	var each []string
	for inst, r := range rates {
		each = append(each, fmt.Sprintf("%s %.1f/s", inst, r))
	}
	sort.Strings(each)
	t.Logf("measured at 2000/s, 3 replicas: %.1f events/s over 10 s; by producer process: %s", r3, strings.Join(each, ", "))
	if !within(r3, 2000, 0.05) {
		t.Errorf("rate %.1f/s with 3 replicas, want 2000 ± 5%%", r3)
	}
	if len(rates) != 3 {
		t.Errorf("%d producer processes wrote to the topic, want 3: %v", len(rates), rates)
	}
	for inst, r := range rates {
		if !within(r, 2000.0/3, 0.10) {
			t.Errorf("producer %s: %.1f events/s, want its share 666.7 ± 10%%", inst, r)
		}
	}
	seen := map[string]string{}
	for inst, st := range starts {
		if len(st) < firstStarts {
			t.Errorf("producer %s: %d start events in 10 s, want at least %d", inst, len(st), firstStarts)
			continue
		}
		key := strings.Join(st, "|")
		if other, ok := seen[key]; ok {
			t.Errorf("producers %s and %s (seed %s) drew the same first %d viewers, titles and devices: replicas repeat each other", other, inst, seed, firstStarts)
		}
		seen[key] = inst
	}
}
