// Package sessions keeps the sessions of one intake partition: it orders
// each session's reports by sn within a short reorder window, drops
// duplicates, maps them (package mapping), ends sessions that went silent,
// and bounds everything it holds.
//
// It is a pure function of the sequence of records it is given. Time is the
// partition's own: the largest "received" time (the collector's clock when
// its edge accepted the report) of the records so far, advanced between
// reports by tick records the partition's owner writes into the partition
// when it is quiet. So a new owner that replays the same records makes
// exactly the same decisions (when to give up waiting for a missing sn,
// when a session timed out) as the old owner made, which is what makes a
// takeover neither lose nor repeat an event.
package sessions

import (
	"slices"
	"time"

	"playpulse.dev/services/collector/internal/mapping"
	"playpulse.dev/services/playback/event"
)

// Options bound a Table. Zero values take the defaults.
type Options struct {
	// ReorderWindow is how long a report waits for a missing earlier sn
	// of its session (default 1 s); then the gap is skipped.
	ReorderWindow time.Duration
	// Inactivity ends a session silent for this long (default 45 s).
	Inactivity time.Duration
	// StoppedTTL keeps a stopped session's id this long after its last
	// report (default 2 min), so that reports a player keeps sending after
	// its stop are counted and ignored rather than start a new session.
	StoppedTTL time.Duration
	// MaxSessions bounds live and stopped sessions together (default
	// 100,000); beyond it a stopped one is forgotten, or else the live one
	// idle longest is ended (its stop emitted) and forgotten.
	MaxSessions int
	// MaxPending bounds the reports one session may hold back waiting for
	// a gap (default 64); beyond it they are applied at once.
	MaxPending int
}

// Stats count what the table did; cumulative.
type Stats struct {
	Reports    uint64 // reports given to Add
	Duplicates uint64 // sn already applied or skipped: a retried POST or a late report
	AfterStop  uint64 // reports of a stopped session
	Unmapped   uint64 // reports the contract has nothing for in the session's state
	Gaps       uint64 // sns given up on after the reorder window
	TimedOut   uint64 // sessions ended for inactivity
	Evicted    uint64 // sessions ended or forgotten because of MaxSessions
	Events     uint64 // events emitted
}

// Table is one partition's sessions. Not safe for concurrent use: one
// goroutine owns a partition.
type Table struct {
	opts                      Options
	window, inactive, stopTTL int64 // ms
	now                       int64 // partition time, ms
	sessions                  map[string]*entry
	live, stopped             list // by last activity, oldest first
	waits                     []wait
	stats                     Stats
}

type entry struct {
	id         string
	m          *mapping.Session
	next       int64 // sn expected next
	pending    []mapping.Input
	gen        uint32 // bumped when pending becomes non-empty
	last       int64  // partition time of the last report
	stopped    bool
	gone       bool // forgotten; a stale wait may still point here
	prev, succ *entry
}

// wait is a reorder deadline: the session's pending reports are applied
// when the partition time reaches at, if gen still matches.
type wait struct {
	e   *entry
	gen uint32
	at  int64
}

// New returns an empty table.
func New(opts Options) *Table {
	if opts.ReorderWindow <= 0 {
		opts.ReorderWindow = time.Second
	}
	if opts.Inactivity <= 0 {
		opts.Inactivity = 45 * time.Second
	}
	if opts.StoppedTTL <= 0 {
		opts.StoppedTTL = 2 * time.Minute
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 100_000
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 64
	}
	t := &Table{opts: opts, window: opts.ReorderWindow.Milliseconds(), inactive: opts.Inactivity.Milliseconds(),
		stopTTL: opts.StoppedTTL.Milliseconds(), sessions: map[string]*entry{}}
	t.live.init()
	t.stopped.init()
	return t
}

// Now is the partition time: the newest received time seen, Unix ms.
func (t *Table) Now() int64 { return t.now }

// Stats returns the counters.
func (t *Table) Stats() Stats { return t.stats }

// Len is the number of sessions held, live and stopped.
func (t *Table) Len() int { return len(t.sessions) }

// Live is the number of sessions not stopped.
func (t *Table) Live() int { return t.live.n }

// Waiting reports whether anything will happen when the partition time
// advances: a live session to time out or a report held back. The owner
// writes tick records only then.
func (t *Table) Waiting() bool { return t.live.n > 0 || len(t.waits) > 0 }

