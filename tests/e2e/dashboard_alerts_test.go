package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/browsertest"
)

// TestDashboardAlerts runs a fan-out with a rules file (FANOUT_ALERT_RULES)
// whose rule fires on the test's events: a steady trickle of views that
// fail after their first frame on one stream and CDN, both named with HTML,
// next to healthy views on another stream. The page shows the alert at the
// top, one line: its severity, the server's message (with the CDN that
// explains it) as literal text, and how long it has fired, counting on;
// scoped to the other stream it hides it. When the rules file is rewritten
// with a threshold no figure reaches, the fan-out reloads it, the alert ends
// and the banner goes away.
func TestDashboardAlerts(t *testing.T) {
	const (
		stream = `live<img src=x onerror="window.__xss='stream'">`
		cdn    = `<script>window.__xss='cdn'</script>cdn`
		calm   = "calm"
	)
	rules := filepath.Join(t.TempDir(), "rules.json")
	writeRules := func(threshold string) {
		t.Helper()
		body := `{"rules": [{"name": "playback-failures", "metric": "playback_failure_pct", "condition": "above", "threshold": ` + threshold + `,
			"window": "10s", "minSample": 1, "resolveAfter": "1s", "severity": "critical", "explain": ["cdn"]}]}`
		// As a ConfigMap is updated: a new file renamed over the old one.
		tmp := rules + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, rules); err != nil {
			t.Fatal(err)
		}
	}
	writeRules("0")
	s := startDashStack(t, dashOpts{partitions: 1, fanoutEnv: map[string]string{
		"FANOUT_ALERT_RULES":    rules,
		"FANOUT_ALERT_INTERVAL": "1s",
	}})
	b := browsertest.New(t)
	b.Open("http://" + s.fanAddr + "/")
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	// No alert yet: the banner is hidden.
	b.Wait(10*time.Second, `document.getElementById("alerts").hidden && document.getElementById("kpi-ccv").dataset.value !== undefined`)

	feedViews(t, s.topic, stream, cdn, calm)

	// The alert shows at the top with the server's message, as text.
	b.Wait(60*time.Second, fmt.Sprintf(`(() => {
		const li = document.querySelector("#alerts li[data-severity=critical]:not([hidden])");
		return !document.getElementById("alerts").hidden && li !== null && li.querySelector(".msg").textContent.includes(%q); })()`,
		"cdn="+cdn+" accounts for 100% of the failures"))
	var api struct {
		Alerts []struct {
			Rule, Stream, State, Message string
		} `json:"alerts"`
	}
	if err := getJSON("http://"+s.fanAddr+"/api/alerts", &api); err != nil {
		t.Fatal(err)
	}
	var want string
	for _, a := range api.Alerts {
		if a.Rule == "playback-failures" && a.Stream == stream && a.State == "firing" {
			want = a.Message
		}
	}
	if want == "" || !strings.Contains(want, "on "+stream) {
		t.Fatalf("GET /api/alerts: no firing alert of the failing stream with its name in the message: %+v", api.Alerts)
	}
	// The message of /api/alerts changes only with the figures; every view on
	// that stream fails, so the page shows the same line.
	b.Wait(10*time.Second, fmt.Sprintf(`document.querySelector("#alerts li:not([hidden]) .msg").textContent === %q`, want))
	line := browsertest.Eval[[]string](b, `[...document.querySelector("#alerts li:not([hidden])").children].map(e => e.textContent)`)
	if len(line) != 3 || line[0] != "critical" || !regexp.MustCompile(`^for \d+ s$`).MatchString(line[2]) {
		t.Fatalf("alert line %q: want [critical, message, for N s]", line)
	}
	if n := browsertest.Eval[int](b, `document.querySelectorAll("#alerts li:not([hidden])").length`); n != 1 {
		t.Fatalf("%d alert lines; want 1 (the healthy stream has no alert)", n)
	}
	// How long it has fired counts on in the page, between and across snapshots.
	secs, _ := strconv.Atoi(strings.Fields(line[2])[1])
	b.Wait(10*time.Second, fmt.Sprintf(`Number(document.querySelector("#alerts li:not([hidden]) .dur").textContent.split(" ")[1]) >= %d`, secs+2))

	// The names from the events stayed text: no element, no script.
	if n := browsertest.Eval[int](b, `document.querySelectorAll("#alerts img, #alerts script").length`); n != 0 {
		t.Fatalf("%d elements were created from event data in the alerts", n)
	}
	if x := browsertest.Eval[string](b, `String(window.__xss)`); x != "undefined" {
		t.Fatalf("script from event data ran: window.__xss = %q", x)
	}

	// Scoped to the healthy stream, the page shows no alert; back on the
	// failing one, it shows it again.
	choose := func(name string) string {
		return fmt.Sprintf(`(() => {
			const sel = document.getElementById("stream");
			if (![...sel.options].some(o => o.value === %q)) return false;
			sel.value = %q;
			sel.dispatchEvent(new Event("change"));
			return true; })()`, name, name)
	}
	b.Wait(20*time.Second, choose(calm))
	b.Wait(10*time.Second, `document.getElementById("alerts").hidden`)
	b.Wait(10*time.Second, choose(stream))
	b.Wait(10*time.Second, fmt.Sprintf(`!document.getElementById("alerts").hidden && document.querySelector("#alerts li:not([hidden]) .msg").textContent.includes(%q)`, "on "+stream))

	// A threshold no percentage exceeds: the fan-out reloads the file, the
	// changed rule's alert ends, and the banner goes away.
	writeRules("100")
	b.Wait(30*time.Second, `document.getElementById("alerts").hidden && document.querySelectorAll("#alerts li:not([hidden])").length === 0`)
	if err := getJSON("http://"+s.fanAddr+"/api/alerts", &api); err != nil {
		t.Fatal(err)
	}
	if len(api.Alerts) != 0 {
		t.Fatalf("GET /api/alerts after the reload: %+v; want none", api.Alerts)
	}
	b.AssertClean()
}

