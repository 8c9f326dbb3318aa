package player

import (
	"fmt"
	"math"
	"time"

	"playpulse.dev/services/playback/event"
)

// ladder is Netflix's classic fixed bitrate ladder, kbps (see
// /work/shared/reference/playback-qoe.md).
var ladder = [...]int{235, 375, 560, 750, 1050, 1750, 2350, 3000, 4300, 5800}

// Ladder returns the standard bitrate ladder in kbps, lowest first.
func Ladder() []int { return append([]int(nil), ladder[:]...) }

// InLadder reports whether kbps is a rung of the standard ladder.
func InLadder(kbps int) bool {
	for _, r := range ladder {
		if r == kbps {
			return true
		}
	}
	return false
}

// DefaultTolerance is the Checker's tolerance when Checker.Tolerance is 0.
const DefaultTolerance = 500 * time.Millisecond

// Violation is an event that breaks a session's rules.
type Violation struct {
	SessionID string
	Seq       uint64
	Type      event.Type
	Reason    string
	Err       error // the *TransitionError, for illegal transitions
}

func (v *Violation) Error() string {
	return fmt.Sprintf("player: session %q seq %d (%s): %s", v.SessionID, v.Seq, v.Type, v.Reason)
}

func (v *Violation) Unwrap() error { return v.Err }

// Checker validates whole event streams, many sessions interleaved. For each
// session it checks:
//   - the first event is start with seq 1, then seq grows by exactly one;
//   - ts never decreases;
//   - every transition is legal (Step);
//   - stream, user_id, movie_id and device never change;
//   - the playhead: it stays put while starting, paused, stalled or errored;
//     while playing it advances with the wall clock (position = previous
//     position + elapsed ts, within Tolerance), stopping at the title's end;
//     a seek's from_seconds is that expected position; it never exceeds the
//     title duration when Duration knows it;
//   - startup_ms equals the time from start to the first frame and stall_ms
//     the time from buffer_start to buffer_end, within Tolerance;
//   - bitrate_kbps is 0 before the first frame, a ladder rung from it on, and
//     changes only with bitrate_change, whose prev_bitrate_kbps is the
//     previous rung and differs from the new one.
//
// A rejected event does not change the session, so a consumer may skip it
// and go on. Ended sessions are kept as small tombstones so that an event
// after stop is caught; Forget drops them. The zero Checker is ready to use.
// A Checker is not safe for concurrent use.
type Checker struct {
	// Tolerance for positions, startup_ms and stall_ms; 0 means
	// DefaultTolerance. Use a few milliseconds for simulator output, which is
	// exact up to the wire's millisecond rounding.
	Tolerance time.Duration
	// Duration returns a title's duration, if known.
	Duration func(movieID string) (time.Duration, bool)

	sessions map[string]*tracked
	live     int
}

type tracked struct {
	state      State
	seq        uint64
	ts         int64   // unix ns of the last event
	pos        float64 // seconds, as reported by the last event
	bitrate    int
	startTS    int64
	stallTS    int64
	stream     string
	user       string
	movie      string
	device     string
	dur        float64 // seconds; 0 when unknown
	firstFrame bool
}

// Len returns the number of sessions tracked, ended ones included.
func (c *Checker) Len() int { return len(c.sessions) }

// Live returns the number of sessions started and not yet ended.
func (c *Checker) Live() int { return c.live }

// State returns a session's current state.
func (c *Checker) State(sessionID string) (State, bool) {
	t, ok := c.sessions[sessionID]
	if !ok {
		return Idle, false
	}
	return t.state, true
}

// Forget drops everything known about a session.
func (c *Checker) Forget(sessionID string) {
	if t, ok := c.sessions[sessionID]; ok {
		if t.state.Live() {
			c.live--
		}
		delete(c.sessions, sessionID)
	}
}

func (c *Checker) tol() float64 {
	if c.Tolerance > 0 {
		return c.Tolerance.Seconds()
	}
	return DefaultTolerance.Seconds()
}

