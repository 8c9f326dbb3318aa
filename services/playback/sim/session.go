package sim

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
	"unsafe"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/player"
)

// kind is a session's next planned event.
type kind uint8

const (
	kNone kind = iota
	kFirstFrame
	kStartError
	kExitBeforeStart
	kStopError
	kHeartbeat
	kPause
	kResume
	kPauseQuit
	kSeek
	kStall
	kStallEnd
	kStallQuit
	kStallError
	kBitrate
	kErrorNonFatal
	kErrorFatal
	kEnd
)

const sec = int64(time.Second)

// session is one viewing session. Times and positions are int64 nanoseconds
// (times are Unix nanoseconds of the Next calls), so positions follow the
// stamps exactly; the wire rounds both to milliseconds.
type session struct {
	id, user string
	serial   uint64 // id is gen.prefix + serial in base 36
	title    int32
	dev      uint8
	net      uint8
	country  uint8
	cdn      uint8
	st       player.State
	next     kind // = heartbeat or evNext, whichever is due first
	evNext   kind // the next event other than a heartbeat
	rung     int8 // current ladder rung; -1 before the first frame
	capRung  int8 // rung the network sustains
	startRng int8 // rung of the first frame

	downPending bool
	pauseQuit   bool
	stallQuit   bool
	stallErr    bool

	seq        uint64
	due        int64 // min(hbDue, evDue) while playing, paused or stalled
	evDue      int64
	hbDue      int64
	last       int64 // time of the last event
	pos        int64 // playhead at last
	dur        int64
	startTS    int64
	budget     int64 // play time left before the viewer leaves
	played     int64
	stallTS    int64
	stallErrAt int64 // when the stall's non-fatal error is logged
	until      int64 // planned end of the current pause or stall, or of startup

	stallRate float64 // stalls per second of play, before incidents
	epoch     uint32  // incident epoch the current plan was drawn in
}

// gen creates sessions and their events. Sim wraps it with the scheduler;
// the model's pilot uses it alone.
type gen struct {
	m      *model
	rng    *rand.Rand
	hb     int64
	stream string
	prefix string
	serial uint64
	nowT   time.Time
	buf    []byte
	ids    []byte // append-only arena for event ids
	pilot  bool   // no ids, no strings
	fx     effects
}

func (g *gen) lognormal(median, sigma float64) float64 {
	return median * math.Exp(sigma*g.rng.NormFloat64())
}

func (g *gen) uniform(lo, hi float64) float64 { return lo + g.rng.Float64()*(hi-lo) }

func secs(s float64) int64 { return int64(s * 1e9) }

// expAfter returns t plus an exponential wait with the given rate (1/s).
func (g *gen) expAfter(t int64, rate float64) int64 {
	if rate <= 0 {
		return math.MaxInt64
	}
	w := g.rng.ExpFloat64() / rate
	if w > 1e9 { // ~30 years: never
		return math.MaxInt64
	}
	return t + secs(w)
}

// begin initialises ss as a new session started at t and fills e with its
// start event. The session's outcome up to the first frame is decided here.
func (g *gen) begin(ss *session, t int64, e *event.Event) {
	m := g.m
	rng := g.rng
	dev := pick(m.attemptCDF, rng.Float64())
	dm := &deviceModels[dev]
	net := pick(m.netCDF[dev], rng.Float64())
	title := pick(m.zipfCDF, rng.Float64())
	*ss = session{
		title:   int32(title),
		dev:     uint8(dev),
		net:     uint8(net),
		country: uint8(pick(m.countryCDF, rng.Float64())),
		cdn:     uint8(pick(m.cdnCDF, rng.Float64())),
		st:      player.Starting,
		rung:    -1,
		dur:     m.titleDur[title],
		startTS: t,
		last:    t,
	}
	if rng.Float64() < resumeShare {
		ss.pos = int64(float64(ss.dur)*g.uniform(resumeFrom, resumeTo)) / 1e6 * 1e6
	}
	c := netCapacity[net]
	ss.capRung = int8(min(c[0]+rng.IntN(c[1]-c[0]+1), dm.maxRung))
	ss.startRng = max(0, ss.capRung-2-int8(rng.IntN(2)))

	switch {
	case rng.Float64() < m.cfg.StartFailureRate*factor(g.fx.errors, uint8(dev)):
		ss.next, ss.due = kStartError, t+secs(g.uniform(startFailMin, startFailTo))
	default:
		startup := g.lognormal(dm.startupMedian, dm.startupSigma) * factor(g.fx.startup, ss.cdn)
		abandon := abandonAfter + rng.ExpFloat64()/m.ebvsKappa
		if abandon < startup {
			ss.next, ss.due = kExitBeforeStart, t+secs(abandon)
		} else {
			ss.next, ss.due = kFirstFrame, t+max(secs(startup), int64(time.Millisecond))
		}
	}

	if !g.pilot {
		g.serial++
		ss.serial = g.serial
		g.buf = append(g.buf[:0], g.prefix...)
		g.buf = strconv.AppendUint(g.buf, g.serial, 36)
		ss.id = string(g.buf)
		g.buf = append(g.buf[:0], 'u')
		g.buf = strconv.AppendInt(g.buf, int64(1+rng.IntN(m.cfg.Users)), 10)
		ss.user = string(g.buf)
	}
	g.fill(ss, t, event.Start, e)
}

