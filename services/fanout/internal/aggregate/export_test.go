package aggregate

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

// gathered is the QoE metrics of a registry, each family summed by one
// label (or over all with "").
type gathered map[string][]*dto.Metric

func gather(t *testing.T, reg *prometheus.Registry) gathered {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	g := gathered{}
	for _, mf := range mfs {
		g[mf.GetName()] = mf.GetMetric()
	}
	return g
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sum adds the values of a family's series whose label by equals value
// (every series when by is "").
func (g gathered) sum(family, by, value string) float64 {
	s := 0.0
	for _, m := range g[family] {
		if by != "" && label(m, by) != value {
			continue
		}
		switch {
		case m.Counter != nil:
			s += m.Counter.GetValue()
		case m.Gauge != nil:
			s += m.Gauge.GetValue()
		}
	}
	return s
}

// promQuantile is PromQL's histogram_quantile over cumulative buckets:
// linear interpolation inside the bucket holding the rank, from 0 for the
// first one.
func promQuantile(q float64, bounds []float64, cum []float64) float64 {
	total := cum[len(cum)-1]
	rank := q * total
	i := sort.Search(len(cum), func(i int) bool { return cum[i] >= rank })
	if i >= len(bounds) {
		return bounds[len(bounds)-1]
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = bounds[i-1], cum[i-1]
	}
	return lo + (bounds[i]-lo)*(rank-below)/(cum[i]-below)
}

// TestExportMatchesAggregate feeds two simulated streams to an aggregator
// for 6 minutes and checks the exported QoE metrics against figures
// recomputed from the generated events: counts exactly, times to 1e-6,
// overall and per device and stream; concurrent viewers exactly; the
// startup histogram's count exactly and its histogram_quantile p50 and
// p95 within 10% of the exact percentiles (the bound docs/metrics.md
// states). Events stamped before CountFrom (the warm-up replay) are not
// counted.
func TestExportMatchesAggregate(t *testing.T) {
	const rate = 150
	knobs := sim.DefaultConfig()
	knobs.MeanWatchTime = 4 * time.Minute
	knobs.PlaybackErrorRate = 0.05
	knobs.RebufferRatio = 0.02
	t0 := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	countFrom := t0.Add(time.Minute)
	clock := t0
	reg := prometheus.NewRegistry()
	a := New(Options{Now: func() time.Time { return clock }, Registerer: reg, Export: ExportOptions{TopCountries: 4, CountFrom: countFrom.UnixMilli()}})
	r := &ref{sessions: map[string]*refSession{}, ccvAt: map[int64]int64{}}
	w := newWorkload(t, knobs, 7, rate, 3, false)
	end := t0.Add(6 * time.Minute)
	for now := t0; now.Before(end); now = now.Add(w.Step) {
		rec := w.next(now)
		clock = now
		a.Add(&rec)
		r.observe(&rec.Event, rec.Timestamp.UnixMilli())
	}
	g := gather(t, reg)
	from, to := countFrom.Unix(), end.Unix()
	check := func(what string, by, value string, f refFigures) {
		t.Helper()
		for family, want := range map[string]float64{
			"playpulse_qoe_attempts_total":             float64(f.attempts),
			"playpulse_qoe_plays_total":                float64(f.plays),
			"playpulse_qoe_start_failures_total":       float64(f.vsf),
			"playpulse_qoe_exits_before_start_total":   float64(f.ebvs),
			"playpulse_qoe_playback_failures_total":    float64(f.pf),
			"playpulse_qoe_views_ended_total":          float64(f.ended),
			"playpulse_qoe_stalls_total":               float64(f.stalls),
			"playpulse_qoe_play_seconds_total":         float64(f.playMS) / 1000,
			"playpulse_qoe_rebuffer_seconds_total":     float64(f.stallMS) / 1000,
			"playpulse_qoe_bitrate_kbps_seconds_total": float64(f.bitrateMS) / 1000,
		} {
			if got := g.sum(family, by, value); math.Abs(got-want) > 1e-6*math.Max(1, want) {
				t.Errorf("%s: %s = %v, generated %v", what, family, got, want)
			}
		}
	}
	all := r.figures("", "", from, to)
	check("overall", "", "", all)
	for _, d := range sim.Devices {
		check("device "+d, "device", d, r.figures("", d, from, to))
	}
	for _, st := range []string{"alpha", "beta"} {
		check("stream "+st, "stream", st, r.figures(st, "", from, to))
	}
	if all.pf == 0 || all.stalls == 0 || all.plays < 500 {
		t.Fatalf("too few outcomes to compare: %+v", all)
	}
	if got, want := g.sum("playpulse_qoe_viewers", "", ""), float64(r.watching()); got != want {
		t.Errorf("viewers %v, generated %v", got, want)
	}
	// Labels stay bounded: four countries and "other"; devices known.
	countries := map[string]bool{}
	for _, m := range g["playpulse_qoe_plays_total"] {
		countries[label(m, "country")] = true
		if d := label(m, "device"); !slices.Contains(knownDevices, d) {
			t.Errorf("device label %q", d)
		}
		if s := label(m, "source"); s != "sim" {
			t.Errorf("source label %q", s)
		}
	}
	if len(countries) > 5 || !countries["other"] || !countries["US"] {
		t.Errorf("country labels %v, want at most the top 4 and other", countries)
	}

	// The startup histogram, summed over its series.
	hs := g["playpulse_qoe_startup_seconds"]
	cum := make([]float64, len(StartupBuckets))
	count := 0.0
	for _, m := range hs {
		if label(m, "country") != "" {
			t.Fatalf("the startup histogram has a country label")
		}
		for i, b := range m.GetHistogram().GetBucket() {
			cum[i] += float64(b.GetCumulativeCount())
		}
		count += float64(m.GetHistogram().GetSampleCount())
	}
	if count != float64(all.plays) {
		t.Errorf("startup histogram count %v, plays %d", count, all.plays)
	}
	for _, q := range []float64{0.5, 0.95} {
		got := promQuantile(q, StartupBuckets, cum) * 1000
		want := nearestRank(all.startups, q)
		t.Logf("startup p%.0f: histogram_quantile %.0f ms, exact %.0f ms (%+.1f%%)", q*100, got, want, (got/want-1)*100)
		if math.Abs(got/want-1) > 0.10 {
			t.Errorf("histogram_quantile(%v) = %.0f ms, exact %.0f ms: more than 10%% off", q, got, want)
		}
	}
}

// TestTopSet: values get their own label first come while there is room;
// re-ranking swaps in a value only when it clearly beats the least watched
// labelled one (by a fifth and by 10 viewers), so close values do not take
// turns.
func TestTopSet(t *testing.T) {
	ts := topSet{n: 2, set: map[string]bool{}}
	for _, c := range []struct{ in, want string }{{"a", "a"}, {"b", "b"}, {"c", "other"}, {"a", "a"}, {"other", "other"}} {
		if got := ts.label(c.in); got != c.want {
			t.Errorf("label(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	ts.rerank(map[string]int64{"a": 100, "b": 50, "c": 59})
	if !ts.set["b"] || ts.set["c"] {
		t.Errorf("c (59) replaced b (50) without a clear lead: %v", ts.set)
	}
	ts.rerank(map[string]int64{"a": 100, "b": 50, "c": 61, "other": 1000})
	if ts.set["b"] || !ts.set["c"] || !ts.set["a"] || len(ts.set) != 2 {
		t.Errorf("after c (61) beat b (50): %v", ts.set)
	}
}

// TestStartupBuckets: four per doubling from 0.5 s to 32 s, increasing.
func TestStartupBuckets(t *testing.T) {
	if !slices.IsSorted(StartupBuckets) || StartupBuckets[2] != 0.5 || StartupBuckets[26] != 32 || len(StartupBuckets) != 28 {
		t.Errorf("buckets %v", StartupBuckets)
	}
	for i := 3; i <= 26; i++ {
		if r := StartupBuckets[i] / StartupBuckets[i-1]; math.Abs(r-math.Pow(2, 0.25)) > 0.01 {
			t.Errorf("bucket %d/%d ratio %.4f", i, i-1, r)
		}
	}
}

// TestStartupHistogramSurvivesRerank: when a country loses its label (the
// once-a-minute re-rank), the startup histogram, which has no country
// label, keeps its counts. It used to be summed over the cells when
// scraped, so dropping a country's cells made it go down: Prometheus read a
// counter reset and rate() counted the whole histogram again as new first
// frames, which hid a slow CDN's p95 from its alert for a window.
func TestStartupHistogramSurvivesRerank(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	clock := t0
	reg := prometheus.NewRegistry()
	a := New(Options{Now: func() time.Time { return clock }, Registerer: reg, Export: ExportOptions{TopCountries: 1, CountFrom: t0.UnixMilli()}})
	n := 0
	view := func(country string, startupMS int) {
		n++
		id := "s" + strconv.Itoa(n)
		for seq, typ := range []event.Type{event.Start, event.Play} {
			e := event.Event{V: event.Version, EventID: id + "-" + strconv.Itoa(seq), SessionID: id, Seq: uint64(seq + 1), Stream: "alpha",
				Type: typ, Device: "tv", Country: country, CDN: "fastly", Source: event.SourceSim, TS: clock}
			if typ == event.Play {
				e.FirstFrame, e.StartupMS, e.Bitrate = true, startupMS, 3000
			}
			a.Add(&consume.Record{Topic: "t", Offset: int64(n*2 + seq), Timestamp: clock, Event: e})
		}
	}
	count := func() (n uint64, countries map[string]bool) {
		g := gather(t, reg)
		for _, m := range g["playpulse_qoe_startup_seconds"] {
			n += m.GetHistogram().GetSampleCount()
		}
		countries = map[string]bool{}
		for _, m := range g["playpulse_qoe_plays_total"] {
			countries[label(m, "country")] = true
		}
		return n, countries
	}
	for range 3 {
		view("NZ", 8000) // first come: NZ gets the one country label
	}
	clock = clock.Add(10 * time.Second)
	for range 30 {
		view("US", 1000)
	}
	if got, cs := count(); got != 33 || !cs["NZ"] {
		t.Fatalf("before the re-rank: %d first frames, countries %v; want 33 and NZ labelled", got, cs)
	}
	clock = t0.Add(61 * time.Second) // the next event re-ranks: US has ten times NZ's viewers
	view("US", 1000)
	got, cs := count()
	if cs["NZ"] || !cs["US"] {
		t.Fatalf("after the re-rank: countries %v, want US labelled and NZ not", cs)
	}
	if got != 34 {
		t.Errorf("after the re-rank: %d first frames in the histogram, want 34 (it must never go down)", got)
	}
}
