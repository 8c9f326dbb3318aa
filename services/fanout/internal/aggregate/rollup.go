package aggregate

import (
	"encoding/binary"
	"strconv"
	"strings"

	"playpulse.dev/services/playback/event"
)

// Minute rollups (docs/tier.md, "The last 24 hours"): the page's day at one
// point a minute cannot be read from the aggregates topic, whose partials
// of a day are a million records per partition-second of the raw topics.
// A merge-role fan-out, which holds the merged seconds of the last 15
// minutes, writes each complete minute once more as one small record of
// its own topic: for everything, each stream and each source, the sums of
// the minute's seconds (which add exactly, the startup histogram too) and
// the viewers at its end. A day is then 1,440 records.
const (
	// RollupStep is the seconds of one rollup.
	RollupStep = 60
	// MaxRollupSpan is the longest window drawn from rollups: a day.
	MaxRollupSpan = 86400
)

const rollupVersion = 1

// RollupKey is the rollups topic key of the minute that starts at minute
// (Unix s): every fan-out that writes the minute writes the same key, and
// the newest record of a key is the minute.
func RollupKey(minute int64) []byte {
	return strconv.AppendInt([]byte("minute/"), minute, 10)
}

func parseRollupKey(key []byte) (int64, error) {
	s, ok := strings.CutPrefix(string(key), "minute/")
	m, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil || m%RollupStep != 0 {
		return 0, errPartial("key")
	}
	return m, nil
}

// Rollup returns the record of the minute that starts at minute (Unix s, a
// multiple of RollupStep): the sums of its seconds and the viewers at its
// end, for everything and for each stream and source with an event or a
// viewer in it. ok is false when the series rings do not hold every second
// of it (not yet closed by a newer partial, or already recycled).
func (a *Aggregator) Rollup(minute int64) (key, value []byte, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	last := minute + RollupStep - 1
	up := a.overall.upTo
	if minute%RollupStep != 0 || last >= up || minute <= up-int64(a.slots) {
		return nil, nil, false
	}
	// The scopes first, then their count in front of them.
	n := 0
	var body []byte
	add := func(kind uint8, sc *scope) {
		sc.advance(up)
		c := copyScope(sc, minute, last, last)
		g := c.window(minute, last)
		ccv := c.ccv[0]
		if kind != scopeOverall && g.events() == 0 && ccv == 0 {
			return
		}
		n++
		body = append(body, kind)
		body = appendString(body, sc.name)
		body = appendSum(body, &g)
		body = binary.AppendVarint(body, ccv)
	}
	add(scopeOverall, a.overall)
	for _, st := range a.streams {
		add(scopeStream, st)
	}
	for _, sc := range a.sources {
		if sc != nil {
			add(scopeSource, sc)
		}
	}
	b := binary.AppendUvarint([]byte{rollupVersion}, uint64(n))
	return RollupKey(minute), append(b, body...), true
}

func appendSum(b []byte, g *sum) []byte {
	b = appendSparse(b, g.byType[:])
	for _, v := range [...]uint64{g.attempts, g.plays, g.startFail, g.ebvs, g.pbFail, g.ended, g.stalls, g.playMS, g.stallMS, g.bitrateMS} {
		b = binary.AppendUvarint(b, v)
	}
	b = appendSparse(b, g.rungMS[:])
	return appendSparse(b, g.startup[:])
}

func (r *reader) sum(g *sum) {
	readSparse(r, g.byType[:])
	for _, f := range [...]*uint64{&g.attempts, &g.plays, &g.startFail, &g.ebvs, &g.pbFail, &g.ended, &g.stalls, &g.playMS, &g.stallMS, &g.bitrateMS} {
		*f = r.uvarint()
	}
	readSparse(r, g.rungMS[:])
	readSparse(r, g.startup[:])
}

type rollupScope struct {
	kind uint8
	name string
	g    sum
	ccv  int64
}

// decodeRollup decodes a rollup's value; each scope goes to fn.
func decodeRollup(value []byte, fn func(*rollupScope)) error {
	r := &reader{b: value}
	if v := r.byte(); r.err == nil && v != rollupVersion {
		return errPartial("version")
	}
	n := r.count(maxPartialScopes)
	var s rollupScope
	for range n {
		s = rollupScope{kind: r.byte(), name: r.string()}
		if s.kind != scopeOverall && s.kind != scopeStream && s.kind != scopeSource {
			r.fail("scope")
		}
		r.sum(&s.g)
		s.ccv = r.varint()
		if r.err != nil {
			return r.err
		}
		fn(&s)
	}
	if r.err == nil && len(r.b) != 0 {
		return errPartial("trailing")
	}
	return r.err
}

// Rollups is a window of whole minutes drawn from the rollups topic: Apply
// takes its records in any order across partitions and in offset order
// within one (a key is always in one partition), and the newest record of
// a minute replaces an older one. It keeps the records' bytes, not their
// decoded sums, so a day costs its 1,440 records at most.
//
// A Rollups is used from one goroutine.
type Rollups struct {
	from, to   int64 // first and last minute (Unix s of their starts)
	maxStreams int
	minutes    map[int64][]byte
}

