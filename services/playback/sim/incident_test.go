package sim

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/player"
)

func TestParseIncidents(t *testing.T) {
	from := time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)
	list := []Incident{
		{Name: "fastly-slow", Kind: IncidentCDN, CDN: "fastly", Stall: 5, Bitrate: 0.5, Startup: 2, From: from, Until: from.Add(5 * time.Minute)},
		{Name: "tv-errors", Kind: IncidentErrors, Device: "tv", Factor: 20, From: from, Until: from.Add(time.Minute)},
		{Name: "kick-off", Kind: IncidentCrowd, Factor: 2.5, From: from.Add(time.Hour), Until: from.Add(2 * time.Hour)},
	}
	s := FormatIncidents(list)
	want := "name=fastly-slow kind=cdn cdn=fastly stall=5 bitrate=0.5 startup=2 from=2026-12-05T21:00:00Z until=2026-12-05T21:05:00Z; " +
		"name=tv-errors kind=errors device=tv factor=20 from=2026-12-05T21:00:00Z until=2026-12-05T21:01:00Z; " +
		"name=kick-off kind=crowd factor=2.5 from=2026-12-05T22:00:00Z until=2026-12-05T23:00:00Z"
	if s != want {
		t.Fatalf("FormatIncidents:\n%s\nwant\n%s", s, want)
	}
	got, err := ParseIncidents(s)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, list) {
		t.Fatalf("round trip:\n%+v\nwant\n%+v", got, list)
	}
	// Defaults of omitted factors.
	got, err = ParseIncidents("name=a kind=cdn cdn=akamai from=2026-12-05T21:00:00Z until=2026-12-05T21:01:00Z;name=b kind=errors device=mobile from=2026-12-05T21:00:00Z until=2026-12-05T21:01:00Z ; name=c kind=crowd from=2026-12-05T21:00:00Z until=2026-12-05T21:01:00Z;")
	if err != nil {
		t.Fatal(err)
	}
	if g := got[0]; g.Stall != 5 || g.Bitrate != 0.5 || g.Startup != 2 || got[1].Factor != 20 || got[2].Factor != 3 {
		t.Errorf("defaults: %+v", got)
	}
	if got, err := ParseIncidents(" "); err != nil || len(got) != 0 {
		t.Errorf("empty: %v %v", got, err)
	}

	const w = " from=2026-12-05T21:00:00Z until=2026-12-05T21:01:00Z"
	for _, tc := range []struct{ in, want string }{
		{"name=a kind=flood" + w, `kind "flood" is not one of`},
		{"name=A kind=crowd" + w, `incident name "A"`},
		{"kind=crowd" + w, `incident name ""`},
		{"name=a kind=cdn cdn=limelight" + w, `cdn "limelight" is not one of akamai, cloudfront, fastly`},
		{"name=a kind=errors device=toaster" + w, `device "toaster" is not one of tv, mobile, desktop, tablet`},
		{"name=a kind=cdn cdn=fastly stall=0.5" + w, "stall must be between 1 and 100"},
		{"name=a kind=cdn cdn=fastly bitrate=2" + w, "bitrate must be between 0.05 and 1"},
		{"name=a kind=cdn cdn=fastly startup=x" + w, `startup="x" is not a number`},
		{"name=a kind=errors device=tv factor=5000" + w, "factor must be between 1 and 1000"},
		{"name=a kind=crowd factor=11" + w, "factor must be between 1 and 10"},
		{"name=a kind=crowd device=tv" + w, `unknown key "device" for kind crowd`},
		{"name=a kind=crowd from=2026-12-05T21:00:00Z", `until="" is not an RFC 3339 time`},
		{"name=a kind=crowd from=yesterday until=2026-12-05T21:01:00Z", `from="yesterday"`},
		{"name=a kind=crowd from=2026-12-05T21:00:00Z until=2026-12-05T21:00:00Z", "until must be after from"},
		{"name=a kind=crowd factor" + w, `"factor" is not key=value`},
		{"name=a name=b kind=crowd" + w, "name given twice"},
		{"name=a kind=crowd" + w + ";name=a kind=crowd" + w, `incident "a" given twice`},
		{strings.Repeat("name=a kind=crowd"+w+";", 1) + strings.Repeat(";", 3), ""},
	} {
		_, err := ParseIncidents(tc.in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: got %v, want %q", tc.in, err, tc.want)
		}
	}
	var many []string
	for i := range MaxIncidents + 1 {
		many = append(many, "name=i"+string(rune('a'+i))+" kind=crowd"+w)
	}
	if _, err := ParseIncidents(strings.Join(many, ";")); err == nil || !strings.Contains(err.Error(), "at most 16") {
		t.Errorf("17 incidents: %v", err)
	}
	c := DefaultConfig()
	c.Incidents = "name=a kind=crowd factor=0" + w
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "INCIDENTS: incident a: factor must be between 1 and 10") {
		t.Errorf("Validate: %v", err)
	}
}

