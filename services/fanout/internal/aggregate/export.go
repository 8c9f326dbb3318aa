package aggregate

import (
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// The QoE figures as Prometheus metrics (docs/metrics.md "QoE in
// Prometheus"): counters of what the dashboard counts, the concurrent
// viewers as a gauge and the startup times as a histogram, so that rates,
// ratios and percentiles are computed in PromQL over any window and agree
// with the dashboard's.
//
// Labels: stream (beyond FANOUT_MAX_STREAMS "other"), source, device (the
// contract's four classes, else "other"), cdn and country (the top N by
// viewers, else "other"); the startup histogram leaves country out, which
// keeps it to streams × sources × devices × (N_cdn + 1) × 30 series. A
// session keeps the labels of its first event, but for a CDN or country
// that falls out of the top N: it counts under "other" from its next
// event on.
//
// Counters count live events only: those stamped at or after CountFrom
// (the fan-out's start), so the warm-up replay of history does not arrive
// as a burst. They count when an event arrives, not in its second as the
// dashboard does: after a Kafka outage the backlog is counted as it comes.
//
// Every replica reads every partition (broadcast), so every replica
// exports the same totals: aggregate across replicas with max (or
// one replica's series), never sum, after rate():
// max without (instance, pod) (rate(...)).

// StartupBuckets are the upper bounds (seconds) of the startup histogram:
// four per doubling from 0.5 s to 32 s, where the percentiles that matter
// live (a degraded CDN's p95 reaches 20 s), so histogram_quantile, which
// interpolates linearly inside a bucket, is off by at most the bucket's
// width (19%) and in practice by a few percent; coarser below and above.
var StartupBuckets = func() []float64 {
	b := []float64{0.1, 0.25}
	for i := 0; i <= 24; i++ {
		b = append(b, roundTo(0.5*math.Pow(2, float64(i)/4), 3))
	}
	return append(b, 60)
}()

func roundTo(v float64, digits int) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', digits, 64), 64)
	return f
}

// knownDevices are the device classes of the event contract.
var knownDevices = []string{"tv", "mobile", "desktop", "tablet"}

// ExportOptions configure the QoE metrics.
type ExportOptions struct {
	TopCDNs      int   // CDNs with their own label value; default 5
	TopCountries int   // countries with their own label value; default 5
	CountFrom    int64 // Unix ms: events stamped earlier are not counted
}

type labelKey struct{ stream, source, device, cdn, country string }

// cell is the cumulative figures of one label combination.
type cell struct {
	key       labelKey
	dead      bool                // its stream was evicted or a label value dropped: sessions look their cell up again
	n         [numOutcomes]uint64 // events by outcome
	playMS    uint64
	stallMS   uint64
	bitrateMS uint64 // Σ kbps × ms of play
	viewers   int64
	hist      *hist // the startup histogram of its labels but country
}

// histKey is a startup histogram's labels: a cell's without the country.
type histKey struct{ stream, source, device, cdn string }

// hist is one startup histogram. It is kept apart from the cells, not
// summed over them when scraped, because a country that loses its label
// drops its cells: a sum would then go down, Prometheus would read a
// counter reset, and rate() would count the whole histogram again as new
// first frames (a burst of healthy startups once a minute, hiding a slow
// CDN's p95 from its alert for a window).
type hist struct {
	buckets []uint64 // per bucket, not cumulative; the last is +Inf
	sumMS   uint64
}

// topSet is the values of one dimension that get their own label.
type topSet struct {
	n       int
	set     map[string]bool
	dropped func(value string) // called for a value that loses its label
}

func (t *topSet) label(v string) string {
	if t.set[v] {
		return v
	}
	if len(t.set) < t.n && v != "other" {
		t.set[v] = true // room left: first come
		return v
	}
	return "other"
}

// rerank swaps in a value whose viewers exceed the least watched labelled
// one's by a fifth and by 10 viewers: close values do not take turns.
func (t *topSet) rerank(viewers map[string]int64) {
	for {
		var lo, hi string
		for v := range t.set {
			if lo == "" || viewers[v] < viewers[lo] || viewers[v] == viewers[lo] && v > lo {
				lo = v
			}
		}
		for v, n := range viewers {
			if t.set[v] || v == "other" {
				continue
			}
			if hi == "" || n > viewers[hi] || n == viewers[hi] && v < hi {
				hi = v
			}
		}
		if hi == "" || lo == "" || len(t.set) < t.n || float64(viewers[hi]) < 1.2*float64(viewers[lo]) || viewers[hi] < viewers[lo]+10 {
			return
		}
		delete(t.set, lo)
		t.set[hi] = true
		if t.dropped != nil {
			t.dropped(lo)
		}
	}
}

