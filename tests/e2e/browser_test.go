package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"playpulse.dev/tests/harness"
)

// The dashboard tests (this file and dashboard_*_test.go) drive the page
// that the fan-out serves in headless Chromium; docs/dashboard.md describes
// the page and the element ids they read.

// browser is one headless Chromium tab with a fresh profile. It records
// uncaught exceptions and console errors of the page, and every page it
// opens reports Content-Security-Policy violations into window.__csp.
type browser struct {
	t   *testing.T
	ctx context.Context // carries no timeout: the first call started the browser

	mu   sync.Mutex
	errs []string
}

// cspProbe runs before any script of every page the tab opens.
const cspProbe = `window.__csp = []; document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + e.sourceFile + ":" + e.lineNumber));`

// newBrowser starts Debian's chromium headless with a fresh profile.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run `make deps` (apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// A hidden or occluded headless tab must keep rendering like a visible one.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.WindowSize(1440, 1000),
	}
	b := &browser{t: t}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first call starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b.ctx = ctx
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// What the page showed, for the failure message.
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		state, err := chromedp.Run(dctx, chromedp.Evaluate[string](`[document.getElementById("status")?.textContent, document.getElementById("freshness")?.textContent,
			document.getElementById("filter-state")?.textContent, document.getElementById("tail-stats")?.textContent, document.body?.dataset.protocol,
			document.getElementById("status")?.title,
			...[...document.querySelectorAll("#tail tr")].slice(0, 8).map(r => r.textContent.slice(0, 160)),
			"markers:", ...[...document.querySelectorAll("#tail tr.marker td:first-child")].map(r => r.textContent.slice(0, 160))].join("\n  ")`))
		b.mu.Lock()
		defer b.mu.Unlock()
		t.Logf("--- the page ---\n  %s\n  err=%v page errors=%q", state, err, b.errs)
	})
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspProbe}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, performance.Enable, performance.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// listen runs in the tab's message loop: it must return fast.
func (b *browser) listen(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "uncaught: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		msg = "console." + string(e.Type) + ":"
		for _, a := range e.Args {
			msg += " " + string(a.Value) + a.Description
		}
	default:
		return
	}
	b.mu.Lock()
	b.errs = append(b.errs, msg)
	b.mu.Unlock()
}

// open navigates to the dashboard of a fan-out.
func (b *browser) open(addr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
		b.t.Fatal(err)
	}
}

// wait polls a JavaScript condition until it is true or d passes.
func (b *browser) wait(d time.Duration, cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	waitJS(b.t, ctx, cond)
}

// evalJS evaluates expr in the page and decodes the result.
func evalJS[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// assertClean fails the test on any CSP violation, uncaught exception or
// console error seen so far.
func (b *browser) assertClean() {
	b.t.Helper()
	if csp := evalJS[[]string](b, `window.__csp || ["the CSP probe did not run"]`); len(csp) > 0 {
		b.t.Fatalf("Content-Security-Policy violations: %q", csp)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) > 0 {
		b.t.Fatalf("page errors: %q", b.errs)
	}
}

// metrics returns Chrome's Performance metrics of the page (TaskDuration,
// ThreadTime, … in seconds; JSHeapUsedSize in bytes).
func (b *browser) metrics() map[string]float64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	r, err := chromedp.Call(ctx, performance.GetMetrics, cdp.Empty{})
	if err != nil {
		b.t.Fatal(err)
	}
	m := map[string]float64{}
	for _, x := range r.Metrics {
		m[x.Name] = x.Value
	}
	return m
}

// heap forces a full garbage collection and returns the JS heap in use.
func (b *browser) heap() float64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	for range 2 {
		if _, err := chromedp.Call(ctx, heapprofiler.CollectGarbage, cdp.Empty{}); err != nil {
			b.t.Fatal(err)
		}
	}
	return b.metrics()["JSHeapUsedSize"]
}

