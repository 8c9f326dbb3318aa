// Package mapping turns one viewing session's CMCD v2 reports, applied in
// sn order, into Playpulse contract events (docs/collector.md has the
// table). It is pure: no clock, no I/O; time is the reports' own ts.
//
// Every sequence it emits is one the player state machine
// (services/playback/player) accepts, so the fan-out reads CMCD sessions
// exactly like simulated ones: where CMCD says something the contract has
// no transition for (a seek during a stall, a fatal error while paused), the
// mapping emits the closing event first (buffer_end, a resume), at the same
// instant, and says so in the docs.
//
// Event ids and sequence numbers are derived from (sid, sn, index of the
// event within the report): seq = sn×16 + index + 1, event_id = sid:seq.
// Replaying the same reports gives byte-identical events, which is what
// lets a new owner of a partition rebuild state without duplicating.
package mapping

import (
	"strconv"
	"time"

	"playpulse.dev/services/collector/internal/cmcd"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/player"
)

// Anonymous is the user_id of sessions whose reports carry no user id key.
const Anonymous = "anonymous"

// UnknownTitle is the movie_id of sessions whose reports carry no cid.
const UnknownTitle = "unknown"

// UnknownError is the error_code of an error report without ec.
const UnknownError = "unknown"

// Slots per report in the sequence space: seq = sn×Slots + index + 1.
// Indices below timeoutIndex are for a report's own events (at most 5 are
// ever needed); the last two are for what an inactivity timeout
// synthesizes after the session's last report.
const (
	Slots        = 16
	timeoutIndex = Slots - 2
)

// Context is what the collector's edge derived for a report: the stream from
// the URL path, the device class from the User-Agent, the country from the
// trusted proxy's header.
type Context struct {
	Stream  string
	Device  string
	Country string
}

// Input is one report with its edge context.
type Input struct {
	Report cmcd.Report
	Ctx    Context
}

// Outcome says what Apply did with a report.
type Outcome uint8

// Outcomes.
const (
	Applied        Outcome = iota // mapped (possibly to no event: d, w, a repeated p)
	AfterStop                     // the session had stopped: counted and ignored
	NotRepresented                // nothing in the contract for it in this state (an error while paused)
)

// Session is one session's mapping state. The zero value is not usable:
// start with New.
type Session struct {
	id                           string
	stream, device, country      string
	user, movie, cdn             string
	state                        player.State
	firstFrame, staSeen, seeking bool
	lastSta                      byte
	startTS, startMark, stallTS  int64 // ms
	msd                          int64 // -1 until known
	bitrate, pendingBR           int
	pos                          float64
	lastTS                       int64 // ts of the last emitted event (events never go back in time)
	lastReportTS, lastSN         int64
	fatalPending                 bool
	fatalTS                      int64
	fatalCode                    string
}

// New returns the state of a session not seen yet.
func New(sid string) *Session {
	return &Session{id: sid, msd: -1, lastSN: -1}
}

// State is the session's contract state.
func (s *Session) State() player.State { return s.state }

// Stopped reports whether the session has ended (a stop was emitted).
func (s *Session) Stopped() bool { return s.state == player.Ended }

// emitter builds one report's events.
type emitter struct {
	s   *Session
	dst []event.Event
	sn  int64
	idx int
}

// extra holds the type-specific fields of an event.
type extra struct {
	firstFrame  bool
	startupMS   int
	stallMS     int
	prevBitrate int
	from        float64
	errorCode   string
	fatal       bool
	stopReason  string
}

// add appends an event of type t at ts (never before the previous event)
// and steps the session's contract state.
func (em *emitter) add(t event.Type, ts int64, x extra) {
	s := em.s
	if em.idx >= Slots {
		// Cannot happen with the transitions below (at most 5 per
		// report); dropping is safer than colliding with another seq.
		return
	}
	e := event.Event{
		V: event.Version, SessionID: s.id, Stream: s.stream, UserID: s.user, MovieID: s.movie, Type: t,
		Position: s.pos, Bitrate: s.bitrate, Device: s.device, Country: s.country, CDN: s.cdn, Source: event.SourceCMCD,
		FirstFrame: x.firstFrame, StartupMS: x.startupMS, StallMS: x.stallMS, PrevBitrate: x.prevBitrate,
		From: x.from, ErrorCode: x.errorCode, Fatal: x.fatal, StopReason: x.stopReason,
	}
	next, err := player.Step(s.state, &e)
	if err != nil {
		// A bug in the transitions below, never the input's fault: keep
		// the state machine's verdict rather than emit an illegal event.
		return
	}
	ts = max(ts, s.lastTS)
	s.lastTS = ts
	e.Seq = uint64(em.sn)*Slots + uint64(em.idx) + 1
	e.EventID = s.id + ":" + strconv.FormatUint(e.Seq, 10)
	e.TS = time.UnixMilli(ts).UTC()
	em.idx++
	s.state = next
	em.dst = append(em.dst, e)
}

