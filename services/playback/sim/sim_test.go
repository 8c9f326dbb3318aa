package sim

import (
	"crypto/sha256"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/player"
)

var t0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

func newSim(t testing.TB, cfg Config, seed uint64) *Sim {
	t.Helper()
	cfg.Seed = seed
	s, err := New(cfg, "default", "test-pod-a1")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pace calls Next at exactly rate events per second of simulated time from
// start, n times, and passes every event to f with the call's time.
// It returns the time after the last call.
func pace(s *Sim, start time.Time, rate float64, n int, f func(now time.Time, e *event.Event)) time.Time {
	var e event.Event
	var now time.Time
	for i := range n {
		now = start.Add(time.Duration(float64(i) / rate * 1e9))
		s.Next(now, &e)
		if f != nil {
			f(now, &e)
		}
	}
	return start.Add(time.Duration(float64(n) / rate * 1e9))
}

func checker(s *Sim) *player.Checker {
	return &player.Checker{Tolerance: 5 * time.Millisecond, Duration: s.TitleDuration}
}

func mustObserve(t testing.TB, c *player.Checker, e *event.Event) {
	if err := c.Observe(e); err != nil {
		t.Fatalf("%v\nevent: %s", err, e.AppendJSON(nil))
	}
}

// TestDeterministic: the same seed and the same Next times give the same
// bytes; another seed does not.
func TestDeterministic(t *testing.T) {
	n := 300_000
	if raceEnabled {
		n = 60_000
	}
	run := func(seed uint64) [32]byte {
		cfg := DefaultConfig()
		cfg.DailyProfile, cfg.DailyPeriod = true, time.Hour
		s := newSim(t, cfg, seed)
		h := sha256.New()
		buf := make([]byte, 0, 512)
		var e event.Event
		now := t0
		for i := range n {
			// Irregular pacing and a rate change, as a real pacer would do.
			if i == n/2 {
				s.SetRate(5000)
			} else if i == 0 {
				s.SetRate(2000)
			}
			now = now.Add(time.Duration(100+i%700) * time.Microsecond)
			s.Next(now, &e)
			buf = e.AppendJSON(buf[:0])
			h.Write(buf)
		}
		return [32]byte(h.Sum(nil))
	}
	a, b, c := run(7), run(7), run(8)
	if a != b {
		t.Fatal("same seed, different events")
	}
	if a == c {
		t.Fatal("different seeds, same events")
	}
}

func TestSeed(t *testing.T) {
	s := newSim(t, DefaultConfig(), 0)
	if s.Seed() == 0 {
		t.Fatal("random seed is 0")
	}
	if s2 := newSim(t, DefaultConfig(), 99); s2.Seed() != 99 {
		t.Fatal("seed not kept")
	}
}

// TestSessionIDs: ids carry the prefix, and two simulators with different
// prefixes never collide even with the same seed.
func TestSessionIDs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 1
	a, _ := New(cfg, "default", "pod-a")
	b, _ := New(cfg, "default", "pod-b")
	c, _ := New(cfg, "default", "")
	seen := map[string]bool{}
	for _, s := range []*Sim{a, b, c} {
		s.SetRate(1000)
		pace(s, t0, 1000, 20000, func(_ time.Time, e *event.Event) {
			if seen[e.EventID] {
				t.Fatalf("event id %s repeated", e.EventID)
			}
			seen[e.EventID] = true
			if s == a && !strings.HasPrefix(e.SessionID, "pod-a-") {
				t.Fatalf("session id %q lacks its prefix", e.SessionID)
			}
			if s == c && !strings.HasPrefix(e.SessionID, "s") {
				t.Fatalf("session id %q", e.SessionID)
			}
			if e.EventID != fmt.Sprintf("%s-%d", e.SessionID, e.Seq) {
				t.Fatalf("event id %q for %q/%d", e.EventID, e.SessionID, e.Seq)
			}
		})
	}
}

// TestNowBackwards: a time before the previous call's is replaced by it.
func TestNowBackwards(t *testing.T) {
	s := newSim(t, DefaultConfig(), 1)
	s.SetRate(100)
	c := checker(s)
	end := pace(s, t0, 100, 1000, func(_ time.Time, e *event.Event) { mustObserve(t, c, e) })
	last := end.Add(-10 * time.Millisecond)
	var e event.Event
	s.Next(last.Add(-time.Hour), &e)
	mustObserve(t, c, &e)
	if !e.TS.Equal(last) {
		t.Fatalf("ts %s, want the previous now %s", e.TS, last)
	}
}

