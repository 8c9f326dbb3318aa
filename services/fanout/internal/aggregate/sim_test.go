package aggregate

import (
	"hash/fnv"
	"math"
	"slices"
	"testing"
	"time"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

// ref recomputes the figures from the generated events, independently of
// the aggregator: no buckets, no histogram, no player package; every event
// kept, windows summed directly.
type ref struct {
	events   []refEvent
	sessions map[string]*refSession
	ccvAt    map[int64]int64 // CCV at the end of each second
}

type refEvent struct {
	ms              int64
	stream, device  string
	typ             event.Type
	firstFrame      bool
	startupMS       int
	startFail       bool
	pbFail          bool
	stopReason      string
	playMS, stallMS int64
	bitrate         int
}

type refSession struct {
	mode       string // starting, playing, paused, stalled
	firstFrame bool
	last       int64
	bitrate    int
}

func (r *ref) watching() int64 {
	n := int64(0)
	for _, s := range r.sessions {
		if s.mode == "starting" || s.mode == "playing" || s.mode == "stalled" {
			n++
		}
	}
	return n
}

func (r *ref) observe(e *event.Event, ms int64) {
	s := r.sessions[e.SessionID]
	if s == nil {
		s = &refSession{last: ms}
		r.sessions[e.SessionID] = s
	}
	re := refEvent{ms: ms, stream: e.Stream, device: e.Device, typ: e.Type, firstFrame: e.FirstFrame, startupMS: e.StartupMS, stopReason: e.StopReason}
	dt := ms - s.last
	switch s.mode {
	case "playing":
		re.playMS, re.bitrate = dt, s.bitrate
	case "stalled":
		re.stallMS = dt
	}
	if e.Type == event.Error && e.Fatal {
		re.startFail, re.pbFail = !s.firstFrame, s.firstFrame
	}
	switch e.Type {
	case event.Start:
		s.mode = "starting"
	case event.Play, event.BufferEnd:
		s.mode = "playing"
		s.firstFrame = true
	case event.Pause:
		s.mode = "paused"
	case event.BufferStart:
		s.mode = "stalled"
	case event.Error:
		if e.Fatal {
			s.mode = "errored"
		}
	case event.Stop:
		delete(r.sessions, e.SessionID)
	}
	s.last, s.bitrate = ms, e.Bitrate
	r.events = append(r.events, re)
}

type refFigures struct {
	byType                                        [event.NumTypes]uint64
	attempts, plays, vsf, ebvs, pf, ended, stalls uint64
	startups                                      []int
	playMS, stallMS, bitrateMS                    int64
	rungMS                                        map[int]int64
}

func (r *ref) figures(stream, device string, from, to int64) refFigures {
	f := refFigures{rungMS: map[int]int64{}}
	for i := range r.events {
		e := &r.events[i]
		sec := e.ms / 1000
		if sec < from || sec > to || (stream != "" && e.stream != stream) || (device != "" && e.device != device) {
			continue
		}
		f.byType[e.typ]++
		switch {
		case e.typ == event.Start:
			f.attempts++
		case e.typ == event.Play && e.firstFrame:
			f.plays++
			f.startups = append(f.startups, e.startupMS)
		case e.typ == event.BufferStart:
			f.stalls++
		case e.typ == event.Stop && e.stopReason == event.StopExitBeforeStart:
			f.ebvs++
		case e.typ == event.Stop && (e.stopReason == event.StopEnded || e.stopReason == event.StopQuit):
			f.ended++
		}
		if e.startFail {
			f.vsf++
		}
		if e.pbFail {
			f.pf++
		}
		f.playMS += e.playMS
		f.stallMS += e.stallMS
		f.bitrateMS += e.playMS * int64(e.bitrate)
		f.rungMS[e.bitrate] += e.playMS
	}
	slices.Sort(f.startups)
	return f
}

func nearestRank(sorted []int, p float64) float64 {
	k := int(math.Ceil(p*float64(len(sorted)))) - 1
	return float64(sorted[max(k, 0)])
}

// Tolerances, as stated in docs/metrics.md.
const (
	relTime = 1e-6 // float rounding only
	relPct  = 1.0 / 32
)

func checkQoE(t *testing.T, what string, q QoE, f refFigures, secs float64) {
	t.Helper()
	exact := func(name string, got, want uint64) {
		t.Helper()
		if got != want {
			t.Errorf("%s %s = %d, generated %d", what, name, got, want)
		}
	}
	for _, ty := range event.Types() {
		exact("events "+ty.String(), q.EventsByType[ty.String()], f.byType[ty])
	}
	exact("attempts", q.Attempts, f.attempts)
	exact("plays", q.Plays, f.plays)
	exact("start_failures", q.StartFailures, f.vsf)
	exact("exits_before_start", q.ExitsBeforeStart, f.ebvs)
	exact("playback_failures", q.PlaybackFailures, f.pf)
	exact("views_ended", q.ViewsEnded, f.ended)
	exact("stalls", q.Stalls, f.stalls)
	near := func(name string, got Num, want, rel, abs float64) {
		t.Helper()
		if math.IsNaN(want) != got.IsNull() || (!got.IsNull() && math.Abs(float64(got)-want) > rel*math.Abs(want)+abs) {
			t.Errorf("%s %s = %v, generated %v (tolerance %g relative + %g)", what, name, float64(got), want, rel, abs)
		}
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return math.NaN()
		}
		return a / b
	}
	near("sps", q.SPS, float64(f.plays)/secs, relTime, 0)
	near("play_time_s", q.PlayTimeS, float64(f.playMS)/1000, relTime, 0)
	near("stall_time_s", q.StallTimeS, float64(f.stallMS)/1000, relTime, 0)
	watch := float64(f.playMS + f.stallMS)
	near("rebuffer_pct", q.RebufferPct, 100*div(float64(f.stallMS), watch), relTime, 0)
	near("stalls_per_hour", q.StallsPerHour, div(float64(f.stalls), watch/3.6e6), relTime, 0)
	near("avg_bitrate_kbps", q.AvgBitrateKbps, div(float64(f.bitrateMS), float64(f.playMS)), relTime, 0)
	starts := float64(f.plays + f.vsf + f.ebvs)
	near("start_failure_pct", q.StartFailurePct, 100*div(float64(f.vsf), starts), relTime, 0)
	near("exit_before_start_pct", q.ExitBeforeStartPct, 100*div(float64(f.ebvs), starts), relTime, 0)
	near("playback_failure_pct", q.PlaybackFailurePct, 100*div(float64(f.pf), float64(f.pf+f.ended)), relTime, 0)
	for kbps, ms := range f.rungMS {
		key := "other"
		if slices.Contains(ladder, kbps) {
			key = itoa(kbps)
		}
		if key == "other" && ms == 0 {
			continue
		}
		near("time_by_bitrate_s["+key+"]", q.TimeByBitrateS[key], float64(ms)/1000, relTime, 0)
	}
	if len(f.startups) == 0 {
		near("startup_p50_ms", q.StartupP50MS, math.NaN(), 0, 0)
		return
	}
	near("startup_p50_ms", q.StartupP50MS, nearestRank(f.startups, 0.5), relPct, 1)
	near("startup_p95_ms", q.StartupP95MS, nearestRank(f.startups, 0.95), relPct, 1)
}

