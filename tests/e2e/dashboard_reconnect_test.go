package e2e

import (
	"playpulse.dev/tests/browsertest"

	"fmt"
	"syscall"
	"testing"
	"time"
)

// TestDashboardReconnects kills the fan-out under the page and starts it
// again on the same address: the page shows that it is reconnecting (with
// a countdown), is live again within 5 s of the fan-out being ready, and
// the tail goes on, with a marker that says what happened to the events of
// the outage (replayed, or a gap).
func TestDashboardReconnects(t *testing.T) {
	s := startDashStack(t, dashOpts{rate: "200"})
	b := browsertest.New(t)
	b.Open("http://" + s.fanAddr + "/")
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	b.Wait(30*time.Second, `Number(document.getElementById("tail-stats").dataset.received) >= 50`)

	if err := s.fanout.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := s.fanout.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	b.Wait(10*time.Second, `document.getElementById("status").dataset.state === "reconnecting"`)
	b.Wait(5*time.Second, `/^Reconnecting( in \d+ s|…)$/.test(document.getElementById("status-text").textContent) && !document.getElementById("retry").hidden`)
	before := browsertest.Eval[int](b, `Number(document.getElementById("tail-stats").dataset.received)`)

	s.startFanout(t) // same address, same topic; returns when /readyz answers
	ready := time.Now()
	b.Wait(10*time.Second, `document.getElementById("status").dataset.state === "live"`)
	if d := time.Since(ready); d > 5*time.Second {
		t.Fatalf("the page was live again %s after the fan-out was ready; want within 5 s", d.Round(100*time.Millisecond))
	} else {
		t.Logf("live again %s after the fan-out was ready", d.Round(10*time.Millisecond))
	}
	// The outage is accounted for in the tail: "Reconnected: N missed events
	// replayed" (resume), or a gap marker; then new events arrive.
	// Rows are newest first: live events above the marker.
	b.Wait(15*time.Second, `(() => { const rows = [...document.getElementById("tail").rows];
		const m = rows.findIndex(r => r.classList.contains("marker") && /^Reconnected|^Gap:/.test(r.textContent));
		return m > 0 && rows.slice(0, m).some(r => r.classList.contains("ev")); })()`)
	b.Wait(30*time.Second, fmt.Sprintf(`Number(document.getElementById("tail-stats").dataset.received) >= %d`, before+50))
	b.AssertClean()
}
