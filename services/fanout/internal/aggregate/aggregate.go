// Package aggregate computes the live quality-of-experience figures of the
// event stream (docs/metrics.md): per-second buckets for the last 15
// minutes, overall, per stream and per source (what produced the events:
// the simulator, real players' CMCD reports, SDK beacons), KPI windows per
// device, CDN and country, concurrent viewers from per-session state, and
// top titles.
//
// Memory is bounded whatever the input: the bucket rings have a fixed size,
// sessions are capped (longest idle evicted), streams are capped (least
// recently seen evicted), sources are a fixed set of four (the decoder
// refuses any other value), and breakdown values are capped (the rest fold
// into "other").
package aggregate

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/player"
)

// Window is how much history the series keep.
const Window = 15 * time.Minute

const (
	seriesPoints   = int(Window / time.Second) // points in a full series
	Smoothing      = 10                        // trailing seconds of ratio and percentile points
	seriesSlots    = seriesPoints + Smoothing + 1
	KPIWindow      = 60 // seconds of the QoE objects
	dimSlots       = KPIWindow + 4
	PeriodicPoints = 10 // series points in a periodic snapshot
	MaxDimValues   = 64 // per breakdown dimension; the rest are "other"
	longStallMS    = 5 * 60 * 1000
	streamIdleMS   = 60 * 1000 // a stream must be this idle to be evicted for a new one
)

// Breakdown dimensions.
const (
	dimDevice = iota
	dimCDN
	dimCountry
	numDims
)

var dimNames = [numDims]string{"device", "cdn", "country"}

// unknownSource names the events without a source field (written before
// the field existed, or by other producers).
const unknownSource = "unknown"

// sourceNames are the source scopes by index: event.Sources in the
// contract's order, then unknownSource. The set is fixed, so the source
// scopes need no cap: at most four, each like a stream's.
var sourceNames = append(slices.Clone(event.Sources), unknownSource)

// sourceIndex is the scope index of an event's source field.
func sourceIndex(s string) uint8 {
	for i, v := range event.Sources {
		if v == s {
			return uint8(i)
		}
	}
	return uint8(len(event.Sources))
}

// ParseSource returns the index of a source name (one of event.Sources or
// unknownSource), as selected in the API.
func ParseSource(name string) (int, bool) {
	i := slices.Index(sourceNames, name)
	return i, i >= 0
}

// Sources lists the source names a scope can be selected by, in order.
func Sources() []string { return slices.Clone(sourceNames) }

// Options configure an Aggregator.
type Options struct {
	MaxSessions    int           // default 500000
	SessionTimeout time.Duration // default 60 s
	MaxStreams     int           // default 20
	Now            func() time.Time
	Registerer     prometheus.Registerer
	Log            *slog.Logger
	// Export configures the QoE metrics, registered with Registerer.
	Export ExportOptions
}

// Aggregator is safe for concurrent use.
type Aggregator struct {
	opts      Options
	timeoutMS int64
	m         *metrics
	x         *exporter

	mu       sync.Mutex
	overall  *scope
	streams  map[string]*scope
	sources  []*scope // by sourceIndex; nil until the source's first event
	dims     [numDims]map[string]*scope
	sessions map[string]*session
	parts    map[partKey]*partition
	titles   map[string]*title
	total    uint64
	lastTS   int64 // newest record timestamp, ms
	tick     uint64
	evicted  uint64 // sessions evicted by the cap
	stale    int64  // ms; while the source is stale, sessions do not expire past it
	rankedAt int64  // ms (clock): when the top CDNs and countries were last re-ranked

	// The aggregation tier (shard.go, merge.go). slots is the length of
	// the series rings: a Shard needs less than the 15 minutes.
	slots int
	// changed, when set (a Shard), is told of every second whose viewers
	// changed other than through a record of that second: a session
	// expired or a stall grew long.
	changed func(sec int64)
	merged  *mergeState // NewMerged only
}

type partKey struct {
	topic string
	part  int32
}

// partition orders its sessions by last event (front = newest), so expiry
// looks at the back only.
type partition struct {
	lastTS int64 // ms, newest record
	behind bool  // the last record was not the newest of the partition
	root   session
	n      int
}

