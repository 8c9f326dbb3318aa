// Package benchcollector measures the CMCD collector against its targets
// (issue 13), with the real binary and a real Kafka broker on this machine:
// reports/s accepted and written to Kafka by one collector against a bare
// Go HTTP server answering 204 to the same requests from the same load
// generator in the same run; accept latency at 5,000 reports/s; memory
// under a flood ten times over the rate limit; the sessionizer's own
// throughput. `make bench` runs it; it prints one table.
package benchcollector

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

// Targets from the issue.
const (
	targetShare      = 0.5    // of the bare server's reports/s
	targetRate       = 30_000 // reports/s accepted and written to Kafka
	targetLatencyP99 = 5 * time.Millisecond
	latencyRate      = 5_000 // reports/s, one per request as hls.js posts
)

const (
	window      = 10 * time.Second
	connections = 32
)

// Options, from the environment (the bench runs under go test, which has
// no flags of its own for it).
const (
	// batchesEnv lists the shapes of load of the throughput runs, in
	// reports per request; default "1,2,4,10": one as hls.js and Shaka post
	// by default (batchSize 1), up to ten as a batching player does.
	batchesEnv = "BENCHCOLLECTOR_BATCHES"
	// baselineEnv names another collector binary (say, the one built from
	// the last commit) to measure beside this one in the same run, with
	// the same load, for a before/after ratio that the machine's load
	// does not skew; default none.
	baselineEnv = "BENCHCOLLECTOR_BASELINE"
	// perfEnv is a file for `perf record -g` of the collector during its
	// throughput run at the largest batch (`perf report -i` it); default
	// none.
	perfEnv = "BENCHCOLLECTOR_PERF"
	// onlyEnv "throughput" runs the throughput rows only (profiling);
	// default "" runs everything.
	onlyEnv = "BENCHCOLLECTOR_ONLY"
)

// bareEnv makes the test binary a bare HTTP server instead of running
// tests (TestMain), so that the bare server is a process of its own like
// the collector.
const bareEnv = "BENCHCOLLECTOR_BARE_ADDR"

func TestMain(m *testing.M) {
	if addr := os.Getenv(bareEnv); addr != "" {
		// The limit the collector is measured against: read the request,
		// answer 204, nothing else.
		err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
		}))
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

type row struct{ measure, result, target, verdict, notes string }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