func itoa(n int) string { return string(appendNum(nil, float64(n))) }

// TestAggregatesMatchSimulator runs two simulated streams with known knobs
// for 16 minutes of simulated time and checks every figure the aggregator
// reports against what was generated.
func TestAggregatesMatchSimulator(t *testing.T) {
	const (
		rate     = 150 // events/s per stream
		duration = 16 * time.Minute
	)
	knobs := eventfulKnobs()

	t0 := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	clock := t0
	a := New(Options{Now: func() time.Time { return clock }})
	r := &ref{sessions: map[string]*refSession{}, ccvAt: map[int64]int64{}}

	w := newWorkload(t, knobs, 42, rate, 3, false)
	lastSec := t0.Unix()
	for now := t0; now.Before(t0.Add(duration)); now = now.Add(w.Step) {
		if sec := now.Unix(); sec != lastSec {
			r.ccvAt[lastSec] = r.watching() // every event of lastSec is in
			lastSec = sec
		}
		rec := w.next(now)
		clock = now
		a.Add(&rec)
		r.observe(&rec.Event, rec.Timestamp.UnixMilli())
	}
	r.ccvAt[lastSec] = r.watching()
	end := t0.Add(duration)
	clock = end
	t.Logf("%d events, %d sessions live at the end", w.N, len(r.sessions))

	snap := a.Snapshot(end, true)
	second := snap.Second
	kpiFrom := second - KPIWindow + 1
	checkQoE(t, "overall", snap.Overall, r.figures("", "", kpiFrom, second), KPIWindow)
	for _, st := range []string{"alpha", "beta"} {
		checkQoE(t, st, snap.ByStream[st], r.figures(st, "", kpiFrom, second), KPIWindow)
	}
	for _, d := range sim.Devices {
		checkQoE(t, "device "+d, snap.ByDevice[d], r.figures("", d, kpiFrom, second), KPIWindow)
	}
	// The whole 15 minutes at once: enough outcomes to compare with the knobs.
	from := second - int64(seriesPoints) + 1
	whole, _ := a.QoE("", from, second)
	f := r.figures("", "", from, second)
	checkQoE(t, "15 min", whole, f, float64(seriesPoints))

	// Concurrent viewers, now and at the end of every second of the series.
	if got, want := snap.Overall.ConcurrentViewers, r.watching(); got != want {
		t.Errorf("concurrent viewers now = %d, generated %d", got, want)
	}
	ccv := snap.Series.Overall.ConcurrentViewers
	if len(ccv) != seriesPoints || snap.Series.Start != from {
		t.Fatalf("series of %d points from %d, want %d from %d", len(ccv), snap.Series.Start, seriesPoints, from)
	}
	for i, v := range ccv {
		if want := r.ccvAt[from+int64(i)]; int64(v) != want {
			t.Fatalf("concurrent viewers at second %d = %v, generated %d", from+int64(i), v, want)
		}
	}
	var sum float64
	for _, st := range []string{"alpha", "beta"} {
		sum += snap.Series.Streams[st].ConcurrentViewers[seriesPoints-1]
	}
	if sum != ccv[seriesPoints-1] {
		t.Errorf("stream CCVs add up to %v, overall %v", sum, ccv[seriesPoints-1])
	}
	// Per-second counts of the series.
	for i := 0; i < seriesPoints; i += 37 {
		sec := from + int64(i)
		g := r.figures("", "", sec, sec)
		if snap.Series.Overall.SPS[i] != float64(g.plays) || snap.Series.Overall.Attempts[i] != float64(g.attempts) ||
			snap.Series.Overall.EventsByType["heartbeat"][i] != float64(g.byType[event.Heartbeat]) {
			t.Fatalf("series at second %d: sps %v attempts %v heartbeats %v, generated %d %d %d", sec,
				snap.Series.Overall.SPS[i], snap.Series.Overall.Attempts[i], snap.Series.Overall.EventsByType["heartbeat"][i], g.plays, g.attempts, g.byType[event.Heartbeat])
		}
	}
	// Top titles: the most watched title's CCV, recomputed.
	if len(snap.TopTitles) == 0 || snap.TopTitles[0].ConcurrentViewers < snap.TopTitles[len(snap.TopTitles)-1].ConcurrentViewers {
		t.Errorf("top titles %+v", snap.TopTitles)
	}

	// The knobs, within 3 standard errors of a binomial proportion.
	starts := float64(f.plays + f.vsf + f.ebvs)
	binom := func(name string, got Num, p, n float64) {
		t.Helper()
		se := math.Sqrt(p * (1 - p) / n)
		if math.Abs(float64(got)/100-p) > 3*se {
			t.Errorf("%s = %.3f%%, knob %.3f%% ± %.3f%% (3 SE over %v)", name, float64(got), 100*p, 300*se, n)
		}
	}
	binom("start failure", whole.StartFailurePct, knobs.StartFailureRate, starts)
	binom("exit before start", whole.ExitBeforeStartPct, knobs.ExitBeforeStartRate, starts)
	binom("playback failure", whole.PlaybackFailurePct, knobs.PlaybackErrorRate, float64(f.pf+f.ended))
	// Stall time is lognormal with a heavy tail: ±20% of the target.
	if rb := float64(whole.RebufferPct) / 100; math.Abs(rb-knobs.RebufferRatio) > 0.2*knobs.RebufferRatio {
		t.Errorf("rebuffering %.3f%%, knob %.3f%% ± 20%%", 100*rb, 100*knobs.RebufferRatio)
	}
	t.Logf("15 min: starts %v, VSF %.2f%%, EBVS %.2f%%, PF %.2f%% over %d views, rebuffering %.2f%%, p50 %v ms, p95 %v ms, bitrate %.0f kbps, CCV %d",
		starts, float64(whole.StartFailurePct), float64(whole.ExitBeforeStartPct), float64(whole.PlaybackFailurePct), f.pf+f.ended,
		float64(whole.RebufferPct), float64(whole.StartupP50MS), float64(whole.StartupP95MS), float64(whole.AvgBitrateKbps), snap.Overall.ConcurrentViewers)
}

