package aggregate

import (
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/player"
)

var ladder = player.Ladder()

// nRungs is the number of ladder rungs plus one for "other".
var nRungs = len(ladder) + 1

const maxRungs = 16

func rungOf(kbps int32) int {
	for i, l := range ladder {
		if int32(l) == kbps {
			return i
		}
	}
	return len(ladder)
}

// counts is one second of one scope. Every field is a sum, so windows are
// sums of buckets.
type counts struct {
	sec       int64
	byType    [event.NumTypes]uint32
	attempts  uint32
	plays     uint32
	startFail uint32
	ebvs      uint32
	pbFail    uint32
	ended     uint32
	stalls    uint32
	ccvDelta  int32 // change of concurrent viewers during this second
	playMS    uint64
	stallMS   uint64
	bitrateMS uint64 // Σ kbps × ms of play
	rungMS    [maxRungs]uint64
	startup   [nHist]uint16 // saturating
}

func (b *counts) addStartup(ms int) {
	i := histIndex(ms)
	if b.startup[i] != ^uint16(0) {
		b.startup[i]++
	}
}

// scope is the figures of one slice of the stream: everything, one stream,
// one source, one device, one CDN or one country.
type scope struct {
	name    string
	ring    []counts
	series  bool  // keeps CCV changes for the series
	ccv     int64 // concurrent viewers now
	ccvBase int64 // CCV at the end of the second before the oldest slot
	upTo    int64 // newest second the ring has been advanced to
	events  uint64
	lastTS  int64  // newest record timestamp, Unix ms
	gen     uint32 // bumped when a stream scope is reused for another stream
	used    uint64 // arrival tick of the last event (stream LRU)
	// bySource, of a stream scope only: the stream's events, newest
	// record and viewers per source (by sourceIndex), for /api/streams
	// scoped to a source. Counters, not buckets: the figures of a stream
	// and a source together are not kept (docs/metrics.md says why).
	bySource []sourceCount
}

// sourceCount is one source's share of a stream.
type sourceCount struct {
	events uint64
	lastTS int64 // Unix ms
	ccv    int64
}

func newScope(name string, slots int, series bool) *scope {
	return &scope{name: name, ring: make([]counts, slots), series: series}
}

// bucket returns the slot for sec, or nil when sec is older than the ring.
// Seconds newer than any seen so far first advance the ring.
func (s *scope) bucket(sec int64) *counts {
	if sec > s.upTo {
		s.advance(sec)
	}
	b := &s.ring[sec%int64(len(s.ring))]
	if b.sec != sec {
		return nil
	}
	return b
}

// advance recycles every slot up to second now: slots of seconds that fall
// out of the ring are cleared and their CCV changes move into ccvBase.
func (s *scope) advance(now int64) {
	if now <= s.upTo {
		return
	}
	n := int64(len(s.ring))
	for sec := max(s.upTo+1, now-n+1); sec <= now; sec++ {
		b := &s.ring[sec%n]
		s.ccvBase += int64(b.ccvDelta)
		*b = counts{sec: sec}
	}
	s.upTo = now
}

// ccvChange records a change of concurrent viewers at second sec.
func (s *scope) ccvChange(sec int64, d int32) {
	s.ccv += int64(d)
	if !s.series {
		return
	}
	if b := s.bucket(sec); b != nil {
		b.ccvDelta += d
	} else {
		s.ccvBase += int64(d)
	}
}

func (s *scope) reset(name string) {
	s.name = name
	clear(s.ring)
	s.ccv, s.ccvBase, s.upTo, s.events, s.lastTS = 0, 0, 0, 0, 0
	clear(s.bySource)
	s.gen++
}

// sum is a window of buckets added together.
type sum struct {
	byType    [event.NumTypes]uint64
	attempts  uint64
	plays     uint64
	startFail uint64
	ebvs      uint64
	pbFail    uint64
	ended     uint64
	stalls    uint64
	playMS    uint64
	stallMS   uint64
	bitrateMS uint64
	rungMS    [maxRungs]uint64
	startup   [nHist]uint32
}

func (g *sum) add(b *counts, sign int) {
	if sign > 0 {
		for i, v := range b.byType {
			g.byType[i] += uint64(v)
		}
		g.attempts += uint64(b.attempts)
		g.plays += uint64(b.plays)
		g.startFail += uint64(b.startFail)
		g.ebvs += uint64(b.ebvs)
		g.pbFail += uint64(b.pbFail)
		g.ended += uint64(b.ended)
		g.stalls += uint64(b.stalls)
		g.playMS += b.playMS
		g.stallMS += b.stallMS
		g.bitrateMS += b.bitrateMS
		for i, v := range b.rungMS {
			g.rungMS[i] += v
		}
		if b.plays > 0 {
			for i, v := range b.startup {
				g.startup[i] += uint32(v)
			}
		}
		return
	}
	for i, v := range b.byType {
		g.byType[i] -= uint64(v)
	}
	g.attempts -= uint64(b.attempts)
	g.plays -= uint64(b.plays)
	g.startFail -= uint64(b.startFail)
	g.ebvs -= uint64(b.ebvs)
	g.pbFail -= uint64(b.pbFail)
	g.ended -= uint64(b.ended)
	g.stalls -= uint64(b.stalls)
	g.playMS -= b.playMS
	g.stallMS -= b.stallMS
	g.bitrateMS -= b.bitrateMS
	for i, v := range b.rungMS {
		g.rungMS[i] -= v
	}
	if b.plays > 0 {
		for i, v := range b.startup {
			g.startup[i] -= uint32(v)
		}
	}
}

func (g *sum) events() uint64 {
	var n uint64
	for _, v := range g.byType {
		n += v
	}
	return n
}