// NewRollups returns an empty window of the minutes that start from from
// to to (Unix s, multiples of RollupStep); at most maxStreams streams get
// a series (the first seen; default 20, as Options.MaxStreams).
func NewRollups(from, to int64, maxStreams int) *Rollups {
	if maxStreams <= 0 {
		maxStreams = 20 // Options.MaxStreams's default
	}
	return &Rollups{from: from, to: to, maxStreams: maxStreams, minutes: map[int64][]byte{}}
}

// Apply takes one record of the rollups topic. A bad one is an error
// (ReasonOf says why) and changes nothing.
func (w *Rollups) Apply(key, value []byte) error {
	m, err := parseRollupKey(key)
	if err != nil {
		return err
	}
	if err := decodeRollup(value, func(*rollupScope) {}); err != nil {
		return err
	}
	if m >= w.from && m <= w.to {
		w.minutes[m] = append([]byte(nil), value...)
	}
	return nil
}

// Series returns the window's series, one point a minute (SeriesSet.Start
// is the first minute's start, ResolutionS RollupStep): events by type,
// attempts and starts as per-second averages over the minute, viewers at
// its end, percentiles and ratios over the whole minute. A minute no
// record was read for is null everywhere; in a minute that has one, a
// stream or source absent from it counts zero.
func (w *Rollups) Series() SeriesSet {
	n := int((w.to-w.from)/RollupStep + 1)
	types := event.Types()
	mk := func() Series {
		s := Series{EventsByType: map[string]Nums{}}
		arrays := []*Nums{&s.Attempts, &s.SPS, &s.ConcurrentViewers, &s.StartupP50MS, &s.StartupP95MS, &s.RebufferPct,
			&s.AvgBitrateKbps, &s.StartFailurePct, &s.ExitBeforeStartPct, &s.PlaybackFailurePct}
		for _, t := range types {
			a := make(Nums, n)
			s.EventsByType[t.String()] = a
			arrays = append(arrays, &a)
		}
		for _, p := range arrays {
			if *p == nil {
				*p = make(Nums, n)
			}
			for i := range *p {
				(*p)[i] = float64(Null)
			}
		}
		// Counts are zero, not unknown, in the minutes that have a record.
		for m := range w.minutes {
			i := (m - w.from) / RollupStep
			s.Attempts[i], s.SPS[i], s.ConcurrentViewers[i] = 0, 0, 0
			for _, t := range types {
				s.EventsByType[t.String()][i] = 0
			}
		}
		return s
	}
	out := SeriesSet{Start: w.from, Length: n, SmoothingS: RollupStep, ResolutionS: RollupStep,
		Overall: mk(), Streams: map[string]Series{}, Sources: map[string]SourceSeries{}}
	type src struct {
		s    Series
		same bool // so far every minute's sums and viewers are the overall ones
	}
	sources := map[string]*src{}
	for m, v := range w.minutes {
		i := int((m - w.from) / RollupStep)
		var overall rollupScope
		seen := map[string]bool{}
		_ = decodeRollup(v, func(x *rollupScope) {
			var s Series
			switch x.kind {
			case scopeOverall:
				overall = *x
				s = out.Overall
			case scopeStream:
				var ok bool
				if s, ok = out.Streams[x.name]; !ok {
					if len(out.Streams) >= w.maxStreams {
						return
					}
					s = mk()
					out.Streams[x.name] = s
				}
			case scopeSource:
				c := sources[x.name]
				if c == nil {
					if len(sources) >= len(sourceNames) {
						return
					}
					c = &src{s: mk(), same: true}
					sources[x.name] = c
				}
				seen[x.name] = true
				c.same = c.same && x.g == overall.g && x.ccv == overall.ccv
				s = c.s
			}
			point(&s, i, &x.g, x.ccv, types)
		})
		for name, c := range sources {
			if !seen[name] && (overall.g.events() > 0 || overall.ccv != 0) {
				c.same = false
			}
		}
	}
	for name, c := range sources {
		if c.same {
			out.Sources[name] = SourceSeries{Overall: true}
		} else {
			out.Sources[name] = SourceSeries{Series: c.s}
		}
	}
	return out
}

// point sets point i of s from a minute's sums and viewers.
func point(s *Series, i int, g *sum, ccv int64, types []event.Type) {
	for _, t := range types {
		s.EventsByType[t.String()][i] = float64(g.byType[t]) / RollupStep
	}
	s.Attempts[i] = float64(g.attempts) / RollupStep
	s.SPS[i] = float64(g.plays) / RollupStep
	s.ConcurrentViewers[i] = float64(ccv)
	var p50, p95, vsf, ebvs, pf, rebuf, br Num
	figures(g, &p50, &p95, &vsf, &ebvs, &pf, &rebuf, &br)
	s.StartupP50MS[i], s.StartupP95MS[i] = float64(p50), float64(p95)
	s.StartFailurePct[i], s.ExitBeforeStartPct[i], s.PlaybackFailurePct[i] = float64(vsf), float64(ebvs), float64(pf)
	s.RebufferPct[i], s.AvgBitrateKbps[i] = float64(rebuf), float64(br)
}
