package e2e

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"playpulse.dev/tests/browsertest"
	"playpulse.dev/tests/harness"
)

// The dashboard tests (this file and dashboard_*_test.go) drive the page
// that the fan-out serves in headless Chromium (tests/browsertest).

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
	b := browsertest.New(t)
	b.Open("http://" + s.fanAddr + "/")

	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	b.Wait(30*time.Second, `document.querySelectorAll("#tail tr.ev").length >= 10`)
	// KPIs: every figure the server defines, once enough happened to define it.
	for _, id := range []string{"kpi-ccv", "kpi-sps", "kpi-startup-p50", "kpi-startup-p95", "kpi-rebuffer", "kpi-vsf", "kpi-bitrate", "kpi-rate", "kpi-lat-p50", "kpi-lat-p99"} {
		b.Wait(60*time.Second, fmt.Sprintf(`document.getElementById(%q).dataset.value !== "" && document.getElementById(%q).dataset.value !== undefined`, id, id))
	}
	// The producer sends 300/s; the KPI is the fan-out's 10-second rate, so it
	// gets there once 10 s of the stream have been read.
	b.Wait(30*time.Second, `(v => v >= 200 && v <= 450)(Number(document.getElementById("kpi-rate").dataset.value))`)
	// The page speaks protocol 3: it gets most snapshots as deltas, and
	// the figures above were drawn from them.
	b.Wait(10*time.Second, `document.body.dataset.protocol === "3" && Number(document.getElementById("freshness").dataset.deltas) >= 8`)
	// Charts update: the right edge moves with time and the series have points.
	first := browsertest.Eval[int64](b, `Number(document.getElementById("chart-events").dataset.last)`)
	b.Wait(20*time.Second, fmt.Sprintf(`Number(document.getElementById("chart-events").dataset.last) >= %d`, first+2))
	for _, id := range []string{"chart-events", "chart-sps", "chart-ccv", "chart-rebuffer", "chart-bitrate", "chart-startup"} {
		b.Wait(30*time.Second, fmt.Sprintf(`Number(document.getElementById(%q).dataset.points) > 0 && document.querySelector("#%s canvas") !== null`, id, id))
	}
	// Hovering a chart shows the values of that second in its legend.
	b.Wait(20*time.Second, `(() => {
		const over = document.querySelector("#chart-ccv .u-over");
		const r = over.getBoundingClientRect();
		over.dispatchEvent(new MouseEvent("mouseenter", {clientX: r.right - 3, clientY: r.top + r.height / 2}));
		over.dispatchEvent(new MouseEvent("mousemove", {clientX: r.right - 3, clientY: r.top + r.height / 2, bubbles: true}));
		const v = [...document.querySelectorAll("#chart-ccv .u-legend .u-value")].map(e => e.textContent);
		return v.length === 2 && /\d/.test(v[0]) && /^\d[\d,]*$/.test(v[1]); })()`)
	// Breakdowns and top titles.
	b.Wait(20*time.Second, `[...document.querySelectorAll("#bd-device tbody tr:not([hidden]) th")].some(e => ["tv","mobile","desktop","tablet"].includes(e.textContent))`)
	b.Wait(20*time.Second, `document.querySelectorAll("#top-titles tbody tr:not([hidden])").length >= 3`)
	// Every row of the tail says its type in words.
	types := browsertest.Eval[[]string](b, `[...document.querySelectorAll("#tail tr.ev .type")].map(e => e.textContent)`)
	if len(types) > 50 {
		t.Fatalf("%d rows; the tail is capped at 50", len(types))
	}
	for _, ty := range types {
		if ty == "" {
			t.Fatalf("a row without its type label: %v", types)
		}
	}

	t.Run("filter", func(t *testing.T) {
		b.SetT(t)
		// Choose device "mobile" and event type "play" the way a user does.
		b.Wait(10*time.Second, `(() => {
			const f = document.getElementById("filters");
			f.elements.device.value = "mobile";
			f.querySelector('input[name="types"][value="play"]').checked = true;
			f.requestSubmit();
			return true; })()`)
		b.Wait(10*time.Second, `document.getElementById("filter-state").dataset.state === "ok"`)
		b.Wait(30*time.Second, `document.querySelectorAll("#tail tr.ev").length >= 3`)
		rows := browsertest.Eval[[][]string](b, `[...document.querySelectorAll("#tail tr.ev")].map(r => [r.cells[1].textContent, r.cells[5].textContent])`)
		for _, r := range rows {
			if r[0] != "play" || r[1] != "mobile" {
				t.Fatalf("filtered tail shows %v; want only play events of mobile devices: %v", r, rows)
			}
		}
		if h := browsertest.Eval[string](b, `location.hash`); !strings.Contains(h, "device=mobile") || !strings.Contains(h, "types=play") {
			t.Fatalf("the filter is not kept in the URL: %q", h)
		}
		// Clear: every type comes back.
		b.Wait(10*time.Second, `(document.getElementById("filters").reset(), true)`)
		b.Wait(30*time.Second, `new Set([...document.querySelectorAll("#tail tr.ev .type")].map(e => e.textContent)).size >= 3`)
	})
	b.SetT(t)
	b.AssertClean()
}