// idString returns b as a string without one allocation per event: event
// ids are copied into a 16 KiB append-only arena and the string points
// there. This is safe because arena bytes are never written again once a
// string refers to them (a full arena is dropped, not reused); the garbage
// collector keeps an arena alive while any of its strings is. A consumer
// that keeps one event id keeps its arena (16 KiB), which is fine for ids
// that are encoded and dropped.
func (g *gen) idString(b []byte) string {
	if cap(g.ids)-len(g.ids) < len(b) {
		g.ids = make([]byte, 0, max(16<<10, len(b)))
	}
	off := len(g.ids)
	g.ids = append(g.ids, b...)
	return unsafe.String(&g.ids[off], len(b))
}

// fill stamps the next event of ss at t.
func (g *gen) fill(ss *session, t int64, typ event.Type, e *event.Event) {
	ss.seq++
	ss.last = t
	br := 0
	if ss.rung >= 0 {
		br = ladder[ss.rung]
	}
	if g.pilot {
		e.Type = typ
		return
	}
	// Rebuilt from the prefix (hot in cache) rather than copied from ss.id,
	// whose bytes live elsewhere in memory.
	g.buf = append(g.buf[:0], g.prefix...)
	g.buf = strconv.AppendUint(g.buf, ss.serial, 36)
	g.buf = append(g.buf, '-')
	g.buf = strconv.AppendUint(g.buf, ss.seq, 10)
	// Field by field: a composite literal would be built aside and copied.
	*e = event.Event{}
	e.V = event.Version
	e.EventID = g.idString(g.buf)
	e.SessionID = ss.id
	e.Seq = ss.seq
	e.Stream = g.stream
	e.UserID = ss.user
	e.MovieID = g.m.titleIDs[ss.title]
	e.Type = typ
	e.Position = float64(ss.pos/1e6) / 1000
	e.Bitrate = br
	e.Device = Devices[ss.dev]
	e.TS = g.nowT
	e.Network = netNames[ss.net]
	e.Country = countries[ss.country].name
	e.CDN = cdns[ss.cdn].name
	e.Source = event.SourceSim
}

func (g *gen) code(codes []string) string { return codes[g.rng.IntN(len(codes))] }

func (g *gen) stop(ss *session, t int64, reason string, e *event.Event) bool {
	ss.st = player.Ended
	g.fill(ss, t, event.Stop, e)
	e.StopReason = reason
	return true
}

func (g *gen) fatal(ss *session, t int64, codes []string, e *event.Event) {
	ss.st = player.Errored
	g.fill(ss, t, event.Error, e)
	e.ErrorCode = g.code(codes)
	e.Fatal = true
	ss.next, ss.due = kStopError, t+secs(g.uniform(stopAfterErrorMin, stopAfterErrorMax))
}