// feedViews writes, every half second until the test ends, one view on
// stream (CDN cdn) that fails after its first frame and one on calm that
// ends normally, with timestamps of now.
func feedViews(t *testing.T, topic, stream, cdn, calm string) {
	t.Helper()
	p := syncProducer(t, broker.Addr())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			now := time.Now().UTC()
			var msgs []*sarama.ProducerMessage
			for _, v := range []struct {
				tag, stream, cdn string
				last             event.Type
			}{{"fail", stream, cdn, event.Error}, {"ok", calm, "good-cdn", event.Stop}} {
				id := fmt.Sprintf("alerts-%s-%d", v.tag, i)
				for seq, typ := range []event.Type{event.Start, event.Play, v.last} {
					e := event.Event{V: 1, EventID: fmt.Sprint(id, "-", seq+1), SessionID: id, Seq: uint64(seq + 1), Stream: v.stream,
						UserID: "u-" + id, MovieID: "m0001", Type: typ, Device: "tv", TS: now.Add(time.Duration(seq-2) * 100 * time.Millisecond),
						Country: "FR", CDN: v.cdn}
					switch typ {
					case event.Play:
						e.FirstFrame, e.StartupMS, e.Bitrate = true, 900, 3000
					case event.Error:
						e.ErrorCode, e.Fatal, e.Bitrate = "E_NETWORK", true, 3000
					case event.Stop:
						e.StopReason, e.Bitrate = event.StopEnded, 3000
					}
					msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: 0, Key: sarama.StringEncoder(id), Timestamp: e.TS, Value: sarama.ByteEncoder(e.AppendJSON(nil))})
				}
			}
			if err := p.SendMessages(msgs); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	// Runs before the producer is closed (cleanups run last first).
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
}