// Observe checks e against its session's history and, if it is valid,
// records it. The error is a *Violation.
func (c *Checker) Observe(e *event.Event) error {
	fail := func(format string, args ...any) error {
		return &Violation{SessionID: e.SessionID, Seq: e.Seq, Type: e.Type, Reason: fmt.Sprintf(format, args...)}
	}
	tol := c.tol()
	ts := e.TS.UnixNano()
	if e.Position < 0 || math.IsNaN(e.Position) || math.IsInf(e.Position, 0) {
		return fail("position %v is not a non-negative number", e.Position)
	}

	t := c.sessions[e.SessionID]
	if t == nil {
		if e.Type != event.Start || e.Seq != 1 {
			return fail("a session's first event must be start with seq 1")
		}
		if _, err := Step(Idle, e); err != nil {
			return &Violation{SessionID: e.SessionID, Seq: e.Seq, Type: e.Type, Reason: err.Error(), Err: err}
		}
		if e.Bitrate != 0 {
			return fail("bitrate %d before the first frame, want 0", e.Bitrate)
		}
		nt := &tracked{
			state: Starting, seq: 1, ts: ts, pos: e.Position, startTS: ts,
			stream: e.Stream, user: e.UserID, movie: e.MovieID, device: e.Device,
		}
		if c.Duration != nil {
			if d, ok := c.Duration(e.MovieID); ok {
				nt.dur = d.Seconds()
			}
		}
		if nt.dur > 0 && e.Position > nt.dur+tol {
			return fail("position %.3f beyond the title's duration %.3f", e.Position, nt.dur)
		}
		if c.sessions == nil {
			c.sessions = make(map[string]*tracked)
		}
		c.sessions[e.SessionID] = nt
		c.live++
		return nil
	}

	if e.Seq != t.seq+1 {
		return fail("seq %d after %d, want %d", e.Seq, t.seq, t.seq+1)
	}
	if ts < t.ts {
		return fail("ts %s before the previous event's %s", e.TS.UTC().Format(time.RFC3339Nano), time.Unix(0, t.ts).UTC().Format(time.RFC3339Nano))
	}
	next, err := Step(t.state, e)
	if err != nil {
		return &Violation{SessionID: e.SessionID, Seq: e.Seq, Type: e.Type, Reason: err.Error(), Err: err}
	}
	if e.Stream != t.stream || e.UserID != t.user || e.MovieID != t.movie || e.Device != t.device {
		return fail("stream, user_id, movie_id or device changed within the session")
	}
	if t.dur > 0 && e.Position > t.dur+tol {
		return fail("position %.3f beyond the title's duration %.3f", e.Position, t.dur)
	}
	elapsed := float64(ts-t.ts) / 1e9

	// Playhead.
	expected := t.pos
	if t.state == Playing {
		expected += elapsed
		if t.dur > 0 && expected > t.dur {
			expected = t.dur
		}
	}
	switch {
	case e.Type == event.Seek:
		if math.Abs(e.From-expected) > tol {
			return fail("seek from_seconds %.3f, want %.3f (previous position + elapsed play)", e.From, expected)
		}
	case e.Type == event.Stop && e.StopReason == event.StopEnded:
		if t.dur > 0 {
			if math.Abs(e.Position-t.dur) > tol || expected < t.dur-tol {
				return fail("ended at position %.3f, but the title lasts %.3f and playback reached %.3f", e.Position, t.dur, expected)
			}
		} else if e.Position > expected+tol || e.Position < t.pos-tol {
			return fail("ended at position %.3f, want between %.3f and %.3f", e.Position, t.pos, expected)
		}
	default:
		if math.Abs(e.Position-expected) > tol {
			return fail("position %.3f, want %.3f (%s for %.3fs since the previous event)", e.Position, expected, t.state, elapsed)
		}
	}

	// Bitrate.
	switch {
	case e.Type == event.Play && e.FirstFrame:
		if !InLadder(e.Bitrate) {
			return fail("first-frame bitrate %d is not on the ladder", e.Bitrate)
		}
		startup := float64(ts-t.startTS) / 1e9
		if math.Abs(float64(e.StartupMS)/1000-startup) > tol {
			return fail("startup_ms %d, but the first frame came %.3fs after start", e.StartupMS, startup)
		}
	case !t.firstFrame:
		if e.Bitrate != 0 {
			return fail("bitrate %d before the first frame, want 0", e.Bitrate)
		}
	case e.Type == event.BitrateChange:
		if e.PrevBitrate != t.bitrate {
			return fail("prev_bitrate_kbps %d, but the bitrate was %d", e.PrevBitrate, t.bitrate)
		}
		if !InLadder(e.Bitrate) || e.Bitrate == e.PrevBitrate {
			return fail("bitrate_change to %d: must be another ladder rung than %d", e.Bitrate, e.PrevBitrate)
		}
	default:
		if e.Bitrate != t.bitrate {
			return fail("bitrate %d without a bitrate_change (was %d)", e.Bitrate, t.bitrate)
		}
	}
	if e.Type == event.BufferEnd {
		stall := float64(ts-t.stallTS) / 1e9
		if math.Abs(float64(e.StallMS)/1000-stall) > tol {
			return fail("stall_ms %d, but the stall lasted %.3fs", e.StallMS, stall)
		}
	}

	// Accept.
	switch e.Type {
	case event.Play:
		if e.FirstFrame {
			t.firstFrame = true
		}
	case event.BufferStart:
		t.stallTS = ts
	}
	t.state = next
	t.seq = e.Seq
	t.ts = ts
	t.pos = e.Position
	t.bitrate = e.Bitrate
	if next == Ended {
		c.live--
	}
	return nil
}
