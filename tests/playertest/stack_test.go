package playertest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/browsertest"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
	"playpulse.dev/tests/kcat"
)

// The collector's and the fan-out's topics: their defaults (docs/collector.md).
const (
	intakeTopic = "playpulse-cmcd"
	eventsTopic = "playback-players"
)

// Timing of the stack under test.
const (
	// reportInterval is the players' time-interval (e=t) reports, seconds:
	// well below inactivityTimeout, so that a session that is playing, or
	// stalled by the test, is never taken for a closed tab.
	reportInterval = 2
	// inactivityTimeout is COLLECTOR_INACTIVITY_TIMEOUT: how long after its
	// last report a closed tab's session is stopped. Short, so that the close
	// test is quick; 4 intervals, so that a report delayed by a loaded
	// machine does not stop a live session.
	inactivityTimeout = 8 * time.Second
)

// stack is what every player session of the package shares: one Kafka
// broker, one collector (both roles), one fan-out reading the collector's
// events topic, one Chromium, the stream and the players.
type stack struct {
	broker    *kafkatest.Broker
	collector string // http://127.0.0.1:port
	fanout    string // http://127.0.0.1:port
	// origin is the address the sessions' media servers listen on, one after
	// another: the pages' origin, another than the collector's, which allows
	// it in COLLECTOR_ALLOWED_ORIGINS, so every report goes through a real
	// CORS preflight.
	origin  string
	browser *browsertest.Browser
	media   *Media
	players string // node_modules with hls.js and shaka-player
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{media: GetMedia(t), players: Players(t)}
	s.broker = kafkatest.Start(t)
	s.broker.CreateTopic(t, intakeTopic, 3)
	s.broker.CreateTopic(t, eventsTopic, 3)
	s.origin = harness.FreeAddr(t)
	collectorAddr, fanoutAddr := harness.FreeAddr(t), harness.FreeAddr(t)
	s.collector, s.fanout = "http://"+collectorAddr, "http://"+fanoutAddr
	harness.Start(t, "collector", map[string]string{
		"KAFKA_BROKERS":                s.broker.Addr(),
		"COLLECTOR_ADDR":               collectorAddr,
		"COLLECTOR_ALLOWED_ORIGINS":    "http://" + s.origin,
		"COLLECTOR_INACTIVITY_TIMEOUT": inactivityTimeout.String(),
		"LOG_LEVEL":                    "warn",
	})
	harness.Start(t, "fanout", map[string]string{
		"KAFKA_BROKERS":        s.broker.Addr(),
		"FANOUT_ADDR":          fanoutAddr,
		"FANOUT_TOPICS":        eventsTopic,
		"FANOUT_TOPIC_PATTERN": "",
		"LOG_LEVEL":            "warn",
	})
	harness.WaitReady(t, s.collector+"/readyz", 60*time.Second)
	harness.WaitReady(t, s.fanout+"/readyz", 60*time.Second)
	s.browser = NewBrowser(t)
	return s
}

// records reads the records of topic keyed key with kcat.
func (s *stack) records(t testing.TB, topic, key string) []kcat.Record {
	t.Helper()
	var recs []kcat.Record
	for _, r := range kcat.Read(t, s.broker.Addr(), topic) {
		if r.Key == key {
			recs = append(recs, r)
		}
	}
	return recs
}

// events returns session sid's contract events in the events topic, in
// order, and checks what every one of them must carry: the record's key
// and timestamp, source cmcd, the session's content id and stream, the
// device class of headless Chromium.
func (s *stack) events(t testing.TB, sid string, want sessionIdentity) []event.Event {
	t.Helper()
	var evs []event.Event
	for _, r := range s.records(t, eventsTopic, sid) {
		var e event.Event
		if err := event.Decode([]byte(r.Payload), &e); err != nil {
			t.Fatalf("record at %d/%d is not a valid event: %v\n%s", r.Partition, r.Offset, err, r.Payload)
		}
		if e.SessionID != sid || r.Timestamp != e.TS.UnixMilli() || r.Header(event.HeaderSchema) == "" ||
			e.Source != event.SourceCMCD || e.MovieID != want.contentID || e.Stream != want.stream || e.Device != "desktop" {
			t.Fatalf("record at %d/%d (timestamp %d, headers %q): want session %s, source cmcd, movie %s, stream %s, device desktop; got\n%s",
				r.Partition, r.Offset, r.Timestamp, r.Headers, sid, want.contentID, want.stream, r.Payload)
		}
		evs = append(evs, e)
	}
	return evs
}

// sessionIdentity is what every event of a session carries.
type sessionIdentity struct{ contentID, stream string }

