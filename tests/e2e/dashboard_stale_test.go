package e2e

import (
	"playpulse.dev/tests/browsertest"

	"testing"
	"time"
)

// TestDashboardShowsStaleness stops the Kafka broker under a running page:
// the page stays connected to the fan-out, says that Kafka cannot be read
// (banner and header) while keeping the last figures, and clears the
// warning once the broker is back.
func TestDashboardShowsStaleness(t *testing.T) {
	s := startDashStack(t, dashOpts{rate: "200"})
	b := browsertest.New(t)
	b.Open("http://" + s.fanAddr + "/")
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	b.Wait(30*time.Second, `document.getElementById("kpi-ccv").dataset.value > 0 && document.getElementById("stale").hidden`)

	broker.Stop(t)
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			broker.Restart(t) // the other tests of the package need it
		}
	})
	b.Wait(60*time.Second, `document.getElementById("freshness").dataset.state === "stale" && !document.getElementById("stale").hidden && /Kafka cannot be read/.test(document.getElementById("stale").textContent)`)
	// The connection to the fan-out is fine and the last figures stay.
	b.Wait(5*time.Second, `document.getElementById("status").dataset.state === "live" && document.getElementById("kpi-ccv").dataset.value > 0`)

	broker.Restart(t)
	restarted = true
	b.Wait(90*time.Second, `document.getElementById("stale").hidden && document.getElementById("freshness").dataset.state === "live"`)
	b.AssertClean()
}
