package collector

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kcat"
)

const chromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36"

// recorded returns the lines a real player sent (the collector's own test
// data), with sid replaced and ts moved so that the last report is now.
func recorded(t *testing.T, name, sid string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.MustRoot(), "services/collector/internal/sessions/testdata/recorded", name+".cmcd"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	tsRe := regexp.MustCompile(`ts=(\d+)`)
	var last int64
	for _, l := range lines {
		n, _ := strconv.ParseInt(tsRe.FindStringSubmatch(l)[1], 10, 64)
		last = max(last, n)
	}
	shift := time.Now().UnixMilli() - last
	sidRe := regexp.MustCompile(`sid="[^"]*"`)
	for i, l := range lines {
		l = sidRe.ReplaceAllString(l, `sid="`+sid+`"`)
		lines[i] = tsRe.ReplaceAllStringFunc(l, func(m string) string {
			n, _ := strconv.ParseInt(m[3:], 10, 64)
			return "ts=" + strconv.FormatInt(n+shift, 10)
		})
	}
	return lines
}

// events returns the contract events of session sid in the events topic.
func eventsOf(t *testing.T, topic, sid string) ([]event.Event, []kcat.Record) {
	t.Helper()
	var evs []event.Event
	var recs []kcat.Record
	for _, r := range kcat.Read(t, broker.Addr(), topic) {
		var e event.Event
		if err := event.Decode([]byte(r.Payload), &e); err != nil {
			t.Fatalf("record at offset %d is not a valid event: %v\n%s", r.Offset, err, r.Payload)
		}
		if e.SessionID == sid {
			evs, recs = append(evs, e), append(recs, r)
		}
	}
	return evs, recs
}

func types(evs []event.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Type.String())
	}
	return strings.Join(s, " ")
}

// TestPipeline: a recorded hls.js session with a 3 s stall, posted report by
// report as hls.js does, becomes contract events in Kafka (read back with
// kcat) and figures on the fan-out's /api/snapshot; closing the tab (the
// reports just stop) gives a stop through the inactivity timeout.
func TestPipeline(t *testing.T) {
	intake, events, group := topics(t, broker, 3, 3)
	f := startFanout(t, events)
	c := startCollector(t, broker, intake, events, group, map[string]string{
		"COLLECTOR_INACTIVITY_TIMEOUT": "3s",
		"COLLECTOR_ALLOWED_ORIGINS":    "https://player.example",
	})
	sid := "e2e-pipeline-1"
	for _, line := range recorded(t, "hlsjs-stall", sid) {
		code, h, body := post(t, c.url("/v1/cmcd/e2e"), "application/cmcd", line+"\n", map[string]string{"User-Agent": chromeUA, "Origin": "https://player.example"})
		if code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://player.example" {
			t.Fatalf("POST %s: %d %s (CORS %q)", line, code, body, h.Get("Access-Control-Allow-Origin"))
		}
	}
	var evs []event.Event
	var recs []kcat.Record
	harness.Eventually(t, 30*time.Second, "the session's stop in the events topic", func() error {
		evs, recs = eventsOf(t, events, sid)
		if len(evs) == 0 || evs[len(evs)-1].Type != event.Stop {
			return fmt.Errorf("events so far: %s", types(evs))
		}
		return nil
	})
	want := "start play heartbeat heartbeat bitrate_change buffer_start heartbeat bitrate_change buffer_end heartbeat stop"
	if got := types(evs); got != want {
		t.Fatalf("events\n got: %s\nwant: %s", got, want)
	}
	for i, e := range evs {
		r := recs[i]
		if e.Source != event.SourceCMCD || e.Stream != "e2e" || e.Device != "desktop" || e.MovieID != "title-1" || e.UserID != "anonymous" {
			t.Errorf("event %d: %s", i, r.Payload)
		}
		if r.Key != sid || r.Timestamp != e.TS.UnixMilli() || r.Header(event.HeaderSchema) != "1" {
			t.Errorf("record %d: key %q, timestamp %d (ts %d), headers %v", i, r.Key, r.Timestamp, e.TS.UnixMilli(), r.Headers)
		}
	}
	if evs[1].StartupMS != 494 || evs[1].Bitrate != 2820 || evs[8].StallMS != 3077 || evs[10].StopReason != event.StopQuit {
		t.Errorf("startup %d ms at %d kbps, stall %d ms, stop %s; want 494 ms at 2820, 3077 ms, quit",
			evs[1].StartupMS, evs[1].Bitrate, evs[8].StallMS, evs[10].StopReason)
	}

	// The intake topic: one record per request (of one report here), keyed
	// by sid, with what the edge derived in headers.
	var n int
	for _, r := range kcat.Read(t, broker.Addr(), intake) {
		if r.Key != sid {
			continue
		}
		n++
		if r.Header("stream") != "e2e" || r.Header("device") != "desktop" || r.Header("received") == "" || !strings.Contains(r.Payload, `sid="`+sid+`"`) {
			t.Errorf("intake record %+v", r)
		}
	}
	if n != 14 {
		t.Errorf("%d intake records for the session, want 14", n)
	}

	// The fan-out counts it like any session.
	for i, fo := range []*fanout{f, nil} {
		if i == 1 {
			// A fan-out started now replays the topic, whose last offsets
			// are transaction markers that a read_committed consumer never
			// receives: it must still become ready (startFanout waits) and
			// count the session once.
			fo = startFanout(t, events)
		}
		harness.Eventually(t, 20*time.Second, "the session's figures on /api/snapshot", func() error {
			o, err := overallOf(fo)
			if err != nil {
				return err
			}
			if o.Attempts != 1 || o.Plays != 1 || o.Stalls != 1 || o.ViewsEnded != 1 || o.RebufferPct <= 0 || o.StartupP50MS < 400 || o.StartupP50MS > 600 || o.StallTimeS < 2.9 || o.StallTimeS > 3.3 {
				return fmt.Errorf("overall %+v", o)
			}
			return nil
		})
	}
}