// workload is the simulated traffic of these tests: the streams "alpha"
// and "beta" (seeded seed and seed+1) at rate events/s each, their events
// interleaved Step apart, each record on the partition of parts its
// session id hashes to (as the producer keys them), with Kafka's
// millisecond timestamps. With late, every 97th record is 1.5 s late: its
// second was already published.
type workload struct {
	Step    time.Duration
	N       int // records so far
	sims    [2]*sim.Sim
	late    bool
	offsets []int64
	e       event.Event
}

func newWorkload(t *testing.T, knobs sim.Config, seed uint64, rate float64, parts int, late bool) *workload {
	t.Helper()
	w := &workload{Step: time.Duration(float64(time.Second) / (rate * 2)), late: late, offsets: make([]int64, parts)}
	for i, name := range []string{"alpha", "beta"} {
		k := knobs
		k.Seed = seed + uint64(i)
		s, err := sim.New(k, name, name)
		if err != nil {
			t.Fatal(err)
		}
		s.SetRate(rate)
		w.sims[i] = s
	}
	return w
}

// next is the record of the event generated at clock.
func (w *workload) next(clock time.Time) consume.Record {
	w.sims[w.N%2].Next(clock, &w.e)
	w.N++
	h := fnv.New32a()
	h.Write([]byte(w.e.SessionID))
	p := int32(h.Sum32() % uint32(len(w.offsets)))
	ts := w.e.TS.Truncate(time.Millisecond)
	if w.late && w.N%97 == 0 {
		ts = ts.Add(-1500 * time.Millisecond)
	}
	rec := consume.Record{Topic: "t", Partition: p, Offset: w.offsets[p], Timestamp: ts, Event: w.e}
	w.offsets[p]++
	return rec
}

