package aggregate

import (
	"time"

	"playpulse.dev/services/fanout/internal/consume"
)

// Shard is the aggregator role's state for one partition of a raw topic:
// the partition's sessions, exact and local because a session's events
// all go to one partition, and the per-second partials of its figures,
// published to the aggregates topic (docs/architecture.md, "Aggregation
// tier").
//
// A second is published once it is closed: the partition's newest record
// (or, once the shard has caught up, the clock) is Lateness past its end.
// What changes a published second afterwards (a late record, a session
// expiring into it) publishes it again, and the new partial replaces the
// old one by its key. A Shard is used from one goroutine.
type Shard struct {
	topic string
	part  int32
	opts  ShardOptions
	agg   *Aggregator
	p     *partition

	next        int64 // offset after the newest record
	publishFrom int64 // first second to publish; notYet until known
	closed      int64 // newest closed second; noSecond until the first
	newest      int64 // newest second published with the state (latest)
	dirty       map[int64]struct{}
	open        map[int64]int64 // second not yet closed → its first record's offset
	pending     []keyValue      // encoded, not yet emitted
}

type keyValue struct{ key, value []byte }

// noSecond marks a second not known yet; notYet a first second to
// publish not known yet (nothing is published).
const (
	noSecond = int64(-1 << 62)
	notYet   = int64(1 << 62)
)

// shardSlots is the series ring of a shard: partials leave within seconds,
// and the ring only has to hold the seconds not yet closed plus late ones.
const shardSlots = 128

// ShardOptions configure a Shard.
type ShardOptions struct {
	// PublishFrom is the offset of the first record the previous owner of
	// the partition did not cover by a published partial (the committed
	// offset). The seconds of records from it on are published; earlier
	// records only rebuild the sessions. Default 0: publish everything.
	PublishFrom int64
	// Lateness is how long after a second ends (by the clock, or by the
	// partition's newest record while it replays) its partial is
	// published. Later records republish it. Default 100 ms.
	Lateness time.Duration
	// Aggregator configures the sessions (MaxSessions, SessionTimeout,
	// MaxStreams, Now); Registerer and Export are ignored.
	Aggregator Options
}

// NewShard returns the state of one partition.
func NewShard(topic string, partition int32, opts ShardOptions) *Shard {
	if opts.Lateness <= 0 {
		opts.Lateness = 100 * time.Millisecond
	}
	ao := opts.Aggregator
	ao.Registerer, ao.Export = nil, ExportOptions{}
	s := &Shard{
		topic: topic, part: partition, opts: opts,
		agg:         newAggregator(ao, shardSlots),
		publishFrom: notYet, closed: noSecond, newest: noSecond,
		dirty: map[int64]struct{}{}, open: map[int64]int64{},
	}
	s.agg.changed = s.touch
	s.p = s.agg.partition(topic, partition)
	return s
}

// touch marks a second whose viewers changed without a record of it.
func (s *Shard) touch(sec int64) {
	if sec <= s.closed {
		s.dirty[sec] = struct{}{}
	}
}

// AddBatch takes records of this partition, in order.
func (s *Shard) AddBatch(rs []consume.Record) {
	a := s.agg
	nowMS := a.opts.Now().UnixMilli()
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range rs {
		r := &rs[i]
		sec := floorSec(min(r.Timestamp.UnixMilli(), nowMS))
		if r.Offset >= s.opts.PublishFrom && sec < s.publishFrom {
			// From here on the seconds are this shard's to publish; the
			// replay before covered them from well before.
			s.publishFrom = sec
		}
		a.add(r, s.p, nowMS)
		s.next = r.Offset + 1
		if sec <= s.closed {
			s.dirty[sec] = struct{}{}
		} else if _, ok := s.open[sec]; !ok {
			s.open[sec] = r.Offset
		}
		// Close seconds as the records pass them, and encode them at
		// once: a replay or a backlog moves through the seconds faster
		// than Flush is called, and a second must be encoded before it
		// leaves the ring.
		if s.close(s.p.lastTS) {
			s.encode()
		}
	}
}

// close closes the seconds before watermark (Unix ms) minus the lateness,
// encoding each into the pending partials.
func (s *Shard) close(watermark int64) bool {
	upTo := floorSec(watermark-s.opts.Lateness.Milliseconds()) - 1
	if upTo <= s.closed {
		return false
	}
	from := s.closed + 1
	if s.closed == noSecond || upTo-from >= shardSlots {
		from = upTo - shardSlots + 1
	}
	for sec := from; sec <= upTo; sec++ {
		s.dirty[sec] = struct{}{}
	}
	// Every open second up to upTo closes, those before from too (a jump
	// past the ring).
	for sec := range s.open {
		if sec <= upTo {
			delete(s.open, sec)
		}
	}
	s.closed = upTo
	return true
}

