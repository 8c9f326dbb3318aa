package publish

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// drive runs the pacer's schedule logic with wake-ups at random intervals
// (up to maxGap) from t0 to t1, at rate(now), and returns the due times it
// handed out.
func drive(t0, t1 time.Time, maxGap time.Duration, rate func(time.Time) float64, rng *rand.Rand) []time.Time {
	var s schedule
	var out []time.Time
	for now := t0; now.Before(t1); now = now.Add(time.Duration(rng.Int64N(int64(maxGap)) + 1)) {
		s.setRate(rate(now), now)
		s.catchUp(now)
		if s.rate <= 0 {
			continue
		}
		for d := s.due(); !d.After(now); d = s.due() {
			out = append(out, d)
			s.k++
		}
	}
	return out
}

// countIn counts the sorted ts in [from, to).
func countIn(ts []time.Time, from, to time.Time) int {
	lo := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(from) })
	hi := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(to) })
	return hi - lo
}

// TestScheduleConstantRate: any 10 s window holds exactly rate × 10 s due
// times when that is whole, however the wake-ups fall; the due times never
// go backwards.
func TestScheduleConstantRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC)
	for _, rate := range []float64{1, 3, 10, 1000, 50000} {
		gap := 50 * time.Millisecond
		if rate > 1000 {
			gap = 2 * time.Millisecond
		}
		ts := drive(t0, t0.Add(15*time.Second), gap, func(time.Time) float64 { return rate }, rng)
		for i := 1; i < len(ts); i++ {
			if ts[i].Before(ts[i-1]) {
				t.Fatalf("rate %v: due times go backwards", rate)
			}
		}
		for i := range 20 {
			from := t0.Add(time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))).Truncate(time.Millisecond)
			if i == 0 {
				from = ts[0] // a window starting exactly on an event
			}
			if got, want := countIn(ts, from, from.Add(10*time.Second)), int(rate*10); got != want {
				t.Fatalf("rate %v: %d due times in [%s, +10s), want %d", rate, got, from.Sub(t0), want)
			}
		}
	}
}

// TestScheduleFollowsRate: with a rate that moves (the daily profile) the
// due times follow its integral; a pause hands out nothing and the schedule
// restarts at the end of the pause.
func TestScheduleFollowsRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	period := 60 * time.Second
	rate := func(now time.Time) float64 {
		x := now.Sub(t0).Seconds() / period.Seconds()
		r := 1000 * (1 + 0.7*math.Sin(2*math.Pi*x))
		if d := now.Sub(t0); d >= 70*time.Second && d < 75*time.Second {
			return 0 // paused
		}
		return r
	}
	ts := drive(t0, t0.Add(100*time.Second), time.Millisecond, rate, rng)
	for start := time.Duration(0); start < 90*time.Second; start += 5 * time.Second {
		from, to := t0.Add(start), t0.Add(start+10*time.Second)
		want := 0.0
		for x := from; x.Before(to); x = x.Add(time.Millisecond) {
			want += rate(x.Add(500*time.Microsecond)) / 1000
		}
		got := float64(countIn(ts, from, to))
		if math.Abs(got-want) > 0.005*want+2 {
			t.Errorf("[%s, +10s): %v due times, integral of the rate %.1f", start, got, want)
		}
	}
	if n := countIn(ts, t0.Add(70*time.Second), t0.Add(75*time.Second)); n != 0 {
		t.Errorf("%d due times during the pause", n)
	}
}

// TestScheduleCatchUp: a pacer that wakes after a stall catches up a
// backlog of at most a second, then restarts the schedule rather than
// bursting.
func TestScheduleCatchUp(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var s schedule
	s.setRate(100, t0)
	now := t0.Add(500 * time.Millisecond) // short stall: catch up
	s.catchUp(now)
	if !s.due().Equal(t0) {
		t.Fatalf("after a 0.5 s stall the next event is due at %s, want the start", s.due().Sub(t0))
	}
	now = t0.Add(3 * time.Second) // long stall: restart
	s.catchUp(now)
	if !s.due().Equal(now) {
		t.Fatalf("after a 3 s stall the next event is due at %s, want now", s.due().Sub(t0))
	}
}

func TestExpBackoff(t *testing.T) {
	f := expBackoff(100*time.Millisecond, time.Second)
	for retries, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		if got := f(retries, 100); got != want*time.Millisecond {
			t.Errorf("retry %d: %s, want %s", retries, got, want*time.Millisecond)
		}
	}
	if got := f(1<<30, 1<<30); got != time.Second {
		t.Errorf("huge retry count: %s", got)
	}
}

func TestEffectiveLinger(t *testing.T) {
	for _, tc := range []struct {
		linger time.Duration
		rate   float64
		want   time.Duration
	}{
		{5 * time.Millisecond, 0, 0},
		{5 * time.Millisecond, 10, 0},
		{5 * time.Millisecond, 199, 0},
		{5 * time.Millisecond, 200, 5 * time.Millisecond},
		{5 * time.Millisecond, 50000, 5 * time.Millisecond},
		{20 * time.Millisecond, 100, 20 * time.Millisecond},
		{0, 1e6, 0},
	} {
		if got := EffectiveLinger(tc.linger, tc.rate); got != tc.want {
			t.Errorf("EffectiveLinger(%s, %g) = %s, want %s", tc.linger, tc.rate, got, tc.want)
		}
	}
}
