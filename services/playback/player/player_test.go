package player

import (
	"errors"
	"strings"
	"testing"

	"playpulse.dev/services/playback/event"
)

// ev builds an event of the given type; variants are chosen by name.
func ev(name string) *event.Event {
	switch name {
	case "start":
		return &event.Event{Type: event.Start}
	case "play_first":
		return &event.Event{Type: event.Play, FirstFrame: true, StartupMS: 1500}
	case "play_resume":
		return &event.Event{Type: event.Play}
	case "pause":
		return &event.Event{Type: event.Pause}
	case "seek":
		return &event.Event{Type: event.Seek}
	case "buffer_start":
		return &event.Event{Type: event.BufferStart}
	case "buffer_end":
		return &event.Event{Type: event.BufferEnd, StallMS: 2000}
	case "bitrate_change":
		return &event.Event{Type: event.BitrateChange}
	case "heartbeat":
		return &event.Event{Type: event.Heartbeat}
	case "error_nonfatal":
		return &event.Event{Type: event.Error, ErrorCode: "X"}
	case "error_fatal":
		return &event.Event{Type: event.Error, ErrorCode: "X", Fatal: true}
	case "stop_ended":
		return &event.Event{Type: event.Stop, StopReason: event.StopEnded}
	case "stop_quit":
		return &event.Event{Type: event.Stop, StopReason: event.StopQuit}
	case "stop_error":
		return &event.Event{Type: event.Stop, StopReason: event.StopError}
	case "stop_ebvs":
		return &event.Event{Type: event.Stop, StopReason: event.StopExitBeforeStart}
	case "stop_bogus":
		return &event.Event{Type: event.Stop, StopReason: "bogus"}
	case "unknown":
		return &event.Event{Type: event.TypeUnknown}
	}
	panic("unknown variant " + name)
}

var variants = []string{
	"start", "play_first", "play_resume", "pause", "seek", "buffer_start", "buffer_end",
	"bitrate_change", "heartbeat", "error_nonfatal", "error_fatal",
	"stop_ended", "stop_quit", "stop_error", "stop_ebvs", "stop_bogus", "unknown",
}

// legal is the complete transition table; every (state, variant) pair not
// listed must be rejected.
var legal = map[State]map[string]State{
	Idle: {"start": Starting},
	Starting: {
		"play_first":     Playing,
		"error_nonfatal": Starting,
		"error_fatal":    Errored,
		"stop_ebvs":      Ended,
	},
	Playing: {
		"heartbeat":      Playing,
		"pause":          Paused,
		"seek":           Playing,
		"buffer_start":   Stalled,
		"bitrate_change": Playing,
		"error_nonfatal": Playing,
		"error_fatal":    Errored,
		"stop_ended":     Ended,
		"stop_quit":      Ended,
	},
	Paused: {
		"play_resume": Playing,
		"seek":        Paused,
		"heartbeat":   Paused,
		"stop_quit":   Ended,
	},
	Stalled: {
		"buffer_end":     Playing,
		"heartbeat":      Stalled,
		"bitrate_change": Stalled,
		"error_nonfatal": Stalled,
		"error_fatal":    Errored,
		"stop_quit":      Ended,
	},
	Errored: {"stop_error": Ended},
	Ended:   {},
}

func TestStepLegal(t *testing.T) {
	n := 0
	for from, row := range legal {
		for name, want := range row {
			t.Run(from.String()+"/"+name, func(t *testing.T) {
				got, err := Step(from, ev(name))
				if err != nil || got != want {
					t.Fatalf("Step(%s, %s) = %s, %v; want %s, nil", from, name, got, err, want)
				}
			})
			n++
		}
	}
	if n != 25 {
		t.Fatalf("%d legal transitions in the table, want 25", n)
	}
}

// TestStepIllegal tries every (state, event variant) pair that is not in the
// legal table: all of them must be rejected with a *TransitionError that
// names the state and the event, leaving the state unchanged.
func TestStepIllegal(t *testing.T) {
	rejected := 0
	for s := Idle; s < numStates; s++ {
		for _, name := range variants {
			if _, ok := legal[s][name]; ok {
				continue
			}
			e := ev(name)
			got, err := Step(s, e)
			var te *TransitionError
			if !errors.As(err, &te) {
				t.Errorf("Step(%s, %s) = %s, %v; want a *TransitionError", s, name, got, err)
				continue
			}
			if got != s || te.From != s || te.Type != e.Type {
				t.Errorf("Step(%s, %s): state %s, error %+v", s, name, got, te)
			}
			if !strings.Contains(err.Error(), s.String()) {
				t.Errorf("Step(%s, %s): error %q does not name the state", s, name, err)
			}
			rejected++
		}
	}
	if rejected < 90 {
		t.Fatalf("only %d illegal pairs tried", rejected)
	}
}

func TestStepMessages(t *testing.T) {
	for _, tc := range []struct {
		s    State
		name string
		want string
	}{
		{Idle, "heartbeat", "illegal heartbeat in state idle"},
		{Playing, "start", "start must be a session's first event"},
		{Starting, "play_resume", "must carry startup_ms"},
		{Paused, "play_first", "must not carry startup_ms"},
		{Paused, "buffer_start", "only while playing, after the first frame"},
		{Starting, "buffer_start", "after the first frame"},
		{Errored, "heartbeat", "state errored"},
		{Errored, "stop_quit", "stop_reason quit is not possible in state errored"},
		{Starting, "stop_quit", "not possible in state starting"},
		{Playing, "stop_ebvs", "exit_before_start is not possible"},
		{Ended, "heartbeat", "nothing may follow stop"},
		{Playing, "stop_bogus", `unknown stop_reason "bogus"`},
		{Playing, "unknown", "unknown event type"},
	} {
		_, err := Step(tc.s, ev(tc.name))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Step(%s, %s) error %v, want it to contain %q", tc.s, tc.name, err, tc.want)
		}
	}
}

func TestStateHelpers(t *testing.T) {
	for s, want := range map[State][2]bool{
		Idle: {false, false}, Starting: {true, true}, Playing: {true, true}, Paused: {true, false},
		Stalled: {true, true}, Errored: {true, false}, Ended: {false, false},
	} {
		if s.Live() != want[0] || s.Watching() != want[1] {
			t.Errorf("%s: Live %v Watching %v, want %v", s, s.Live(), s.Watching(), want)
		}
	}
	if State(42).String() != "state(42)" {
		t.Error(State(42).String())
	}
}