// BenchmarkCollector runs once whatever b.N (use -benchtime 1x).
func BenchmarkCollector(b *testing.B) {
	load0 := harness.LoadAvg()
	batches := envBatches(b)
	broker := kafkatest.Start(b)
	broker.CreateTopic(b, "playpulse-cmcd", 3)
	broker.CreateTopic(b, "playback-players", 3)
	bin := harness.FastBin(b)
	var rows []row

	// The bare server and the collector (edge only), same generator.
	bareAddr := harness.FreeAddr(b)
	bare := exec.Command(os.Args[0])
	bare.Env = append(os.Environ(), bareEnv+"="+bareAddr)
	if err := bare.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = bare.Process.Kill(); _ = bare.Wait() }()
	harness.Eventually(b, 10*time.Second, "bare server up", func() error {
		c, err := net.Dial("tcp", bareAddr)
		if err == nil {
			c.Close()
		}
		return err
	})
	edgeEnv := func(addr, topic string) map[string]string {
		return map[string]string{"KAFKA_BROKERS": broker.Addr(), "COLLECTOR_ADDR": addr, "COLLECTOR_ROLES": "ingest",
			"COLLECTOR_INTAKE_TOPIC": topic, "COLLECTOR_RATE_LIMIT": "0", "LOG_LEVEL": "warn"}
	}
	addr := harness.FreeAddr(b)
	coll := harness.StartFrom(b, bin, "collector", edgeEnv(addr, "playpulse-cmcd"))
	harness.WaitReady(b, "http://"+addr+"/readyz", 60*time.Second)
	servers := []*server{
		{name: "bare", url: "http://" + bareAddr + "/v1/cmcd", pid: bare.Process.Pid},
		{name: "collector", url: "http://" + addr + "/v1/cmcd", pid: coll.Pid(), topic: "playpulse-cmcd"},
	}
	var base *harness.Proc
	if path := os.Getenv(baselineEnv); path != "" {
		// Its own intake topic: the reports read back are its own.
		broker.CreateTopic(b, "playpulse-cmcd-baseline", 3)
		baseAddr := harness.FreeAddr(b)
		base = harness.StartFrom(b, filepath.Dir(path), filepath.Base(path), edgeEnv(baseAddr, "playpulse-cmcd-baseline"))
		harness.WaitReady(b, "http://"+baseAddr+"/readyz", 60*time.Second)
		servers = append(servers, &server{name: "baseline", url: "http://" + baseAddr + "/v1/cmcd", pid: base.Pid(), topic: "playpulse-cmcd-baseline"})
	}

	// Warm-up, not measured: the broker's JVM compiles its produce path and
	// rolls its first segments, which otherwise weighs on whichever server
	// is measured first.
	progress("warm-up")
	for _, sv := range servers[1:] {
		saturate(sv.url, slices.Max(batches), nil, window/2)
	}

	// Each shape of load against every server with the same generator, in
	// turns (rounds × window/rounds each): the machine's load drifts, and
	// a server measured alone for a window could meet a quieter or a
	// busier machine than the others.
	var rate float64
	coll0, bare0 := servers[1], servers[0]
	for _, n := range batches {
		shape := fmt.Sprintf("%d report(s) per request", n)
		progress("%d reports per request, %d connections: %d servers in turns", n, connections, len(servers))
		perf := ""
		if n == slices.Max(batches) {
			perf = os.Getenv(perfEnv)
		}
		measure(b, servers, n, broker, perf)
		bareRes, collRes := bare0.res, coll0.res
		rate = collRes.perSec()
		share := rate / bareRes.perSec()
		rows = append(rows,
			row{"bare Go server answering 204 (the limit), " + shape, fmt.Sprintf("%.0f reports/s", bareRes.perSec()), "-", "-",
				fmt.Sprintf("%d connections, %.0f requests/s; CPU %.1f µs/request (%.2f cores), generator %.2f cores; p50 %s p99 %s",
					connections, bareRes.perSec()/float64(n), bareRes.cpuPerRequest(n)*1e6, bareRes.cores(), bareRes.genCores(), bareRes.p(50), bareRes.p(99))},
			collRes.row("collector: accepted and written to Kafka, "+shape, n),
			row{"collector / bare server, " + shape, fmt.Sprintf("%.0f%%", share*100), fmt.Sprintf("≥ %.0f%%", targetShare*100), verdict(share >= targetShare),
				fmt.Sprintf("same generator, same run, in turns; both targets: %s", verdict(share >= targetShare && rate >= targetRate))},
		)
		if len(servers) > 2 {
			baseRes := servers[2].res
			rows = append(rows, baseRes.row("baseline ("+baselineEnv+"): accepted and written to Kafka, "+shape, n),
				row{"collector / baseline, " + shape, fmt.Sprintf("%.2fx reports/s", rate/baseRes.perSec()), "-", "-",
					fmt.Sprintf("CPU per report: collector %.2fx, broker %.2fx (%.1f → %.1f µs, %.1f → %.1f µs)",
						collRes.cpuPerReport()/baseRes.cpuPerReport(), collRes.brokerPerReport()/baseRes.brokerPerReport(),
						baseRes.cpuPerReport()*1e6, collRes.cpuPerReport()*1e6, baseRes.brokerPerReport()*1e6, collRes.brokerPerReport()*1e6)})
		}
	}
	if len(batches) > 1 {
		for _, sv := range servers {
			rows = append(rows, sv.fit.row(sv.name))
		}
	}
	if base != nil {
		base.Stop(10 * time.Second)
	}

	if os.Getenv(onlyEnv) != "throughput" {
		progress("accept latency at %d reports/s", latencyRate)
		lat := paced("http://"+addr+"/v1/cmcd", latencyRate, 10*time.Second)
		rows = append(rows, row{fmt.Sprintf("accept latency at %d reports/s (1 per request)", latencyRate), fmt.Sprintf("p50 %s, p99 %s", lat.p(50), lat.p(99)),
			"p99 ≤ " + targetLatencyP99.String(), verdict(lat.pd(99) <= targetLatencyP99), fmt.Sprintf("%d requests, %d refused", lat.accepted+lat.refused, lat.refused)})
		coll.Stop(10 * time.Second)

		progress("flood ten times over the rate limit")
		rows = append(rows, flood(b, broker, bin)...)

		progress("sessionizer on the backlog")
		rows = append(rows, sessionizer(b, broker, bin))
	}

	fmt.Printf("\nPlaypulse collector benchmark — %s, Apache Kafka %s (single broker on this machine, acks=all)\n", harness.Machine(), kafkatest.KafkaVersion)
	fmt.Printf("load average at start %s, at end %s (the broker, the collector and the load generator share these cores)\n\n", load0, harness.LoadAvg())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tresult\ttarget\tverdict\tnotes")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.measure, r.result, r.target, r.verdict, r.notes)
	}
	tw.Flush()
	b.ReportMetric(rate, "reports/s")
}

