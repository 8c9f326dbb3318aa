package player

import (
	"errors"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
)

var t0 = time.Date(2025, 3, 1, 20, 0, 0, 0, time.UTC)

// script builds a session's events: each step gives the offset from t0, the
// type variant and the fields that matter; common fields are filled in.
type step struct {
	at   time.Duration
	name string
	pos  float64
	br   int
	f    func(*event.Event)
}

func build(id string, steps []step) []*event.Event {
	out := make([]*event.Event, len(steps))
	for i, s := range steps {
		e := ev(s.name)
		e.V = event.Version
		e.SessionID = id
		e.EventID = id + "-" + string(rune('a'+i))
		e.Seq = uint64(i + 1)
		e.Stream = "default"
		e.UserID = "u1"
		e.MovieID = "m1"
		e.Device = "tv"
		e.TS = t0.Add(s.at)
		e.Position = s.pos
		e.Bitrate = s.br
		if s.f != nil {
			s.f(e)
		}
		out[i] = e
	}
	return out
}

// good is a full, valid session touching every state.
func good(id string) []*event.Event {
	return build(id, []step{
		{0, "start", 100, 0, nil},
		{1500 * time.Millisecond, "play_first", 100, 1750, func(e *event.Event) { e.StartupMS = 1500 }},
		{5 * time.Second, "bitrate_change", 103.5, 3000, func(e *event.Event) { e.PrevBitrate = 1750 }},
		{15 * time.Second, "heartbeat", 113.5, 3000, nil},
		{20 * time.Second, "buffer_start", 118.5, 3000, nil},
		{21 * time.Second, "bitrate_change", 118.5, 2350, func(e *event.Event) { e.PrevBitrate = 3000 }},
		{22500 * time.Millisecond, "buffer_end", 118.5, 2350, func(e *event.Event) { e.StallMS = 2500 }},
		{30 * time.Second, "seek", 400, 2350, func(e *event.Event) { e.From = 126 }},
		{40 * time.Second, "error_nonfatal", 410, 2350, nil},
		{50 * time.Second, "pause", 420, 2350, nil},
		{60 * time.Second, "heartbeat", 420, 2350, nil},
		{65 * time.Second, "seek", 300, 2350, func(e *event.Event) { e.From = 420 }},
		{70 * time.Second, "play_resume", 300, 2350, nil},
		{80 * time.Second, "stop_quit", 310, 2350, nil},
	})
}

func observeAll(t *testing.T, c *Checker, evs []*event.Event) {
	t.Helper()
	for _, e := range evs {
		if err := c.Observe(e); err != nil {
			t.Fatalf("unexpected violation: %v", err)
		}
	}
}

func TestCheckerValidSessions(t *testing.T) {
	c := &Checker{Tolerance: 5 * time.Millisecond}
	// Interleave two sessions and add the short outcomes.
	a, b := good("a"), good("b")
	for i := range a {
		observeAll(t, c, []*event.Event{a[i], b[i]})
	}
	observeAll(t, c, build("fail", []step{
		{0, "start", 0, 0, nil},
		{time.Second, "error_fatal", 0, 0, nil},
		{1200 * time.Millisecond, "stop_error", 0, 0, nil},
	}))
	observeAll(t, c, build("ebvs", []step{
		{0, "start", 0, 0, nil},
		{4 * time.Second, "stop_ebvs", 0, 0, nil},
	}))
	observeAll(t, c, build("late-error", []step{
		{0, "start", 0, 0, nil},
		{time.Second, "play_first", 0, 560, func(e *event.Event) { e.StartupMS = 1000 }},
		{11 * time.Second, "error_fatal", 10, 560, nil},
		{12 * time.Second, "stop_error", 10, 560, nil},
	}))
	if c.Len() != 5 || c.Live() != 0 {
		t.Fatalf("Len %d Live %d, want 5 and 0", c.Len(), c.Live())
	}
	if s, ok := c.State("a"); !ok || s != Ended {
		t.Fatalf("State(a) = %s, %v", s, ok)
	}
	c.Forget("a")
	if _, ok := c.State("a"); ok || c.Len() != 4 {
		t.Fatal("Forget did not forget")
	}
}

func TestCheckerEndedAtDuration(t *testing.T) {
	dur := func(string) (time.Duration, bool) { return 200 * time.Second, true }
	c := &Checker{Tolerance: 5 * time.Millisecond, Duration: dur}
	// Reaches the end at 100 s of play; the stop comes a little later and is
	// clamped at the duration.
	observeAll(t, c, build("s", []step{
		{0, "start", 100, 0, nil},
		{time.Second, "play_first", 100, 235, func(e *event.Event) { e.StartupMS = 1000 }},
		{91 * time.Second, "heartbeat", 190, 235, nil},
		{103 * time.Second, "stop_ended", 200, 235, nil},
	}))
	// Without a known duration, an ended stop may be anywhere up to the
	// playhead implied by the clock.
	c2 := &Checker{Tolerance: 5 * time.Millisecond}
	observeAll(t, c2, build("s", []step{
		{0, "start", 100, 0, nil},
		{time.Second, "play_first", 100, 235, func(e *event.Event) { e.StartupMS = 1000 }},
		{103 * time.Second, "stop_ended", 200, 235, nil},
	}))
}

