package alert

import (
	"math"
	"testing"
	"time"

	"playpulse.dev/services/fanout/internal/aggregate"
)

// cellsAt is an Aggregate whose cells are set by the test between samples.
type cellsAt struct {
	cells []aggregate.Cell
	hists []aggregate.StartupHist
}

func (c *cellsAt) QoE(string, int64, int64) (aggregate.QoE, bool)           { return aggregate.QoE{}, true }
func (c *cellsAt) ConcurrentViewers(string, int64, time.Time) (int64, bool) { return 0, true }
func (c *cellsAt) Streams(time.Time) []aggregate.StreamInfo                 { return nil }
func (c *cellsAt) Cells(cs []aggregate.Cell, hs []aggregate.StartupHist) ([]aggregate.Cell, []aggregate.StartupHist) {
	return append(cs, c.cells...), append(hs, c.hists...)
}

func cdnCell(stream, cdn, country string, failures, ended uint64, viewers int64) aggregate.Cell {
	return aggregate.Cell{Stream: stream, Source: "sim", Device: "tv", CDN: cdn, Country: country, PlaybackFailures: failures, ViewsEnded: ended, Viewers: viewers}
}

// TestBreakdown: the differences of the cells between two samples, by
// dimension value and for one stream; a cell born in between (a country
// that took a label) gives its viewers but no counts, as rate() gives
// nothing for a series' first sample.
func TestBreakdown(t *testing.T) {
	agg := &cellsAt{}
	l := NewLive(agg, nil)
	agg.cells = []aggregate.Cell{cdnCell("a", "fastly", "US", 10, 100, 50), cdnCell("a", "akamai", "US", 5, 100, 50), cdnCell("b", "fastly", "US", 7, 7, 7)}
	l.Sample(t0)
	agg.cells = []aggregate.Cell{cdnCell("a", "fastly", "US", 100, 150, 40), cdnCell("a", "akamai", "US", 10, 300, 60), cdnCell("a", "akamai", "NZ", 3, 3, 5), cdnCell("b", "fastly", "US", 1000, 7, 7)}
	agg.hists = nil
	l.Sample(t0.Add(time.Minute))

	by := l.Breakdown("a", DimCDN, t0, t0.Add(time.Minute))
	if f := by["fastly"]; f.PlaybackFailures != 90 || f.ViewsEnded != 50 || f.Viewers != 40 {
		t.Errorf("fastly %+v", f)
	}
	if f := by["akamai"]; f.PlaybackFailures != 5 || f.ViewsEnded != 200 || f.Viewers != 65 {
		t.Errorf("akamai %+v (NZ's new cell: viewers only)", f)
	}
	if c := l.Breakdown("a", DimCountry, t0, t0.Add(time.Minute)); c["NZ"].PlaybackFailures != 0 || c["NZ"].Viewers != 5 || c["US"].PlaybackFailures != 95 {
		t.Errorf("by country %+v", c)
	}
	if all := l.Breakdown("", DimCDN, t0, t0.Add(time.Minute)); all["fastly"].PlaybackFailures != 90+993 {
		t.Errorf("every stream's fastly %+v", all["fastly"])
	}
	if l.Breakdown("a", DimCDN, t0.Add(-time.Hour), t0.Add(-time.Minute)) != nil {
		t.Error("a breakdown before the first sample")
	}
}

// TestSamplesBounded: an hour of samples every 5 s keeps the recent ones
// and one a minute back to the longest baseline plus window.
func TestSamplesBounded(t *testing.T) {
	agg := &cellsAt{cells: []aggregate.Cell{cdnCell("a", "fastly", "US", 0, 0, 1)}}
	l := NewLive(agg, []Rule{{Name: "drop", Metric: ConcurrentViewers, Baseline: 10 * time.Minute}})
	for s := 0; s <= 3600; s += 5 {
		l.Sample(t0.Add(time.Duration(s) * time.Second))
	}
	// recent: 2 min at 5 s (25); then one a minute to 12 min (about 10).
	if n := len(l.samples); n < 30 || n > 40 {
		t.Fatalf("%d samples kept", n)
	}
	if oldest := t0.Add(time.Hour).Sub(l.samples[0].at); oldest > 12*time.Minute || oldest < 11*time.Minute {
		t.Fatalf("oldest sample %v old", oldest)
	}
	if l.at(t0.Add(time.Hour-10*time.Minute-time.Minute)) == nil {
		t.Fatal("no sample for the baseline's window")
	}
}

func TestQuantile(t *testing.T) {
	b := make([]uint64, len(aggregate.StartupBuckets)+1)
	if !math.IsNaN(quantile(0.95, b)) {
		t.Error("empty histogram")
	}
	// 100 first frames in the bucket (lo, hi]: the p95 is 95% of the way.
	i := 10
	lo, hi := aggregate.StartupBuckets[i-1], aggregate.StartupBuckets[i]
	b[i] = 100
	if got, want := quantile(0.95, b), lo+0.95*(hi-lo); math.Abs(got-want) > 1e-9 {
		t.Errorf("p95 %v, want %v", got, want)
	}
	b[i], b[len(b)-1] = 0, 10
	if got := quantile(0.95, b); got != aggregate.StartupBuckets[len(aggregate.StartupBuckets)-1] {
		t.Errorf("+Inf bucket p95 %v", got)
	}
}