// envBatches reads batchesEnv.
func envBatches(b *testing.B) []int {
	v := os.Getenv(batchesEnv)
	if v == "" {
		return []int{1, 2, 4, 10}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 100 {
			b.Fatalf("%s=%q: want reports per request, 1 to 100, comma separated", batchesEnv, v)
		}
		out = append(out, n)
	}
	return out
}

// server is one HTTP server under load: the bare one, the collector, the
// baseline collector.
type server struct {
	name, url string
	pid       int
	topic     string  // the intake topic it writes; "" for the bare server
	res       *result // of the last shape measured
	fit       costFit
}

// rounds is how many turns each server gets within its window.
const rounds = 5

// measure saturates every server with n reports per request for window,
// in turns of window/rounds, and takes each one's CPU, the generator's
// (this process) and the broker's over its own turns. Then it waits until
// every report a collector accepted is in its intake topic (read back with
// kcat) and counts them. With perf, it records the collector (servers[1])
// with perf for the whole measure: it is idle in the others' turns.
func measure(b *testing.B, servers []*server, n int, broker *kafkatest.Broker, perf string) {
	from := map[*server]map[int32]int64{}
	for _, sv := range servers {
		sv.res = &result{}
		if sv.topic != "" {
			from[sv] = offsets(b, broker, sv.topic)
		}
	}
	var rec *exec.Cmd
	var perfOut bytes.Buffer
	if perf != "" {
		rec = exec.Command("perf", "record", "-g", "-F", "499", "-p", strconv.Itoa(servers[1].pid), "-o", perf, "--",
			"sleep", strconv.Itoa(int(window.Seconds())*len(servers)))
		rec.Stdout, rec.Stderr = &perfOut, &perfOut
		if err := rec.Start(); err != nil {
			b.Fatalf("perf record: %v", err)
		}
	}
	jvm := broker.JVMPid()
	for r := range rounds {
		for k := range servers {
			sv := servers[(r+k)%len(servers)]
			cpu0, gen0, brk0 := harness.CPUSeconds(sv.pid), harness.CPUSeconds(os.Getpid()), harness.CPUSeconds(jvm)
			part := saturate(sv.url, n, nil, window/rounds)
			part.cpu, part.gen = harness.CPUSeconds(sv.pid)-cpu0, harness.CPUSeconds(os.Getpid())-gen0
			if sv.topic != "" {
				part.broker = harness.CPUSeconds(jvm) - brk0
			}
			sv.res.add(part)
		}
	}
	if rec != nil {
		if err := rec.Wait(); err != nil {
			b.Fatalf("perf record: %v: %s", err, perfOut.String())
		}
		progress("perf: %s written (perf report -i %s)", perf, perf)
	}
	for _, sv := range servers {
		sv.fit.add(n, sv.res)
		if sv.topic == "" {
			continue
		}
		harness.Eventually(b, 60*time.Second, sv.name+": accepted reports in Kafka", func() error {
			sv.res.written = reportsSince(b, broker, sv.topic, from[sv])
			if sv.res.written < sv.res.accepted {
				return fmt.Errorf("%d of %d in Kafka", sv.res.written, sv.res.accepted)
			}
			return nil
		})
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchcollector: "+format+"\n", args...)
}

// result is what a load run saw.
type result struct {
	accepted, refused int64
	lat               []time.Duration
	written           int64   // reports of the run read back from the intake topic
	cpu, gen, broker  float64 // CPU seconds of the server, the generator (this process) and the broker over the run
}

func (r *result) perSec() float64 { return float64(r.accepted) / window.Seconds() }

// add adds a turn's figures.
func (r *result) add(o *result) {
	r.accepted, r.refused, r.written = r.accepted+o.accepted, r.refused+o.refused, r.written+o.written
	r.lat = append(r.lat, o.lat...)
	r.cpu, r.gen, r.broker = r.cpu+o.cpu, r.gen+o.gen, r.broker+o.broker
}

// cpuPerReport and cpuPerRequest are the server's CPU seconds per accepted
// report and per request of n reports.
func (r *result) cpuPerReport() float64       { return r.cpu / float64(max(r.accepted, 1)) }
func (r *result) cpuPerRequest(n int) float64 { return r.cpuPerReport() * float64(n) }
func (r *result) cores() float64              { return r.cpu / window.Seconds() }
func (r *result) brokerPerReport() float64    { return r.broker / float64(max(r.accepted, 1)) }
func (r *result) genCores() float64           { return r.gen / window.Seconds() }

// row is the table row of a collector's run at n reports per request.
func (r *result) row(measure string, n int) row {
	rate := r.perSec()
	return row{measure, fmt.Sprintf("%.0f reports/s", rate), fmt.Sprintf("≥ %d", targetRate), verdict(rate >= targetRate),
		fmt.Sprintf("%d accepted, %d in the intake topic (kcat), %d refused; CPU %.1f µs/report, %.1f µs/request (%.2f cores), broker %.1f µs/report (%.2f cores), generator %.2f cores; p50 %s p99 %s",
			r.accepted, r.written, r.refused, r.cpuPerReport()*1e6, r.cpuPerRequest(n)*1e6, r.cores(), r.brokerPerReport()*1e6, r.broker/window.Seconds(), r.genCores(), r.p(50), r.p(99))}
}

// costFit splits a server's CPU per request into a part per request and a
// part per report: the least-squares line through (n, CPU per request of n
// reports) over the shapes measured.
type costFit struct{ n, y []float64 }

func (c *costFit) add(n int, r *result) {
	c.n, c.y = append(c.n, float64(n)), append(c.y, r.cpuPerRequest(n))
}

func (c *costFit) line() (perRequest, perReport float64) {
	var sn, sy, snn, sny float64
	k := float64(len(c.n))
	for i := range c.n {
		sn, sy, snn, sny = sn+c.n[i], sy+c.y[i], snn+c.n[i]*c.n[i], sny+c.n[i]*c.y[i]
	}
	perReport = (k*sny - sn*sy) / (k*snn - sn*sn)
	return (sy - perReport*sn) / k, perReport
}

func (c *costFit) row(who string) row {
	req, rep := c.line()
	return row{who + ": CPU per request + per report (fit over the shapes)", fmt.Sprintf("%.1f µs + %.2f µs × n", req*1e6, rep*1e6), "-", "-",
		fmt.Sprintf("least squares through n = %v; the limit in reports/s grows with n as (%.1f + %.2f n) µs per n reports", c.n, req*1e6, rep*1e6)}
}

func (r *result) pd(q int) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return r.lat[min(len(r.lat)*q/100, len(r.lat)-1)]
}