// waitEvents polls the events topic until cond holds for session sid's
// events and returns them; it fails the test with what arrived if d passes
// first.
func (s *stack) waitEvents(t testing.TB, sid string, want sessionIdentity, d time.Duration, what string, cond func([]event.Event) bool) []event.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		evs := s.events(t, sid, want)
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("events topic: %s: not within %s; session %s has: %s\nits reports (intake topic):\n%s",
				what, d, sid, describe(evs), s.reportLines(t, sid))
		}
		time.Sleep(250 * time.Millisecond) // poll interval: each poll is a kcat run
	}
}

// reports returns session sid's CMCD reports as the collector's edge
// accepted them (the intake topic), in order of arrival.
func (s *stack) reports(t testing.TB, sid string) []Report {
	t.Helper()
	var out []Report
	for _, r := range s.records(t, intakeTopic, sid) {
		rep, err := ParseReport(r.Payload)
		if err != nil {
			t.Fatalf("intake record at %d/%d: %v", r.Partition, r.Offset, err)
		}
		out = append(out, rep)
	}
	return out
}

func (s *stack) reportLines(t testing.TB, sid string) string {
	var b strings.Builder
	for _, r := range s.reports(t, sid) {
		b.WriteString("  " + r.Line + "\n")
	}
	return b.String()
}

// describe is events in one line each, for failure messages.
func describe(evs []event.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s %s bitrate %d", e.TS.Format("15:04:05.000"), e.Type, e.Bitrate)
		switch {
		case e.FirstFrame:
			fmt.Fprintf(&b, " startup %d ms", e.StartupMS)
		case e.Type == event.BufferEnd:
			fmt.Fprintf(&b, " stall %d ms", e.StallMS)
		case e.Type == event.BitrateChange:
			fmt.Fprintf(&b, " from %d", e.PrevBitrate)
		case e.Type == event.Error:
			fmt.Fprintf(&b, " %s fatal=%v", e.ErrorCode, e.Fatal)
		case e.Type == event.Stop:
			fmt.Fprintf(&b, " %s", e.StopReason)
		}
	}
	return b.String()
}

// ofType returns the events of type typ.
func ofType(evs []event.Event, typ event.Type) []event.Event {
	var out []event.Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// firstFrame returns the session's first-frame play event.
func firstFrame(evs []event.Event) (event.Event, bool) {
	for _, e := range evs {
		if e.Type == event.Play && e.FirstFrame {
			return e, true
		}
	}
	return event.Event{}, false
}

// qoe is the part of a QoE object of the fan-out's snapshot the tests read
// (docs/protocol.md).
type qoe struct {
	ConcurrentViewers  int      `json:"concurrent_viewers"`
	Attempts           int      `json:"attempts"`
	Plays              int      `json:"plays"`
	StartupP50MS       *float64 `json:"startup_p50_ms"`
	StartFailures      int      `json:"start_failures"`
	PlaybackFailures   int      `json:"playback_failures"`
	ViewsEnded         int      `json:"views_ended"`
	Stalls             int      `json:"stalls"`
	StallTimeS         float64  `json:"stall_time_s"`
	PlayTimeS          float64  `json:"play_time_s"`
	RebufferPct        *float64 `json:"rebuffer_pct"`
	AvgBitrateKbps     *float64 `json:"avg_bitrate_kbps"`
	EventsPerSecond    float64  `json:"events_per_second"`
	ExitsBeforeStart   int      `json:"exits_before_start"`
	PlaybackFailurePct *float64 `json:"playback_failure_pct"`
}

// snapshot is the part of the fan-out's /api/snapshot the tests read.
type snapshot struct {
	Sources   []string       `json:"sources"`
	BySource  map[string]qoe `json:"by_source"`
	ByStream  map[string]qoe `json:"by_stream"`
	ByDevice  map[string]qoe `json:"by_device"`
	TopTitles []struct {
		MovieID           string `json:"movie_id"`
		ConcurrentViewers int    `json:"concurrent_viewers"`
	} `json:"top_titles"`
}

// waitSnapshot polls the fan-out's /api/snapshot until check returns nil,
// and fails the test with check's last complaint if d passes first.
func (s *stack) waitSnapshot(t testing.TB, d time.Duration, what string, check func(snapshot) error) snapshot {
	t.Helper()
	var snap snapshot
	harness.Eventually(t, d, "/api/snapshot: "+what, func() error {
		snap = snapshot{}
		if err := harness.GetJSON(s.fanout+"/api/snapshot", &snap); err != nil {
			return err
		}
		return check(snap)
	})
	return snap
}