// closeOld closes and encodes, by their own records, the open seconds the
// clock would close past the ring: caught up after old records (a
// warm-up, a backlog, a history written late), the clock's close jumps
// ahead by more than the ring and would drop them unpublished. Seconds
// within the ring are left to the clock (and to its lateness).
func (s *Shard) closeOld(nowMS int64) {
	upTo := floorSec(nowMS-s.opts.Lateness.Milliseconds()) - 1
	newest := noSecond
	for sec := range s.open {
		newest = max(newest, sec)
	}
	if newest == noSecond || upTo-newest < shardSlots {
		return
	}
	if s.close((newest+1)*1000 + s.opts.Lateness.Milliseconds()) {
		s.encode()
	}
}

// Flush calls emit with the key and value of every partial that is due:
// seconds that closed since the last Flush, and published seconds that
// changed since (late records, sessions expired into them). emit must not
// keep value. Call it about every 100 ms, from the goroutine of AddBatch.
func (s *Shard) Flush(now time.Time, emit func(key, value []byte)) {
	a := s.agg
	nowMS := now.UnixMilli()
	a.mu.Lock()
	defer a.mu.Unlock()
	if !s.p.behind {
		// Caught up: the clock closes the seconds, and from now on the
		// seconds are this shard's even without a record (sessions that
		// expire change them).
		s.closeOld(nowMS) // before sessions expire into later seconds and move the ring past them
		a.expire(nowMS)
		if s.publishFrom == notYet {
			s.publishFrom = floorSec(nowMS-s.opts.Lateness.Milliseconds()) - 1
		}
		s.close(nowMS)
	}
	s.encode()
	for _, kv := range s.pending {
		emit(kv.key, kv.value)
	}
	clear(s.pending)
	s.pending = s.pending[:0]
}

// encode turns the dirty seconds into pending partials. Called with the
// lock held.
func (s *Shard) encode() {
	newest := noSecond
	for sec := range s.dirty {
		if sec < s.publishFrom || sec <= s.closed-shardSlots {
			delete(s.dirty, sec) // the previous owner's, or gone from the ring
			continue
		}
		newest = max(newest, sec)
	}
	for sec := range s.dirty {
		latest := sec == newest && sec >= s.newest
		p := s.partial(sec, latest)
		s.pending = append(s.pending, keyValue{PartialKey(s.topic, s.part, sec), p.encode(nil)})
		if latest {
			s.newest = sec
		}
	}
	clear(s.dirty)
}

// partial is second sec of the shard's figures; latest adds the state
// (viewers, titles, sessions) as it is now. Called with the lock held.
func (s *Shard) partial(sec int64, latest bool) *partial {
	a := s.agg
	p := &partial{topic: s.topic, part: s.part, sec: sec, latest: latest, lastTS: s.p.lastTS}
	if latest {
		p.tracked, p.evicted = uint64(len(a.sessions)), a.evicted
		for _, t := range a.titles {
			if t.ccv != 0 {
				p.titles = append(p.titles, titleCount{t.id, int64(t.ccv)})
			}
		}
	}
	put := func(kind uint8, sc *scope) {
		if sc == nil {
			return
		}
		ps := partialScope{kind: kind, name: sc.name, lastTS: sc.lastTS, b: counts{sec: sec}}
		if b := sc.bucket(sec); b != nil {
			ps.b = *b
		}
		if latest {
			ps.ccv = sc.ccvAt(sec)
			if kind == scopeStream {
				ps.by = sc.bySource
			}
		}
		if ps.b == (counts{sec: sec}) && ps.ccv == 0 {
			return
		}
		p.scopes = append(p.scopes, ps)
	}
	put(scopeOverall, a.overall)
	for _, st := range a.streams {
		put(scopeStream, st)
	}
	for _, sc := range a.sources {
		put(scopeSource, sc)
	}
	for d := range a.dims {
		for _, ds := range a.dims[d] {
			put(scopeDim+uint8(d), ds)
		}
	}
	return p
}

// ccvAt is the viewers at the end of second sec: now, less the changes
// of the seconds after it (a scope without series knows only now).
func (sc *scope) ccvAt(sec int64) int64 {
	v := sc.ccv
	if !sc.series {
		return v
	}
	n := int64(len(sc.ring))
	for t := sc.upTo; t > sec && t > sc.upTo-n; t-- {
		if b := &sc.ring[t%n]; b.sec == t {
			v -= int64(b.ccvDelta)
		}
	}
	return v
}

// Committable is the offset to commit once the partials emitted so far are
// acknowledged: every record before it is in a published partial (or was
// before PublishFrom, covered by the previous owner).
func (s *Shard) Committable() int64 {
	c := max(s.next, s.opts.PublishFrom)
	for _, off := range s.open {
		c = min(c, off)
	}
	return max(c, s.opts.PublishFrom)
}