func (r *result) p(q int) string {
	return fmt.Sprintf("%.2f ms", float64(r.pd(q).Microseconds())/1000)
}

// body appends one request of n reports: sessions of 50 reports each, the
// way a player's sequence runs (start, first frame, heartbeats).
func body(dst []byte, worker, i, n int) []byte {
	now := time.Now().UnixMilli()
	for j := range n {
		k := i*n + j
		sn := k % 50
		dst = append(dst, `cid="bench",e=`...)
		switch sn {
		case 0:
			dst = append(dst, "ps,sta=s"...)
		case 1:
			dst = append(dst, "ps,sta=p,br=3000"...)
		default:
			dst = append(dst, "t,sta=p"...)
		}
		dst = append(dst, `,sid="bench-`...)
		dst = strconv.AppendInt(dst, int64(worker), 10)
		dst = append(dst, '-')
		dst = strconv.AppendInt(dst, int64(k/50), 10)
		dst = append(dst, `",sn=`...)
		dst = strconv.AppendInt(dst, int64(sn), 10)
		dst = append(dst, ",ts="...)
		dst = strconv.AppendInt(dst, now, 10)
		dst = append(dst, ",v=2\n"...)
	}
	return dst
}

var runID atomic.Int64

func newClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: connections, MaxConnsPerHost: connections}}
}

