package sim

import (
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
)

// propertyRun drives n events (base rate base) through a pacer that follows Sim.Rate with
// the daily profile on (a 30-minute day), changes the base rate, and pauses
// for 20 minutes once, and checks every event:
//   - it passes player.Checker (legal transitions, seq +1 from 1, ts never
//     decreasing, positions follow the clock and stay within the title,
//     startup_ms/stall_ms match the stamps, ladder bitrates);
//   - its event_id was never seen before;
//   - event.Decode(e.AppendJSON(nil)) gives back the same event (ts at the
//     wire's millisecond precision).
func propertyRun(t *testing.T, n int, base float64) {
	cfg := DefaultConfig()
	cfg.DailyProfile = true
	cfg.DailyPeriod = 30 * time.Minute
	s := newSim(t, cfg, 2024)
	c := checker(s)
	ids := make(map[string]struct{}, n)
	var e, d event.Event
	buf := make([]byte, 0, 512)
	now := t0
	s.SetRate(base)
	types := map[event.Type]int{}
	reasons := map[string]int{}
	for i := range n {
		switch i {
		case n / 3:
			s.SetRate(base / 4)
		case n / 2:
			now = now.Add(20 * time.Minute) // the producer was stopped
		case 2 * n / 3:
			s.SetRate(base * 2)
		}
		now = now.Add(time.Duration(1e9 / s.Rate(now)))
		s.Next(now, &e)
		if !e.TS.Equal(now) {
			t.Fatalf("ts %s, want the time passed in %s", e.TS, now)
		}
		if err := c.Observe(&e); err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, e.AppendJSON(nil))
		}
		if _, dup := ids[e.EventID]; dup {
			t.Fatalf("duplicate event_id %s", e.EventID)
		}
		ids[e.EventID] = struct{}{}
		buf = e.AppendJSON(buf[:0])
		if err := event.Decode(buf, &d); err != nil {
			t.Fatalf("decode %s: %v", buf, err)
		}
		want := e
		want.TS = event.Millis(e.TS)
		if d != want {
			t.Fatalf("round trip:\n got %+v\nwant %+v", d, want)
		}
		types[e.Type]++
		if e.Type == event.Stop {
			reasons[e.StopReason]++
		}
	}
	for _, ty := range event.Types() {
		if types[ty] == 0 {
			t.Errorf("no %s event in %d", ty, n)
		}
	}
	for _, r := range event.StopReasons {
		if reasons[r] == 0 {
			t.Errorf("no stop %s in %d events", r, n)
		}
	}
	st := s.Stats()
	t.Logf("%d events, %d sessions (%d live), types %v, stops %v, stats %+v", n, c.Len(), c.Live(), types, reasons, st)
	if c.Live() != s.Active() {
		t.Errorf("checker sees %d live sessions, sim %d", c.Live(), s.Active())
	}
}

// TestPropertySmall is the race-detector-sized property test; the 1M-event
// one is TestProperty (not under -race).
func TestPropertySmall(t *testing.T) {
	propertyRun(t, 150_000, 300)
}
