package e2e

import (
	"playpulse.dev/tests/browsertest"

	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDashboardHostileData writes events with kcat whose string fields hold
// HTML and script: they must show as literal text wherever the page shows
// them (tail, breakdowns, top titles, stream selector), no element comes
// out of them, no script runs, and the page never even tries (zero CSP
// violations: markup reaching the DOM would trip the policy).
func TestDashboardHostileData(t *testing.T) {
	s := startDashStack(t, dashOpts{}) // no producer: only these events flow
	b := browsertest.New(t)
	b.Open("http://" + s.fanAddr + "/")
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)

	payload := map[string]string{
		"movie_id":   `<img src=x onerror="window.__xss='movie'">`,
		"user_id":    `<script>window.__xss='user'</script>`,
		"device":     `"><svg onload="window.__xss='device'">`,
		"stream":     `</option><img src=x onerror="window.__xss='stream'">`,
		"country":    `<b onmouseover="window.__xss='country'">XX</b>`,
		"cdn":        `javascript:window.__xss='cdn'//<a href="javascript:1">cdn</a>`,
		"network":    `<style>body{display:none}</style>`,
		"error_code": `<iframe srcdoc="<script>parent.__xss='error'</script>"></iframe>`,
	}
	now := time.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(d).Format("2006-01-02T15:04:05.000Z") }
	ev := func(seq int, typ string, d time.Duration, extra map[string]any) string {
		m := map[string]any{
			"v": 1, "event_id": fmt.Sprintf("xss-1:%d", seq), "session_id": "xss-1", "seq": seq,
			"stream": payload["stream"], "user_id": payload["user_id"], "movie_id": payload["movie_id"],
			"event_type": typ, "position_seconds": 0, "bitrate_kbps": 0, "device": payload["device"],
			"ts": ts(d), "country": payload["country"], "cdn": payload["cdn"], "network": payload["network"],
		}
		for k, v := range extra {
			m[k] = v
		}
		j, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(j)
	}
	// A session that starts, plays (so it is a viewer of its title, on its
	// device, CDN and country) and reports a non-fatal error.
	kcatProduce(t, s.topic,
		ev(1, "start", -3*time.Second, nil),
		ev(2, "play", -2*time.Second, map[string]any{"startup_ms": 900, "bitrate_kbps": 3000}),
		ev(3, "error", -1*time.Second, map[string]any{"error_code": payload["error_code"], "fatal": false, "bitrate_kbps": 3000}),
	)

	// The tail shows the three events with the payloads as text.
	b.Wait(30*time.Second, `document.querySelectorAll("#tail tr.ev").length >= 3`)
	text := func(sel string) string {
		return browsertest.Eval[string](b, fmt.Sprintf(`document.querySelector(%q).textContent`, sel))
	}
	tail := text("#tail")
	for _, k := range []string{"movie_id", "user_id", "device", "stream", "country", "cdn", "network", "error_code"} {
		if !strings.Contains(tail, payload[k]) {
			t.Errorf("the tail does not show %s %q literally; it shows %q", k, payload[k], tail)
		}
	}
	// Breakdowns, top titles and the stream selector show them too, once a snapshot carries them.
	b.Wait(30*time.Second, fmt.Sprintf(`document.getElementById("top-titles").textContent.includes(%q)`, payload["movie_id"]))
	b.Wait(10*time.Second, fmt.Sprintf(`document.getElementById("bd-device").textContent.includes(%q)`, payload["device"]))
	b.Wait(10*time.Second, fmt.Sprintf(`document.getElementById("bd-cdn").textContent.includes(%q)`, payload["cdn"]))
	b.Wait(10*time.Second, fmt.Sprintf(`document.getElementById("bd-country").textContent.includes(%q)`, payload["country"]))
	b.Wait(10*time.Second, fmt.Sprintf(`[...document.getElementById("stream").options].some(o => o.value === %q && o.textContent === %q)`, payload["stream"], payload["stream"]))

	// Hover a row: its title is text too.
	b.Wait(10*time.Second, `(document.querySelector("#tail tr.ev td").dispatchEvent(new MouseEvent("mouseover", {bubbles: true})), true)`)

	// Nothing became markup, nothing ran.
	if n := browsertest.Eval[int](b, `document.querySelectorAll("main img, main script, main svg, main iframe, main b, main a, main style, select img, select option img").length`); n != 0 {
		t.Fatalf("%d elements were created from event data", n)
	}
	if x := browsertest.Eval[string](b, `String(window.__xss)`); x != "undefined" {
		t.Fatalf("script from event data ran: window.__xss = %q", x)
	}
	if vis := browsertest.Eval[bool](b, `getComputedStyle(document.body).display !== "none"`); !vis {
		t.Fatal("a style from event data applied")
	}
	b.AssertClean()
}