type session struct {
	id         string
	state      player.State
	watching   bool
	seq        uint64
	last       int64 // ms
	stallFrom  int64 // ms
	bitrate    int32
	src        uint8 // sourceIndex of the first event: a session has one producer
	part       *partition
	prev, next *session
	stream     *scope
	streamGen  uint32
	streamName string
	dims       [numDims]*scope
	title      *title
	cell       *cell // of the exported QoE metrics
}

type title struct {
	id   string
	ccv  int32
	refs int32
}

// New returns an empty Aggregator.
func New(opts Options) *Aggregator { return newAggregator(opts, seriesSlots) }

// newAggregator is New with series rings of slots seconds.
func newAggregator(opts Options, slots int) *Aggregator {
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 500000
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 60 * time.Second
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Aggregator{
		opts:      opts,
		timeoutMS: opts.SessionTimeout.Milliseconds(),
		m:         newMetrics(opts.Registerer),
		x:         newExporter(opts.Export),
		slots:     slots,
		streams:   map[string]*scope{},
		sources:   make([]*scope, len(sourceNames)),
		sessions:  map[string]*session{},
		parts:     map[partKey]*partition{},
		titles:    map[string]*title{},
	}
	for i := range a.dims {
		a.dims[i] = map[string]*scope{}
	}
	a.overall = newScope("", a.slots, true)
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(a)
	}
	return a
}

// SetStale tells the aggregator that the source is stale since t (zero:
// healthy again). While stale, sessions are not expired for silence after
// t: the fan-out keeps showing the last state it knew.
func (a *Aggregator) SetStale(t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.IsZero() {
		a.stale = 0
	} else {
		a.stale = t.UnixMilli()
	}
}

func floorSec(ms int64) int64 {
	if ms < 0 {
		return (ms - 999) / 1000
	}
	return ms / 1000
}

// Add takes one record into account. Records of one partition must come in
// order (they do: one goroutine per partition).
func (a *Aggregator) Add(r *consume.Record) {
	nowMS := a.opts.Now().UnixMilli()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.maybeRerank(nowMS)
	a.add(r, a.partition(r.Topic, r.Partition), nowMS)
}

// maybeRerank re-ranks the exported CDNs and countries once a minute.
func (a *Aggregator) maybeRerank(nowMS int64) {
	if nowMS-a.rankedAt >= 60_000 {
		a.rankedAt = nowMS
		a.rerank()
	}
}

// AddBatch is Add for records in order, under one lock.
func (a *Aggregator) AddBatch(rs []consume.Record) {
	nowMS := a.opts.Now().UnixMilli()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.maybeRerank(nowMS)
	var p *partition
	for i := range rs {
		r := &rs[i]
		if i == 0 || r.Partition != rs[i-1].Partition || r.Topic != rs[i-1].Topic {
			p = a.partition(r.Topic, r.Partition)
		}
		a.add(r, p, nowMS)
	}
}

