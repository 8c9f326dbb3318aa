package e2e

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"playpulse.dev/tests/browsertest"
	"playpulse.dev/tests/harness"
)

// Responsiveness of the page: busy share of its main thread while a heavy
// stream flows, and a JS heap that does not grow. Both use binaries
// without the race detector (harness.FastBin): the subject is the page, and
// the fan-out must be able to carry the load on this 2-core machine.

// loadRate is the producer rate of TestDashboardUnderLoad: 50,000 events/s
// (the issue), PLAYPULSE_LOAD_RATE to change it locally.
func loadRate(t *testing.T) int {
	if v := os.Getenv("PLAYPULSE_LOAD_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("PLAYPULSE_LOAD_RATE=%q: want a positive integer", v)
		}
		return n
	}
	return 50000
}

// TestDashboardUnderLoad runs the page for 30 s while 50,000 events/s flow
// through Kafka and the fan-out (with its default per-browser caps), and
// requires the page's main thread to be busy less than 25% of the time by
// Chrome's Performance metrics (TaskDuration: the wall time of every task
// on the main thread). It also writes the screenshot of the page under load.
func TestDashboardUnderLoad(t *testing.T) {
	loadRate := loadRate(t)
	s := startDashStack(t, dashOpts{rate: strconv.Itoa(loadRate), fast: true})
	// The viewer's browser does not share its CPU with the pipeline in real
	// life; here all of it runs on the same 2 cores. The producer and the
	// fan-out run at a lower priority, so they take the CPU time the page
	// leaves, rather than stretching the page's tasks by preempting them.
	for _, p := range []*harness.Proc{s.fanout, s.producer} {
		if err := syscall.Setpriority(syscall.PRIO_PGRP, p.Pid(), 10); err != nil {
			t.Fatalf("renice %s: %v", p.Name, err)
		}
	}
	b := browsertest.New(t)
	b.Open("http://" + s.fanAddr + "/")
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	// Wait until the load reaches the fan-out (the KPI is its 10 s rate),
	// and require it to carry at least 90% of the producer's rate over the
	// window: on this 2-core machine, shared by the broker, the producer,
	// the fan-out and the browser, it reads all of it when nothing else runs
	// (make bench: about 400,000 events/s of ingest headroom). The page's
	// own cost does not depend on the rate beyond the server's per-browser
	// caps; the log says what was reached.
	minRate := loadRate * 9 / 10
	b.Wait(90*time.Second, fmt.Sprintf(`Number(document.getElementById("kpi-rate").dataset.value) >= %d`, minRate))
	b.Wait(30*time.Second, `Number(document.getElementById("tail-stats").dataset.skipped) > 0 && document.querySelector("#tail tr.m-skip") !== null`)

	const measure = 30 * time.Second
	m0 := b.Metrics()
	start := time.Now()
	recv0 := browsertest.Eval[float64](b, `Number(document.getElementById("tail-stats").dataset.received) + Number(document.getElementById("tail-stats").dataset.skipped)`)
	total0 := browsertest.Eval[float64](b, `Number(document.getElementById("freshness").dataset.eventsTotal)`)
	time.Sleep(measure) // the measurement window itself
	m1 := b.Metrics()
	el := time.Since(start).Seconds()
	recv1 := browsertest.Eval[float64](b, `Number(document.getElementById("tail-stats").dataset.received) + Number(document.getElementById("tail-stats").dataset.skipped)`)
	total1 := browsertest.Eval[float64](b, `Number(document.getElementById("freshness").dataset.eventsTotal)`)
	share := func(k string) float64 { return 100 * (m1[k] - m0[k]) / el }
	rate := (total1 - total0) / el // events the fan-out read per second during the window
	t.Logf("under load (producer %d events/s) for %.1f s: fan-out read %.0f events/s, tail events for this page (sent + skipped by the server) %.0f/s; main thread: TaskDuration %.1f%%, ThreadTime (CPU) %.1f%%, ScriptDuration %.1f%%, LayoutDuration %.1f%%, RecalcStyleDuration %.1f%%; renderer process CPU %.1f%%; JS heap %.1f MB",
		loadRate, el, rate, (recv1-recv0)/el, share("TaskDuration"), share("ThreadTime"), share("ScriptDuration"), share("LayoutDuration"), share("RecalcStyleDuration"), share("ProcessTime"), m1["JSHeapUsedSize"]/1e6)
	if rate < float64(minRate) {
		t.Fatalf("the fan-out read %.0f events/s during the window; the test needs at least %d (producer: %d/s)", rate, minRate, loadRate)
	}
	// Busy: TaskDuration is the wall time of the main thread's tasks, so it
	// also counts the time a task waited for a CPU that other processes had;
	// ThreadTime is the CPU time the main thread used. Both must stay under
	// 25%. Only when the machine is overloaded by other work (a load average
	// over 4 per core: far more than this test's own processes make) is a
	// TaskDuration over 25% reported instead of failing, since it then
	// measures the machine rather than the page.
	if cpu := share("ThreadTime"); cpu >= 25 {
		t.Fatalf("main thread busy (CPU) %.1f%% of the time under load; want < 25%%", cpu)
	}
	if busy := share("TaskDuration"); busy >= 25 {
		load, cores := loadAverage(t), runtime.NumCPU()
		if load <= 4*float64(cores) {
			t.Fatalf("main thread busy %.1f%% of the time under load (TaskDuration; load average %.1f on %d cores); want < 25%%", busy, load, cores)
		}
		t.Logf("WARNING: TaskDuration %.1f%% is over 25%%, but the machine is overloaded (load average %.1f on %d cores); the main thread's CPU time is %.1f%%", busy, load, cores, share("ThreadTime"))
	}
	b.Wait(10*time.Second, `document.getElementById("kpi-lat-p99").dataset.value !== ""`)
	b.Screenshot()
	b.AssertClean()
}

