// Package browsertest drives the fan-out's dashboard in Debian's headless
// Chromium (chromedp), for the end-to-end tests (tests/e2e) and the
// test-bed cluster's tests (tests/cluster). docs/dashboard.md describes the
// page and the element ids the tests read.
//
//	b := browsertest.New(t)
//	b.Open("http://" + addr + "/")
//	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
//	n := browsertest.Eval[int](b, `document.querySelectorAll("#tail tr.ev").length`)
//	b.AssertClean()
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// Browser is one tab of a headless Chromium with a fresh profile. It records
// uncaught exceptions and console errors of the page (AssertClean), keeps
// its first console messages of every level (Console), and every page it
// opens reports Content-Security-Policy violations into window.__csp.
type Browser struct {
	t   testing.TB
	ctx context.Context // carries no timeout: the first call on it started the browser or opened the tab

	mu      sync.Mutex
	errs    []string // uncaught exceptions and console errors
	console []string // every console message and uncaught exception, the first maxConsole
	closed  bool
}

// cspProbe runs before any script of every page the tab opens.
const cspProbe = `window.__csp = []; document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + e.sourceFile + ":" + e.lineNumber));`

// New starts Debian's chromium headless with a fresh profile; it stops when
// the test ends. A missing chromium fails the test (it is never skipped).
// extra adds to the flags below (tests/playertest lets pages autoplay).
func New(t testing.TB, extra ...chromedp.ExecAllocatorOption) *Browser {
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
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	t.Cleanup(cancelAlloc)
	return newTab(t, actx)
}

// NewTab opens another tab in b's browser, with its own error record and
// probes; it is closed when t ends (or by Close).
func (b *Browser) NewTab(t testing.TB) *Browser {
	t.Helper()
	return newTab(t, b.ctx)
}

// newTab opens a tab from parent: the browser's allocator (its first tab)
// or a tab of the browser (another one).
func newTab(t testing.TB, parent context.Context) *Browser {
	t.Helper()
	b := &Browser{t: t}
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithListener(b.listen))
	t.Cleanup(cancel)
	// The first call starts the browser or opens the tab, which lives as
	// long as the context of that call: it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b.ctx = ctx
	t.Cleanup(func() {
		if !t.Failed() || b.Closed() {
			return
		}
		// What the page showed, for the failure message.
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		state, err := chromedp.Run(dctx, chromedp.Evaluate[string](`[location.href, document.getElementById("status")?.textContent, document.getElementById("freshness")?.textContent,
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

// Context is the tab's context, for packages that drive the tab with
// chromedp themselves (chromedp.ListenTarget, chromedp.Run); it carries no
// timeout.
func (b *Browser) Context() context.Context { return b.ctx }

// Close closes the tab the way a user does (the page's pagehide and unload
// handlers run); later calls do nothing.
func (b *Browser) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	// Cancelling the tab's context closes the target (Target.closeTarget).
	if err := chromedp.Cancel(b.ctx); err != nil {
		b.t.Logf("close the tab: %v", err)
	}
}

// Closed reports whether Close closed the tab.
func (b *Browser) Closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// SetT makes later failures fail t (a subtest) instead of the test that
// started the browser.
func (b *Browser) SetT(t testing.TB) { b.t = t }

// listen runs in the tab's message loop: it must return fast.
func (b *Browser) listen(ev any) {
	var msg string
	isErr := true
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "uncaught: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		isErr = e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert
		msg = "console." + string(e.Type) + ":"
		for _, a := range e.Args {
			if len(a.Value) > 0 {
				msg += " " + string(a.Value)
			} else {
				msg += " " + a.Description
			}
		}
	default:
		return
	}
	b.mu.Lock()
	if isErr {
		b.errs = append(b.errs, msg)
	}
	if len(b.console) < maxConsole {
		b.console = append(b.console, msg)
	}
	b.mu.Unlock()
}

// maxConsole bounds the console messages a tab keeps (a player logs a lot).
const maxConsole = 300

// Console returns the page's console messages of every level and its
// uncaught exceptions so far (the first 300), for failure messages.
func (b *Browser) Console() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.console)
}

// Open navigates to url, e.g. "http://127.0.0.1:8080/".
func (b *Browser) Open(url string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatal(err)
	}
}

// Wait polls a JavaScript condition until it is true; the test fails when
// d passes first.
func (b *Browser) Wait(d time.Duration, cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		if err != nil && ctx.Err() == nil {
			b.t.Fatalf("evaluate %s: %v", cond, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			b.t.Fatalf("page never satisfied %s", cond)
		case <-time.After(100 * time.Millisecond): // poll interval of a condition wait
		}
	}
}

// Eval evaluates expr in the page and decodes the result.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// AssertClean fails the test on any CSP violation, uncaught exception or
// console error seen so far.
func (b *Browser) AssertClean() {
	b.t.Helper()
	if csp := Eval[[]string](b, `window.__csp || ["the CSP probe did not run"]`); len(csp) > 0 {
		b.t.Fatalf("Content-Security-Policy violations: %q", csp)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) > 0 {
		b.t.Fatalf("page errors: %q", b.errs)
	}
}

// Metrics returns Chrome's Performance metrics of the page (TaskDuration,
// ThreadTime, … in seconds; JSHeapUsedSize in bytes).
func (b *Browser) Metrics() map[string]float64 {
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

// Heap forces a full garbage collection and returns the JS heap in use.
func (b *Browser) Heap() float64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	for range 2 {
		if _, err := chromedp.Call(ctx, heapprofiler.CollectGarbage, cdp.Empty{}); err != nil {
			b.t.Fatal(err)
		}
	}
	return b.Metrics()["JSHeapUsedSize"]
}

// Screenshot writes a full-page PNG to $PLAYPULSE_SCREENSHOT (the README's
// docs/images/dashboard.png, relative to the repository root) or, when it is
// not set, into the test's temporary directory, and returns the path.
func (b *Browser) Screenshot() string {
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
