package aggregate

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"playpulse.dev/services/playback/event"
)

// Num is a float that encodes NaN as JSON null and others compactly.
type Num float64

// Null is the undefined value (a ratio of 0/0, a percentile of nothing).
var Null = Num(math.NaN())

// IsNull reports whether n is undefined.
func (n Num) IsNull() bool { return math.IsNaN(float64(n)) }

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) { return appendNum(nil, float64(n)), nil }

// appendNum writes v with 4 significant digits (integers from 1000 on),
// which is more than any chart or KPI shows.
func appendNum(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	a := math.Abs(v)
	if a >= 1000 || v == math.Trunc(v) {
		return strconv.AppendInt(b, int64(math.Round(v)), 10)
	}
	prec := 3 - int(math.Floor(math.Log10(a)))
	prec = min(max(prec, 0), 6)
	b = strconv.AppendFloat(b, v, 'f', prec, 64)
	if prec > 0 { // trailing zeros say nothing
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
		if b[len(b)-1] == '.' {
			b = b[:len(b)-1]
		}
	}
	return b
}

// Nums is a series of Num, encoded without reflection.
type Nums []float64

// MarshalJSON implements json.Marshaler.
func (s Nums) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+len(s)*4)
	b = append(b, '[')
	for i, v := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNum(b, v)
	}
	return append(b, ']'), nil
}

// QoE is the figures of one scope over the KPI window; docs/protocol.md
// and docs/metrics.md define every field.
type QoE struct {
	ConcurrentViewers  int64             `json:"concurrent_viewers"`
	EventsPerSecond    Num               `json:"events_per_second"`
	EventsByType       map[string]uint64 `json:"events_by_type"`
	Attempts           uint64            `json:"attempts"`
	Plays              uint64            `json:"plays"`
	SPS                Num               `json:"sps"`
	StartupP50MS       Num               `json:"startup_p50_ms"`
	StartupP95MS       Num               `json:"startup_p95_ms"`
	StartFailures      uint64            `json:"start_failures"`
	ExitsBeforeStart   uint64            `json:"exits_before_start"`
	StartFailurePct    Num               `json:"start_failure_pct"`
	ExitBeforeStartPct Num               `json:"exit_before_start_pct"`
	PlaybackFailures   uint64            `json:"playback_failures"`
	ViewsEnded         uint64            `json:"views_ended"`
	PlaybackFailurePct Num               `json:"playback_failure_pct"`
	PlayTimeS          Num               `json:"play_time_s"`
	StallTimeS         Num               `json:"stall_time_s"`
	RebufferPct        Num               `json:"rebuffer_pct"`
	Stalls             uint64            `json:"stalls"`
	StallsPerHour      Num               `json:"stalls_per_hour"`
	AvgBitrateKbps     Num               `json:"avg_bitrate_kbps"`
	TimeByBitrateS     map[string]Num    `json:"time_by_bitrate_s"`
}

// Source says where the data comes from; the server fills it in.
type Source struct {
	State      string `json:"state"` // connecting, catching_up, live, stale
	Since      int64  `json:"since"` // Unix ms
	Message    string `json:"message"`
	Partitions int    `json:"partitions"`
	Lag        int64  `json:"lag"`
}

// TitleViewers is one entry of the top titles.
type TitleViewers struct {
	MovieID           string `json:"movie_id"`
	ConcurrentViewers int64  `json:"concurrent_viewers"`
}

// SessionStats describes the session table.
type SessionStats struct {
	Tracked int    `json:"tracked"`
	Max     int    `json:"max"`
	Evicted uint64 `json:"evicted"`
}