// saturate posts as fast as connections allow for d.
func saturate(url string, n int, header http.Header, d time.Duration) *result {
	run := int(runID.Add(1)) * 1000
	client := newClient()
	var mu sync.Mutex
	res := &result{}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			var acc, ref int64
			var lat []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				buf = body(buf[:0], run+w, i, n)
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(buf))
				req.Header.Set("Content-Type", "application/cmcd")
				for k, v := range header {
					req.Header[k] = v
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					ref += int64(n)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
				if resp.StatusCode/100 == 2 {
					acc += int64(n)
				} else {
					ref += int64(n)
				}
			}
			mu.Lock()
			res.accepted += acc
			res.refused += ref
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	client.CloseIdleConnections()
	return res
}

// paced posts one report per request at rate/s for d.
func paced(url string, rate int, d time.Duration) *result {
	run := int(runID.Add(1)) * 1000
	client := newClient()
	res := &result{}
	var mu sync.Mutex
	const workers = 16
	interval := time.Second * workers / time.Duration(rate)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := start.Add(interval * time.Duration(w) / workers)
			var buf []byte
			for i := 0; ; i++ {
				if wait := time.Until(next); wait > 0 {
					time.Sleep(wait)
				}
				if time.Since(start) > d {
					return
				}
				next = next.Add(interval)
				buf = body(buf[:0], run+w, i, 1)
				t0 := time.Now()
				resp, err := client.Post(url, "application/cmcd", bytes.NewReader(buf))
				mu.Lock()
				if err != nil {
					res.refused++
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				res.lat = append(res.lat, time.Since(t0))
				if resp.StatusCode/100 == 2 {
					res.accepted++
				} else {
					res.refused++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return res
}

// flood sends ten times the rate limit from each of many client addresses
// (through a trusted proxy), churning through more addresses than the
// limiter tracks, and samples the collector's RSS.
func flood(b *testing.B, broker *kafkatest.Broker, bin string) []row {
	const (
		limit     = 100 // reports/s per address (the default)
		addresses = 40  // at once, each offered 10x the limit
		tracked   = 1_000
		floodFor  = 30 * time.Second
	)
	addr := harness.FreeAddr(b)
	coll := harness.StartFrom(b, bin, "collector", map[string]string{
		"KAFKA_BROKERS": broker.Addr(), "COLLECTOR_ADDR": addr, "COLLECTOR_ROLES": "ingest",
		"COLLECTOR_RATE_LIMIT": strconv.Itoa(limit), "COLLECTOR_RATE_BURST": "100", "COLLECTOR_TRUSTED_PROXIES": "127.0.0.1",
		"COLLECTOR_RATE_ADDRESSES": strconv.Itoa(tracked), "LOG_LEVEL": "error",
	})
	harness.WaitReady(b, "http://"+addr+"/readyz", 60*time.Second)
	defer coll.Stop(10 * time.Second)
	client := newClient()
	var accepted, limited, sent atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	var churn atomic.Int64
	for w := range addresses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 10 reports per request, 100 requests/s: 1,000 reports/s from
			// this address, 10x its limit; the address changes every 50
			// requests (well past its burst of 100 reports), so the limiter
			// also sees more addresses than it tracks.
			var buf []byte
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for i := 0; time.Since(start) < floodFor; i++ {
				<-tick.C
				k := i / 50
				ip := fmt.Sprintf("10.%d.%d.%d", w, k/250%250, k%250)
				if i%50 == 0 {
					churn.Add(1)
				}
				buf = body(buf[:0], 900_000+w, i, 10)
				req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/cmcd", bytes.NewReader(buf))
				req.Header.Set("Content-Type", "application/cmcd")
				req.Header.Set("X-Forwarded-For", ip)
				resp, err := client.Do(req)
				sent.Add(10)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusNoContent:
					accepted.Add(10)
				case http.StatusTooManyRequests:
					limited.Add(10)
				}
			}
		}()
	}
	var samples []int64
	for time.Since(start) < floodFor {
		time.Sleep(time.Second)
		samples = append(samples, harness.RSSBytes(coll.Pid()))
	}
	wg.Wait()
	// Flat: the last third of the run is not above the first third's
	// peak by more than 10% (after a 5 s warm-up).
	warm := samples[5 : 5+(len(samples)-5)/3]
	late := samples[len(samples)-(len(samples)-5)/3:]
	early, end := slices.Max(warm), slices.Max(late)
	flat := float64(end) <= float64(early)*1.10
	return []row{{
		"memory under a flood 10x over the rate limit", fmt.Sprintf("RSS %d MB → %d MB", early>>20, end>>20), "flat (≤ +10%)", verdict(flat),
		fmt.Sprintf("%d addresses at once at 10x %d reports/s each, %d distinct addresses over %s (limiter tracks %d); %d reports sent, %d accepted, %d refused 429",
			addresses, limit, churn.Load(), floodFor, tracked, sent.Load(), accepted.Load(), limited.Load()),
	}}
}

