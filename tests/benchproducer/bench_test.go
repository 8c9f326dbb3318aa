package benchproducer

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
	"playpulse.dev/services/producer/pkg/config"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

// Targets from the issue.
const (
	targetSimPerCore   = 1_000_000 // events/s per core, the simulator alone (Next)
	targetSimAllocs    = 2         // allocations per event
	targetMaxRate      = 200_000   // events/s, one producer process, acks=all
	targetAccuracy     = 0.02      // ±2% over 10 s
	targetAddedLatency = 0.010     // seconds, p99 at low rates
)

const (
	window  = 10 * time.Second
	deliver = time.Second
)

// BenchmarkProducer measures, once whatever b.N (run it with -benchtime 1x):
// the simulator alone; the producer's maximum sustained rate into a real
// Kafka broker with acks=all for each codec; its rate accuracy and added
// latency at 10, 1k, 10k and 50k events/s. It prints one table.
func BenchmarkProducer(b *testing.B) {
	var rep report
	rep.machine()
	progress("simulator")

	rep.simNext = benchSim(false)
	rep.simJSON = benchSim(true)
	progress("codecs")
	rep.codecs = benchCodecs()

	progress("starting Kafka and building the producer")
	broker := kafkatest.Start(b)
	bin := harness.FastBin(b)
	rep.kafkaJVM = broker.JVMPid() != 0

	linger := defaultLinger(b)
	for _, codec := range []string{"none", "snappy", "lz4", "zstd"} {
		rep.max = append(rep.max, saturate(b, broker, bin, codec, linger))
	}
	for _, l := range []string{"0s", "20ms"} {
		rep.max = append(rep.max, saturate(b, broker, bin, "lz4", l))
	}
	rep.defaultLinger = linger
	for _, rate := range []float64{10, 1000, 10000, 50000} {
		rep.acc = append(rep.acc, accuracy(b, broker, bin, rate))
	}
	rep.print(os.Stdout)
	for _, m := range rep.max {
		if m.codec == "lz4" && m.linger == linger {
			b.ReportMetric(m.rate, "max-events/s")
		}
	}
	b.ReportMetric(rep.simNext.perSec, "sim-events/s/core")
}

type simResult struct {
	perSec float64
	allocs float64
	bytes  float64
}

// benchSim runs the simulator alone on one goroutine (so per core), warmed
// up for two simulated minutes at 10,000 events/s (≈85k live sessions), like
// the sim package's BenchmarkNext*.
func benchSim(encode bool) simResult {
	cfg := sim.DefaultConfig()
	cfg.Seed = 42
	s, err := sim.New(cfg, "bench", "bench-pod-x7k2")
	if err != nil {
		panic(err)
	}
	const rate = 10000
	s.SetRate(rate)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var e event.Event
	for range 120 * rate {
		now = now.Add(time.Second / rate)
		s.Next(now, &e)
	}
	// Timed by hand: testing.Benchmark would follow -benchtime, which is 1x
	// for this benchmark.
	buf := make([]byte, 0, 1024)
	const n = 3_000_000
	size := 0
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start := time.Now()
	for range n {
		now = now.Add(time.Second / rate)
		s.Next(now, &e)
		if encode {
			buf = e.AppendJSON(buf[:0])
			size += len(buf)
		}
	}
	el := time.Since(start)
	runtime.ReadMemStats(&m1)
	return simResult{
		perSec: n / el.Seconds(),
		allocs: float64(m1.Mallocs-m0.Mallocs) / n,
		bytes:  float64(size) / n,
	}
}

type maxResult struct {
	codec, linger string
	rate          float64 // acknowledged events/s, high-water delta over the window
	bytesPerEvent float64 // on the broker's disk
	prodCPU       float64 // cores used by the producer
	brokerCPU     float64 // cores used by the broker JVM
	machineCPU    float64 // cores busy on the whole machine
	p50, p99      float64 // send latency, seconds
	failed        float64
}

var topicSeq atomic.Int64

func newTopic(b *testing.B, broker *kafkatest.Broker, what string) string {
	name := fmt.Sprintf("bench-%s-%d", what, topicSeq.Add(1))
	broker.CreateTopic(b, name, 3)
	return name
}

type runningProducer struct {
	proc *harness.Proc
	url  string // metrics
}

func startProducer(b *testing.B, broker *kafkatest.Broker, bin, topic string, env map[string]string) runningProducer {
	addr := harness.FreeAddr(b)
	e := map[string]string{
		"KAFKA_BROKERS":   broker.Addr(),
		"PRODUCER_TOPIC":  topic,
		"PRODUCER_ADDR":   addr,
		"PRODUCER_STREAM": "bench",
		"LOG_LEVEL":       "warn",
	}
	for k, v := range env {
		e[k] = v
	}
	p := harness.StartFrom(b, bin, "producer", e)
	harness.WaitReady(b, "http://"+addr+"/readyz", 60*time.Second)
	rp := runningProducer{proc: p, url: "http://" + addr + "/metrics"}
	harness.Eventually(b, 30*time.Second, "first acknowledgement", func() error {
		m, err := Scrape(rp.url)
		if err != nil {
			return err
		}
		if m.Sum("playpulse_producer_events_total") < 1 {
			return fmt.Errorf("nothing acknowledged yet")
		}
		return nil
	})
	return rp
}

