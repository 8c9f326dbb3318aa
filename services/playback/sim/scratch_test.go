package sim

import (
	"fmt"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/player"
)

func TestScratch(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 1
	st := time.Now()
	m := getModel(cfg)
	fmt.Println("model build", time.Since(st))
	fmt.Printf("attempt %v\nwatchTarget %v\nwatchMedian %v\nkappa %v stallBase %v (per hour %v) fatal %v\nN %v T %v completion %v\n",
		m.attempt, m.watchTarget, m.watchMedian, m.ebvsKappa, m.stallBase, m.stallBase*3600, m.fatalRate, m.eventsPerSession, m.sessionSeconds, m.pilotCompletion)
	for _, R := range []float64{1, 100, 10000} {
		s, _ := New(cfg, "default", "p")
		s.SetRate(R)
		c := &player.Checker{Tolerance: 5 * time.Millisecond, Duration: s.TitleDuration}
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		n := int(R * 600)
		var e event.Event
		activeSum := 0.0
		st := time.Now()
		for i := 0; i < n; i++ {
			now := t0.Add(time.Duration(float64(i) / R * 1e9))
			s.Next(now, &e)
			if err := c.Observe(&e); err != nil {
				t.Fatal(err)
			}
			if i > n/2 {
				activeSum += float64(s.Active())
			}
		}
		stt := s.Stats()
		fmt.Printf("R=%v took %v active %d meanActive(2nd half) %.1f target %.1f stats %+v meanlag %v\n", R, time.Since(st), s.Active(), activeSum/float64(n-n/2-1), stt.Target, stt, stt.MeanLag())
	}
}