// Apply maps the next report of the session (in sn order) and appends its
// events to dst.
func (s *Session) Apply(in *Input, dst []event.Event) ([]event.Event, Outcome) {
	r := &in.Report
	if s.state == player.Ended {
		return dst, AfterStop
	}
	em := emitter{s: s, dst: dst, sn: r.SN}
	s.lastSN = r.SN
	s.lastReportTS = max(s.lastReportTS, r.TS)
	if r.CDN != "" {
		s.cdn = r.CDN
	}
	if s.state == player.Idle {
		s.stream, s.device, s.country = in.Ctx.Stream, in.Ctx.Device, in.Ctx.Country
		s.user, s.movie = r.UserID, r.CID
		if s.user == "" {
			s.user = Anonymous
		}
		if s.movie == "" {
			s.movie = UnknownTitle
		}
		s.startTS = r.TS
		em.add(event.Start, r.TS, extra{})
	}
	if r.MSD >= 0 && s.msd < 0 {
		s.msd = r.MSD
	}
	prevPos := s.pos
	if r.PT >= 0 {
		s.pos = float64(r.PT) / 1000
	}
	isError := r.Event == "e"
	// sta is on most reports (hls.js repeats it on t and bc); a report
	// changes the state when it is a play-state report or when its sta
	// differs from the last one seen (the ps report was lost).
	change := r.State != 0 && (r.Event == "ps" || r.State != s.lastSta)
	if r.State != 0 {
		s.staSeen = true
		s.lastSta = r.State
	}

	if s.fatalPending {
		// hls.js sends sta=f on a ps report, then the error report with
		// ec: the error event waits for it to carry the code.
		code, ts := s.fatalCode, s.fatalTS
		if isError {
			if len(r.EC) > 0 {
				code = r.EC[0]
			}
			ts = r.TS
		}
		s.fatal(&em, code, ts)
		return em.dst, Applied
	}

	if r.BR > 0 && (s.state == player.Starting || s.state == player.Paused) {
		// The first frame, or the resume, carries this report's bitrate.
		s.pendingBR = int(r.BR)
	}
	outcome := Applied
	if change {
		s.transition(&em, r, prevPos)
	}
	if s.state == player.Ended || s.fatalPending {
		return em.dst, outcome
	}
	if s.state == player.Starting && !s.firstFrame && !s.staSeen && s.msd >= 0 {
		// Shaka's release build never sends sta: msd is the only sign of
		// the first frame, which came msd after the session's start.
		s.first(&em, min(s.startTS+s.msd, r.TS), s.msd)
	}
	if r.BR >= 0 {
		s.bitrateChange(&em, int(r.BR), r.TS)
	}
	switch {
	case r.Event == "t":
		if s.firstFrame {
			em.add(event.Heartbeat, r.TS, extra{})
		}
	case isError && r.State != cmcd.StateFatal:
		if s.state == player.Paused {
			outcome = NotRepresented
			break
		}
		em.add(event.Error, r.TS, extra{errorCode: errorCode(r.EC)})
	}
	return em.dst, outcome
}