func (rp runningProducer) stop(b *testing.B) {
	rp.proc.Stop(15 * time.Second)
}

// saturate runs one producer far above what it can do (1M events/s) and
// measures what Kafka acknowledged over the window after a 5 s warm-up.
func saturate(b *testing.B, broker *kafkatest.Broker, bin, codec, linger string) maxResult {
	progress("max sustained rate, " + codec + ", linger " + linger)
	topic := newTopic(b, broker, "max-"+codec)
	rp := startProducer(b, broker, bin, topic, map[string]string{
		"PRODUCER_RATE":        "1000000",
		"PRODUCER_COMPRESSION": codec,
		"PRODUCER_LINGER":      linger,
	})
	defer rp.stop(b)
	t, err := OpenTopic(broker.Addr(), topic)
	if err != nil {
		b.Fatal(err)
	}
	defer t.Close()
	time.Sleep(5 * time.Second) // warm-up (measurement schedule, not a condition wait)

	jvm := broker.JVMPid()
	m0, err := Scrape(rp.url)
	if err != nil {
		b.Fatal(err)
	}
	c0 := cpuSnapshot(rp.proc.Pid(), jvm)
	hw0, err := t.HighWater()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	time.Sleep(window)
	hw1, err := t.HighWater()
	if err != nil {
		b.Fatal(err)
	}
	el := time.Since(start).Seconds()
	c1 := cpuSnapshot(rp.proc.Pid(), jvm)
	m1, err := Scrape(rp.url)
	if err != nil {
		b.Fatal(err)
	}
	size, err := t.Bytes(broker.Addr())
	if err != nil {
		b.Fatal(err)
	}
	lat := m1.Histogram("playpulse_producer_send_latency_seconds").Sub(m0.Histogram("playpulse_producer_send_latency_seconds"))
	r := maxResult{
		codec: codec, linger: linger,
		rate:          float64(hw1-hw0) / el,
		bytesPerEvent: float64(size) / float64(hw1),
		prodCPU:       (c1.proc - c0.proc) / el,
		brokerCPU:     (c1.jvm - c0.jvm) / el,
		machineCPU:    (c1.busy - c0.busy) / el,
		p50:           lat.Quantile(0.5),
		p99:           lat.Quantile(0.99),
		failed:        m1.Sum("playpulse_producer_events_failed_total"),
	}
	b.Logf("max %s linger %s: %.0f events/s, %.1f B/event, producer %.2f cores, broker %.2f, machine %.2f, p50 %.1f ms, p99 %.1f ms, failed %v",
		codec, linger, r.rate, r.bytesPerEvent, r.prodCPU, r.brokerCPU, r.machineCPU, r.p50*1e3, r.p99*1e3, r.failed)
	return r
}

type accResult struct {
	RateResult
	err      error
	p50, p99 float64
	le10ms   float64 // share of sends acknowledged within 10 ms
	failed   float64
}

// accuracy runs one producer at rate and measures the window (see the
// package documentation) after a 3 s warm-up.
func accuracy(b *testing.B, broker *kafkatest.Broker, bin string, rate float64) accResult {
	progress(fmt.Sprintf("rate accuracy at %g/s", rate))
	topic := newTopic(b, broker, "rate")
	rp := startProducer(b, broker, bin, topic, map[string]string{"PRODUCER_RATE": strconv.FormatFloat(rate, 'f', -1, 64)})
	defer rp.stop(b)
	t, err := OpenTopic(broker.Addr(), topic)
	if err != nil {
		b.Fatal(err)
	}
	defer t.Close()
	t0 := NextWindow(3 * time.Second)
	time.Sleep(time.Until(t0.Add(-200 * time.Millisecond)))
	m0, err := Scrape(rp.url)
	if err != nil {
		b.Fatal(err)
	}
	res, err := t.MeasureRate(rate, t0, window, deliver)
	if err != nil {
		b.Fatal(err)
	}
	m1, err := Scrape(rp.url)
	if err != nil {
		b.Fatal(err)
	}
	lat := m1.Histogram("playpulse_producer_send_latency_seconds").Sub(m0.Histogram("playpulse_producer_send_latency_seconds"))
	r := accResult{RateResult: res, err: res.Err(targetAccuracy, rate >= 10),
		p50: lat.Quantile(0.5), p99: lat.Quantile(0.99), le10ms: lat.FractionBelow(0.010),
		failed: m1.Sum("playpulse_producer_events_failed_total")}
	b.Logf("rate %g: %s; p50 %.2f ms p99 %.2f ms; err %v", rate, res, r.p50*1e3, r.p99*1e3, r.err)
	return r
}

// progress tells the person waiting what is being measured (stderr: go
// test prints a benchmark's log only at its end).
func progress(what string) {
	fmt.Fprintf(os.Stderr, "%s benchproducer: %s\n", time.Now().Format("15:04:05"), what)
}