// TestRateZeroAndTiny: at rate 0 no session arrives (Next still works and
// only starts a session when none is left); tiny rates keep sessions valid.
func TestRateZeroAndTiny(t *testing.T) {
	s := newSim(t, DefaultConfig(), 3)
	c := checker(s)
	// Never set: rate 0. Next must still return events.
	end := pace(s, t0, 1, 50, func(_ time.Time, e *event.Event) { mustObserve(t, c, e) })
	if st := s.Stats(); st.Arrivals != 0 || s.Active() > 1 {
		t.Fatalf("rate 0: %+v, active %d", st, s.Active())
	}
	for _, r := range []float64{0.01, 0.1, 1} {
		s.SetRate(r)
		end = pace(s, end, r, 400, func(_ time.Time, e *event.Event) { mustObserve(t, c, e) })
	}
	for _, bad := range []float64{-5, math.NaN(), math.Inf(1)} {
		s.SetRate(bad)
		if r := s.Rate(end); r != 0 {
			t.Fatalf("SetRate(%v): rate %v", bad, r)
		}
	}
}

// TestMaxSessions: the hard cap holds even when the rate asks for more.
func TestMaxSessions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSessions = 50
	s := newSim(t, cfg, 1)
	s.SetRate(10000)
	c := checker(s)
	pace(s, t0, 10000, 100_000, func(_ time.Time, e *event.Event) {
		mustObserve(t, c, e)
		if s.Active() > 50 {
			t.Fatalf("%d active sessions, cap 50", s.Active())
		}
	})
	if s.Stats().Fillers == 0 {
		t.Fatal("no fillers at the cap")
	}
}

// sessionLog follows each session's events for realism checks.
type sessionLog struct {
	state  player.State
	last   time.Time
	events int
}

// TestRates runs 10 simulated minutes at exactly R events per second for R
// in {1, 100, 10000} (10000 is shortened under -race) and checks that the
// output stays realistic whatever the rate:
//   - every event passes player.Checker (transitions, seq, positions, ...);
//   - the population follows Little's law for the configured model: the
//     mean number of live sessions over the second half is within ±15%
//     (±40% at R=1, where it is ~9 sessions) of loadFactor·R·T/N, T and N
//     being the pilot's mean session duration and events per session; so
//     the rate comes from a realistically sized population, not from
//     hyperactive sessions;
//   - a live session (playing, paused, stalled) is never silent for longer
//     than the heartbeat interval plus the largest lag;
//   - events wait little: mean lag ≤ 2/R + 50 ms, max lag ≤ 5 s + 2/R
//     (calls come every 1/R, so waiting about 1/R is inherent);
//   - fillers move heartbeats ahead by little: mean ≤ max(H/20, 2/R).
func TestRates(t *testing.T) {
	for _, r := range []float64{1, 100, 10000} {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			secs := 600.0
			if raceEnabled && r > 1000 {
				secs = 60
			}
			cfg := DefaultConfig()
			s := newSim(t, cfg, 11)
			s.SetRate(r)
			c := checker(s)
			logs := map[string]*sessionLog{}
			var maxSilence time.Duration
			n := int(r * secs)
			activeSum, activeN := 0.0, 0
			pace(s, t0, r, n, func(now time.Time, e *event.Event) {
				mustObserve(t, c, e)
				l := logs[e.SessionID]
				if l == nil {
					l = &sessionLog{}
					logs[e.SessionID] = l
				} else if l.state == player.Playing || l.state == player.Paused || l.state == player.Stalled {
					maxSilence = max(maxSilence, e.TS.Sub(l.last))
				}
				l.state, _ = c.State(e.SessionID)
				l.last = e.TS
				l.events++
				if l.state == player.Ended {
					delete(logs, e.SessionID)
				}
				if now.Sub(t0).Seconds() > secs/2 {
					activeSum += float64(s.Active())
					activeN++
				}
			})
			st := s.Stats()
			meanActive := activeSum / float64(activeN)
			little := loadFactor * r * s.ExpectedSessionDuration().Seconds() / s.ExpectedEventsPerSession()
			t.Logf("R=%v: mean active %.1f, Little %.1f, %+v, mean lag %v, mean early %v, max silence %v",
				r, meanActive, little, st, st.MeanLag(), st.MeanEarly(), maxSilence)
			tol := 0.15
			if r < 10 {
				tol = 0.4
			}
			if math.Abs(meanActive/little-1) > tol && secs == 600 {
				t.Errorf("mean active %.1f, Little's law says %.1f (±%.0f%%)", meanActive, little, tol*100)
			}
			hb := cfg.HeartbeatInterval
			if maxSilence > hb+st.LagMax+time.Millisecond {
				t.Errorf("a live session was silent for %v (heartbeat %v, max lag %v)", maxSilence, hb, st.LagMax)
			}
			if ml := st.MeanLag(); ml > time.Duration(2e9/r)+50*time.Millisecond {
				t.Errorf("mean lag %v", ml)
			}
			if st.LagMax > 5*time.Second+time.Duration(2e9/r) {
				t.Errorf("max lag %v", st.LagMax)
			}
			if me := st.MeanEarly(); me > max(hb/20, time.Duration(2e9/r)) {
				t.Errorf("fillers %v ahead of plan on average", me)
			}
			if st.Events != uint64(n) {
				t.Errorf("%d events counted for %d calls", st.Events, n)
			}
		})
	}
}