// transition applies a play-state change.
func (s *Session) transition(em *emitter, r *cmcd.Report, prevPos float64) {
	ts := r.TS
	if s.state == player.Starting {
		switch r.State {
		case cmcd.StateStarting, cmcd.StateRebuffering, cmcd.StateSeeking:
			// Startup begins when the player is told to play (hls.js: s)
			// or, for players that skip s (Shaka), at its first play state.
			if s.startMark == 0 {
				s.startMark = ts
			}
		case cmcd.StatePlaying:
			startup := ts - s.startTS
			switch {
			case s.msd >= 0:
				startup = s.msd
			case s.startMark > 0:
				startup = ts - s.startMark
			}
			s.first(em, ts, startup)
		case cmcd.StateFatal:
			s.fatalOrPending(em, r)
		case cmcd.StateQuit, cmcd.StateEnded:
			em.add(event.Stop, ts, extra{stopReason: event.StopExitBeforeStart})
		}
		return
	}
	switch r.State {
	case cmcd.StatePlaying:
		s.seeking = false
		switch s.state {
		case player.Stalled:
			s.endStall(em, r)
		case player.Paused:
			em.add(event.Play, ts, extra{})
			if s.pendingBR > 0 && s.pendingBR != s.bitrate {
				s.bitrateChange(em, s.pendingBR, ts)
			}
		}
	case cmcd.StateRebuffering:
		// Buffering after a seek is not rebuffering (Mux; CMCD sends r
		// only outside startup and seeking, but hls.js does not).
		if s.state == player.Playing && !s.seeking {
			s.stallTS = ts
			em.add(event.BufferStart, ts, extra{})
		}
	case cmcd.StatePaused:
		s.seeking = false
		if s.state == player.Stalled {
			s.endStall(em, r)
		}
		if s.state == player.Playing {
			em.add(event.Pause, ts, extra{})
		}
	case cmcd.StateSeeking:
		if s.state == player.Stalled {
			s.endStall(em, r)
		}
		em.add(event.Seek, ts, extra{from: prevPos})
		s.seeking = true
	case cmcd.StateEnded:
		if s.state == player.Stalled {
			s.endStall(em, r)
		}
		// The contract ends a session "ended" only from playing: a
		// player that reports the end while paused has quit.
		reason := event.StopEnded
		if s.state == player.Paused {
			reason = event.StopQuit
		}
		em.add(event.Stop, ts, extra{stopReason: reason})
	case cmcd.StateQuit:
		em.add(event.Stop, ts, extra{stopReason: event.StopQuit})
	case cmcd.StateFatal:
		s.fatalOrPending(em, r)
	}
}

// first emits the first frame.
func (s *Session) first(em *emitter, ts, startup int64) {
	s.bitrate = s.pendingBR
	s.firstFrame = true
	em.add(event.Play, ts, extra{firstFrame: true, startupMS: int(max(startup, 0))})
}

func (s *Session) endStall(em *emitter, r *cmcd.Report) {
	stall := r.TS - s.stallTS
	if r.BSD >= 0 && r.State == cmcd.StatePlaying {
		stall = r.BSD
	}
	em.add(event.BufferEnd, r.TS, extra{stallMS: int(max(stall, 0))})
}

// bitrateChange applies a rendition: remembered before the first frame and
// while paused (the contract has no bitrate change there), emitted while
// playing or stalled.
func (s *Session) bitrateChange(em *emitter, kbps int, ts int64) {
	switch s.state {
	case player.Playing, player.Stalled:
		if kbps != s.bitrate && kbps > 0 {
			prev := s.bitrate
			s.bitrate = kbps
			em.add(event.BitrateChange, ts, extra{prevBitrate: prev})
		}
	default:
		if kbps > 0 {
			s.pendingBR = kbps
		}
	}
}

// fatalOrPending handles sta=f: on an error report it is the error; on a
// play-state report the error report with its ec usually follows, so the
// error waits for the next report (or the inactivity timeout).
func (s *Session) fatalOrPending(em *emitter, r *cmcd.Report) {
	if r.Event == "e" {
		s.fatal(em, errorCode(r.EC), r.TS)
		return
	}
	s.fatalPending = true
	s.fatalTS, s.fatalCode = r.TS, errorCode(r.EC)
}

// fatal emits the fatal error and the stop it implies.
func (s *Session) fatal(em *emitter, code string, ts int64) {
	s.fatalPending = false
	if s.state == player.Paused {
		// The contract has errors only while starting, playing or
		// stalled: a resume at the same instant adds no play time.
		em.add(event.Play, ts, extra{})
	}
	em.add(event.Error, ts, extra{errorCode: code, fatal: true})
	em.add(event.Stop, ts, extra{stopReason: event.StopError})
}

func errorCode(ec []string) string {
	if len(ec) > 0 {
		return ec[0]
	}
	return UnknownError
}

// Timeout ends a session that went silent (a closed tab sends nothing):
// stop quit, or exit_before_start before the first frame, or the fatal
// error still waiting for its error report. The events take the time of
// the session's last report (nothing is known after it) and the last two
// sequence slots of its last report.
func (s *Session) Timeout(dst []event.Event) []event.Event {
	if s.state == player.Idle || s.state == player.Ended {
		return dst
	}
	em := emitter{s: s, dst: dst, sn: max(s.lastSN, 0), idx: timeoutIndex}
	if s.fatalPending {
		s.fatal(&em, s.fatalCode, s.fatalTS)
		return em.dst
	}
	reason := event.StopQuit
	if s.state == player.Starting {
		reason = event.StopExitBeforeStart
	}
	em.add(event.Stop, s.lastReportTS, extra{stopReason: reason})
	return em.dst
}