type cpu struct{ proc, jvm, busy float64 } // CPU seconds

func cpuSnapshot(pid, jvm int) cpu {
	return cpu{proc: harness.CPUSeconds(pid), jvm: harness.CPUSeconds(jvm), busy: harness.MachineBusySeconds()}
}

type report struct {
	loadStart string
	cores     int
	cpuModel  string
	goVer     string
	kafkaJVM  bool
	simNext   simResult
	simJSON   simResult
	codecs    []codecResult
	// defaultLinger is PRODUCER_LINGER's default: the target applies to
	// the producer as shipped.
	defaultLinger string
	max           []maxResult
	acc           []accResult
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func (r *report) machine() {
	r.loadStart = loadavg()
	r.cores = runtime.NumCPU()
	r.goVer = runtime.Version()
	r.cpuModel = "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				r.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

func (r *report) print(out io.Writer) {
	fmt.Fprintf(out, "\nPlaypulse producer benchmark — %d cores, %s, %s, %s/%s, Apache Kafka %s (single broker on this machine, acks=all)\n",
		r.cores, r.cpuModel, r.goVer, runtime.GOOS, runtime.GOARCH, kafkatest.KafkaVersion)
	fmt.Fprintf(out, "load average at start %s, at end %s (other processes share these cores: compare \"whole machine\" with producer + broker)\n\n", r.loadStart, loadavg())
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "measure\tresult\ttarget\tverdict\tnotes")
	fmt.Fprintf(w, "simulator alone (Next), one core\t%.0f events/s\t≥ %d\t%s\t\n",
		r.simNext.perSec, targetSimPerCore, verdict(r.simNext.perSec >= targetSimPerCore))
	fmt.Fprintf(w, "simulator allocations\t%.2f allocs/event\t≤ %d\t%s\t\n", r.simNext.allocs, targetSimAllocs, verdict(r.simNext.allocs <= targetSimAllocs))
	fmt.Fprintf(w, "simulator + JSON encoding (Next+AppendJSON), one core\t%.0f events/s, %.2f allocs/event\t-\t-\t%.0f B/event: what the producer spends per event before Kafka\n",
		r.simJSON.perSec, r.simJSON.allocs, r.simJSON.bytes)
	for _, c := range r.codecs {
		fmt.Fprintf(w, "codec %s on simulated events, in process\t%.1fx smaller\t-\t-\tcompress %.0f ns/event, decompress %.0f ns/event, one core; batches of 256 KiB as sarama builds them\n",
			c.codec, c.ratio, c.compressNs, c.decompNs)
	}
	for _, m := range r.max {
		target, v := "-", "-"
		if m.codec == "lz4" && m.linger == r.defaultLinger {
			target, v = fmt.Sprintf("≥ %d", targetMaxRate), verdict(m.rate >= targetMaxRate && m.failed == 0)
		}
		fmt.Fprintf(w, "max sustained, %s, linger %s\t%.0f events/s\t%s\t%s\t%.1f B/event on disk; CPU per event: producer %.1f µs, broker %.1f µs; cores busy: producer %.2f, broker %.2f, whole machine %.2f of %d; latency p50 %.1f ms, p99 %.1f ms; failed %.0f\n",
			m.codec, m.linger, m.rate, target, v, m.bytesPerEvent, 1e6*m.prodCPU/m.rate, 1e6*m.brokerCPU/m.rate,
			m.prodCPU, m.brokerCPU, m.machineCPU, r.cores, m.p50*1e3, m.p99*1e3, m.failed)
	}
	for _, a := range r.acc {
		fmt.Fprintf(w, "rate accuracy at %g/s (10 s in Kafka)\t%d by timestamp (%+.2f%%), %d high-water (%+.2f%%)\t±%.0f%%\t%s\tlate records %d\n",
			a.Target, a.ByTimestamp, pct(float64(a.ByTimestamp), a.Expected()), a.HighWater, pct(float64(a.HighWater), a.Expected()),
			targetAccuracy*100, verdict(a.err == nil && a.failed == 0), a.Recount-a.ByTimestamp)
	}
	for _, a := range r.acc {
		if a.Target > 1000 {
			continue
		}
		fmt.Fprintf(w, "added latency at %g/s (event time → ack)\tp50 %.2f ms, p99 %.2f ms\tp99 < %.0f ms\t%s\t%.1f%% within 10 ms\n",
			a.Target, a.p50*1e3, a.p99*1e3, targetAddedLatency*1e3, verdict(a.p99 < targetAddedLatency), a.le10ms*100)
	}
	w.Flush()
	fmt.Fprintln(out)
}

func pct(got, want float64) float64 {
	if want == 0 {
		return math.NaN()
	}
	return 100 * (got/want - 1)
}

// defaultLinger reads PRODUCER_LINGER's default from the producer's config
// struct, so the benchmark's target row follows what ships.
func defaultLinger(b *testing.B) string {
	vars, err := envconf.Vars(&config.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range vars {
		if v.Name == "PRODUCER_LINGER" {
			return v.Default
		}
	}
	b.Fatal("PRODUCER_LINGER not in the producer's config")
	return ""
}
