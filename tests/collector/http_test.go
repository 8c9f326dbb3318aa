package collector

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kcat"
)

// report is a valid CMCD v2 event report.
func report(sid string, sn int, extra string) string {
	return fmt.Sprintf(`cid="m1",e=ps,sid="%s",sn=%d,sta=s,ts=%d,v=2%s`, sid, sn, time.Now().UnixMilli(), extra)
}

// answerBody is the collector's JSON answer.
type answerBody struct {
	Error    string `json:"error"`
	Accepted int    `json:"accepted"`
	Rejected []struct {
		Line   int    `json:"line"`
		Reason string `json:"reason"`
		Detail string `json:"detail"`
	} `json:"rejected"`
}

// TestHTTPEdge: what the edge answers a hostile internet, over real HTTP:
// CORS, content types, limits, bad lines with reasons (the good ones of the
// batch kept, as kcat shows), the rate limit, beacons, and the metrics.
func TestHTTPEdge(t *testing.T) {
	intake, events, group := topics(t, broker, 2, 2)
	c := startCollector(t, broker, intake, events, group, map[string]string{
		"COLLECTOR_ROLES":           "ingest",
		"COLLECTOR_ALLOWED_ORIGINS": "https://player.example",
		"COLLECTOR_MAX_LINES":       "5",
		"COLLECTOR_RATE_BURST":      "20",
		"COLLECTOR_RATE_LIMIT":      "1",
		"COLLECTOR_MAX_BODY_BYTES":  "2048",
		"COLLECTOR_MAX_LINE_BYTES":  "512",
		"COLLECTOR_USER_ID_KEY":     "com.example-uid",
		"COLLECTOR_TRUSTED_PROXIES": "127.0.0.1",
		"COLLECTOR_COUNTRY_HEADER":  "CF-IPCountry",
	})
	cmcdURL := c.url("/v1/cmcd")
	// Every request below comes from 127.0.0.1, a trusted proxy: each
	// names its own client in X-Forwarded-For so that the rate limit
	// (burst 20, then 1/s) applies to the last test only.
	client := 0
	from := func(h map[string]string) map[string]string {
		client++
		if h == nil {
			h = map[string]string{}
		}
		h["X-Forwarded-For"] = fmt.Sprintf("203.0.113.%d", client)
		return h
	}

	t.Run("preflight from an allowed origin", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, cmcdURL, nil)
		req.Header.Set("Origin", "https://player.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://player.example" ||
			h.Get("Access-Control-Allow-Methods") != "POST" || !strings.EqualFold(h.Get("Access-Control-Allow-Headers"), "Content-Type") {
			t.Fatalf("preflight: %d %v", resp.StatusCode, h)
		}
	})
	t.Run("other origins are refused", func(t *testing.T) {
		for _, m := range []string{http.MethodOptions, http.MethodPost} {
			req, _ := http.NewRequest(m, cmcdURL, strings.NewReader(report("o1", 0, "")))
			req.Header.Set("Origin", "https://evil.example")
			req.Header.Set("Content-Type", "application/cmcd")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("%s from another origin: %d %v", m, resp.StatusCode, resp.Header)
			}
		}
	})
	t.Run("content types", func(t *testing.T) {
		for ct, want := range map[string]int{"application/cmcd": 204, "text/plain;charset=UTF-8": 204, "application/json": 415, "": 415} {
			if code, _, body := post(t, cmcdURL, ct, report("ct-"+ct, 0, ""), from(nil)); code != want {
				t.Errorf("Content-Type %q: %d %s, want %d", ct, code, body, want)
			}
		}
	})
	t.Run("method", func(t *testing.T) {
		resp, err := http.Get(cmcdURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
	})
	t.Run("limits", func(t *testing.T) {
		var six []string
		for i := range 6 {
			six = append(six, report("lim", i, ""))
		}
		if code, _, body := post(t, cmcdURL, "application/cmcd", strings.Join(six, "\n"), from(nil)); code != http.StatusRequestEntityTooLarge {
			t.Errorf("6 lines (max 5): %d %s", code, body)
		}
		if code, _, body := post(t, cmcdURL, "application/cmcd", report("big", 0, ",x-pad=\""+strings.Repeat("a", 3000)+"\""), from(nil)); code != http.StatusRequestEntityTooLarge {
			t.Errorf("3 KB body (max 2 KB): %d %s", code, body)
		}
		if code, _, body := post(t, c.url("/v1/cmcd/Not_A_Stream"), "application/cmcd", report("s", 0, ""), from(nil)); code != http.StatusNotFound {
			t.Errorf("bad stream name: %d %s", code, body)
		}
	})
	t.Run("bad lines get reasons, good lines are kept", func(t *testing.T) {
		body := strings.Join([]string{
			report("mixed-good-1", 0, `,com.example-uid="viewer-7"`),
			`this is not cmcd`,
			report("mixed-bad", 0, `,cid="<script>alert(1)</script>"`),
			`v=1,sid="x",sn=0,ts=1,e=ps`,
			report("mixed-good-2", 0, ",x-pad=\""+strings.Repeat("a", 600)+"\""),
		}, "\n")
		code, h, raw := post(t, c.url("/v1/cmcd/mixed"), "application/cmcd", body, from(map[string]string{"CF-IPCountry": "de"}))
		var a answerBody
		if err := json.Unmarshal([]byte(raw), &a); err != nil {
			t.Fatalf("answer %q: %v", raw, err)
		}
		reasons := map[int]string{}
		for _, r := range a.Rejected {
			reasons[r.Line] = r.Reason
		}
		if code != http.StatusBadRequest || a.Accepted != 1 || len(a.Rejected) != 4 || reasons[2] != "not_cmcd" || reasons[3] != "unsafe_chars" ||
			reasons[4] != "unsupported_version" || reasons[5] != "line_too_long" || h.Get("Content-Type") != "application/json" {
			t.Fatalf("answer %d %s", code, raw)
		}
		if strings.Contains(raw, "<script>") {
			t.Fatalf("the answer echoes markup: %s", raw)
		}
		harness.Eventually(t, 10*time.Second, "the good line in the intake topic", func() error {
			for _, r := range kcat.Read(t, broker.Addr(), intake) {
				if r.Key == "mixed-good-1" {
					if r.Header("stream") != "mixed" || r.Header("country") != "DE" || !strings.Contains(r.Payload, `com.example-uid="viewer-7"`) {
						t.Fatalf("intake record %+v", r)
					}
					return nil
				}
				if strings.HasPrefix(r.Key, "mixed-") && r.Key != "mixed-good-1" {
					t.Fatalf("a refused line reached Kafka: %+v", r)
				}
			}
			return fmt.Errorf("not there yet")
		})
		if v := metric(t, c.url("/metrics"), `playpulse_collector_reports_rejected_total{kind="cmcd",reason="unsafe_chars"}`); v != 1 {
			t.Errorf("unsafe_chars counted %v times", v)
		}
	})
	t.Run("beacons: contract events, source set by the collector", func(t *testing.T) {
		e := event.Event{V: 1, EventID: "b1:1", SessionID: "beacon-1", Seq: 1, Stream: "app", UserID: "u", MovieID: "m",
			Type: event.Start, Device: "tv", TS: time.Now().UTC().Truncate(time.Millisecond), Source: event.SourceSim}
		body := string(e.AppendJSON(nil)) + "\n" + `{"v":1,"event_type":"play"}` + "\n"
		code, _, raw := post(t, c.url("/v1/events"), "application/x-ndjson", body, from(nil))
		if code != http.StatusBadRequest || !strings.Contains(raw, `"reason":"missing_field"`) || !strings.Contains(raw, `"accepted":1`) {
			t.Fatalf("beacon batch: %d %s", code, raw)
		}
		harness.Eventually(t, 10*time.Second, "the beacon event in the events topic", func() error {
			for _, r := range kcat.Read(t, broker.Addr(), events) {
				if r.Key == "beacon-1" {
					var got event.Event
					if err := event.Decode([]byte(r.Payload), &got); err != nil || got.Source != event.SourceBeacon || r.Timestamp != got.TS.UnixMilli() {
						t.Fatalf("beacon record %+v: %v", r, err)
					}
					return nil
				}
			}
			return fmt.Errorf("not there yet")
		})
	})
	t.Run("rate limit per client address", func(t *testing.T) {
		h := map[string]string{"X-Forwarded-For": "198.51.100.9"}
		var lines []string
		for i := range 5 {
			lines = append(lines, report("rate", i, ""))
		}
		batch := strings.Join(lines, "\n")
		for i := range 4 { // the burst: 20 reports
			if code, _, body := post(t, cmcdURL, "application/cmcd", batch, h); code != http.StatusNoContent {
				t.Fatalf("batch %d within the burst: %d %s", i, code, body)
			}
		}
		code, hdr, _ := post(t, cmcdURL, "application/cmcd", batch, h)
		if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
			t.Fatalf("over the limit: %d, Retry-After %q", code, hdr.Get("Retry-After"))
		}
		// Another client behind the same proxy is not limited.
		if code, _, body := post(t, cmcdURL, "application/cmcd", batch, map[string]string{"X-Forwarded-For": "198.51.100.10"}); code != http.StatusNoContent {
			t.Fatalf("another client: %d %s", code, body)
		}
	})
}