// Series is one scope's per-second history (docs/protocol.md).
type Series struct {
	EventsByType       map[string]Nums `json:"events_by_type"`
	Attempts           Nums            `json:"attempts"`
	SPS                Nums            `json:"sps"`
	ConcurrentViewers  Nums            `json:"concurrent_viewers"`
	StartupP50MS       Nums            `json:"startup_p50_ms"`
	StartupP95MS       Nums            `json:"startup_p95_ms"`
	RebufferPct        Nums            `json:"rebuffer_pct"`
	AvgBitrateKbps     Nums            `json:"avg_bitrate_kbps"`
	StartFailurePct    Nums            `json:"start_failure_pct"`
	ExitBeforeStartPct Nums            `json:"exit_before_start_pct"`
	PlaybackFailurePct Nums            `json:"playback_failure_pct"`
}

// SeriesSet is the series of every scope, aligned on Start.
type SeriesSet struct {
	Start      int64 `json:"start"`
	Length     int   `json:"length"`
	SmoothingS int   `json:"smoothing_s"`
	// ResolutionS is the seconds of one point when it is not 1: 60 for
	// the minute rollups of /api/history?resolution=60.
	ResolutionS int                     `json:"resolution_s,omitempty"`
	Overall     Series                  `json:"overall"`
	Streams     map[string]Series       `json:"streams"`
	Sources     map[string]SourceSeries `json:"sources"`
}

// SourceSeries is the series of one source, or the string "overall" when
// they are exactly the overall series (every event, and every change of
// viewers, of the window was this source's: a fan-out that sees one
// source only sends its series once).
type SourceSeries struct {
	Overall bool
	Series
}

// MarshalJSON implements json.Marshaler.
func (s SourceSeries) MarshalJSON() ([]byte, error) {
	if s.Overall {
		return []byte(`"overall"`), nil
	}
	return json.Marshal(s.Series)
}

// Scope says which slice of the events a snapshot covers; nil for all.
type Scope struct {
	Source string `json:"source"`
}

// Snapshot is what the dashboard draws; docs/protocol.md describes it.
type Snapshot struct {
	Type         string            `json:"type"` // always "snapshot"
	Full         bool              `json:"full"`
	Time         int64             `json:"time"`   // Unix ms
	Second       int64             `json:"second"` // last complete second, Unix s
	WindowS      int               `json:"window_s"`
	Stale        bool              `json:"stale"`
	Source       Source            `json:"source"`
	EventsTotal  uint64            `json:"events_total"`
	EventsPerSec Num               `json:"events_per_second"` // over the last 10 complete seconds
	ByType       map[string]uint64 `json:"by_type_10s"`
	LatestTS     int64             `json:"latest_kafka_ts"` // Unix ms of the newest record, 0 if none
	Scope        *Scope            `json:"scope,omitempty"`
	Streams      []string          `json:"streams"`
	Sources      []string          `json:"sources"`
	Overall      QoE               `json:"overall"`
	ByStream     map[string]QoE    `json:"by_stream"`
	BySource     map[string]QoE    `json:"by_source"`
	ByDevice     map[string]QoE    `json:"by_device"`
	ByCDN        map[string]QoE    `json:"by_cdn"`
	ByCountry    map[string]QoE    `json:"by_country"`
	TopTitles    []TitleViewers    `json:"top_titles"`
	Sessions     SessionStats      `json:"sessions"`
	Series       SeriesSet         `json:"series"`
	// Alerts are the pending and firing alerts of the fan-out's rules
	// (internal/alert), encoded by the app; absent without rules.
	Alerts json.RawMessage `json:"alerts,omitempty"`
}

// JSON encodes a snapshot.
func (s *Snapshot) JSON() []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // only our own types: cannot fail
	}
	return b
}

// StreamInfo is one entry of /api/streams.
type StreamInfo struct {
	Name              string `json:"name"`
	EventsTotal       uint64 `json:"events_total"`
	LastKafkaTS       int64  `json:"last_kafka_ts"`
	ConcurrentViewers int64  `json:"concurrent_viewers"`
}