// TestSetRate: a rate increase grows the population to its new target
// within a few minutes; a decrease stops arrivals and lets sessions end
// naturally (no event is dropped: every session still ends with a stop
// that passes the Checker).
func TestSetRate(t *testing.T) {
	hi := 5000.0
	if raceEnabled {
		hi = 1000
	}
	s := newSim(t, DefaultConfig(), 5)
	c := checker(s)
	obs := func(_ time.Time, e *event.Event) { mustObserve(t, c, e) }
	s.SetRate(100)
	now := pace(s, t0, 100, 100*300, obs)
	low := s.Active()

	s.SetRate(hi)
	now = pace(s, now, hi, int(hi*180), obs)
	target := s.Stats().Target
	if a := float64(s.Active()); a < 0.85*target || a > 1.1*target {
		t.Fatalf("after raising the rate: %v active, target %.0f (was %d)", a, target, low)
	}

	s.SetRate(50)
	before := s.Active()
	startsWhileAbove := 0
	prev := before
	for range 10 {
		now = pace(s, now, 50, 50*30, func(nw time.Time, e *event.Event) {
			obs(nw, e)
			if e.Type == event.Start && float64(s.Active()) > s.Stats().Target*1.06+2 {
				startsWhileAbove++
			}
		})
		if hi := s.Stats().Target*(1+gateBand) + 1; float64(s.Active()) > max(float64(prev), hi) {
			t.Fatalf("population grew from %d to %d after lowering the rate (target %.0f)", prev, s.Active(), s.Stats().Target)
		}
		prev = s.Active()
	}
	if startsWhileAbove > 0 {
		t.Fatalf("%d sessions started while the population was above target", startsWhileAbove)
	}
	// Overdue sessions are shed, so the population drains at close to the
	// new rate (one stop per call at most): 50/s × 300 s = 15000.
	if want := min(10000, before/2); before-prev < want {
		t.Fatalf("population shrank only from %d to %d in 5 minutes at 50/s", before, prev)
	}
	t.Logf("active: %d at 100/s, %.0f target at %v/s, %d → %d after 5 min at 50/s", low, target, hi, before, prev)

	// Rate 0 (the producer stops calling), then a resumption an hour later:
	// overdue sessions end, their events stamped at the resumption time.
	s.SetRate(0)
	later := now.Add(time.Hour)
	s.SetRate(50)
	shed, stops, live := s.Stats().Shed, 0, s.Active()
	pace(s, later, 50, 50*60, func(nw time.Time, e *event.Event) {
		obs(nw, e)
		if e.Type == event.Stop {
			stops++
		}
	})
	// Every session live before the pause is overdue by an hour: each ends
	// at its first event after the pause (one per call), none reports an
	// hour-long stall.
	if got := int(s.Stats().Shed - shed); got != min(live, 3000) || stops < got {
		t.Fatalf("after an hour's pause: %d of %d sessions shed, %d stops", got, live, stops)
	}
}