func (a *Aggregator) add(r *consume.Record, p *partition, nowMS int64) {
	ts := r.Timestamp.UnixMilli()
	if ts > nowMS {
		ts = nowMS // clock skew: count it now
	}
	sec := floorSec(ts)
	e := &r.Event
	a.total++
	a.tick++
	a.lastTS = max(a.lastTS, ts)
	p.lastTS = max(p.lastTS, ts)
	p.behind = r.Lag > 0

	ss := a.sessions[e.SessionID]
	if ss != nil && ts-ss.last > a.timeoutMS {
		a.drop(ss, "idle", floorSec(ss.last+a.timeoutMS))
		ss = nil
	}
	if ss != nil && e.Seq <= ss.seq {
		a.m.duplicates.Inc()
		a.forScopes(ss.scopes(a), sec, func(b *counts) { b.byType[e.Type]++ })
		return
	}
	fresh := ss == nil
	if fresh {
		if e.Type == event.Stop {
			// The end of a session we never saw: count it, keep nothing.
			src := sourceIndex(e.Source)
			sc := a.eventScopes(e, src)
			a.count(sc, a.x.cell(streamLabel(sc, e.Stream), sourceNames[src], e.Device, e.CDN, e.Country), src, sec, ts, e, player.Idle, true)
			return
		}
		ss = a.newSession(e, p, sec)
	} else if ss.part != p {
		// The topic gained partitions and the key moved.
		ss.unlink()
		ss.part = p
	}
	sc := ss.scopes(a)
	if sc[1] != nil {
		sc[1].used = a.tick
	}
	if ss.cell == nil || ss.cell.dead { // new, or its stream or a label value was dropped
		ss.cell = a.sessionCell(ss, sc)
		if ss.watching {
			ss.cell.viewers++
		}
	}
	live := ts >= a.x.opts.CountFrom
	prev := ss.state
	if fresh {
		prev = player.Idle
	}

	// Time since the session's previous event, in the state it was in.
	if !fresh && (ss.state == player.Playing || ss.state == player.Stalled) {
		dt := min(max(ts-ss.last, 0), a.timeoutMS)
		if dt > 0 {
			if ss.state == player.Playing {
				r := rungOf(ss.bitrate)
				br := uint64(max(ss.bitrate, 0))
				a.forScopes(sc, sec, func(b *counts) {
					b.playMS += uint64(dt)
					b.bitrateMS += uint64(dt) * br
					b.rungMS[r] += uint64(dt)
				})
				if live {
					ss.cell.playMS += uint64(dt)
					ss.cell.bitrateMS += uint64(dt) * br
				}
			} else {
				a.forScopes(sc, sec, func(b *counts) { b.stallMS += uint64(dt) })
				if live {
					ss.cell.stallMS += uint64(dt)
				}
			}
		}
	}
	a.count(sc, ss.cell, ss.src, sec, ts, e, prev, fresh)

	// Stalls over 5 minutes stop counting as viewers.
	if !fresh && ss.state == player.Stalled && ss.watching && ts-ss.stallFrom > longStallMS {
		a.setWatching(ss, sc, false, floorSec(ss.stallFrom+longStallMS))
	}
	var next player.State
	if fresh {
		next = infer(e)
	} else {
		var err error
		if next, err = player.Step(ss.state, e); err != nil {
			a.m.resyncs.Inc()
			next = infer(e)
		}
	}
	if next == player.Stalled && (fresh || ss.state != player.Stalled) {
		ss.stallFrom = ts
	}
	watching := next.Watching() && !(next == player.Stalled && ts-ss.stallFrom > longStallMS)
	if watching != ss.watching {
		a.setWatching(ss, sc, watching, sec)
	}
	ss.state, ss.seq, ss.last, ss.bitrate = next, e.Seq, ts, int32(e.Bitrate)
	if next == player.Ended {
		a.remove(ss)
		return
	}
	ss.moveToFront()
}

// count adds what the event says by itself (types, outcomes, startup) to
// the scopes and, for a live event, to the exported cell c.
func (a *Aggregator) count(sc scopes, c *cell, src uint8, sec, ts int64, e *event.Event, prev player.State, fresh bool) {
	t := e.Type
	var startFail, pbFail bool
	if t == event.Error && e.Fatal {
		switch {
		case !fresh && prev == player.Starting:
			startFail = true
		case !fresh && (prev == player.Playing || prev == player.Stalled || prev == player.Paused):
			pbFail = true
		default:
			startFail = e.Bitrate == 0
			pbFail = !startFail
		}
	}
	o := classify(e, startFail, pbFail)
	for _, s := range sc {
		if s == nil {
			continue
		}
		s.events++
		s.lastTS = max(s.lastTS, ts)
		b := s.bucket(sec)
		if b == nil {
			continue
		}
		b.byType[t]++
		switch o {
		case oAttempt:
			b.attempts++
		case oPlay:
			b.plays++
			b.addStartup(e.StartupMS)
		case oStall:
			b.stalls++
		case oExit:
			b.ebvs++
		case oEnded:
			b.ended++
		case oStartFail:
			b.startFail++
		case oPlaybackFail:
			b.pbFail++
		}
	}
	if st := sc[1]; st != nil {
		c := &st.bySource[src]
		c.events++
		c.lastTS = max(c.lastTS, ts)
	}
	if ts >= a.x.opts.CountFrom {
		c.n[o]++
		if o == oPlay {
			c.addStartup(e.StartupMS)
		}
	}
}

// outcome is what an event counts as, besides its type.
type outcome uint8

const (
	oNone         outcome = iota
	oAttempt              // start
	oPlay                 // first frame
	oStall                // buffer_start
	oExit                 // stop exit_before_start
	oEnded                // stop ended or quit
	oStartFail            // fatal error before the first frame
	oPlaybackFail         // fatal error after it
	numOutcomes
)