type exporter struct {
	opts  ExportOptions
	cells map[labelKey]*cell
	hists map[histKey]*hist // outlive the cells of a country that loses its label
	cdn   topSet
	ctry  topSet
}

func newExporter(o ExportOptions) *exporter {
	if o.TopCDNs <= 0 {
		o.TopCDNs = 5
	}
	if o.TopCountries <= 0 {
		o.TopCountries = 5
	}
	x := &exporter{opts: o, cells: map[labelKey]*cell{}, hists: map[histKey]*hist{}}
	// A value that loses its label loses its series: its sessions count
	// under "other" from their next event, so at most N values and
	// "other" have series at any time.
	x.cdn = topSet{n: o.TopCDNs, set: map[string]bool{}, dropped: func(v string) {
		x.drop(func(k labelKey) bool { return k.cdn == v })
		x.dropHists(func(k histKey) bool { return k.cdn == v })
	}}
	x.ctry = topSet{n: o.TopCountries, set: map[string]bool{}, dropped: func(v string) {
		x.drop(func(k labelKey) bool { return k.country == v })
	}}
	return x
}

func (x *exporter) cell(stream, source, device, cdn, country string) *cell {
	if !slices.Contains(knownDevices, device) {
		device = "other"
	}
	if cdn == "" {
		cdn = "unknown"
	}
	if country == "" {
		country = "unknown"
	}
	k := labelKey{stream, source, device, x.cdn.label(cdn), x.ctry.label(country)}
	c := x.cells[k]
	if c == nil {
		hk := histKey{k.stream, k.source, k.device, k.cdn}
		h := x.hists[hk]
		if h == nil {
			h = &hist{buckets: make([]uint64, len(StartupBuckets)+1)}
			x.hists[hk] = h
		}
		c = &cell{key: k, hist: h}
		x.cells[k] = c
	}
	return c
}

// drop forgets the cells whose labels match: their sessions look their
// cell up again at their next event.
func (x *exporter) drop(match func(labelKey) bool) {
	for k, c := range x.cells {
		if match(k) {
			c.dead = true
			delete(x.cells, k)
		}
	}
}

// dropHists forgets the startup histograms whose labels match (a CDN that
// lost its label, an evicted stream): their series end.
func (x *exporter) dropHists(match func(histKey) bool) {
	for k := range x.hists {
		if match(k) {
			delete(x.hists, k)
		}
	}
}

// dropStream forgets the cells and histograms of an evicted stream.
func (x *exporter) dropStream(name string) {
	x.drop(func(k labelKey) bool { return k.stream == name })
	x.dropHists(func(k histKey) bool { return k.stream == name })
}

func (c *cell) addStartup(ms int) {
	i := sort.SearchFloat64s(StartupBuckets, float64(ms)/1000)
	c.hist.buckets[i]++
	c.hist.sumMS += uint64(max(ms, 0))
}

// rerank re-ranks the CDNs and countries by their viewers now (the
// breakdown scopes' counts); the aggregator calls it once a minute.
func (a *Aggregator) rerank() {
	for d, t := range map[int]*topSet{dimCDN: &a.x.cdn, dimCountry: &a.x.ctry} {
		viewers := map[string]int64{}
		for v, s := range a.dims[d] {
			viewers[v] = s.ccv
		}
		t.rerank(viewers)
	}
}

var (
	qoeLabels     = []string{"stream", "source", "device", "cdn", "country"}
	startupLabels = []string{"stream", "source", "device", "cdn"}
)

func qoeDesc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc("playpulse_qoe_"+name, help, labels, nil)
}

