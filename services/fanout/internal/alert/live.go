package alert

import (
	"math"
	"time"

	"playpulse.dev/services/fanout/internal/aggregate"
)

// Aggregate is what Live reads of the fan-out's aggregator.
type Aggregate interface {
	QoE(stream string, from, to int64) (aggregate.QoE, bool)
	ConcurrentViewers(stream string, sec int64, now time.Time) (int64, bool)
	Streams(now time.Time) []aggregate.StreamInfo
	Cells([]aggregate.Cell, []aggregate.StartupHist) ([]aggregate.Cell, []aggregate.StartupHist)
}

// Live is the fan-out's Source. A rule's figure is the aggregator's own
// window, the dashboard's; a breakdown comes from its Prometheus cells
// (stream × source × device × CDN × country), sampled at each Sample: over
// a window it is the difference of the cells at both ends, a cell that
// was dropped in between left out, as rate() does with a series that ends.
//
// Samples are kept every Sample for the last Recent and one a minute
// before that, back to Keep: a rule's window needs the first, a viewers
// baseline the second. With the fan-out's bounds (FANOUT_MAX_STREAMS
// streams, 5 devices, top-N CDNs and countries) that is a few MB at most.
type Live struct {
	agg          Aggregate
	recent, keep time.Duration
	samples      []sample // oldest first
	now          time.Time
}

type cellKey struct{ stream, source, device, cdn, country string }
type histKey struct{ stream, source, device, cdn string }

type sample struct {
	at    time.Time
	cells map[cellKey]aggregate.Cell
	hists map[histKey]aggregate.StartupHist
}

// NewLive returns a Live over agg keeping samples for the rules given: the
// longest window (plus a minute) at full rate, the longest baseline plus
// window at one a minute.
func NewLive(agg Aggregate, rules []Rule) *Live {
	l := &Live{agg: agg}
	l.SetRules(rules)
	return l
}

// SetRules sets how far back samples are kept for the rules given.
func (l *Live) SetRules(rules []Rule) {
	l.recent, l.keep = 2*time.Minute, 0
	for _, r := range rules {
		r = r.withDefaults()
		l.recent = max(l.recent, r.Window+time.Minute)
		l.keep = max(l.keep, r.Baseline+r.Window+time.Minute)
	}
	l.keep = max(l.keep, l.recent)
}

// Sample records the cells as of now; call it before each Evaluate.
func (l *Live) Sample(now time.Time) {
	cells, hists := l.agg.Cells(nil, nil)
	s := sample{at: now, cells: make(map[cellKey]aggregate.Cell, len(cells)), hists: make(map[histKey]aggregate.StartupHist, len(hists))}
	for _, c := range cells {
		s.cells[cellKey{c.Stream, c.Source, c.Device, c.CDN, c.Country}] = c
	}
	for _, h := range hists {
		s.hists[histKey{h.Stream, h.Source, h.Device, h.CDN}] = h
	}
	l.now = now
	l.samples = append(l.samples, s)
	// Thin: beyond recent, the first sample of each minute; beyond keep,
	// nothing.
	kept := l.samples[:0]
	for i, x := range l.samples {
		age := now.Sub(x.at)
		switch {
		case age > l.keep:
		case age > l.recent && i > 0 && x.at.Truncate(time.Minute).Equal(l.samples[i-1].at.Truncate(time.Minute)):
		default:
			kept = append(kept, x)
		}
	}
	clear(l.samples[len(kept):])
	l.samples = kept
}

// Streams implements Source.
func (l *Live) Streams() []string {
	var out []string
	for _, s := range l.agg.Streams(l.now) {
		out = append(out, s.Name)
	}
	return out
}