// TestUnavailableKafka: with Kafka unreachable the edge accepts nothing:
// 503 with Retry-After, and /readyz says why.
func TestUnavailableKafka(t *testing.T) {
	dead := harness.FreeAddr(t)
	c := &collector{addr: harness.FreeAddr(t)}
	c.proc = harness.Start(t, "collector", map[string]string{"KAFKA_BROKERS": dead, "COLLECTOR_ADDR": c.addr, "COLLECTOR_ROLES": "ingest", "LOG_LEVEL": "error"})
	harness.WaitReady(t, c.url("/healthz"), 30*time.Second)
	code, h, body := post(t, c.url("/v1/cmcd"), "application/cmcd", report("down", 0, ""), nil)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("with Kafka down: %d %s", code, body)
	}
	resp, err := http.Get(c.url("/readyz"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with Kafka down: %d", resp.StatusCode)
	}
}

// TestConfiguration: -h prints every variable; a bad value exits 2 naming
// the variable.
func TestConfiguration(t *testing.T) {
	code, out := harness.Run(t, "collector", nil, "-h")
	if code != 0 || !strings.Contains(out, "COLLECTOR_INACTIVITY_TIMEOUT") || !strings.Contains(out, "COLLECTOR_ALLOWED_ORIGINS") {
		t.Fatalf("-h: %d\n%s", code, out)
	}
	for name, value := range map[string]string{
		"COLLECTOR_ROLES":            "edge",
		"COLLECTOR_RATE_BURST":       "10", // below COLLECTOR_MAX_LINES
		"COLLECTOR_USER_ID_KEY":      "uid",
		"COLLECTOR_ALLOWED_ORIGINS":  "player.example",
		"COLLECTOR_REBUILD_LOOKBACK": "10s",
		"COLLECTOR_TRUSTED_PROXIES":  "10.0.0.0/33",
		"COLLECTOR_ADDR":             "nope",
		"COLLECTOR_DEFAULT_STREAM":   "Bad Name",
	} {
		code, out := harness.Run(t, "collector", map[string]string{name: value})
		if code != 2 || !strings.Contains(out, name+": ") {
			t.Errorf("%s=%s: exit %d\n%s", name, value, code, out)
		}
	}
}