var (
	descViewers   = qoeDesc("viewers", "Concurrent viewers now: sessions starting, playing or stalled (not paused, not stalled for over 5 minutes, not gone).", qoeLabels)
	descAttempts  = qoeDesc("attempts_total", "Views started: start events.", qoeLabels)
	descPlays     = qoeDesc("plays_total", "Stream starts: first frames (play with startup_ms).", qoeLabels)
	descStartFail = qoeDesc("start_failures_total", "Fatal errors before the first frame (video start failures).", qoeLabels)
	descEBVS      = qoeDesc("exits_before_start_total", "Views abandoned before the first frame (stop exit_before_start).", qoeLabels)
	descPbFail    = qoeDesc("playback_failures_total", "Fatal errors after the first frame.", qoeLabels)
	descEnded     = qoeDesc("views_ended_total", "Started views that ended normally (stop ended or quit).", qoeLabels)
	descStalls    = qoeDesc("stalls_total", "Rebuffering events after the first frame (buffer_start).", qoeLabels)
	descPlay      = qoeDesc("play_seconds_total", "Time spent playing, between consecutive events of a session.", qoeLabels)
	descStall     = qoeDesc("rebuffer_seconds_total", "Time spent stalled after the first frame.", qoeLabels)
	descBitrate   = qoeDesc("bitrate_kbps_seconds_total", "Bitrate × play time (kbps·s): divided by play_seconds_total, the time-weighted average bitrate.", qoeLabels)
	descStartup   = qoeDesc("startup_seconds", "Video startup time of each first frame.", startupLabels)
)

// Describe implements prometheus.Collector.
func (a *Aggregator) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descViewers, descAttempts, descPlays, descStartFail, descEBVS, descPbFail, descEnded, descStalls, descPlay, descStall, descBitrate, descStartup} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the cells are copied under the
// lock and turned into metrics outside it.
func (a *Aggregator) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	cells := make([]cell, 0, len(a.x.cells))
	for _, c := range a.x.cells {
		cp := *c
		cp.hist = nil
		cells = append(cells, cp)
	}
	hists := make(map[histKey]hist, len(a.x.hists))
	for k, h := range a.x.hists {
		hists[k] = hist{buckets: slices.Clone(h.buckets), sumMS: h.sumMS}
	}
	a.mu.Unlock()

	for i := range cells {
		c := &cells[i]
		l := []string{c.key.stream, c.key.source, c.key.device, c.key.cdn, c.key.country}
		ch <- prometheus.MustNewConstMetric(descViewers, prometheus.GaugeValue, float64(c.viewers), l...)
		for _, m := range []struct {
			d *prometheus.Desc
			v float64
		}{
			{descAttempts, float64(c.n[oAttempt])}, {descPlays, float64(c.n[oPlay])}, {descStartFail, float64(c.n[oStartFail])},
			{descEBVS, float64(c.n[oExit])}, {descPbFail, float64(c.n[oPlaybackFail])}, {descEnded, float64(c.n[oEnded])},
			{descStalls, float64(c.n[oStall])}, {descPlay, float64(c.playMS) / 1000}, {descStall, float64(c.stallMS) / 1000},
			{descBitrate, float64(c.bitrateMS) / 1000},
		} {
			ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, m.v, l...)
		}
	}
	for k, h := range hists {
		cum := make(map[float64]uint64, len(StartupBuckets))
		var n uint64
		for j, ub := range StartupBuckets {
			n += h.buckets[j]
			cum[ub] = n
		}
		n += h.buckets[len(StartupBuckets)]
		ch <- prometheus.MustNewConstHistogram(descStartup, n, float64(h.sumMS)/1000, cum, k.stream, k.source, k.device, k.cdn)
	}
}

// Cell is one label combination's cumulative counts, as Collect exports
// them: what the alert rules' explanations break down (internal/alert).
type Cell struct {
	Stream, Source, Device, CDN, Country   string
	Plays, StartFailures, ExitsBeforeStart uint64
	PlaybackFailures, ViewsEnded           uint64
	PlayMS, StallMS                        uint64
	Viewers                                int64
}

// StartupHist is one startup histogram's counts per bucket (StartupBuckets,
// then +Inf), not cumulative.
type StartupHist struct {
	Stream, Source, Device, CDN string
	Buckets                     []uint64
}

// Cells returns a copy of every cell and startup histogram, appended to
// the slices given (reused by a caller that samples them often).
func (a *Aggregator) Cells(cells []Cell, hists []StartupHist) ([]Cell, []StartupHist) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.x.cells {
		k := c.key
		cells = append(cells, Cell{Stream: k.stream, Source: k.source, Device: k.device, CDN: k.cdn, Country: k.country,
			Plays: c.n[oPlay], StartFailures: c.n[oStartFail], ExitsBeforeStart: c.n[oExit],
			PlaybackFailures: c.n[oPlaybackFail], ViewsEnded: c.n[oEnded], PlayMS: c.playMS, StallMS: c.stallMS, Viewers: c.viewers})
	}
	for k, h := range a.x.hists {
		hists = append(hists, StartupHist{Stream: k.stream, Source: k.source, Device: k.device, CDN: k.cdn, Buckets: slices.Clone(h.buckets)})
	}
	return cells, hists
}