// TestCheckerViolations mutates one event of a valid session and expects a
// violation mentioning the problem at exactly that event.
func TestCheckerViolations(t *testing.T) {
	dur := func(string) (time.Duration, bool) { return 1000 * time.Second, true }
	for _, tc := range []struct {
		name   string
		at     int // index into good()
		mutate func(*event.Event)
		want   string
	}{
		{"first not start", 0, func(e *event.Event) { e.Type = event.Heartbeat }, "first event must be start"},
		{"start seq 2", 0, func(e *event.Event) { e.Seq = 2 }, "first event must be start with seq 1"},
		{"start with bitrate", 0, func(e *event.Event) { e.Bitrate = 235 }, "before the first frame"},
		{"start beyond duration", 0, func(e *event.Event) { e.Position = 2000 }, "beyond the title's duration"},
		{"negative position", 3, func(e *event.Event) { e.Position = -1 }, "non-negative"},
		{"seq gap", 3, func(e *event.Event) { e.Seq = 5 }, "seq 5 after 3, want 4"},
		{"seq duplicate", 3, func(e *event.Event) { e.Seq = 3 }, "seq 3 after 3"},
		{"ts backwards", 3, func(e *event.Event) { e.TS = t0.Add(time.Second) }, "before the previous event"},
		{"illegal transition", 3, func(e *event.Event) { e.Type = event.BufferEnd }, "illegal buffer_end in state playing"},
		{"user changes", 3, func(e *event.Event) { e.UserID = "u2" }, "changed within the session"},
		{"movie changes", 3, func(e *event.Event) { e.MovieID = "m2" }, "changed within the session"},
		{"position jumps", 3, func(e *event.Event) { e.Position += 3 }, "position 116.500, want 113.500"},
		{"position frozen while playing", 3, func(e *event.Event) { e.Position = 103.5 }, "want 113.500"},
		{"position moves while starting", 1, func(e *event.Event) { e.Position = 101 }, "want 100.000"},
		{"position moves while stalled", 5, func(e *event.Event) { e.Position = 119 }, "want 118.500"},
		{"position moves while paused", 10, func(e *event.Event) { e.Position = 430 }, "want 420.000"},
		{"beyond duration", 8, func(e *event.Event) { e.Position = 1001 }, "beyond the title's duration"},
		{"seek from wrong", 7, func(e *event.Event) { e.From = 120 }, "seek from_seconds 120.000, want 126.000"},
		{"startup_ms wrong", 1, func(e *event.Event) { e.StartupMS = 900 }, "startup_ms 900"},
		{"first frame off ladder", 1, func(e *event.Event) { e.Bitrate = 1000 }, "not on the ladder"},
		{"first frame no startup", 1, func(e *event.Event) { e.FirstFrame = false }, "must carry startup_ms"},
		{"bitrate silently changes", 3, func(e *event.Event) { e.Bitrate = 4300 }, "without a bitrate_change"},
		{"bitrate change prev wrong", 2, func(e *event.Event) { e.PrevBitrate = 560 }, "prev_bitrate_kbps 560"},
		{"bitrate change off ladder", 2, func(e *event.Event) { e.Bitrate = 3001 }, "another ladder rung"},
		{"bitrate change to same", 2, func(e *event.Event) { e.Bitrate = 1750 }, "another ladder rung"},
		{"stall_ms wrong", 6, func(e *event.Event) { e.StallMS = 1000 }, "stall_ms 1000"},
		{"stop ended early", 13, func(e *event.Event) { e.StopReason = event.StopEnded }, "ended at position"},
		{"stop exit_before_start after start", 13, func(e *event.Event) { e.StopReason = event.StopExitBeforeStart }, "not possible in state playing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Checker{Tolerance: 5 * time.Millisecond, Duration: dur}
			evs := good("s")
			observeAll(t, c, evs[:tc.at])
			bad := *evs[tc.at]
			tc.mutate(&bad)
			err := c.Observe(&bad)
			var v *Violation
			if !errors.As(err, &v) {
				t.Fatalf("got %v, want a *Violation", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if v.SessionID != "s" || v.Seq != bad.Seq {
				t.Fatalf("violation names %q/%d", v.SessionID, v.Seq)
			}
			// The rejected event left the session unchanged: the original
			// event is still acceptable, and so is the rest of the session.
			if tc.at > 0 {
				observeAll(t, c, evs[tc.at:])
			}
		})
	}
}

func TestCheckerAfterStop(t *testing.T) {
	c := &Checker{}
	evs := good("s")
	observeAll(t, c, evs)
	last := *evs[len(evs)-1]
	last.Seq++
	last.Type = event.Heartbeat
	err := c.Observe(&last)
	var te *TransitionError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "nothing may follow stop") {
		t.Fatalf("got %v", err)
	}
	// A second start for the same session id is also rejected.
	again := *evs[0]
	if err := c.Observe(&again); err == nil {
		t.Fatal("restart accepted")
	}
}

func TestCheckerDefaultTolerance(t *testing.T) {
	c := &Checker{}
	evs := good("s")
	evs[3].Position += 0.4 // within 500 ms
	for _, e := range evs[:4] {
		if err := c.Observe(e); err != nil {
			t.Fatal(err)
		}
	}
	if InLadder(1000) || !InLadder(5800) || len(Ladder()) != 10 {
		t.Fatal("ladder helpers")
	}
}
