package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// newBrowser starts Debian's chromium headless with a fresh profile.
func newBrowser(t *testing.T) context.Context {
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
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first call starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// TestBrowserShowsLiveEvents opens the dashboard in headless Chromium and
// waits for live events to appear in the tail and the KPIs to fill.
func TestBrowserShowsLiveEvents(t *testing.T) {
	s := startStack(t, stackOpts{rate: "200"})
	ctx := newBrowser(t)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("http://%s/", s.fanAddr))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, `document.getElementById("status").dataset.state === "live"`)
	waitJS(t, ctx, `document.querySelectorAll("#tail tr").length >= 20`)
	waitJS(t, ctx, `Number(document.getElementById("kpi-total").textContent) > 0`)
	types, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#tail tr .type")).map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(types) > 100 {
		t.Fatalf("%d rows; the tail must be capped at 100", len(types))
	}
	for _, ty := range types {
		if ty == "" {
			t.Fatalf("a row without its type label: %v", types)
		}
	}
}

// waitJS polls a JavaScript condition in the page until it is true.
func waitJS(t *testing.T, ctx context.Context, cond string) {
	t.Helper()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		if err != nil {
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