// scopeCopy is what a snapshot needs of a scope, copied under the lock so
// that the computing happens outside it.
type scopeCopy struct {
	name   string
	ccvNow int64
	from   int64    // second of b[0]
	b      []counts // seconds from … to; empty seconds zeroed
	ccv    []int64  // CCV at the end of seconds seriesFrom … to (series scopes)
}

// copyScope copies the seconds from … to of s; a nil s (a source never
// seen) copies as all zeros.
func copyScope(s *scope, from, to, seriesFrom int64) scopeCopy {
	if s == nil {
		c := scopeCopy{from: from, b: make([]counts, to-from+1)}
		if seriesFrom <= to {
			c.ccv = make([]int64, to-seriesFrom+1)
		}
		return c
	}
	c := scopeCopy{name: s.name, ccvNow: s.ccv, from: from, b: make([]counts, to-from+1)}
	n := int64(len(s.ring))
	for sec := from; sec <= to; sec++ {
		if b := &s.ring[sec%n]; b.sec == sec {
			c.b[sec-from] = *b
		}
	}
	if s.series && seriesFrom <= to {
		// Counted back from the viewers now: a merged scope (NewMerged)
		// knows them and the changes of the seconds it holds, not what
		// came before its first partial. For a scope fed by records it is
		// the same as counting up from ccvBase.
		c.ccv = make([]int64, to-seriesFrom+1)
		cum := s.ccv
		for sec := s.upTo; sec >= seriesFrom && sec > s.upTo-n; sec-- {
			if sec <= to {
				c.ccv[sec-seriesFrom] = cum
			}
			if b := &s.ring[sec%n]; b.sec == sec {
				cum -= int64(b.ccvDelta)
			}
		}
		for sec := min(s.upTo-n, to); sec >= seriesFrom; sec-- {
			c.ccv[sec-seriesFrom] = cum // older than the ring: no change known
		}
	}
	return c
}

// window sums the seconds [from, to] of a copy.
func (c *scopeCopy) window(from, to int64) sum {
	var g sum
	for sec := max(from, c.from); sec <= to && sec-c.from < int64(len(c.b)); sec++ {
		g.add(&c.b[sec-c.from], 1)
	}
	return g
}

// Snapshot returns the figures as of now; the second in progress is left
// out. A full snapshot carries 15 minutes of series, a periodic one the
// last PeriodicPoints seconds.
func (a *Aggregator) Snapshot(now time.Time, full bool) *Snapshot {
	return a.snapshot(now, full, -1)
}

// SourceSnapshot is the snapshot of one source's events (source is one
// of Sources; false otherwise): overall, series.overall, the event counts
// and rates and the newest record are the source's, and streams lists the
// streams that carried it in the last 15 minutes. The breakdowns (by
// stream, source, device, CDN and country, top titles, the per-stream
// series) are nil: they are kept over all sources only.
func (a *Aggregator) SourceSnapshot(now time.Time, full bool, source string) (*Snapshot, bool) {
	src, ok := ParseSource(source)
	if !ok {
		return nil, false
	}
	return a.snapshot(now, full, src), true
}