// emit fills e with the session's next event at time t and plans the one
// after; it reports whether the session ended. Normally t ≥ ss.due (the
// event is on time or late; state is computed at t, so positions follow the
// stamps). filler means nothing was due anywhere: a playing, paused or
// stalled session then sends an extra heartbeat and keeps its plan; a
// starting or errored one has its planned event pulled forward to t.
func (g *gen) emit(ss *session, t int64, e *event.Event, filler bool) bool {
	rng := g.rng
	switch ss.st {
	case player.Starting:
		switch ss.next {
		case kStartError:
			g.fatal(ss, t, startErrorCodes, e)
			return false
		case kExitBeforeStart:
			return g.stop(ss, t, event.StopExitBeforeStart, e)
		}
		ss.st = player.Playing
		ss.rung = min(ss.startRng, g.capRung(ss))
		ss.budget = secs(g.lognormal(g.m.watchMedian[ss.dev], watchSigma))
		z := stallSessionSigma
		ss.stallRate = g.m.stallBase * deviceModels[ss.dev].stall * math.Exp(z*rng.NormFloat64()-z*z/2)
		g.fill(ss, t, event.Play, e)
		e.FirstFrame = true
		e.StartupMS = int((t - ss.startTS) / 1e6)
	case player.Errored:
		return g.stop(ss, t, event.StopError, e)
	case player.Playing:
		el := t - ss.last
		ss.pos += el
		ss.budget -= el
		ss.played += el
		if ss.pos >= ss.dur {
			ss.pos = ss.dur
			return g.stop(ss, t, event.StopEnded, e)
		}
		if ss.budget <= 0 {
			if rng.Float64() < pauseBeforeQuitShare {
				ss.st = player.Paused
				ss.pauseQuit = true
				ss.until = t + secs(min(g.lognormal(pauseMedian, pauseSigma), pauseMax))
				g.fill(ss, t, event.Pause, e)
				break
			}
			return g.stop(ss, t, event.StopQuit, e)
		}
		if filler || ss.next == kHeartbeat {
			g.heartbeat(ss, t, e)
			if ss.epoch != g.fx.epoch {
				// An incident began or ended since the plan was drawn: its
				// clocks are memoryless, so draw them again at the new rates.
				g.plan(ss, t)
			}
			return false
		}
		switch ss.next {
		case kPause:
			ss.st = player.Paused
			ss.pauseQuit = false
			ss.until = t + secs(min(g.lognormal(pauseMedian, pauseSigma), pauseMax))
			g.fill(ss, t, event.Pause, e)
		case kSeek:
			from := ss.pos
			var to int64
			if rng.Float64() < seekForwardShare {
				to = from + secs(g.lognormal(seekFwdMedian, seekFwdSigma))
			} else {
				to = from - secs(g.lognormal(seekBackMedian, seekBackSigma))
			}
			to = min(max(to, 0), max(ss.dur-sec, 0)) / 1e6 * 1e6
			ss.pos = to
			g.fill(ss, t, event.Seek, e)
			e.From = float64(from/1e6) / 1000
		case kStall:
			ss.st = player.Stalled
			ss.stallTS = t
			d := min(g.lognormal(stallMedian, stallSigma), stallMax)
			p := g.lognormal(patienceMedian, patienceSigma)
			ss.stallQuit = d > p
			ss.until = t + secs(min(d, p))
			ss.stallErr = rng.Float64() < stallErrorShare
			if ss.stallErr {
				ss.stallErrAt = t + int64(rng.Float64()*float64(ss.until-t))
			}
			g.fill(ss, t, event.BufferStart, e)
		case kBitrate:
			prev := ss.rung
			switch {
			case ss.downPending:
				ss.rung = max(0, ss.rung-1-int8(rng.IntN(2)))
				ss.downPending = false
			case ss.rung < g.capRung(ss):
				ss.rung++
			default:
				ss.rung--
			}
			if ss.rung == prev || ss.rung < 0 {
				ss.rung = prev + 1
			}
			g.fill(ss, t, event.BitrateChange, e)
			e.PrevBitrate = ladder[prev]
		case kErrorNonFatal:
			g.fill(ss, t, event.Error, e)
			e.ErrorCode = g.code(nonFatalErrorCodes)
		case kErrorFatal:
			g.fatal(ss, t, fatalErrorCodes, e)
			return false
		default: // kEnd reached neither end nor budget: cannot happen
			g.heartbeat(ss, t, e)
			return false
		}
	case player.Paused:
		switch {
		case filler || ss.next == kHeartbeat:
			g.heartbeat(ss, t, e)
			return false
		case ss.pauseQuit:
			return g.stop(ss, t, event.StopQuit, e)
		default:
			ss.st = player.Playing
			g.fill(ss, t, event.Play, e)
		}
	case player.Stalled:
		switch {
		case filler || ss.next == kHeartbeat:
			g.heartbeat(ss, t, e)
			return false
		case ss.next == kStallError:
			ss.stallErr = false
			g.fill(ss, t, event.Error, e)
			e.ErrorCode = g.code(stallErrorCodes)
		case ss.stallQuit:
			return g.stop(ss, t, event.StopQuit, e)
		default:
			ss.st = player.Playing
			ss.downPending = rng.Float64() < downshiftAfter && ss.rung > 0
			g.fill(ss, t, event.BufferEnd, e)
			e.StallMS = int((t - ss.stallTS) / 1e6)
		}
	}
	g.plan(ss, t)
	return false
}

