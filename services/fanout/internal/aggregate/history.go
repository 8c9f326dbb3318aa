package aggregate

import (
	"slices"
	"strconv"
)

// MaxHistorySpan is the longest window a History draws at one-second
// resolution: an hour (docs/tier.md, "History").
const MaxHistorySpan = 3600

// History is a past window of the series rebuilt from the partials of the
// aggregates topic (issue 17): the merged Aggregator's code with rings
// long enough for the window, so every point is the one the live page
// drew, or would have drawn, for that second.
//
// Apply takes the partials read back from Kafka in any order across
// partitions and in offset order within one: a partial with the key of
// one applied before replaces it (the newest wins, as in ApplyPartial).
// Partials of seconds before the window's first smoothed second are
// skipped; those after it (read to catch republished ones) only give the
// viewers, counted back from the newest state of each partition as the
// live merge does.
//
// A History is used from one goroutine.
type History struct {
	a            *Aggregator
	lo, from, to int64
	// after holds the newest value of each partial after the window, by
	// key: their viewer changes are taken away from the newest state.
	after map[string][]byte
	// state is the newest partial of each raw partition that carried the
	// partition's state (latest), by "topic/partition".
	state map[string]*partial
}

// NewHistory returns an empty History of the seconds [from, to] (Unix s);
// it applies the partials of [from − Smoothing + 1, to], whose seconds the
// first points' smoothing needs. The caller bounds to − from.
func NewHistory(opts Options, from, to int64) *History {
	opts.Registerer, opts.Export = nil, ExportOptions{}
	lo := from - Smoothing + 1
	a := newAggregator(opts, int(to-lo+2))
	a.merged = &mergeState{applied: map[string]applied{}, oldest: noSecond, parts: map[string]*partState{}, titles: map[string]int64{}}
	return &History{a: a, lo: lo, from: from, to: to, after: map[string][]byte{}, state: map[string]*partial{}}
}

// PartialSecond is the second of a partial's key; false for a key that
// is not one.
func PartialSecond(key []byte) (int64, bool) {
	_, _, sec, err := parseKey(key)
	return sec, err == nil
}

// Apply takes one record of the aggregates topic. A bad one is an error
// (ReasonOf says why), and changes nothing.
func (h *History) Apply(key, value []byte) error {
	_, _, sec, err := parseKey(key)
	if err != nil {
		return err
	}
	if sec < h.lo {
		return nil
	}
	// Without the titles: the history draws no top titles, and they are
	// most of a partial's bytes and of the time to decode it.
	p, n, err := decodePartialN(key, value, false)
	if err != nil {
		return err
	}
	value = value[:n]
	if p.latest {
		pk := p.topic + "/" + strconv.Itoa(int(p.part))
		if s := h.state[pk]; s == nil || p.sec >= s.sec {
			h.state[pk] = p
		}
	}
	k := string(key)
	if sec > h.to {
		h.after[k] = append([]byte(nil), value...)
		return nil
	}
	a := h.a
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.merged
	if old, ok := m.applied[k]; ok {
		if op, _, err := decodePartialN(key, old.value, false); err == nil {
			a.applyCounts(op, -1)
		}
	}
	a.applyCounts(p, 1)
	m.applied[k] = applied{p.sec, append([]byte(nil), value...)}
	return nil
}

// Series returns the series of the window: overall, per stream seen in
// the 15 minutes before its end (as the live page lists them) and per
// source, the shape of a snapshot's.
func (h *History) Series() SeriesSet {
	a := h.a
	a.mu.Lock()
	h.viewers()
	var main scopeCopy
	var streams, sources []scopeCopy
	recent := (h.to + 1 - int64(seriesPoints)) * 1000
	a.overall.advance(h.to)
	main = copyScope(a.overall, h.lo, h.to, h.from)
	for _, st := range a.streams {
		st.advance(h.to)
		if st.lastTS >= recent {
			streams = append(streams, copyScope(st, h.lo, h.to, h.from))
		}
	}
	for _, sc := range a.sources {
		if sc != nil && sc.lastTS >= recent {
			sc.advance(h.to)
			sources = append(sources, copyScope(sc, h.lo, h.to, h.from))
		}
	}
	a.mu.Unlock()

	s := SeriesSet{Start: h.from, Length: int(h.to - h.from + 1), SmoothingS: Smoothing,
		Overall: main.series(h.from, h.to), Streams: map[string]Series{}, Sources: map[string]SourceSeries{}}
	for i := range streams {
		s.Streams[streams[i].name] = streams[i].series(h.from, h.to)
	}
	for i := range sources {
		c := &sources[i]
		if slices.Equal(c.b, main.b) && slices.Equal(c.ccv, main.ccv) {
			s.Sources[c.name] = SourceSeries{Overall: true}
		} else {
			s.Sources[c.name] = SourceSeries{Series: c.series(h.from, h.to)}
		}
	}
	return s
}

// viewers sets each series scope's viewers to those at the end of the
// window: per raw partition, the viewers of its newest state, less the
// changes of the seconds after the window up to that state, or plus those
// of the window's seconds after it. copyScope counts the series back
// from there, as in the live merge. A partition with no state among the
// partials read counts from zero. Called with the lock held.
func (h *History) viewers() {
	a := h.a
	for _, st := range h.state {
		add := func(p *partial, sign int64, state bool) {
			for i := range p.scopes {
				x := &p.scopes[i]
				if x.kind != scopeOverall && x.kind != scopeStream && x.kind != scopeSource {
					continue // no series
				}
				sc := a.mergedScope(x.kind, x.name)
				if sc == nil {
					continue
				}
				if state {
					sc.ccv += x.ccv
				} else {
					sc.ccv += sign * int64(x.b.ccvDelta)
				}
			}
		}
		add(st, 1, true)
		for sec := h.to + 1; sec <= st.sec; sec++ {
			k := PartialKey(st.topic, st.part, sec)
			if v, ok := h.after[string(k)]; ok {
				if p, _, err := decodePartialN(k, v, false); err == nil {
					add(p, -1, false)
				}
			}
		}
		for sec := st.sec + 1; sec <= h.to; sec++ {
			k := PartialKey(st.topic, st.part, sec)
			if v, ok := a.merged.applied[string(k)]; ok {
				if p, _, err := decodePartialN(k, v.value, false); err == nil {
					add(p, 1, false)
				}
			}
		}
	}
}
