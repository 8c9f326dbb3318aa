//go:build !race

package sim

import (
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/player"
)

// statSession is what the statistical test follows per session.
type statSession struct {
	start      time.Time
	dev        int
	state      player.State
	last       time.Time
	firstFrame bool
	failed     bool // fatal error before the first frame
	ebvs       bool
	fatalLate  bool // fatal error after the first frame
	ended      bool // stop reason ended
	done       bool
	play       time.Duration
}

// TestStatistics runs the default model for 6 simulated hours at 300
// events/s (≈6.5M events, ≈50k sessions, ≈2,700 live) and compares what the
// events show with the configuration, with these tolerances (each several
// standard errors wide at this sample size, see the comments):
//
//	start failure rate      0.02 ± 0.004 absolute       (SE ≈ 0.0007)
//	exit-before-start rate  0.05 ± 0.006 absolute       (SE ≈ 0.001)
//	device viewing time     DEVICE_MIX ± 0.025 absolute (SE ≈ 0.005)
//	rebuffering ratio       0.005 ± 15% relative        (SE ≈ 3%)
//	Zipf exponent (MLE)     0.9 ± 0.03                  (SE ≈ 0.005)
//	mean play time          20 min ± 10%                (SE ≈ 1%)
//	playback failures       0.005 ± 0.002 of played views
//	startup median          TV 1.5 s, mobile 2.5 s ± 15%
//	stall median            2 s ± 15%
//	stalls per play hour    mobile/TV = 2 ± 0.4
//	watched to the end      between 15% and 28% of played views (reference ≈20%)
//
// Per-view rates use sessions started in the first 3 hours (all resolved by
// the end); time-based ones (viewing time, rebuffering) skip the first 1.5 h
// of ramp-up, during which short mobile sessions are over-represented.
func TestStatistics(t *testing.T) {
	cfg := DefaultConfig()
	s := newSim(t, cfg, 31337)
	const rate = 300.0
	total := 6 * time.Hour
	warm := t0.Add(90 * time.Minute)
	viewsUntil := t0.Add(3 * time.Hour)
	s.SetRate(rate)

	sessions := map[string]*statSession{}
	titleCount := make([]float64, cfg.CatalogSize)
	var playByDev, stallByDev [numDevices]time.Duration
	var stallsByDev [numDevices]int
	var startups [numDevices][]float64
	var stallMS []float64
	devIndex := map[string]int{}
	for i, d := range Devices {
		devIndex[d] = i
	}

	pace(s, t0, rate, int(rate*total.Seconds()), func(now time.Time, e *event.Event) {
		ss := sessions[e.SessionID]
		if ss == nil {
			ss = &statSession{start: e.TS, dev: devIndex[e.Device], state: player.Idle, last: e.TS}
			sessions[e.SessionID] = ss
			n, _ := strconv.Atoi(e.MovieID[1:])
			titleCount[n-1]++
		}
		// Attribute the interval since the session's previous event.
		from := ss.last
		if from.Before(warm) {
			from = warm
		}
		if d := e.TS.Sub(from); d > 0 {
			switch ss.state {
			case player.Playing:
				playByDev[ss.dev] += d
			case player.Stalled:
				stallByDev[ss.dev] += d
			}
		}
		if ss.state == player.Playing {
			ss.play += e.TS.Sub(ss.last)
		}
		switch e.Type {
		case event.Play:
			if e.FirstFrame {
				ss.firstFrame = true
				startups[ss.dev] = append(startups[ss.dev], float64(e.StartupMS)/1000)
			}
		case event.Error:
			if e.Fatal {
				ss.failed = !ss.firstFrame
				ss.fatalLate = ss.firstFrame
			}
		case event.BufferStart:
			if !e.TS.Before(warm) {
				stallsByDev[ss.dev]++
			}
		case event.BufferEnd:
			stallMS = append(stallMS, float64(e.StallMS)/1000)
		case event.Stop:
			ss.done = true
			ss.ebvs = e.StopReason == event.StopExitBeforeStart
			ss.ended = e.StopReason == event.StopEnded
		}
		next, err := player.Step(ss.state, e)
		if err != nil {
			t.Fatal(err)
		}
		ss.state, ss.last = next, e.TS
	})

	// Per-view rates.
	var starts, failed, ebvs, played, fatalLate, ended, unfinished float64
	var playSum time.Duration
	var attempts [numDevices]float64
	for _, ss := range sessions {
		if !ss.start.Before(viewsUntil) {
			continue
		}
		starts++
		attempts[ss.dev]++
		switch {
		case ss.failed:
			failed++
		case ss.ebvs:
			ebvs++
		case ss.firstFrame:
			played++
			playSum += ss.play
			if ss.fatalLate {
				fatalLate++
			}
			if ss.ended {
				ended++
			}
			if !ss.done {
				unfinished++
			}
		}
	}
	t.Logf("%d sessions, %.0f started in the first 3 h, %.0f of them played (%.0f unfinished at the end)", len(sessions), starts, played, unfinished)
	within := func(name string, got, want, tol float64) {
		t.Helper()
		ok := math.Abs(got-want) <= tol
		t.Logf("%-34s %9.5f  want %9.5f ± %.5f  %s", name, got, want, tol, map[bool]string{true: "ok", false: "FAIL"}[ok])
		if !ok {
			t.Errorf("%s = %.5f, want %.5f ± %.5f", name, got, want, tol)
		}
	}
	within("start failure rate", failed/starts, cfg.StartFailureRate, 0.004)
	within("exit-before-start rate", ebvs/starts, cfg.ExitBeforeStartRate, 0.006)
	within("playback failures / played view", fatalLate/played, cfg.PlaybackErrorRate, 0.002)
	meanPlay := (playSum / time.Duration(played)).Minutes()
	within("mean play time per played view, min", meanPlay, cfg.MeanWatchTime.Minutes(), 0.1*cfg.MeanWatchTime.Minutes())
	completion := ended / played
	t.Logf("%-34s %9.5f  (reference ≈0.2)", "watched to the end", completion)
	if completion < 0.15 || completion > 0.28 {
		t.Errorf("%.3f of played views watched to the end", completion)
	}

	// Time-based metrics.
	mix, _ := ParseDeviceMix(cfg.DeviceMix)
	var playTotal, stallTotal time.Duration
	for d := range Devices {
		playTotal += playByDev[d]
		stallTotal += stallByDev[d]
	}
	for d, name := range Devices {
		within("viewing-time share "+name, float64(playByDev[d])/float64(playTotal), mix[d], 0.025)
	}
	within("rebuffering ratio", float64(stallTotal)/float64(playTotal+stallTotal), cfg.RebufferRatio, 0.15*cfg.RebufferRatio)
	perHour := func(d int) float64 { return float64(stallsByDev[d]) / playByDev[d].Hours() }
	t.Logf("stalls per play hour: tv %.2f, mobile %.2f, desktop %.2f, tablet %.2f", perHour(devTV), perHour(devMobile), perHour(devDesktop), perHour(devTablet))
	within("stalls per hour, mobile / tv", perHour(devMobile)/perHour(devTV), 2, 0.4)
	within("stall median, s", median(stallMS), stallMedian, 0.15*stallMedian)
	within("startup median tv, s", median(startups[devTV]), 1.5, 0.15*1.5)
	within("startup median mobile, s", median(startups[devMobile]), 2.5, 0.15*2.5)
	for d, name := range Devices {
		t.Logf("attempt share %-8s %.4f (model %.4f), startup p95 %.2f s", name, attempts[d]/starts, s.g.m.attempt[d], quantile(startups[d], 0.95))
	}

	// Zipf exponent by maximum likelihood over the known ranks (title mN has
	// rank N): maximise Σ c_n·log p_n(α), p_n = n^-α / Σ k^-α.
	logN := make([]float64, len(titleCount))
	sumC, sumCLog := 0.0, 0.0
	for i, c := range titleCount {
		logN[i] = math.Log(float64(i + 1))
		sumC += c
		sumCLog += c * logN[i]
	}
	ll := func(a float64) float64 {
		z := 0.0
		for _, l := range logN {
			z += math.Exp(-a * l)
		}
		return -a*sumCLog - sumC*math.Log(z)
	}
	lo, hi := 0.3, 2.0
	for range 60 {
		m1, m2 := lo+(hi-lo)/3, hi-(hi-lo)/3
		if ll(m1) < ll(m2) {
			lo = m1
		} else {
			hi = m2
		}
	}
	within("Zipf exponent (MLE)", (lo+hi)/2, cfg.ZipfAlpha, 0.03)
}

func median(x []float64) float64 { return quantile(x, 0.5) }

func quantile(x []float64, q float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	y := slices.Clone(x)
	slices.Sort(y)
	return y[int(q*float64(len(y)-1))]
}