// heapMinutes is how long TestDashboardHeapSteady watches the heap: 5
// minutes (the issue), PLAYPULSE_HEAP_MINUTES to change it locally.
func heapMinutes(t *testing.T) time.Duration {
	if v := os.Getenv("PLAYPULSE_HEAP_MINUTES"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			t.Fatalf("PLAYPULSE_HEAP_MINUTES=%q: want a positive number", v)
		}
		return time.Duration(f * float64(time.Minute))
	}
	return 5 * time.Minute
}

// TestDashboardHeapSteady watches the page's JS heap, after forced garbage
// collections, for 5 minutes of live data (5,000 events/s: the page gets
// the same capped tail as at any higher rate) and requires that it does
// not grow: every structure of the page has a fixed size.
func TestDashboardHeapSteady(t *testing.T) {
	s := startDashStack(t, dashOpts{rate: "5000", fast: true})
	b := browsertest.New(t)
	b.Open("http://" + s.fanAddr + "/")
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	b.Wait(60*time.Second, `document.querySelectorAll("#tail tr.ev").length >= 40 && Number(document.getElementById("chart-ccv").dataset.points) > 0`)
	time.Sleep(20 * time.Second) // warm up: JIT, caches, the uPlot paths at full width

	total := heapMinutes(t)
	step := total / 10
	base := b.Heap()
	samples := []float64{base}
	start := time.Now()
	for time.Since(start) < total {
		time.Sleep(step)
		samples = append(samples, b.Heap())
	}
	var line string
	for i, h := range samples {
		line += fmt.Sprintf(" %s:%.2fMB", (time.Duration(i) * step).Round(time.Second), h/1e6)
	}
	t.Logf("JS heap after GC over %s:%s", total, line)
	// Steady: the last samples are not above the first by more than 10%
	// (+256 KiB of slack for V8's own bookkeeping), and there is no rise
	// from one half to the other.
	limit := base*1.10 + 256<<10
	last := samples[len(samples)-3:]
	for _, h := range last {
		if h > limit {
			t.Fatalf("JS heap grew from %.2f MB to %.2f MB:%s", base/1e6, h/1e6, line)
		}
	}
	half := len(samples) / 2
	if avg(samples[half:]) > avg(samples[:half])*1.05+128<<10 {
		t.Fatalf("JS heap rises: first half %.2f MB, second half %.2f MB:%s", avg(samples[:half])/1e6, avg(samples[half:])/1e6, line)
	}
	if n := browsertest.Eval[int](b, `document.getElementsByTagName("*").length`); n > 3000 {
		t.Fatalf("%d elements in the page; the DOM must stay bounded", n)
	} else {
		t.Logf("%d elements in the page", n)
	}
	b.AssertClean()
}

// loadAverage is the machine's 1-minute load average.
func loadAverage(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	var l float64
	if _, err := fmt.Sscan(string(b), &l); err != nil {
		t.Fatalf("/proc/loadavg: %v", err)
	}
	return l
}

func avg(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