// snapshot is Snapshot of everything (src < 0) or of one source.
func (a *Aggregator) snapshot(now time.Time, full bool, src int) *Snapshot {
	nowMS := now.UnixMilli()
	nowSec := floorSec(nowMS)
	second := nowSec - 1
	points := PeriodicPoints
	if full {
		points = seriesPoints
	}
	seriesFrom := second - int64(points) + 1
	copyFrom := min(seriesFrom-Smoothing+1, second-KPIWindow+1)
	recent := (nowSec - int64(seriesPoints)) * 1000 // scopes not seen since are left out

	s := &Snapshot{Type: "snapshot", Full: full, Time: nowMS, Second: second, WindowS: KPIWindow}
	var main scopeCopy
	var streams, sources []scopeCopy
	var dims [numDims][]scopeCopy
	a.mu.Lock()
	a.expire(nowMS)
	if src < 0 {
		a.overall.advance(nowSec)
		main = copyScope(a.overall, copyFrom, second, seriesFrom)
		for _, st := range a.streams {
			st.advance(nowSec)
			if st.lastTS < recent {
				continue
			}
			streams = append(streams, copyScope(st, copyFrom, second, seriesFrom))
		}
		for _, sc := range a.sources {
			if sc == nil {
				continue
			}
			sc.advance(nowSec)
			if sc.lastTS < recent {
				continue
			}
			sources = append(sources, copyScope(sc, copyFrom, second, seriesFrom))
		}
		for d := range a.dims {
			for _, ds := range a.dims[d] {
				ds.advance(nowSec)
				dims[d] = append(dims[d], copyScope(ds, second-KPIWindow+1, second, second+1))
			}
		}
		s.EventsTotal = a.total
		s.LatestTS = a.lastTS
		s.TopTitles = a.topTitles(10)
	} else {
		s.Scope = &Scope{Source: sourceNames[src]}
		sc := a.sources[src]
		if sc != nil {
			sc.advance(nowSec)
			s.EventsTotal, s.LatestTS = sc.events, sc.lastTS
		}
		main = copyScope(sc, copyFrom, second, seriesFrom)
		s.Streams = []string{}
		for _, st := range a.streams {
			if st.bySource[src].lastTS >= recent {
				s.Streams = append(s.Streams, st.name)
			}
		}
		slices.Sort(s.Streams)
	}
	s.Sessions = a.sessionStats()
	a.mu.Unlock()

	kpiFrom := second - KPIWindow + 1
	s.Overall = main.qoe(kpiFrom, second)
	last10 := main.window(second-9, second)
	s.EventsPerSec = Num(float64(last10.events()) / 10)
	s.ByType = byType(&last10)
	s.Series = SeriesSet{Start: seriesFrom, Length: points, SmoothingS: Smoothing}
	s.Series.Overall = main.series(seriesFrom, second)
	if src >= 0 {
		return s
	}
	s.Streams, s.ByStream, s.Series.Streams = []string{}, map[string]QoE{}, map[string]Series{}
	for i := range streams {
		st := &streams[i]
		s.Streams = append(s.Streams, st.name)
		s.ByStream[st.name] = st.qoe(kpiFrom, second)
		s.Series.Streams[st.name] = st.series(seriesFrom, second)
	}
	slices.Sort(s.Streams)
	s.Sources, s.BySource, s.Series.Sources = []string{}, map[string]QoE{}, map[string]SourceSeries{}
	for i := range sources { // in sourceNames order
		c := &sources[i]
		s.Sources = append(s.Sources, c.name)
		s.BySource[c.name] = c.qoe(kpiFrom, second)
		if slices.Equal(c.b, main.b) && slices.Equal(c.ccv, main.ccv) {
			s.Series.Sources[c.name] = SourceSeries{Overall: true}
		} else {
			s.Series.Sources[c.name] = SourceSeries{Series: c.series(seriesFrom, second)}
		}
	}
	out := [numDims]map[string]QoE{}
	for d := range dims {
		out[d] = map[string]QoE{}
		for i := range dims[d] {
			out[d][dims[d][i].name] = dims[d][i].qoe(kpiFrom, second)
		}
	}
	s.ByDevice, s.ByCDN, s.ByCountry = out[dimDevice], out[dimCDN], out[dimCountry]
	return s
}

// QoE returns the figures of the seconds [from, to] (Unix seconds, within
// the last 15 minutes) for one stream, or overall when stream is "". It is
// what the KPI window uses, over any range: tests compare it with the
// simulator over long ranges.
func (a *Aggregator) QoE(stream string, from, to int64) (QoE, bool) {
	a.mu.Lock()
	sc := a.overall
	if stream != "" {
		sc = a.streams[stream]
	}
	if sc == nil {
		a.mu.Unlock()
		return QoE{}, false
	}
	c := copyScope(sc, from, to, to+1)
	a.mu.Unlock()
	return c.qoe(from, to), true
}

