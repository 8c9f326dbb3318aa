package sim

import (
	"errors"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/player"
)

const (
	// loadFactor sizes the population for this share of the target rate, so
	// that events are due a little less often than Next is called and rarely
	// wait; the remaining calls are filled with extra heartbeats. Lower means
	// more filler heartbeats, higher means events wait longer in a backlog.
	loadFactor = 0.95
	// gateBand: Poisson arrivals are accepted while the population is below
	// target·(1+gateBand)+1; below target·(1-gateBand)-1 a call with nothing
	// due starts a session instead of sending a filler.
	gateBand = 0.05
	// catchUp: arrivals more than this late (the caller paused) are dropped
	// rather than started in a burst.
	catchUp = int64(time.Second)
	// fillerSearch bounds the entries looked at to find a filler session.
	fillerSearch = 256
)

// Stats counts what the simulator did. Lag is the time between when an
// event was due and the Next call that emitted it.
type Stats struct {
	Events        uint64        // events returned by Next
	Started       uint64        // sessions started
	Arrivals      uint64        // ... of which by the Poisson arrival process
	DeficitStarts uint64        // ... of which because nothing was due and the population was below target
	Ended         uint64        // sessions that sent their stop
	Shed          uint64        // ... of which early, because their event was overdue by more than 3 heartbeats + 10/rate
	Fillers       uint64        // extra heartbeats because nothing was due; the session keeps its plan (see Next)
	PulledForward uint64        // planned events of starting/errored sessions sent early because nothing was due
	EarlySum      time.Duration // total time fillers and pulled events were ahead of their session's plan
	OnTime        uint64        // planned events sent at or after their due time
	LagSum        time.Duration
	LagMax        time.Duration
	Target        float64 // population the simulator aims at for the current rate
}

// MeanLag is the mean lateness of planned events.
func (s Stats) MeanLag() time.Duration {
	if s.OnTime == 0 {
		return 0
	}
	return s.LagSum / time.Duration(s.OnTime)
}

// MeanEarly is how far ahead of its session's plan a filler or pulled
// event was, on average.
func (s Stats) MeanEarly() time.Duration {
	if n := s.Fillers + s.PulledForward; n > 0 {
		return s.EarlySum / time.Duration(n)
	}
	return 0
}

// Sim simulates viewing sessions. Next, Stats and Seed must be called from one
// goroutine (or under one lock); SetRate, Rate and Active may be called from
// any goroutine.
type Sim struct {
	g    gen
	cfg  Config
	seed uint64

	q    wheel // sessions by due time
	free []*session

	rateBits atomic.Uint64
	active   atomic.Int64
	// leaveBits holds the audience factor of a flash crowd that ended
	// (float64 bits; 0: none) while its viewers leave: the pacer keeps
	// the crowd's rate until they have, or every event would wait behind
	// the crowd's and startup times would stretch.
	leaveBits atomic.Uint64

	inc     schedule // the incidents, immutable after New
	incNext int64    // when the active incidents change next (Unix ns)
	thin    float64  // arrival candidates come this much faster than the fastest real rate
	crowd   float64  // the flash crowds' audience factor at the last refresh
	leaving int      // viewers of a flash crowd that ended who leave at their next event

	rateSeen uint64
	rate     float64
	begun    bool
	now      int64
	nextArr  int64
	lamMax   float64
	ctlAt    int64
	gateHi   float64
	gateLo   float64
	shedLag  int64
	stats    Stats
}

type entry struct {
	due int64
	s   *session
}

// New creates a simulator. stream is the PlaybackStream name written in
// every event; sessionPrefix makes session (and so event) ids unique across
// processes: the producer should pass e.g. the pod name plus a random suffix
// chosen at start-up. Session ids are sessionPrefix + "-" + a base-36
// counter ("s" + counter if sessionPrefix is empty); event ids are the
// session id + "-" + seq. sessionPrefix is also mixed into the random
// source, so the replicas of one stream, which share a seed, simulate
// different viewers; the same seed and sessionPrefix reproduce a run. The
// rate starts at 0: call SetRate before Next.
// The first New for a configuration calibrates the model (~0.1 s); later
// ones with the same configuration (any seed) reuse it.
func New(cfg Config, stream, sessionPrefix string) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if stream == "" {
		return nil, errors.New("sim: stream must not be empty")
	}
	seed := cfg.Seed
	for seed == 0 {
		seed = rand.Uint64()
	}
	incidents, err := ParseIncidents(cfg.Incidents)
	if err != nil {
		return nil, err // Validate has parsed them already: cannot happen
	}
	prefix := "s"
	if sessionPrefix != "" {
		prefix = sessionPrefix + "-"
	}
	s := &Sim{
		cfg:     cfg,
		seed:    seed,
		q:       newWheel(),
		nextArr: math.MaxInt64,
		inc:     newSchedule(incidents),
	}
	s.g = gen{
		m:      getModel(cfg),
		rng:    rand.New(rand.NewPCG(seed, splitmix(seed)^instanceKey(sessionPrefix))),
		hb:     int64(cfg.HeartbeatInterval),
		stream: stream,
		prefix: prefix,
		buf:    make([]byte, 0, 64),
	}
	return s, nil
}