// fanout is one fan-out process serving the events topic.
type fanout struct {
	addr string
}

func (f *fanout) url(path string) string { return "http://" + f.addr + path }

func startFanout(t *testing.T, topic string) *fanout {
	t.Helper()
	f := &fanout{addr: harness.FreeAddr(t)}
	harness.Start(t, "fanout", map[string]string{
		"KAFKA_BROKERS": broker.Addr(), "FANOUT_ADDR": f.addr, "FANOUT_TOPICS": topic,
		"FANOUT_TOPIC_PATTERN": "", "LOG_LEVEL": "warn",
	})
	harness.WaitReady(t, f.url("/readyz"), 60*time.Second)
	return f
}

// TestBatchedRequests: a player that batches its reports (here two
// sessions' reports, interleaved, in two requests of eight) costs one
// intake record per session and request, holding that session's lines in
// the order sent; the sessionizer maps every report of a record: each
// session's events are exactly those its reports give, once.
func TestBatchedRequests(t *testing.T) {
	intake, events, group := topics(t, broker, 3, 3)
	c := startCollector(t, broker, intake, events, group, nil)
	sids := []string{"batched-a", "batched-b"}
	var lines []string
	now := time.Now().UnixMilli()
	for sn, keys := range script {
		for _, sid := range sids {
			lines = append(lines, fmt.Sprintf(`%s,sid="%s",sn=%d,ts=%d,v=2`, keys, sid, sn, now-int64(len(script)-sn)*100))
		}
	}
	for i := 0; i < len(lines); i += 8 {
		if code, _, body := post(t, c.url("/v1/cmcd/batched"), "application/cmcd", strings.Join(lines[i:i+8], "\n"), nil); code != http.StatusNoContent {
			t.Fatalf("POST: %d %s", code, body)
		}
	}
	for _, sid := range sids {
		harness.Eventually(t, 30*time.Second, sid+"'s stop in the events topic", func() error {
			evs, _ := eventsOf(t, events, sid)
			if len(evs) == 0 || evs[len(evs)-1].Type != event.Stop {
				return fmt.Errorf("events so far: %s", types(evs))
			}
			seqs := map[uint64]int{}
			for _, e := range evs {
				seqs[e.Seq]++
				if wantSeqs[e.Seq] != e.Type {
					t.Fatalf("%s: %s with seq %d", sid, e.Type, e.Seq)
				}
			}
			if len(seqs) != len(wantSeqs) || len(evs) != len(wantSeqs) {
				t.Fatalf("%s: events %s (seqs %v), want one each of %v", sid, types(evs), seqs, wantSeqs)
			}
			return nil
		})
	}
	var got []string
	for _, r := range kcat.Read(t, broker.Addr(), intake) {
		var sns []string
		for _, l := range strings.Split(r.Payload, "\n") {
			if !strings.Contains(l, `sid="`+r.Key+`"`) {
				t.Fatalf("record keyed %s holds %q", r.Key, l)
			}
			sns = append(sns, regexp.MustCompile(`sn=(\d+)`).FindStringSubmatch(l)[1])
		}
		got = append(got, r.Key+":"+strings.Join(sns, ","))
	}
	sort.Strings(got)
	if want := "batched-a:0,1,2,3 batched-a:4,5,6,7 batched-b:0,1,2,3 batched-b:4,5,6,7"; strings.Join(got, " ") != want {
		t.Errorf("intake records %v, want %s", got, want)
	}
}
