package alert

import (
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/fanout/internal/aggregate"
	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

// TestSimulatedIncident feeds a real Aggregator from the simulator with an
// error burst on TVs from minute 6 to minute 9, and evaluates a playback
// failure rule every 5 s of simulated time, as the fan-out does: the
// alert fires once, within its for plus a window of the burst's start,
// names device=tv, and resolves after the burst.
func TestSimulatedIncident(t *testing.T) {
	const rate = 200 // events/s
	start := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	from, until := start.Add(6*time.Minute), start.Add(9*time.Minute)
	knobs := sim.DefaultConfig()
	knobs.Seed = 7
	knobs.MeanWatchTime = 2 * time.Minute // views end, and fail, inside the window
	knobs.Incidents = fmt.Sprintf("name=tv-errors kind=errors device=tv factor=40 from=%s until=%s", from.Format(time.RFC3339), until.Format(time.RFC3339))
	s, err := sim.New(knobs, "live", "live")
	if err != nil {
		t.Fatal(err)
	}
	s.SetRate(rate)

	clock := start
	agg := aggregate.New(aggregate.Options{Now: func() time.Time { return clock }, Export: aggregate.ExportOptions{CountFrom: start.UnixMilli()}})
	rule := Rule{Name: "failures", Metric: PlaybackFailurePct, Stream: "*", Above: true, Threshold: 5, MinSample: 20, For: 30 * time.Second, ResolveAfter: time.Minute}
	live := NewLive(agg, []Rule{rule})
	ev := NewEvaluator(live, []Rule{rule})

	var e event.Event
	rec := &consume.Record{Topic: "playback-live"}
	var changes []string
	var fired *Alert
	var firedAt, resolvedAt time.Duration
	step := time.Second / rate
	next := start.Add(5 * time.Second)
	n := int64(0)
	for now := start; now.Before(start.Add(13 * time.Minute)); now = now.Add(step) {
		s.Next(now, &e)
		n++
		h := fnv.New32a()
		h.Write([]byte(e.SessionID))
		rec.Partition, rec.Offset, rec.Timestamp, rec.Event = int32(h.Sum32()%3), n, e.TS.Truncate(time.Millisecond), e
		clock = now
		agg.Add(rec)
		if !now.Before(next) {
			live.Sample(now)
			active, cs := ev.Evaluate(now)
			for _, c := range cs {
				changes = append(changes, fmt.Sprintf("%s %s→%s", now.Sub(start), c.From, c.State))
				switch c.State {
				case Firing:
					a := c.Alert
					fired, firedAt = &a, now.Sub(start)
				case Resolved:
					resolvedAt = now.Sub(start)
				}
			}
			if now.Before(from) && len(active) > 0 {
				t.Fatalf("%v: alerts before the burst: %+v", now.Sub(start), active)
			}
			next = next.Add(5 * time.Second)
		}
	}
	t.Logf("changes: %v", changes)
	if len(changes) != 2 || !strings.HasSuffix(changes[0], "pending→firing") || !strings.HasSuffix(changes[1], "firing→resolved") {
		t.Fatalf("changes %v, want one firing then one resolved", changes)
	}
	if late := firedAt - from.Sub(start); late < rule.For || late > rule.For+time.Minute+30*time.Second {
		t.Errorf("fired %v after the burst's start, want within for (%v) plus the window", late, rule.For)
	}
	if after := resolvedAt - until.Sub(start); after < rule.ResolveAfter || after > rule.ResolveAfter+time.Minute+30*time.Second {
		t.Errorf("resolved %v after the burst's end", after)
	}
	if x := fired.Explained; x == nil || x.Dim != DimDevice || x.Value != "tv" || x.Share < 0.5 {
		t.Errorf("explained %+v, want device=tv with most of the failures", x)
	} else {
		t.Logf("%s", fired.Summary())
	}
}