// ConcurrentViewers returns the CCV at the end of second sec from the
// series of a stream (or overall for ""), after expiring sessions as of now.
func (a *Aggregator) ConcurrentViewers(stream string, sec int64, now time.Time) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expire(now.UnixMilli())
	sc := a.overall
	if stream != "" {
		sc = a.streams[stream]
	}
	if sc == nil {
		return 0, false
	}
	sc.advance(floorSec(now.UnixMilli()))
	c := copyScope(sc, sec, sec, sec)
	return c.ccv[0], true
}

// Streams lists the streams seen in the last 15 minutes.
func (a *Aggregator) Streams(now time.Time) []StreamInfo {
	return a.streams15(now, -1)
}

// SourceStreams lists the streams that carried events of a source (one
// of Sources; false otherwise) in the last 15 minutes, with that source's
// events, newest record and viewers.
func (a *Aggregator) SourceStreams(now time.Time, source string) ([]StreamInfo, bool) {
	src, ok := ParseSource(source)
	if !ok {
		return nil, false
	}
	return a.streams15(now, src), true
}

func (a *Aggregator) streams15(now time.Time, src int) []StreamInfo {
	cut := now.Add(-Window).UnixMilli()
	a.mu.Lock()
	out := make([]StreamInfo, 0, len(a.streams))
	for _, st := range a.streams {
		si := StreamInfo{Name: st.name, EventsTotal: st.events, LastKafkaTS: st.lastTS, ConcurrentViewers: st.ccv}
		if src >= 0 {
			c := &st.bySource[src]
			si.EventsTotal, si.LastKafkaTS, si.ConcurrentViewers = c.events, c.lastTS, c.ccv
		}
		if si.LastKafkaTS >= cut {
			out = append(out, si)
		}
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y StreamInfo) int { return strings.Compare(x.Name, y.Name) })
	return out
}

func (a *Aggregator) topTitles(n int) []TitleViewers {
	top := make([]TitleViewers, 0, n+1)
	for _, t := range a.titles {
		if t.ccv <= 0 {
			continue
		}
		tv := TitleViewers{t.id, int64(t.ccv)}
		if len(top) == n && !better(tv, top[n-1]) {
			continue
		}
		i, _ := slices.BinarySearchFunc(top, tv, func(x, y TitleViewers) int {
			if better(x, y) {
				return -1
			}
			if better(y, x) {
				return 1
			}
			return 0
		})
		top = slices.Insert(top, i, tv)
		if len(top) > n {
			top = top[:n]
		}
	}
	return top
}

func better(x, y TitleViewers) bool {
	if x.ConcurrentViewers != y.ConcurrentViewers {
		return x.ConcurrentViewers > y.ConcurrentViewers
	}
	return x.MovieID < y.MovieID
}

func byType(g *sum) map[string]uint64 {
	m := make(map[string]uint64, event.NumTypes)
	for _, t := range event.Types() {
		m[t.String()] = g.byType[t]
	}
	return m
}

func ratio(num, den float64) float64 {
	if den == 0 {
		return math.NaN()
	}
	return num / den
}