// tally is what the incident tests measure over one stretch of time, per
// CDN and per device.
type tally struct {
	playS        [numDevices]float64
	fatal        [numDevices]float64 // fatal errors after the first frame
	starts       [numDevices]float64
	startFail    [numDevices]float64
	cdnPlayS     map[string]float64
	cdnStalls    map[string]float64
	cdnKbpsS     map[string]float64 // Σ kbps × s of play
	cdnStartupMS map[string][]float64
}

func newTally() *tally {
	return &tally{cdnPlayS: map[string]float64{}, cdnStalls: map[string]float64{}, cdnKbpsS: map[string]float64{}, cdnStartupMS: map[string][]float64{}}
}

// watcher follows sessions from their events and adds what happens to the
// tally of the stretch the event falls in.
type watcher struct {
	sessions map[string]*watched
	c        *player.Checker
}

type watched struct {
	state   player.State
	last    time.Time
	bitrate int
	dev     int
	cdn     string
}

func (w *watcher) observe(t *testing.T, e *event.Event, tl *tally) {
	mustObserve(t, w.c, e)
	s := w.sessions[e.SessionID]
	if s == nil {
		s = &watched{dev: slices.Index(Devices[:], e.Device), cdn: e.CDN, last: e.TS}
		w.sessions[e.SessionID] = s
	}
	if tl != nil {
		dt := e.TS.Sub(s.last).Seconds()
		if s.state == player.Playing {
			tl.playS[s.dev] += dt
			tl.cdnPlayS[s.cdn] += dt
			tl.cdnKbpsS[s.cdn] += dt * float64(s.bitrate)
		}
		switch {
		case e.Type == event.Start:
			tl.starts[s.dev]++
		case e.Type == event.BufferStart:
			tl.cdnStalls[s.cdn]++
		case e.Type == event.Play && e.FirstFrame:
			tl.cdnStartupMS[s.cdn] = append(tl.cdnStartupMS[s.cdn], float64(e.StartupMS))
		case e.Type == event.Error && e.Fatal && s.state == player.Starting:
			tl.startFail[s.dev]++
		case e.Type == event.Error && e.Fatal:
			tl.fatal[s.dev]++
		}
	}
	s.state, _ = w.c.State(e.SessionID)
	s.last, s.bitrate = e.TS, e.Bitrate
	if s.state == player.Ended {
		delete(w.sessions, e.SessionID)
	}
}

// stretchOf is the tally now counts in: the stretch before the incident,
// the incident once settle has passed, or the time after it from settle
// on; nil in between.
func stretchOf(now time.Time, in Incident, stretch, settle time.Duration, before, during, after *tally) *tally {
	switch {
	case now.After(in.From.Add(-stretch)) && now.Before(in.From):
		return before
	case now.After(in.From.Add(settle)) && now.Before(in.Until):
		return during
	case now.After(in.Until.Add(settle)):
		return after
	}
	return nil
}

// follow calls Next as a pacer does, at Rate(now), from start until end,
// and passes each event to f.
func follow(s *Sim, start, end time.Time, f func(now time.Time, e *event.Event)) {
	var e event.Event
	for now := start; now.Before(end); {
		s.Next(now, &e)
		f(now, &e)
		now = now.Add(time.Duration(1e9 / s.Rate(now)))
	}
}

// logMoments returns the mean and variance of ln(v) and the sample size.
func logMoments(v []float64) (mean, variance, n float64) {
	for _, x := range v {
		mean += math.Log(max(x, 1))
	}
	n = float64(len(v))
	mean /= n
	for _, x := range v {
		d := math.Log(max(x, 1)) - mean
		variance += d * d
	}
	return mean, variance / (n - 1), n
}