// play runs the workload from t0 for d through single and through one
// Shard per partition of topic "t", as an aggregator would: the shards
// publish into emit every 100 ms of the clock, and once more 200 ms after
// the end. *clock is the time the Options' Now reads; play leaves it at
// the end.
func (w *workload) play(clock *time.Time, t0 time.Time, d time.Duration, single *Aggregator, shards []*Shard, emit func(k, v []byte)) {
	nextFlush := t0
	for *clock = t0; clock.Before(t0.Add(d)); *clock = clock.Add(w.Step) {
		rec := w.next(*clock)
		single.AddBatch([]consume.Record{rec})
		shards[rec.Partition].AddBatch([]consume.Record{rec})
		if !clock.Before(nextFlush) {
			nextFlush = nextFlush.Add(100 * time.Millisecond)
			for _, s := range shards {
				s.Flush(*clock, emit)
			}
		}
	}
	*clock = t0.Add(d)
	for _, s := range shards {
		s.Flush(clock.Add(200*time.Millisecond), emit)
	}
}

// eventfulKnobs is a simulator whose 16 minutes have every outcome often:
// start failures, exits before start, rebuffering, playback errors, and
// views short enough that many end inside the window.
func eventfulKnobs() sim.Config {
	knobs := sim.DefaultConfig()
	knobs.CatalogSize = 300
	knobs.MeanWatchTime = 4 * time.Minute
	knobs.StartFailureRate = 0.05
	knobs.ExitBeforeStartRate = 0.08
	knobs.RebufferRatio = 0.02
	knobs.PlaybackErrorRate = 0.05
	return knobs
}
