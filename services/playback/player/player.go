// Package player is the playback state machine shared by the simulator, the
// tests and the fan-out's aggregator: which event may follow which, and what
// a session's events must agree on (sequence numbers, timestamps, playhead
// positions, bitrates).
//
// States and legal transitions (anything else is illegal):
//
//	Idle      start                                   → Starting
//	Starting  play (first frame, startup_ms)          → Playing
//	          error non-fatal                         → Starting
//	          error fatal                             → Errored
//	          stop exit_before_start                  → Ended
//	Playing   heartbeat, seek, bitrate_change,
//	          error non-fatal                         → Playing
//	          pause                                   → Paused
//	          buffer_start                            → Stalled
//	          error fatal                             → Errored
//	          stop ended | quit                       → Ended
//	Paused    play (resume, no startup_ms)            → Playing
//	          heartbeat, seek                         → Paused
//	          stop quit                               → Ended
//	Stalled   buffer_end (stall_ms)                   → Playing
//	          heartbeat, bitrate_change,
//	          error non-fatal                         → Stalled
//	          error fatal                             → Errored
//	          stop quit                               → Ended
//	Errored   stop error                              → Ended
//	Ended     nothing
//
// Decisions beyond the bare list:
//   - Heartbeats are legal while playing, paused and stalled, so that a live
//     session can prove it is alive at a fixed interval whatever it is doing
//     (an aggregator can expire sessions silent for a few intervals). They are
//     not legal while starting: startup is short and ends in play, error or
//     exit_before_start.
//   - buffer_start/buffer_end exist only after the first frame and never while
//     paused: startup and seek buffering are not rebuffering (Mux; CMCD sta=r).
//   - bitrate_change is legal while stalled because ABR commonly downshifts
//     during a rebuffer; it is not legal while paused or before the first frame.
//   - A fatal error always comes as its own event and is followed by exactly
//     one stop with reason error.
package player

import (
	"fmt"

	"playpulse.dev/services/playback/event"
)

// State is a player state.
type State uint8

// Player states.
const (
	Idle     State = iota // no event yet
	Starting              // start seen; waiting for the first frame
	Playing
	Paused
	Stalled // rebuffering after the first frame
	Errored // a fatal error happened; only stop error may follow
	Ended   // stop seen; nothing may follow
	numStates
)

var stateNames = [numStates]string{"idle", "starting", "playing", "paused", "stalled", "errored", "ended"}

func (s State) String() string {
	if s >= numStates {
		return fmt.Sprintf("state(%d)", uint8(s))
	}
	return stateNames[s]
}

// Live reports whether a session in state s has started and not ended.
func (s State) Live() bool { return s > Idle && s < Ended }

// Watching reports whether s counts towards concurrent viewers in the Mux
// sense: starting, playing or rebuffering (paused viewers are excluded).
func (s State) Watching() bool { return s == Starting || s == Playing || s == Stalled }

// TransitionError says which event was illegal in which state.
type TransitionError struct {
	From   State
	Type   event.Type
	Reason string
}

func (e *TransitionError) Error() string {
	t := e.Type.String()
	if t == "" {
		t = fmt.Sprintf("type(%d)", uint8(e.Type))
	}
	return "player: illegal " + t + " in state " + e.From.String() + ": " + e.Reason
}

func illegal(s State, e *event.Event, reason string) (State, error) {
	return s, &TransitionError{From: s, Type: e.Type, Reason: reason}
}

// Step returns the state after event e in state s. On an illegal event it
// returns s unchanged and a *TransitionError naming the transition.
//
// Step looks only at the state and the event's own fields (type, first
// frame, fatal, stop reason); sequence numbers, timestamps, positions and
// bitrates need the session's history and are checked by Checker.
func Step(s State, e *event.Event) (State, error) {
	if s == Ended {
		return illegal(s, e, "nothing may follow stop")
	}
	switch e.Type {
	case event.Start:
		if s == Idle {
			return Starting, nil
		}
		return illegal(s, e, "start must be a session's first event")
	case event.Play:
		switch {
		case s == Starting && e.FirstFrame:
			return Playing, nil
		case s == Starting:
			return illegal(s, e, "the first play must carry startup_ms (first frame)")
		case s == Paused && !e.FirstFrame:
			return Playing, nil
		case s == Paused:
			return illegal(s, e, "a resume must not carry startup_ms")
		}
		return illegal(s, e, "play only starts playback or resumes from pause")
	case event.Pause:
		if s == Playing {
			return Paused, nil
		}
		return illegal(s, e, "pause only while playing")
	case event.Seek:
		if s == Playing || s == Paused {
			return s, nil
		}
		return illegal(s, e, "seek only while playing or paused")
	case event.BufferStart:
		if s == Playing {
			return Stalled, nil
		}
		return illegal(s, e, "a stall starts only while playing, after the first frame")
	case event.BufferEnd:
		if s == Stalled {
			return Playing, nil
		}
		return illegal(s, e, "buffer_end only ends a stall")
	case event.BitrateChange:
		if s == Playing || s == Stalled {
			return s, nil
		}
		return illegal(s, e, "bitrate changes only while playing or stalled")
	case event.Heartbeat:
		if s == Playing || s == Paused || s == Stalled {
			return s, nil
		}
		return illegal(s, e, "heartbeats only while playing, paused or stalled")
	case event.Error:
		switch s {
		case Starting, Playing, Stalled:
			if e.Fatal {
				return Errored, nil
			}
			return s, nil
		case Errored:
			return illegal(s, e, "only stop error may follow a fatal error")
		}
		return illegal(s, e, "errors only while starting, playing or stalled")
	case event.Stop:
		if s == Idle || s == Ended {
			return illegal(s, e, "stop needs a live session")
		}
		ok := false
		switch e.StopReason {
		case event.StopExitBeforeStart:
			ok = s == Starting
		case event.StopError:
			ok = s == Errored
		case event.StopEnded:
			ok = s == Playing
		case event.StopQuit:
			ok = s == Playing || s == Paused || s == Stalled
		default:
			return illegal(s, e, fmt.Sprintf("unknown stop_reason %q", e.StopReason))
		}
		if ok {
			return Ended, nil
		}
		return illegal(s, e, "stop_reason "+e.StopReason+" is not possible in state "+s.String())
	}
	return illegal(s, e, "unknown event type")
}