// Figures implements Source: the aggregator's figures of the complete
// seconds of [from, to), the viewers at the last of them.
func (l *Live) Figures(stream string, from, to time.Time) (Figures, bool) {
	last := to.Unix() - 1
	q, ok := l.agg.QoE(stream, from.Unix(), last)
	if !ok {
		return Figures{}, false
	}
	ccv, _ := l.agg.ConcurrentViewers(stream, last, l.now)
	return Figures{
		Plays: float64(q.Plays), StartFailures: float64(q.StartFailures), ExitsBeforeStart: float64(q.ExitsBeforeStart),
		PlaybackFailures: float64(q.PlaybackFailures), ViewsEnded: float64(q.ViewsEnded),
		PlayS: float64(q.PlayTimeS), StallS: float64(q.StallTimeS),
		StartupP95S: float64(q.StartupP95MS) / 1000, Viewers: float64(ccv),
	}, true
}

// at returns the last sample taken at or before t, nil if none.
func (l *Live) at(t time.Time) *sample {
	var s *sample
	for i := range l.samples {
		if l.samples[i].at.After(t) {
			break
		}
		s = &l.samples[i]
	}
	return s
}

// Breakdown implements Source: the cells' differences between the samples
// at from and to, by the dimension's value; the viewers are those at to.
// Startup p95 by CDN and device only (the histograms have no country).
func (l *Live) Breakdown(stream string, dim Dim, from, to time.Time) map[string]Figures {
	a, b := l.at(from), l.at(to)
	if a == nil || b == nil || a == b {
		return nil
	}
	value := func(device, cdn, country string) string {
		switch dim {
		case DimCDN:
			return cdn
		case DimDevice:
			return device
		}
		return country
	}
	out := map[string]Figures{}
	for k, c := range b.cells {
		if stream != "" && k.stream != stream {
			continue
		}
		v := value(k.device, k.cdn, k.country)
		f := out[v]
		f.Viewers += float64(c.Viewers)
		if p, ok := a.cells[k]; ok {
			d := func(now, then uint64) float64 { return float64(now - min(now, then)) }
			f.Plays += d(c.Plays, p.Plays)
			f.StartFailures += d(c.StartFailures, p.StartFailures)
			f.ExitsBeforeStart += d(c.ExitsBeforeStart, p.ExitsBeforeStart)
			f.PlaybackFailures += d(c.PlaybackFailures, p.PlaybackFailures)
			f.ViewsEnded += d(c.ViewsEnded, p.ViewsEnded)
			f.PlayS += d(c.PlayMS, p.PlayMS) / 1000
			f.StallS += d(c.StallMS, p.StallMS) / 1000
		}
		out[v] = f
	}
	buckets := map[string][]uint64{}
	if dim != DimCountry {
		for k, h := range b.hists {
			p, ok := a.hists[k]
			if stream != "" && k.stream != stream || !ok {
				continue
			}
			v := value(k.device, k.cdn, "")
			sum := buckets[v]
			if sum == nil {
				sum = make([]uint64, len(h.Buckets))
			}
			for i := range h.Buckets {
				sum[i] += h.Buckets[i] - min(h.Buckets[i], p.Buckets[i])
			}
			buckets[v] = sum
		}
	}
	for v, f := range out {
		f.StartupP95S = quantile(0.95, buckets[v])
		out[v] = f
	}
	return out
}

// quantile is the q-quantile of a startup histogram's bucket counts,
// interpolated linearly inside its bucket as histogram_quantile does (the
// +Inf bucket answers its lower bound); NaN when it is empty.
func quantile(q float64, counts []uint64) float64 {
	var total uint64
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	var cum float64
	for i, n := range counts {
		if cum+float64(n) >= rank && n > 0 {
			if i == len(aggregate.StartupBuckets) {
				return aggregate.StartupBuckets[i-1]
			}
			lo := 0.0
			if i > 0 {
				lo = aggregate.StartupBuckets[i-1]
			}
			return lo + (aggregate.StartupBuckets[i]-lo)*(rank-cum)/float64(n)
		}
		cum += float64(n)
	}
	return aggregate.StartupBuckets[len(aggregate.StartupBuckets)-1]
}