// TestLongHeartbeat: with a heartbeat interval beyond the calendar queue's
// ~34 s horizon most sessions wait in its overflow heap; order and
// validity must not suffer.
func TestLongHeartbeat(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HeartbeatInterval = 2 * time.Minute
	s := newSim(t, cfg, 9)
	s.SetRate(200)
	c := checker(s)
	last := map[string]time.Time{}
	var maxSilence time.Duration
	pace(s, t0, 200, 200*1800, func(_ time.Time, e *event.Event) {
		mustObserve(t, c, e)
		if st, _ := c.State(e.SessionID); st == player.Ended {
			delete(last, e.SessionID)
		} else {
			if l, ok := last[e.SessionID]; ok && st != player.Starting {
				maxSilence = max(maxSilence, e.TS.Sub(l))
			}
			last[e.SessionID] = e.TS
		}
	})
	st := s.Stats()
	if maxSilence > cfg.HeartbeatInterval+st.LagMax+time.Millisecond {
		t.Fatalf("silence %v with heartbeat %v, max lag %v", maxSilence, cfg.HeartbeatInterval, st.LagMax)
	}
	t.Logf("active %d, %+v, max silence %v", s.Active(), st, maxSilence)
}

// TestConcurrentControl: SetRate, Rate and Active may be called from other
// goroutines while Next runs (go test -race checks it).
func TestConcurrentControl(t *testing.T) {
	s := newSim(t, DefaultConfig(), 4)
	s.SetRate(500)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			s.SetRate(float64(400 + i%200))
			_ = s.Rate(t0)
			_ = s.Active()
		}
	}()
	c := checker(s)
	pace(s, t0, 500, 20000, func(_ time.Time, e *event.Event) { mustObserve(t, c, e) })
	<-done
}

// TestExtremeConfigs: valid corner configurations still give valid streams.
func TestExtremeConfigs(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"mobile only": func(c *Config) { c.DeviceMix = "mobile:1" },
		"no failures": func(c *Config) {
			c.StartFailureRate, c.ExitBeforeStartRate, c.RebufferRatio, c.PlaybackErrorRate = 0, 0, 0, 0
		},
		"everything fails": func(c *Config) {
			c.StartFailureRate, c.ExitBeforeStartRate, c.RebufferRatio, c.PlaybackErrorRate = 0.5, 0.25, 0.3, 0.5
		},
		"short views": func(c *Config) { c.MeanWatchTime, c.HeartbeatInterval = time.Minute, time.Second },
		"long views":  func(c *Config) { c.MeanWatchTime, c.CatalogSize, c.ZipfAlpha = 40*time.Minute, 1, 5 },
		"one user":    func(c *Config) { c.Users, c.MaxSessions = 1, 3 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			mutate(&cfg)
			s := newSim(t, cfg, 21)
			s.SetRate(200)
			c := checker(s)
			pace(s, t0, 200, 200*600, func(_ time.Time, e *event.Event) { mustObserve(t, c, e) })
			t.Logf("%d sessions, %d live, %+v", c.Len(), c.Live(), s.Stats())
		})
	}
}

// TestInstancesDiffer: replicas of one stream share PRODUCER_SEED, so the
// session prefix (the instance id) must set them apart: their viewers,
// titles, devices and event types differ, while one prefix with one seed
// still reproduces the same behaviour.
func TestInstancesDiffer(t *testing.T) {
	behaviour := func(seed uint64, prefix string) [32]byte {
		cfg := DefaultConfig()
		cfg.Seed = seed
		s, err := New(cfg, "default", prefix)
		if err != nil {
			t.Fatal(err)
		}
		s.SetRate(1000)
		h := sha256.New()
		pace(s, t0, 1000, 5000, func(_ time.Time, e *event.Event) {
			// Everything but the ids, which carry the prefix by design.
			fmt.Fprintln(h, e.Seq, e.Type, e.UserID, e.MovieID, e.Device, e.Position, e.Bitrate, e.CDN, e.StallMS, e.StartupMS)
		})
		return [32]byte(h.Sum(nil))
	}
	tests := []struct {
		name     string
		a, b     string
		seedA    uint64
		seedB    uint64
		wantSame bool
	}{
		{"same seed, same instance", "live-producer-7d9-a1", "live-producer-7d9-a1", 42, 42, true},
		{"same seed, other replica", "live-producer-7d9-a1", "live-producer-7d9-b2", 42, 42, false},
		{"same seed, restarted replica", "live-producer-7d9-a1", "live-producer-7d9-a1x", 42, 42, false},
		{"same instance, other seed", "pod-a", "pod-a", 42, 43, false},
		{"no prefix, same seed", "", "", 7, 7, true},
		{"no prefix and a prefix", "", "pod-a", 7, 7, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if same := behaviour(tt.seedA, tt.a) == behaviour(tt.seedB, tt.b); same != tt.wantSame {
				t.Errorf("%q seed %d vs %q seed %d: same behaviour %v, want %v", tt.a, tt.seedA, tt.b, tt.seedB, same, tt.wantSame)
			}
		})
	}
}