// classify is the outcome of e; startFail and pbFail say what a fatal
// error is (count decides from the session's state).
func classify(e *event.Event, startFail, pbFail bool) outcome {
	switch e.Type {
	case event.Start:
		return oAttempt
	case event.Play:
		if e.FirstFrame {
			return oPlay
		}
	case event.BufferStart:
		return oStall
	case event.Stop:
		switch e.StopReason {
		case event.StopExitBeforeStart:
			return oExit
		case event.StopEnded, event.StopQuit:
			return oEnded
		}
	case event.Error:
		switch {
		case startFail:
			return oStartFail
		case pbFail:
			return oPlaybackFail
		}
	}
	return oNone
}

// streamLabel is the stream label of an event whose scopes are sc:
// "other" when the stream is beyond FANOUT_MAX_STREAMS.
func streamLabel(sc scopes, name string) string {
	if sc[1] == nil {
		return "other"
	}
	return name
}

// sessionCell is the exported cell of a session.
func (a *Aggregator) sessionCell(ss *session, sc scopes) *cell {
	return a.x.cell(streamLabel(sc, ss.streamName), sourceNames[ss.src], ss.dims[dimDevice].name, ss.dims[dimCDN].name, ss.dims[dimCountry].name)
}

// infer is the state an event implies for a session seen from the middle.
func infer(e *event.Event) player.State {
	switch e.Type {
	case event.Start:
		return player.Starting
	case event.Pause:
		return player.Paused
	case event.BufferStart:
		return player.Stalled
	case event.Stop:
		return player.Ended
	case event.Error:
		if e.Fatal {
			return player.Errored
		}
		if e.Bitrate == 0 {
			return player.Starting
		}
	}
	return player.Playing
}

type scopes [3 + numDims]*scope // overall, stream, source, device, cdn, country

func (a *Aggregator) forScopes(sc scopes, sec int64, f func(*counts)) {
	for _, s := range sc {
		if s == nil {
			continue
		}
		if b := s.bucket(sec); b != nil {
			f(b)
		}
	}
}

func (ss *session) scopes(a *Aggregator) scopes {
	st := ss.stream
	if st != nil && st.gen != ss.streamGen {
		st = nil // the stream was evicted and its scope reused
	}
	if st == nil {
		st = a.streamScope(ss.streamName)
		ss.stream = st
		if st != nil {
			ss.streamGen = st.gen
		}
	}
	return scopes{a.overall, st, a.sources[ss.src], ss.dims[0], ss.dims[1], ss.dims[2]}
}

func (a *Aggregator) eventScopes(e *event.Event, src uint8) scopes {
	st := a.streamScope(e.Stream)
	if st != nil {
		st.used = a.tick
	}
	return scopes{a.overall, st, a.sourceScope(src), a.dimScope(dimDevice, e.Device), a.dimScope(dimCDN, e.CDN), a.dimScope(dimCountry, e.Country)}
}

// sourceScope returns the scope of a source, made on its first event.
func (a *Aggregator) sourceScope(src uint8) *scope {
	s := a.sources[src]
	if s == nil {
		s = newScope(sourceNames[src], a.slots, true)
		a.sources[src] = s
	}
	return s
}

// streamScope returns the scope of a stream, creating it within the cap:
// a new stream beyond the cap replaces the least recently seen stream if
// that one has been idle for a minute, and otherwise counts overall only.
func (a *Aggregator) streamScope(name string) *scope {
	if s, ok := a.streams[name]; ok {
		return s
	}
	if len(a.streams) < a.opts.MaxStreams {
		s := newScope(name, a.slots, true)
		s.bySource = make([]sourceCount, len(sourceNames))
		a.streams[name] = s
		return s
	}
	var lru *scope
	for _, s := range a.streams {
		if lru == nil || s.used < lru.used {
			lru = s
		}
	}
	if lru == nil || a.lastTS-lru.lastTS < streamIdleMS {
		a.m.streamOverflow.Inc()
		return nil
	}
	delete(a.streams, lru.name)
	a.x.dropStream(lru.name)
	a.m.streamsEvicted.Inc()
	lru.reset(name)
	a.streams[name] = lru
	return lru
}

