package aggregate

import "strconv"

// mergeState is what a merged Aggregator keeps besides its scopes: the
// partials it has applied, to take one away when its key comes again,
// and the newest state of each raw partition.
type mergeState struct {
	applied map[string]applied // by key: the partials within the window
	oldest  int64              // no applied partial is older than this second
	parts   map[string]*partState
	titles  map[string]int64 // viewers per title, summed over the partitions
	tracked uint64
	evicted uint64
}

type applied struct {
	sec   int64
	value []byte
}

// partState is the newest state a raw partition's owner published.
type partState struct {
	sec     int64
	lastTS  int64
	tracked uint64
	evicted uint64
	ccv     []scopeViewers
	titles  []titleCount
}

type scopeViewers struct {
	s   *scope
	gen uint32
	ccv int64
	by  []sourceCount
}

// NewMerged returns an Aggregator fed by partials (ApplyPartial) instead of
// records: the merge mode of the fan-out. Its Snapshot, QoE, Streams and
// ConcurrentViewers answer as the single-process fan-out's would over the
// same records.
func NewMerged(opts Options) *Aggregator {
	a := New(opts)
	a.merged = &mergeState{applied: map[string]applied{}, oldest: noSecond, parts: map[string]*partState{}, titles: map[string]int64{}}
	return a
}

// ApplyPartial merges one record of the aggregates topic. A partial with
// the key of one applied before replaces it. A bad value is an error (the
// caller counts and skips it, ReasonOf says why); a partial older than the
// window is ignored.
func (a *Aggregator) ApplyPartial(key, value []byte) error {
	p, err := decodePartial(key, value)
	if err != nil {
		return err
	}
	m := a.merged
	a.mu.Lock()
	defer a.mu.Unlock()
	newest := a.overall.upTo
	if p.sec <= newest-int64(a.slots) {
		return nil // older than the window
	}
	k := string(key)
	if old, ok := m.applied[k]; ok {
		// Decoded before, so it decodes again.
		if op, err := decodePartial(key, old.value); err == nil {
			a.applyCounts(op, -1)
		}
	}
	a.applyCounts(p, 1)
	m.applied[k] = applied{p.sec, append([]byte(nil), value...)}
	if p.latest {
		a.applyState(p)
	}
	a.forgetOld()
	return nil
}

// applyCounts adds or takes away the counts of a partial.
func (a *Aggregator) applyCounts(p *partial, sign int) {
	a.tick++
	if sign > 0 {
		a.lastTS = max(a.lastTS, p.lastTS)
	}
	for i := range p.scopes {
		ps := &p.scopes[i]
		sc := a.mergedScope(ps.kind, ps.name)
		if sc == nil {
			continue
		}
		ev := ps.b.events()
		if sign > 0 {
			sc.events += ev
			sc.lastTS = max(sc.lastTS, ps.lastTS)
		} else {
			sc.events -= min(ev, sc.events)
		}
		if ps.kind == scopeOverall {
			if sign > 0 {
				a.total += ev
			} else {
				a.total -= min(ev, a.total)
			}
		}
		if b := sc.bucket(p.sec); b != nil {
			b.add(&ps.b, sign)
		}
	}
}

// mergedScope is the scope a partial's scope adds into; nil for a stream
// beyond the cap or a source the contract does not know.
func (a *Aggregator) mergedScope(kind uint8, name string) *scope {
	switch {
	case kind == scopeOverall:
		return a.overall
	case kind == scopeStream:
		s := a.streamScope(name)
		if s != nil {
			s.used = a.tick
		}
		return s
	case kind == scopeSource:
		i, ok := ParseSource(name)
		if !ok {
			return nil
		}
		return a.sourceScope(uint8(i))
	default:
		return a.dimScope(int(kind-scopeDim), name)
	}
}

// applyState replaces the state (viewers, titles, sessions) of the
// partial's partition if the partial is its newest.
func (a *Aggregator) applyState(p *partial) {
	m := a.merged
	pk := p.topic + "/" + strconv.Itoa(int(p.part))
	ps := m.parts[pk]
	if ps == nil {
		ps = &partState{sec: noSecond}
		m.parts[pk] = ps
	}
	if p.sec < ps.sec {
		return
	}
	for _, v := range ps.ccv {
		if v.s.gen != v.gen {
			continue // a stream scope given to another stream since
		}
		v.s.ccv -= v.ccv
		for i, c := range v.by {
			if i < len(v.s.bySource) {
				b := &v.s.bySource[i]
				b.ccv -= c.ccv
				b.events -= min(c.events, b.events)
			}
		}
	}
	for _, t := range ps.titles {
		a.addTitle(t.id, -t.ccv)
	}
	m.tracked -= ps.tracked
	m.evicted -= ps.evicted

	ps.sec, ps.lastTS, ps.tracked, ps.evicted = p.sec, p.lastTS, p.tracked, p.evicted
	ps.ccv = ps.ccv[:0]
	for i := range p.scopes {
		x := &p.scopes[i]
		sc := a.mergedScope(x.kind, x.name)
		if sc == nil {
			continue
		}
		sc.ccv += x.ccv
		v := scopeViewers{s: sc, gen: sc.gen, ccv: x.ccv}
		if x.kind == scopeStream && len(x.by) > 0 {
			v.by = x.by
			for i, c := range x.by {
				if i < len(sc.bySource) {
					b := &sc.bySource[i]
					b.ccv += c.ccv
					b.events += c.events
					b.lastTS = max(b.lastTS, c.lastTS)
				}
			}
		}
		ps.ccv = append(ps.ccv, v)
	}
	ps.titles = p.titles
	for _, t := range p.titles {
		a.addTitle(t.id, t.ccv)
	}
	m.tracked += p.tracked
	m.evicted += p.evicted
}

func (a *Aggregator) addTitle(id string, d int64) {
	m := a.merged
	v := m.titles[id] + d
	if v <= 0 {
		delete(m.titles, id)
		delete(a.titles, id)
		return
	}
	m.titles[id] = v
	t := a.titles[id]
	if t == nil {
		t = &title{id: id}
		a.titles[id] = t
	}
	t.ccv = int32(min(v, 1<<31-1))
}

// forgetOld drops the applied partials that left the window, once a
// second: they can no longer be replaced into a ring slot.
func (a *Aggregator) forgetOld() {
	m := a.merged
	cut := a.overall.upTo - int64(a.slots)
	if cut <= m.oldest {
		return
	}
	m.oldest = cut
	for k, v := range m.applied {
		if v.sec <= cut {
			delete(m.applied, k)
		}
	}
}

// sessionStats is the snapshot's sessions: this process's, or in merge
// mode the sums of the partitions' owners.
func (a *Aggregator) sessionStats() SessionStats {
	if m := a.merged; m != nil {
		return SessionStats{Tracked: int(m.tracked), Max: a.opts.MaxSessions, Evicted: m.evicted}
	}
	return SessionStats{Tracked: len(a.sessions), Max: a.opts.MaxSessions, Evicted: a.evicted}
}