func p50(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// TestIncidentCDN: during a CDN degradation (stall ×5, bitrate ×0.5,
// startup ×2 on fastly) fastly's sessions stall 5 times as often per play
// hour (±15%), start twice as slowly (geometric mean of the startup times,
// within 4 standard errors) and play at a
// third to a half of their bitrate (ladder rungs cannot halve exactly);
// the other CDNs move by less than 10%, and fastly is back to its baseline
// (±15%) once the incident is over. Exits before start are off, so that
// the startup times seen are not censored by viewers who give up.
func TestIncidentCDN(t *testing.T) {
	rate, stretch := 600.0, 15*time.Minute
	if raceEnabled {
		rate = 200
	}
	from := t0.Add(30 * time.Minute) // after the ramp-up
	inc := Incident{Name: "fastly-slow", Kind: IncidentCDN, CDN: "fastly", Stall: 5, Bitrate: 0.5, Startup: 2, From: from, Until: from.Add(stretch)}
	cfg := DefaultConfig()
	cfg.ExitBeforeStartRate = 0
	cfg.Incidents = FormatIncidents([]Incident{inc})
	s := newSim(t, cfg, 7)
	s.SetRate(rate)
	w := &watcher{sessions: map[string]*watched{}, c: checker(s)}
	before, during, after := newTally(), newTally(), newTally()
	settle := time.Minute // downshifts and re-planned clocks take effect
	follow(s, t0, inc.Until.Add(stretch+settle), func(now time.Time, e *event.Event) {
		w.observe(t, e, stretchOf(now, inc, stretch, settle, before, during, after))
	})
	per := func(tl *tally, cdn string) (stallsPerH, kbps, startup float64) {
		return tl.cdnStalls[cdn] / tl.cdnPlayS[cdn] * 3600, tl.cdnKbpsS[cdn] / tl.cdnPlayS[cdn], p50(tl.cdnStartupMS[cdn])
	}
	// The other CDNs' stalls per play-hour in each stretch: the control.
	// Stalls do not depend on the CDN outside an incident, but the whole
	// audience's rate drifts between stretches (by 10 to 15% with the
	// race detector's smaller audience), so fastly is compared with the
	// others in the same stretch, not with itself before.
	control := func(tl *tally) float64 {
		var stalls, playS float64
		for _, c := range CDNs() {
			if c != inc.CDN {
				stalls, playS = stalls+tl.cdnStalls[c], playS+tl.cdnPlayS[c]
			}
		}
		return stalls / playS * 3600
	}
	for _, cdn := range CDNs() {
		b1, b2, b3 := per(before, cdn)
		d1, d2, d3 := per(during, cdn)
		a1, _, _ := per(after, cdn)
		t.Logf("%-10s stalls/play-hour %.2f → %.2f → %.2f (%d stalls during), kbps %.0f → %.0f, startup p50 %.0f → %.0f ms",
			cdn, b1, d1, a1, int(during.cdnStalls[cdn]), b2, d2, b3, d3)
		if cdn == "fastly" {
			if r := d1 / control(during); math.Abs(r/5-1) > 0.15 {
				t.Errorf("fastly stalls ×%.2f the other CDNs' during the incident, want ×5 ± 15%%", r)
			}
			// Startup times are lognormal: compare the means of their
			// logarithms, within 4 standard errors of the difference.
			lb, vb, nb := logMoments(before.cdnStartupMS[cdn])
			ld, vd, nd := logMoments(during.cdnStartupMS[cdn])
			if se := math.Sqrt(vb/nb + vd/nd); math.Abs(ld-lb-math.Ln2) > 4*se {
				t.Errorf("fastly startup ×%.3f (geometric mean, %d and %d starts), want ×2 within 4 SE (×%.3f–×%.3f)",
					math.Exp(ld-lb), int(nb), int(nd), math.Exp(math.Ln2-4*se), math.Exp(math.Ln2+4*se))
			}
			if r := d2 / b2; r < 0.3 || r > 0.5 {
				t.Errorf("fastly bitrate ×%.2f, want between ×0.3 and ×0.5 (the rung at or below half the network's)", r)
			}
			if r := a1 / control(after); math.Abs(r-1) > 0.15 {
				t.Errorf("fastly stalls ×%.2f the other CDNs' after the incident, want ×1 ± 15%%", r)
			}
			continue
		}
		for what, r := range map[string]float64{"stalls": d1 / b1, "bitrate": d2 / b2} {
			if math.Abs(r-1) > 0.10 {
				t.Errorf("%s %s ×%.2f during fastly's incident, want unchanged ± 10%%", cdn, what, r)
			}
		}
		lb, vb, nb := logMoments(before.cdnStartupMS[cdn])
		ld, vd, nd := logMoments(during.cdnStartupMS[cdn])
		if se := math.Sqrt(vb/nb + vd/nd); math.Abs(ld-lb) > 4*se {
			t.Errorf("%s startup ×%.3f during fastly's incident, want unchanged within 4 SE (%.3f)", cdn, math.Exp(ld-lb), se)
		}
	}
}

// TestIncidentErrors: during an error burst on tv (factor 20), tv's fatal
// playback errors per play hour are 20 times the model's (within 4
// standard errors of the Poisson count) and 40% of its starts fail (0.02 ×
// 20, within 4 standard errors of the binomial share); mobile keeps the
// model's rates, and so does tv before and after.
func TestIncidentErrors(t *testing.T) {
	rate, stretch := 600.0, 15*time.Minute
	if raceEnabled {
		rate = 200
	}
	from := t0.Add(30 * time.Minute)
	inc := Incident{Name: "tv-errors", Kind: IncidentErrors, Device: "tv", Factor: 20, From: from, Until: from.Add(stretch)}
	cfg := DefaultConfig()
	cfg.Incidents = FormatIncidents([]Incident{inc})
	s := newSim(t, cfg, 8)
	s.SetRate(rate)
	w := &watcher{sessions: map[string]*watched{}, c: checker(s)}
	before, during, after := newTally(), newTally(), newTally()
	settle := 15 * time.Second // one heartbeat: every playing session has re-drawn its clocks
	follow(s, t0, inc.Until.Add(stretch), func(now time.Time, e *event.Event) {
		w.observe(t, e, stretchOf(now, inc, stretch, settle, before, during, after))
	})
	fatalRate := s.g.m.fatalRate // per second of play
	check := func(label string, tl *tally, dev int, k float64) {
		want := fatalRate * k * tl.playS[dev]
		got := tl.fatal[dev]
		share := math.Min(1, cfg.StartFailureRate*k)
		n := tl.starts[dev]
		gotShare := tl.startFail[dev] / n
		t.Logf("%s %s: %.0f fatal errors in %.0f play hours (expected %.1f), %.0f of %.0f starts failed (%.3f, expected %.3f)",
			label, Devices[dev], got, tl.playS[dev]/3600, want, tl.startFail[dev], n, gotShare, share)
		if math.Abs(got-want) > 4*math.Sqrt(want)+1 {
			t.Errorf("%s %s: %.0f fatal playback errors, want %.1f ± 4 SE", label, Devices[dev], got, want)
		}
		if se := math.Sqrt(share * (1 - share) / n); math.Abs(gotShare-share) > 4*se+0.002 {
			t.Errorf("%s %s: start failure share %.4f, want %.4f ± 4 SE (%.4f)", label, Devices[dev], gotShare, share, se)
		}
	}
	check("during", during, devTV, 20)
	check("during", during, devMobile, 1)
	check("before", before, devTV, 1)
	check("after", after, devTV, 1)
}

// TestIncidentCrowd: a flash crowd ×3 makes Rate three times the set rate
// during its window and only then, the population reaches three times its
// size before the crowd (±10%) within two minutes, and falls back to it
// (±10%) within two minutes of the end.
func TestIncidentCrowd(t *testing.T) {
	rate := 300.0
	if raceEnabled {
		rate = 100
	}
	from := t0.Add(30 * time.Minute)
	inc := Incident{Name: "kick-off", Kind: IncidentCrowd, Factor: 3, From: from, Until: from.Add(6 * time.Minute)}
	cfg := DefaultConfig()
	cfg.Incidents = FormatIncidents([]Incident{inc})
	s := newSim(t, cfg, 9)
	s.SetRate(rate)
	if got := s.Incidents(); len(got) != 1 || got[0] != inc {
		t.Fatalf("Incidents() = %+v", got)
	}
	for _, c := range []struct {
		at   time.Time
		want float64
	}{{from.Add(-time.Nanosecond), rate}, {from, 3 * rate}, {inc.Until.Add(-time.Nanosecond), 3 * rate}, {inc.Until, rate}} {
		if got := s.Rate(c.at); got != c.want {
			t.Errorf("Rate(%s) = %v, want %v", c.at.Sub(from), got, c.want)
		}
	}
	var base, peak, back []float64
	c := checker(s)
	follow(s, t0, inc.Until.Add(4*time.Minute), func(now time.Time, e *event.Event) {
		mustObserve(t, c, e)
		a := float64(s.Active())
		switch {
		case now.After(from.Add(-5*time.Minute)) && now.Before(from):
			base = append(base, a)
		case now.After(from.Add(2*time.Minute)) && now.Before(inc.Until):
			peak = append(peak, a)
		case now.After(inc.Until.Add(2 * time.Minute)):
			back = append(back, a)
		}
	})
	mean := func(v []float64) float64 {
		sum := 0.0
		for _, x := range v {
			sum += x
		}
		return sum / float64(len(v))
	}
	b, p, a := mean(base), mean(peak), mean(back)
	t.Logf("live sessions: %.0f before, %.0f during the crowd (from 2 min in), %.0f after (from 2 min after); stats %+v", b, p, a, s.Stats())
	if math.Abs(p/b/3-1) > 0.10 {
		t.Errorf("population ×%.2f during the crowd, want ×3 ± 10%%", p/b)
	}
	if math.Abs(a/b-1) > 0.10 {
		t.Errorf("population ×%.2f after the crowd, want back to ×1 ± 10%%", a/b)
	}
}