func (a *Aggregator) dimScope(dim int, value string) *scope {
	if value == "" {
		value = "unknown"
	}
	m := a.dims[dim]
	if s, ok := m[value]; ok {
		return s
	}
	if len(m) >= MaxDimValues-1 && value != "other" {
		a.m.dimOverflow.WithLabelValues(dimNames[dim]).Inc()
		value = "other"
		if s, ok := m[value]; ok {
			return s
		}
	}
	s := newScope(value, dimSlots, false)
	m[value] = s
	return s
}

func (a *Aggregator) partition(topic string, p int32) *partition {
	k := partKey{topic, p}
	pt := a.parts[k]
	if pt == nil {
		pt = &partition{}
		pt.root.next, pt.root.prev = &pt.root, &pt.root
		a.parts[k] = pt
	}
	return pt
}

func (a *Aggregator) newSession(e *event.Event, p *partition, sec int64) *session {
	if len(a.sessions) >= a.opts.MaxSessions {
		a.evictOldest(sec)
	}
	ss := &session{id: e.SessionID, state: player.Idle, part: p, streamName: e.Stream, src: sourceIndex(e.Source)}
	a.sourceScope(ss.src)
	ss.dims[dimDevice] = a.dimScope(dimDevice, e.Device)
	ss.dims[dimCDN] = a.dimScope(dimCDN, e.CDN)
	ss.dims[dimCountry] = a.dimScope(dimCountry, e.Country)
	t := a.titles[e.MovieID]
	if t == nil {
		t = &title{id: e.MovieID}
		a.titles[e.MovieID] = t
	}
	t.refs++
	ss.title = t
	a.sessions[ss.id] = ss
	a.m.sessions.Set(float64(len(a.sessions)))
	return ss
}

func (a *Aggregator) setWatching(ss *session, sc scopes, w bool, sec int64) {
	d := int32(-1)
	if w {
		d = 1
	}
	ss.watching = w
	if a.changed != nil {
		a.changed(sec)
	}
	ss.title.ccv += d
	ss.cell.viewers += int64(d)
	for _, s := range sc {
		if s != nil {
			s.ccvChange(sec, d)
		}
	}
	if st := sc[1]; st != nil {
		st.bySource[ss.src].ccv += int64(d)
	}
}

// drop forgets a session that is gone, counting it out of the viewers at
// second sec.
func (a *Aggregator) drop(ss *session, reason string, sec int64) {
	if ss.watching {
		a.setWatching(ss, ss.scopes(a), false, sec)
	}
	a.m.evicted.WithLabelValues(reason).Inc()
	if reason == "cap" {
		a.evicted++
	}
	a.remove(ss)
}

func (a *Aggregator) remove(ss *session) {
	ss.unlink()
	delete(a.sessions, ss.id)
	ss.title.refs--
	if ss.title.refs <= 0 {
		delete(a.titles, ss.title.id)
	}
	a.m.sessions.Set(float64(len(a.sessions)))
}

func (a *Aggregator) evictOldest(sec int64) {
	var oldest *session
	for _, p := range a.parts {
		if p.n == 0 {
			continue
		}
		if s := p.root.prev; oldest == nil || s.last < oldest.last {
			oldest = s
		}
	}
	if oldest != nil {
		a.drop(oldest, "cap", sec)
	}
}

// expire drops the sessions silent for longer than the timeout: measured
// against the partition's position while it replays, and against the clock
// (or the time the source went stale) once it has caught up.
func (a *Aggregator) expire(nowMS int64) {
	for _, p := range a.parts {
		wm := nowMS
		if p.behind {
			wm = p.lastTS
		}
		if a.stale != 0 {
			wm = min(wm, a.stale)
		}
		for p.n > 0 {
			s := p.root.prev
			if s.last+a.timeoutMS >= wm {
				break
			}
			a.drop(s, "idle", floorSec(s.last+a.timeoutMS))
		}
	}
}

func (ss *session) unlink() {
	if ss.prev == nil {
		return
	}
	ss.prev.next, ss.next.prev = ss.next, ss.prev
	ss.prev, ss.next = nil, nil
	ss.part.n--
}

func (ss *session) moveToFront() {
	p := ss.part
	if ss.prev != nil {
		if p.root.next == ss {
			return
		}
		ss.unlink()
	}
	ss.next, ss.prev = p.root.next, &p.root
	p.root.next.prev = ss
	p.root.next = ss
	p.n++
}