func (c *scopeCopy) qoe(from, to int64) QoE {
	g := c.window(from, to)
	secs := float64(to - from + 1)
	q := QoE{
		ConcurrentViewers: c.ccvNow,
		EventsPerSecond:   Num(float64(g.events()) / secs),
		EventsByType:      byType(&g),
		Attempts:          g.attempts,
		Plays:             g.plays,
		SPS:               Num(float64(g.plays) / secs),
		StartFailures:     g.startFail,
		ExitsBeforeStart:  g.ebvs,
		PlaybackFailures:  g.pbFail,
		ViewsEnded:        g.ended,
		Stalls:            g.stalls,
		PlayTimeS:         Num(float64(g.playMS) / 1000),
		StallTimeS:        Num(float64(g.stallMS) / 1000),
		TimeByBitrateS:    make(map[string]Num, nRungs),
	}
	figures(&g, &q.StartupP50MS, &q.StartupP95MS, &q.StartFailurePct, &q.ExitBeforeStartPct, &q.PlaybackFailurePct, &q.RebufferPct, &q.AvgBitrateKbps)
	watchH := float64(g.playMS+g.stallMS) / 3.6e6
	q.StallsPerHour = Num(ratio(float64(g.stalls), watchH))
	for i, l := range ladder {
		q.TimeByBitrateS[strconv.Itoa(l)] = Num(float64(g.rungMS[i]) / 1000)
	}
	q.TimeByBitrateS["other"] = Num(float64(g.rungMS[len(ladder)]) / 1000)
	return q
}

// figures computes the ratios and percentiles of a window.
func figures(g *sum, p50, p95, vsf, ebvs, pf, rebuf, br *Num) {
	q := func(p float64) Num {
		v := histQuantile(&g.startup, g.plays, p)
		if v < 0 {
			return Null
		}
		return Num(math.Round(v))
	}
	*p50, *p95 = q(0.50), q(0.95)
	starts := float64(g.plays + g.startFail + g.ebvs)
	*vsf = Num(100 * ratio(float64(g.startFail), starts))
	*ebvs = Num(100 * ratio(float64(g.ebvs), starts))
	*pf = Num(100 * ratio(float64(g.pbFail), float64(g.pbFail+g.ended)))
	*rebuf = Num(100 * ratio(float64(g.stallMS), float64(g.playMS+g.stallMS)))
	*br = Num(ratio(float64(g.bitrateMS), float64(g.playMS)))
}

func (c *scopeCopy) series(from, to int64) Series {
	n := int(to - from + 1)
	mk := func() Nums { return make(Nums, n) }
	s := Series{
		EventsByType: map[string]Nums{}, Attempts: mk(), SPS: mk(), ConcurrentViewers: mk(),
		StartupP50MS: mk(), StartupP95MS: mk(), RebufferPct: mk(), AvgBitrateKbps: mk(),
		StartFailurePct: mk(), ExitBeforeStartPct: mk(), PlaybackFailurePct: mk(),
	}
	types := event.Types()
	for _, t := range types {
		s.EventsByType[t.String()] = mk()
	}
	at := func(sec int64) *counts {
		if i := sec - c.from; i >= 0 && i < int64(len(c.b)) {
			return &c.b[i]
		}
		return nil
	}
	// Running sum over the trailing Smoothing seconds.
	var g sum
	for sec := from - Smoothing + 1; sec < from; sec++ {
		if b := at(sec); b != nil {
			g.add(b, 1)
		}
	}
	for i := 0; i < n; i++ {
		sec := from + int64(i)
		if b := at(sec); b != nil {
			g.add(b, 1)
			for _, t := range types {
				s.EventsByType[t.String()][i] = float64(b.byType[t])
			}
			s.Attempts[i] = float64(b.attempts)
			s.SPS[i] = float64(b.plays)
		}
		if c.ccv != nil {
			s.ConcurrentViewers[i] = float64(c.ccv[i])
		}
		var p50, p95, vsf, ebvs, pf, rebuf, br Num
		figures(&g, &p50, &p95, &vsf, &ebvs, &pf, &rebuf, &br)
		s.StartupP50MS[i], s.StartupP95MS[i] = float64(p50), float64(p95)
		s.StartFailurePct[i], s.ExitBeforeStartPct[i], s.PlaybackFailurePct[i] = float64(vsf), float64(ebvs), float64(pf)
		s.RebufferPct[i], s.AvgBitrateKbps[i] = float64(rebuf), float64(br)
		if b := at(sec - Smoothing + 1); b != nil {
			g.add(b, -1)
		}
	}
	return s
}