// shed ends a session whose event is far overdue (the output rate dropped
// below what the population needs, or the caller paused): the viewer is
// gone. The stop is what the state allows: exit_before_start while
// starting, error when errored, ended if the playhead reached the end by
// now, quit otherwise.
func (g *gen) shed(ss *session, t int64, e *event.Event) bool {
	switch ss.st {
	case player.Starting:
		return g.stop(ss, t, event.StopExitBeforeStart, e)
	case player.Errored:
		return g.stop(ss, t, event.StopError, e)
	case player.Playing:
		ss.pos += t - ss.last
		if ss.pos >= ss.dur {
			ss.pos = ss.dur
			return g.stop(ss, t, event.StopEnded, e)
		}
	}
	return g.stop(ss, t, event.StopQuit, e)
}

// heartbeat sends a heartbeat (planned, or a filler) and restarts the
// heartbeat timer; the session's other planned event stays as it was, so
// fillers never cancel or delay a stall, pause or end.
func (g *gen) heartbeat(ss *session, t int64, e *event.Event) {
	g.fill(ss, t, event.Heartbeat, e)
	ss.hbDue = t + g.hb
	ss.pick()
}

// pick makes the earlier of the heartbeat and the planned event next.
func (ss *session) pick() {
	if ss.hbDue < ss.evDue {
		ss.next, ss.due = kHeartbeat, ss.hbDue
	} else {
		ss.next, ss.due = ss.evNext, ss.evDue
	}
}

// plan picks the next event of a playing, paused or stalled session after
// its (non-heartbeat) event at t: the heartbeat timer restarts, and the next
// other event is the earliest of its deterministic deadlines and, while
// playing, competing exponential clocks drawn now. Heartbeats keep that
// plan, so the clocks run undisturbed until they fire.
func (g *gen) plan(ss *session, t int64) {
	ss.hbDue = t + g.hb
	switch ss.st {
	case player.Playing:
		ss.evNext, ss.evDue = kEnd, t+min(ss.budget, ss.dur-ss.pos)
		ss.epoch = g.fx.epoch
		capRung := g.capRung(ss)
		up := 0.0
		switch {
		case ss.downPending, ss.rung > capRung: // a degraded CDN: down within seconds
			up = 1 / downshiftDelay
		case ss.rung < capRung && ss.played < time.Minute.Nanoseconds():
			up = 1 / climbFast
		case ss.rung < capRung:
			up = 1 / climbSlow
		default:
			up = 1 / fluctuateEvery
		}
		stall := ss.stallRate * factor(g.fx.stall, ss.cdn)
		fatal := g.m.fatalRate * factor(g.fx.errors, ss.dev)
		rates := [...]float64{1 / pauseEvery, 1 / seekEvery, stall, up, 1 / nonFatalEvery, fatal}
		total := 0.0
		for _, r := range rates {
			total += r
		}
		if x := g.expAfter(t, total); x < ss.evDue {
			u := g.rng.Float64() * total
			k := [...]kind{kPause, kSeek, kStall, kBitrate, kErrorNonFatal, kErrorFatal}
			i := 0
			for i < len(rates)-1 && u >= rates[i] {
				u -= rates[i]
				i++
			}
			ss.evNext, ss.evDue = k[i], x
		}
	case player.Paused:
		ss.evNext, ss.evDue = kResume, ss.until
	case player.Stalled:
		ss.evNext, ss.evDue = kStallEnd, ss.until
		if ss.stallErr && ss.stallErrAt < ss.evDue {
			ss.evNext, ss.evDue = kStallError, max(ss.stallErrAt, t)
		}
	default:
		return
	}
	ss.pick()
}