// sessionizer runs a sessionize-only collector over the intake topic the
// throughput runs filled and measures how fast it works through it.
func sessionizer(b *testing.B, broker *kafkatest.Broker, bin string) row {
	total := reportsSince(b, broker, "playpulse-cmcd", nil)
	addr := harness.FreeAddr(b)
	start := time.Now()
	coll := harness.StartFrom(b, bin, "collector", map[string]string{
		"KAFKA_BROKERS": broker.Addr(), "COLLECTOR_ADDR": addr, "COLLECTOR_ROLES": "sessionize", "LOG_LEVEL": "warn",
	})
	defer coll.Stop(10 * time.Second)
	url := "http://" + addr + "/metrics"
	var reports float64
	harness.Eventually(b, 10*time.Minute, "the sessionizer through the backlog", func() error {
		reports = scrape(url, "playpulse_collector_sessionizer_reports_total")
		if int64(reports) < total*95/100 {
			return fmt.Errorf("%.0f of %d", reports, total)
		}
		return nil
	})
	took := time.Since(start)
	events := scrape(url, "playpulse_collector_sessionizer_events_total")
	return row{"sessionizer: intake backlog to committed events", fmt.Sprintf("%.0f reports/s", reports/took.Seconds()), "-", "-",
		fmt.Sprintf("%.0f reports (incl. ticks) into %.0f events in %s, start and rebuild included; one process, 3 partitions, transactions", reports, events, took.Round(100*time.Millisecond))}
}

func scrape(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// offsets is the high-water mark of each of topic's three partitions.
func offsets(b *testing.B, broker *kafkatest.Broker, topic string) map[int32]int64 {
	out, err := exec.Command("kcat", "-Q", "-b", broker.Addr(), "-t", topic+":0:-1", "-t", topic+":1:-1", "-t", topic+":2:-1").CombinedOutput()
	if err != nil {
		b.Fatalf("kcat -Q: %v: %s", err, out)
	}
	hw := map[int32]int64{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// "<topic> [<partition>] offset <high-water mark>"
		f := strings.Fields(l)
		if len(f) != 4 || f[2] != "offset" {
			b.Fatalf("kcat -Q printed %q", l)
		}
		p, err1 := strconv.ParseInt(strings.Trim(f[1], "[]"), 10, 32)
		n, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			b.Fatalf("kcat -Q printed %q", l)
		}
		hw[int32(p)] = n
	}
	return hw
}

// reportsSince counts the reports in topic after the offsets from (nil:
// from the beginning), reading the records back with kcat: an intake
// record holds one report per line.
func reportsSince(b *testing.B, broker *kafkatest.Broker, topic string, from map[int32]int64) int64 {
	var n int64
	for p := range int32(3) {
		cmd := exec.Command("kcat", "-C", "-b", broker.Addr(), "-t", topic, "-p", strconv.Itoa(int(p)), "-o", strconv.FormatInt(from[p], 10),
			"-e", "-q", "-f", "%s\n", "-X", "isolation.level=read_committed")
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			b.Fatalf("kcat: %v", err)
		}
		// Streamed: a run can write a few hundred MB of report lines.
		buf := make([]byte, 1<<20)
		for {
			k, err := out.Read(buf)
			n += int64(bytes.Count(buf[:k], []byte{'\n'}))
			if err != nil {
				break
			}
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("kcat -C -p %d: %v: %s", p, err, errb.String())
		}
	}
	return n
}