// screenshot writes a full-page PNG to $PLAYPULSE_SCREENSHOT (the README's
// docs/images/dashboard.png, relative to the repository root) or, when it is
// not set, into the test's temporary directory, and returns the path.
func (b *browser) screenshot() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(b.t.TempDir(), "dashboard.png")
	if p := os.Getenv("PLAYPULSE_SCREENSHOT"); p != "" {
		if !filepath.IsAbs(p) {
			root, err := harness.Root()
			if err != nil {
				b.t.Fatal(err)
			}
			p = filepath.Join(root, p)
		}
		path = p
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot of the dashboard: %s", path)
	return path
}

// waitJS polls a JavaScript condition in the page until it is true.
func waitJS(t *testing.T, ctx context.Context, cond string) {
	t.Helper()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		if err != nil && ctx.Err() == nil {
			t.Fatalf("evaluate %s: %v", cond, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("page never satisfied %s", cond)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dashStack is a fan-out (and a producer) on a fresh topic, like startStack,
// with the fan-out's production defaults for the browser (tail rate, frame
// rate) unless overridden, and the environment kept so that the fan-out can
// be restarted on the same address.
type dashStack struct {
	topic     string
	fanAddr   string
	prodAddr  string
	bin       string
	fanoutEnv map[string]string
	fanout    *harness.Proc
	producer  *harness.Proc
}

type dashOpts struct {
	rate       string // producer events/s; "" = no producer
	fast       bool   // binaries without the race detector (throughput tests)
	fanoutEnv  map[string]string
	partitions int32
}

func startDashStack(t *testing.T, o dashOpts) *dashStack {
	t.Helper()
	if o.partitions == 0 {
		o.partitions = 3
	}
	s := &dashStack{topic: newTopic(t, o.partitions), fanAddr: harness.FreeAddr(t), prodAddr: harness.FreeAddr(t)}
	s.bin = harness.Bin(t)
	if o.fast {
		s.bin = harness.FastBin(t)
	}
	s.fanoutEnv = map[string]string{
		"KAFKA_BROKERS": broker.Addr(),
		"FANOUT_ADDR":   s.fanAddr,
		"FANOUT_TOPICS": s.topic,
		// Only this stack's topic, not every playback-* topic on the broker.
		"FANOUT_TOPIC_PATTERN": "",
		"LOG_LEVEL":            "warn",
	}
	maps.Copy(s.fanoutEnv, o.fanoutEnv)
	s.startFanout(t)
	if o.rate != "" {
		s.startProducer(t, o.rate)
	}
	return s
}

func (s *dashStack) startFanout(t *testing.T) {
	t.Helper()
	s.fanout = harness.StartFrom(t, s.bin, "fanout", s.fanoutEnv)
	harness.WaitReady(t, "http://"+s.fanAddr+"/readyz", 60*time.Second)
}

func (s *dashStack) startProducer(t *testing.T, rate string) {
	t.Helper()
	s.producer = harness.StartFrom(t, s.bin, "producer", map[string]string{
		"KAFKA_BROKERS":   broker.Addr(),
		"PRODUCER_TOPIC":  s.topic,
		"PRODUCER_RATE":   rate,
		"PRODUCER_ADDR":   s.prodAddr,
		"PRODUCER_STREAM": "e2e",
		"LOG_LEVEL":       "warn",
	})
	harness.WaitReady(t, "http://"+s.prodAddr+"/readyz", 60*time.Second)
}

// TestDashboardLive opens the dashboard on a running pipeline: it connects,
// the KPIs, charts, breakdowns and the tail fill and keep updating, and a
// filter chosen in the page is applied by the server.
func TestDashboardLive(t *testing.T) {
	s := startDashStack(t, dashOpts{rate: "300"})
	b := newBrowser(t)
	b.open(s.fanAddr)

	b.wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	b.wait(30*time.Second, `document.querySelectorAll("#tail tr.ev").length >= 10`)
	// KPIs: every figure the server defines, once enough happened to define it.
	for _, id := range []string{"kpi-ccv", "kpi-sps", "kpi-startup-p50", "kpi-startup-p95", "kpi-rebuffer", "kpi-vsf", "kpi-bitrate", "kpi-rate", "kpi-lat-p50", "kpi-lat-p99"} {
		b.wait(60*time.Second, fmt.Sprintf(`document.getElementById(%q).dataset.value !== "" && document.getElementById(%q).dataset.value !== undefined`, id, id))
	}
	// The producer sends 300/s; the KPI is the fan-out's 10-second rate, so it
	// gets there once 10 s of the stream have been read.
	b.wait(30*time.Second, `(v => v >= 200 && v <= 450)(Number(document.getElementById("kpi-rate").dataset.value))`)
	// Charts update: the right edge moves with time and the series have points.
	first := evalJS[int64](b, `Number(document.getElementById("chart-events").dataset.last)`)
	b.wait(20*time.Second, fmt.Sprintf(`Number(document.getElementById("chart-events").dataset.last) >= %d`, first+2))
	for _, id := range []string{"chart-events", "chart-sps", "chart-ccv", "chart-rebuffer", "chart-bitrate", "chart-startup"} {
		b.wait(30*time.Second, fmt.Sprintf(`Number(document.getElementById(%q).dataset.points) > 0 && document.querySelector("#%s canvas") !== null`, id, id))
	}
	// Hovering a chart shows the values of that second in its legend.
	b.wait(20*time.Second, `(() => {
		const over = document.querySelector("#chart-ccv .u-over");
		const r = over.getBoundingClientRect();
		over.dispatchEvent(new MouseEvent("mouseenter", {clientX: r.right - 3, clientY: r.top + r.height / 2}));
		over.dispatchEvent(new MouseEvent("mousemove", {clientX: r.right - 3, clientY: r.top + r.height / 2, bubbles: true}));
		const v = [...document.querySelectorAll("#chart-ccv .u-legend .u-value")].map(e => e.textContent);
		return v.length === 2 && /\d/.test(v[0]) && /^\d[\d,]*$/.test(v[1]); })()`)
	// Breakdowns and top titles.
	b.wait(20*time.Second, `[...document.querySelectorAll("#bd-device tbody tr:not([hidden]) th")].some(e => ["tv","mobile","desktop","tablet"].includes(e.textContent))`)
	b.wait(20*time.Second, `document.querySelectorAll("#top-titles tbody tr:not([hidden])").length >= 3`)
	// Every row of the tail says its type in words.
	types := evalJS[[]string](b, `[...document.querySelectorAll("#tail tr.ev .type")].map(e => e.textContent)`)
	if len(types) > 50 {
		t.Fatalf("%d rows; the tail is capped at 50", len(types))
	}
	for _, ty := range types {
		if ty == "" {
			t.Fatalf("a row without its type label: %v", types)
		}
	}

	t.Run("filter", func(t *testing.T) {
		b.t = t
		// Choose device "mobile" and event type "play" the way a user does.
		b.wait(10*time.Second, `(() => {
			const f = document.getElementById("filters");
			f.elements.device.value = "mobile";
			f.querySelector('input[name="types"][value="play"]').checked = true;
			f.requestSubmit();
			return true; })()`)
		b.wait(10*time.Second, `document.getElementById("filter-state").dataset.state === "ok"`)
		b.wait(30*time.Second, `document.querySelectorAll("#tail tr.ev").length >= 3`)
		rows := evalJS[[][]string](b, `[...document.querySelectorAll("#tail tr.ev")].map(r => [r.cells[1].textContent, r.cells[5].textContent])`)
		for _, r := range rows {
			if r[0] != "play" || r[1] != "mobile" {
				t.Fatalf("filtered tail shows %v; want only play events of mobile devices: %v", r, rows)
			}
		}
		if h := evalJS[string](b, `location.hash`); !strings.Contains(h, "device=mobile") || !strings.Contains(h, "types=play") {
			t.Fatalf("the filter is not kept in the URL: %q", h)
		}
		// Clear: every type comes back.
		b.wait(10*time.Second, `(document.getElementById("filters").reset(), true)`)
		b.wait(30*time.Second, `new Set([...document.querySelectorAll("#tail tr.ev .type")].map(e => e.textContent)).size >= 3`)
	})
	b.t = t
	b.assertClean()
}