// Add takes one report the edge received at received (Unix ms) and appends
// the events now due to dst: this report's and those of every deadline the
// new partition time has passed.
func (t *Table) Add(in mapping.Input, received int64, dst []event.Event) []event.Event {
	n0 := len(dst)
	t.stats.Reports++
	dst = t.advance(received, dst)
	sn := in.Report.SN
	e := t.sessions[in.Report.SID]
	if e == nil {
		dst = t.makeRoom(dst)
		e = &entry{id: in.Report.SID, m: mapping.New(in.Report.SID)}
		t.sessions[e.id] = e
		t.live.pushBack(e)
	}
	e.last = t.now
	switch {
	case e.stopped:
		t.stats.AfterStop++
		t.stopped.moveToBack(e)
	case sn < e.next || slices.ContainsFunc(e.pending, func(p mapping.Input) bool { return p.Report.SN == sn }):
		t.stats.Duplicates++
		t.live.moveToBack(e)
	case sn == e.next:
		t.live.moveToBack(e)
		dst = t.apply(e, &in, dst)
		dst = t.drain(e, false, dst)
	default:
		t.live.moveToBack(e)
		i, _ := slices.BinarySearchFunc(e.pending, sn, func(p mapping.Input, sn int64) int { return int(p.Report.SN - sn) })
		e.pending = slices.Insert(e.pending, i, in)
		if len(e.pending) == 1 {
			e.gen++
			t.waits = append(t.waits, wait{e: e, gen: e.gen, at: t.now + t.window})
		}
		if len(e.pending) > t.opts.MaxPending {
			dst = t.drain(e, true, dst)
		}
	}
	t.stats.Events += uint64(len(dst) - n0)
	return dst
}

// Tick advances the partition time to received (a tick record) and
// appends the events now due.
func (t *Table) Tick(received int64, dst []event.Event) []event.Event {
	n0 := len(dst)
	dst = t.advance(received, dst)
	t.stats.Events += uint64(len(dst) - n0)
	return dst
}

func (t *Table) apply(e *entry, in *mapping.Input, dst []event.Event) []event.Event {
	e.next = in.Report.SN + 1
	dst, out := e.m.Apply(in, dst)
	switch out {
	case mapping.AfterStop:
		t.stats.AfterStop++
	case mapping.NotRepresented:
		t.stats.Unmapped++
	}
	if e.m.Stopped() {
		t.stop(e)
	}
	return dst
}

// drain applies the pending reports that follow without a gap, or all of
// them, skipping gaps, when force is set.
func (t *Table) drain(e *entry, force bool, dst []event.Event) []event.Event {
	for len(e.pending) > 0 && (force || e.pending[0].Report.SN == e.next) {
		in := e.pending[0]
		e.pending = e.pending[1:]
		if in.Report.SN > e.next {
			t.stats.Gaps += uint64(in.Report.SN - e.next)
		}
		if e.stopped {
			t.stats.AfterStop++
			continue
		}
		dst = t.apply(e, &in, dst)
	}
	if len(e.pending) == 0 {
		e.pending = nil // do not keep a grown array for a quiet session
	}
	return dst
}

// stop moves a session that emitted its stop to the stopped list.
func (t *Table) stop(e *entry) {
	if e.stopped {
		return
	}
	e.stopped = true
	t.live.remove(e)
	t.stopped.pushBack(e)
}

// advance moves the partition time forward and fires what falls due, in a
// fixed order: reorder deadlines, then inactivity, then stopped sessions'
// expiry.
func (t *Table) advance(received int64, dst []event.Event) []event.Event {
	if received > t.now {
		t.now = received
	}
	i := 0
	for ; i < len(t.waits) && t.waits[i].at <= t.now; i++ {
		w := t.waits[i]
		if !w.e.gone && w.e.gen == w.gen && len(w.e.pending) > 0 {
			dst = t.drain(w.e, true, dst)
		}
	}
	if i > 0 {
		t.waits = append(t.waits[:0], t.waits[i:]...)
	}
	for e := t.live.front(); e != nil && e.last+t.inactive <= t.now; e = t.live.front() {
		dst = t.drain(e, true, dst)
		if !e.stopped {
			dst = e.m.Timeout(dst)
			t.stats.TimedOut++
			t.stop(e)
		}
	}
	for e := t.stopped.front(); e != nil && e.last+t.stopTTL <= t.now; e = t.stopped.front() {
		t.forget(e)
	}
	return dst
}

// makeRoom frees a slot for a new session when the table is full.
func (t *Table) makeRoom(dst []event.Event) []event.Event {
	if len(t.sessions) < t.opts.MaxSessions {
		return dst
	}
	t.stats.Evicted++
	if e := t.stopped.front(); e != nil {
		t.forget(e)
		return dst
	}
	e := t.live.front()
	dst = t.drain(e, true, dst)
	if !e.stopped {
		dst = e.m.Timeout(dst)
	}
	t.forget(e)
	return dst
}

func (t *Table) forget(e *entry) {
	if e.stopped {
		t.stopped.remove(e)
	} else {
		t.live.remove(e)
	}
	e.gone = true
	e.pending = nil
	delete(t.sessions, e.id)
}

// list is an intrusive doubly linked list of entries, oldest first.
type list struct {
	root entry
	n    int
}

func (l *list) init() { l.root.prev, l.root.succ = &l.root, &l.root }

func (l *list) front() *entry {
	if l.n == 0 {
		return nil
	}
	return l.root.succ
}

func (l *list) pushBack(e *entry) {
	e.prev, e.succ = l.root.prev, &l.root
	l.root.prev.succ = e
	l.root.prev = e
	l.n++
}

func (l *list) remove(e *entry) {
	e.prev.succ, e.succ.prev = e.succ, e.prev
	e.prev, e.succ = nil, nil
	l.n--
}

func (l *list) moveToBack(e *entry) {
	l.remove(e)
	l.pushBack(e)
}