// instanceKey is 0 for an empty prefix, which keeps the random source of
// earlier versions for it, and a 64-bit FNV-1a hash of the prefix otherwise.
// Without it, replicas given one PRODUCER_SEED would draw the same titles,
// devices and stalls in the same order: the stream would look like one
// audience repeated, not a larger one.
func instanceKey(prefix string) uint64 {
	if prefix == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(prefix))
	return h.Sum64()
}

// Seed returns the seed in use (the configured one, or the random one
// picked for SEED=0), so a run can be reproduced.
func (s *Sim) Seed() uint64 { return s.seed }

// SetRate sets the target output rate in events per second (the average
// rate when the daily profile is on). Negative or NaN means 0. Safe to call
// from any goroutine; Next picks it up on its next call.
func (s *Sim) SetRate(eventsPerSecond float64) {
	if !(eventsPerSecond > 0) || math.IsInf(eventsPerSecond, 0) {
		eventsPerSecond = 0
	}
	s.rateBits.Store(math.Float64bits(eventsPerSecond))
}

// Rate returns the rate at which the pacer should call Next at time now:
// the SetRate value, times the daily profile's factor when DAILY_PROFILE is
// on, times the audience factor of a flash crowd (IncidentCrowd) active at
// now. Safe to call from any goroutine.
func (s *Sim) Rate(now time.Time) float64 {
	crowd := max(s.inc.crowd(now.UnixNano()), math.Float64frombits(s.leaveBits.Load()))
	return math.Float64frombits(s.rateBits.Load()) * s.cfg.DailyFactor(now) * crowd
}

// Incidents returns the incidents the simulator applies (PRODUCER_INCIDENTS).
func (s *Sim) Incidents() []Incident { return slices.Clone(s.inc.list) }

// Active returns the number of sessions in progress. Safe to call from any
// goroutine.
func (s *Sim) Active() int { return int(s.active.Load()) }

// Stats returns counters since New.
func (s *Sim) Stats() Stats { return s.stats }

// ExpectedEventsPerSession is the mean number of events of a session, from
// a pilot run of the configured model (every event on time).
func (s *Sim) ExpectedEventsPerSession() float64 { return s.g.m.eventsPerSession }

// ExpectedSessionDuration is the mean time from start to stop of a session,
// from the same pilot run.
func (s *Sim) ExpectedSessionDuration() time.Duration {
	return time.Duration(s.g.m.sessionSeconds * 1e9)
}

// TitleDuration is the package function TitleDuration, for titles of this
// simulator's catalogue only.
func (s *Sim) TitleDuration(movieID string) (time.Duration, bool) {
	d, ok := TitleDuration(movieID)
	if !ok {
		return 0, false
	}
	if n, _ := strconv.Atoi(movieID[1:]); n > len(s.g.m.titleIDs) {
		return 0, false
	}
	return d, true
}

// Next fills e with the next event, stamped now (e.TS = now). now must not go
// backwards; if it does, the previous now is used. It always returns an
// event, chosen in this order:
//
//  1. the earliest planned event or Poisson arrival that is due (due ≤ now);
//     a due event is emitted late by the time it waited, and its session's
//     state (position, stall and startup times) is computed at now, so every
//     event agrees with its timestamp. An event overdue by more than three
//     heartbeat intervals plus 10/rate (the rate was lowered well below what
//     the population needs, or the caller paused) ends its session instead:
//     the viewer is gone. The population drains at the new rate without
//     sessions that fall silent for minutes or report hour-long stalls; it
//     may undershoot the new target and is then refilled by step 2;
//  2. if nothing is due and the population is below its target (start-up,
//     rate increase), a new session starts: only the arrival time is
//     distorted, never a session;
//  3. otherwise the session with the earliest planned event sends an extra
//     heartbeat and keeps its plan (a filler; heartbeats are harmless at any
//     time); a session that is starting or errored cannot send one and has
//     its planned event pulled forward to now instead (shortening its
//     startup or error-to-stop time by less than the gap to its due time).
//
// The population is sized so that about loadFactor (95%) of calls find a
// planned event due; Stats reports fillers and lateness.
func (s *Sim) Next(now time.Time, e *event.Event) {
	t := now.UnixNano()
	if s.begun && t < s.now {
		t, now = s.now, s.g.nowT
	}
	s.begun = true
	s.now = t
	s.g.nowT = now
	if t >= s.incNext {
		s.incNext = s.inc.apply(&s.g.fx, t)
	}
	s.refresh(t)
	s.stats.Events++
	s.q.advance(t)

	for s.nextArr <= t && (s.q.len() == 0 || s.nextArr <= s.q.peek().due) {
		at := s.nextArr
		from := at
		if t-at > catchUp {
			from = t
		}
		s.nextArr = s.g.expAfter(from, s.lamMax)
		if from == at && s.acceptArrival(at) {
			s.stats.Arrivals++
			s.start(t, e)
			return
		}
	}
	n := s.q.len()
	if n > 0 {
		if top := s.q.peek(); top.due <= t {
			lag := time.Duration(t - top.due)
			s.stats.OnTime++
			s.stats.LagSum += lag
			s.stats.LagMax = max(s.stats.LagMax, lag)
			if t-top.due > s.shedLag || s.leaving > 0 && canHeartbeat(top.s) {
				if s.leaving > 0 {
					if s.leaving--; s.leaving == 0 {
						s.leaveBits.Store(0) // the crowd has left: back to the stream's rate
					}
				}
				s.stats.Shed++
				s.g.shed(top.s, t, e)
				s.q.removePeeked()
				s.retire(top.s)
				return
			}
			s.serveTop(top.s, t, e, false)
			return
		}
	}
	if n == 0 || float64(n) < s.gateLo {
		s.stats.DeficitStarts++
		s.start(t, e)
		return
	}
	top := s.q.peek()
	if !canHeartbeat(top.s) {
		// A starting or errored session cannot send a heartbeat; look a
		// little further for one that can before pulling an event forward.
		if x, ok := s.q.peekWhere(fillerSearch, canHeartbeat); ok {
			top = x
		} else {
			top = s.q.peek()
		}
	}
	if canHeartbeat(top.s) {
		s.stats.Fillers++
	} else {
		s.stats.PulledForward++
	}
	s.stats.EarlySum += time.Duration(top.due - t)
	s.serveTop(top.s, t, e, true)
}

func canHeartbeat(ss *session) bool {
	return ss.st == player.Playing || ss.st == player.Paused || ss.st == player.Stalled
}

// refresh applies a new rate and recomputes the population target every
// simulated second (the daily profile moves it).
func (s *Sim) refresh(t int64) {
	bits := s.rateBits.Load()
	changed := bits != s.rateSeen
	if !changed && t < s.ctlAt {
		return
	}
	s.rateSeen = bits
	s.rate = math.Float64frombits(bits)
	m := s.g.m
	crowd := s.inc.crowd(t)
	r := s.rate * s.cfg.dailyFactorAt(t) * crowd
	target := loadFactor * r * m.sessionSeconds / m.eventsPerSession
	if crowd < s.crowd {
		// A flash crowd ended: its viewers leave now (the crowd came for
		// the event), not over the half hour their sessions would last,
		// each at its next event, at the crowd's rate.
		s.leaving = max(0, s.q.len()-int(target))
		if s.leaving > 0 {
			s.leaveBits.Store(math.Float64bits(s.crowd))
		}
	}
	s.crowd = crowd
	maxS := float64(s.cfg.MaxSessions)
	s.stats.Target = min(target, maxS)
	s.gateHi = min(maxS, target*(1+gateBand)+1)
	s.gateLo = min(maxS, target*(1-gateBand)-1)
	if changed {
		// Candidates come at the highest rate the daily profile and the
		// flash crowds can ask for, thinned in acceptArrival.
		s.thin = s.inc.crowdMax
		if s.cfg.DailyProfile {
			s.thin *= dailyPeak
		}
		s.lamMax = loadFactor * s.rate * s.thin / m.eventsPerSession
		s.nextArr = s.g.expAfter(t, s.lamMax)
	}
	s.shedLag = 3*s.g.hb + int64(10e9/max(s.rate, 1e-6))
	s.ctlAt = t + sec
}

// acceptArrival thins the candidate arrivals to the daily profile and the
// flash crowds, and gates them on the population.
func (s *Sim) acceptArrival(at int64) bool {
	if s.thin > 1 && s.g.rng.Float64()*s.thin > s.cfg.dailyFactorAt(at)*s.inc.crowd(at) {
		return false
	}
	return float64(s.q.len()) < s.gateHi
}

func (s *Sim) start(t int64, e *event.Event) {
	var ss *session
	if n := len(s.free); n > 0 {
		ss = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		ss = new(session)
	}
	s.g.begin(ss, t, e)
	s.q.push(entry{ss.due, ss})
	s.stats.Started++
	s.active.Store(int64(s.q.len()))
}

// serveTop emits the event of ss, the session last returned by q.peek.
func (s *Sim) serveTop(ss *session, t int64, e *event.Event, filler bool) {
	ended := s.g.emit(ss, t, e, filler)
	s.q.removePeeked()
	if ended {
		s.retire(ss)
		return
	}
	s.q.push(entry{ss.due, ss})
}

// retire recycles a session that sent its stop and left the queue.
func (s *Sim) retire(ss *session) {
	ss.id, ss.user = "", ""
	s.free = append(s.free, ss)
	s.stats.Ended++
	s.active.Store(int64(s.q.len()))
}
